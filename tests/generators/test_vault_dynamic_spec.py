"""VaultDynamicSecret's spec: ESO's fields checked offline, and retrySettings applied while Vault is down."""

from __future__ import annotations

import pytest

from federation.config.model import Configuration, KubeSecret
from federation.errors import StoreUnavailable
from federation.generators.model import GeneratorConfig, GeneratorRef, GeneratorSpecError
from federation.generators.vault_dynamic import MAX_RETRY_WAIT, VaultDynamicGenerator, parse_spec
from federation.settings import Settings
from hack.ports import free_port

WHERE = "VaultDynamicSecret apps/db"


def test_eso_defaults() -> None:
    spec = parse_spec(WHERE, {"path": "/database/creds/app/"})
    assert (spec.path, spec.method, spec.result_type, spec.max_retries) == (
        "database/creds/app",
        "GET",
        "Data",
        0,
    )
    written = parse_spec(WHERE, {"path": "aws/sts/x", "method": "post", "parameters": {"ttl": "1h"}})
    assert (written.method, written.parameters) == ("POST", {"ttl": "1h"})


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ({}, "path is required"),
        ({"path": "database/../sys"}, "not a valid Vault path"),
        ({"path": "a", "method": "GET /x"}, "method must be an HTTP method"),
        ({"path": "a", "parameters": ["x"]}, "parameters must be an object"),
        ({"path": "a", "resultType": "Lease"}, "resultType must be one of Data, Auth, Raw"),
        ({"path": "a", "allowEmptyResponse": "yes"}, "allowEmptyResponse must be true or false"),
        ({"path": "a", "retrySettings": {"maxRetries": 11}}, "maxRetries must be an integer from 0 to 10"),
        ({"path": "a", "retrySettings": {"retryInterval": "soon"}}, "retryInterval"),
    ],
)
def test_a_spec_that_cannot_work_names_the_field(spec: dict[str, object], named: str) -> None:
    with pytest.raises(GeneratorSpecError, match=named):
        parse_spec(WHERE, spec)


def test_retry_settings_retry_an_unreachable_vault_within_a_bound() -> None:
    provider = {
        "server": f"http://127.0.0.1:{free_port()}",  # nothing listens there
        "auth": {"tokenSecretRef": {"name": "bao-token", "key": "token"}},
    }
    spec = {
        "provider": provider,
        "path": "database/creds/app",
        "retrySettings": {"maxRetries": 3, "retryInterval": "2s"},
    }
    config = GeneratorConfig(GeneratorRef("apps", "VaultDynamicSecret", "db"), spec)
    snapshot = Configuration(
        secrets={("apps", "bao-token"): KubeSecret("apps", "bao-token", {"token": b"t"})}
    )
    waits: list[float] = []
    generator = VaultDynamicGenerator(config, snapshot, Settings(), sleep=waits.append)
    with pytest.raises(StoreUnavailable):
        generator.generate()
    assert waits == [2.0, 2.0, 2.0]
    assert sum(waits) <= MAX_RETRY_WAIT
    generator.close()
