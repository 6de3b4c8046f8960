"""One configuration snapshot decides a whole request, even when a reload lands between its steps."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from federation.config.model import Configuration, StoreConfig
from federation.service import FederationService
from tests.federation.helpers_requests import PASSWORD, post_secrets
from tests.helpers_stack import STORE, FederationStack


def _service(stack: FederationStack) -> FederationService:
    service: FederationService = stack.app.extensions["esi.service"]
    return service


def _other_configuration(config: Configuration) -> Configuration:
    """The same configuration with no grant left and another value in the store."""
    store = config.stores[STORE]
    data = [{"key": "db-credentials", "value": '{"password": "from-the-reloaded-configuration"}'}]
    return dataclasses.replace(
        config,
        grants=(),
        stores={**config.stores, STORE: StoreConfig(store.name, "fake", {"data": data})},
        source="reloaded mid-request",
    )


def _reload_after(step: Callable[..., Any], service: FederationService, seen: list[Configuration]) -> Any:
    """``step`` that puts another configuration in force once it has run, and records its snapshot."""

    def wrapped(*args: Any) -> Any:
        answer = step(*args)
        seen.extend(arg for arg in args if isinstance(arg, Configuration))
        service.holder.replace(_other_configuration(service.holder.current))
        return answer

    return wrapped


@pytest.mark.parametrize("step", ["verify", "read"])
def test_a_reload_between_steps_leaves_the_request_to_the_snapshot_it_started_with(
    federation_stack: FederationStack, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    service = _service(federation_stack)
    started_with = service.holder.current
    seen: list[Configuration] = []
    if step == "verify":
        monkeypatch.setattr(service.verifier, "verify", _reload_after(service.verifier.verify, service, seen))
    else:
        monkeypatch.setattr(service.reader, "read", _reload_after(service.reader.read, service, seen))

    response = post_secrets(federation_stack, federation_stack.mint(), secrets=[PASSWORD])

    assert response.status_code == 200, response.text
    assert response.json()["secrets"][0]["value"] == federation_stack.values["password"]
    assert seen == [started_with]
    assert service.holder.current is not started_with
    monkeypatch.undo()
    assert post_secrets(federation_stack, federation_stack.mint(), secrets=[PASSWORD]).status_code == 403


def test_the_outcome_names_the_snapshot_that_decided_it(
    federation_stack: FederationStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = _service(federation_stack)
    started_with = service.holder.current
    seen: list[Configuration] = []
    monkeypatch.setattr(service.verifier, "verify", _reload_after(service.verifier.verify, service, seen))
    token = federation_stack.mint()

    outcome = service.secrets(token, b'{"secrets": [{"store": "vault-prod", "key": "db-credentials"}]}')

    assert outcome.decision == "allowed"
    assert outcome.config is started_with
    assert outcome.error is None
