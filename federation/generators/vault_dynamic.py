"""ESO's ``VaultDynamicSecret`` generator: one call to a Vault secrets engine that makes a credential.

``spec``: ``provider`` (a ``vault`` store's provider block: server, namespace, caBundle/caProvider, auth),
``path`` (required, e.g. ``database/creds/readonly``), ``method`` (``GET`` by default; ``LIST``,
``DELETE``, and any other method writes ``parameters``), ``parameters`` (an object), ``resultType``
(``Data`` (default): the answer's ``data``; ``Auth``: its ``auth`` block; ``Raw``: the whole answer),
``retrySettings`` (``maxRetries``, ``retryInterval``: retried while Vault is unreachable or sealed),
``allowEmptyResponse``. Values that are not strings come back as JSON text, as ESO stores them.

The Vault client, its TLS trust and its login are the ``vault`` store provider's (``stores.vault``).
Secret references in ``provider`` (``tokenSecretRef``, ``secretRef``, ...) default to the generator's
namespace and may not name another one, as for any namespaced ESO resource.

Unlike ESO, an answer without a lease is refused: the federation hands out only what it can take back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from cli.durations import parse_duration
from federation.config.model import Configuration, StoreConfig
from federation.errors import StoreError, StoreUnavailable
from federation.generators.base import Generated, Lease
from federation.generators.model import GeneratorConfig, GeneratorSpecError
from federation.settings import Settings

RESULT_TYPES = ("Data", "Auth", "Raw")
MAX_RETRY_WAIT = 10.0  # seconds of retries in all: a request must finish within gunicorn's timeout


@dataclass(frozen=True)
class VaultDynamicSpec:
    """The request part of the spec, checked."""

    path: str
    method: str
    parameters: Mapping[str, Any] | None
    result_type: str
    max_retries: int
    retry_interval: float
    allow_empty_response: bool


def parse_spec(where: str, spec: Mapping[str, Any]) -> VaultDynamicSpec:
    """The request to send; ``GeneratorSpecError`` names the field that cannot work."""
    path = spec.get("path")
    if not isinstance(path, str) or not path.strip("/"):
        raise GeneratorSpecError(f"{where}: path is required (e.g. database/creds/<role>)")
    segments = path.strip("/").split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        raise GeneratorSpecError(f"{where}: path {path!r} is not a valid Vault path")
    method = spec.get("method") or "GET"
    if not isinstance(method, str) or not method.isalpha():
        raise GeneratorSpecError(f"{where}: method must be an HTTP method such as GET or POST")
    parameters = spec.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise GeneratorSpecError(f"{where}: parameters must be an object")
    result_type = spec.get("resultType") or "Data"
    if result_type not in RESULT_TYPES:
        raise GeneratorSpecError(f"{where}: resultType must be one of {', '.join(RESULT_TYPES)}")
    allow_empty = spec.get("allowEmptyResponse", False)
    if not isinstance(allow_empty, bool):
        raise GeneratorSpecError(f"{where}: allowEmptyResponse must be true or false")
    retries, interval = _retry_settings(where, spec.get("retrySettings"))
    return VaultDynamicSpec(
        "/".join(quote(segment, safe="") for segment in segments),
        method.upper(),
        parameters,
        result_type,
        retries,
        interval,
        allow_empty,
    )


def _retry_settings(where: str, settings: Any) -> tuple[int, float]:
    if settings is None:
        return 0, 0.0
    if not isinstance(settings, dict):
        raise GeneratorSpecError(f"{where}: retrySettings must be {{maxRetries, retryInterval}}")
    retries = settings.get("maxRetries", 0)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10:
        raise GeneratorSpecError(f"{where}: retrySettings.maxRetries must be an integer from 0 to 10")
    interval_text = settings.get("retryInterval", "1s")
    try:
        interval = parse_duration(str(interval_text))
    except ValueError as exc:
        raise GeneratorSpecError(f"{where}: retrySettings.retryInterval: {exc}") from None
    return retries, interval


def provider_store(config: GeneratorConfig) -> StoreConfig:
    """The generator's ``provider`` as a vault store spec, its Secret references in its namespace."""
    where = config.ref.describe()
    provider = config.spec.get("provider")
    if not isinstance(provider, dict):
        raise GeneratorSpecError(f"{where}: provider (a vault provider block) is required")
    return StoreConfig(where, "vault", _in_namespace(where, provider, config.ref.namespace))


def _in_namespace(where: str, node: Any, namespace: str) -> Any:
    """A copy of ``node`` whose Secret selectors (``{name, key}``) all name ``namespace``."""
    if isinstance(node, list):
        return [_in_namespace(where, item, namespace) for item in node]
    if not isinstance(node, dict):
        return node
    copy = {key: _in_namespace(where, value, namespace) for key, value in node.items()}
    if isinstance(node.get("name"), str) and isinstance(node.get("key"), str):
        given = node.get("namespace")
        if given not in (None, "", namespace):
            raise GeneratorSpecError(
                f"{where}: a Secret reference names namespace {given!r}; a generator may only use "
                f"Secrets of its own namespace {namespace!r}"
            )
        copy["namespace"] = namespace
    return copy


class VaultDynamicGenerator:
    """``VaultDynamicSecret``: every call makes a new credential with its own Vault lease."""

    def __init__(
        self,
        config: GeneratorConfig,
        snapshot: Configuration,
        settings: Settings,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.ref = config.ref
        self._where = config.ref.describe()
        self.spec = parse_spec(self._where, config.spec)
        from federation.stores import vault  # noqa: PLC0415 - hvac is loaded only when a Vault is used

        try:
            self._vault = vault.build(provider_store(config), snapshot, settings)
        except StoreError as exc:
            raise GeneratorSpecError(exc.detail) from None
        self._sleep = sleep

    def generate(self) -> Generated:
        """A new credential and its lease; ``StoreError`` when Vault answers without a lease."""
        spec = self.spec
        body = None
        if spec.method not in ("GET", "LIST", "DELETE"):
            body = dict(spec.parameters or {})
        answer = self._with_retries(lambda: self._vault.request(spec.method, spec.path, body))
        lease_id = answer.get("lease_id")
        if not answer and spec.allow_empty_response:
            return Generated({})
        if not isinstance(lease_id, str) or not lease_id:
            raise StoreError(
                f"{self._where}: Vault answered {spec.method} {spec.path} without a lease; only "
                "credentials that can be revoked are served (e.g. database/creds/<role>)"
            )
        lease = Lease(lease_id, _seconds(answer.get("lease_duration")), bool(answer.get("renewable")))
        try:
            data = self._result(answer)
        except StoreError:
            self.revoke(lease_id)  # never leave a credential out that nobody will receive
            raise
        return Generated(data, lease)

    def renew(self, lease_id: str, increment: float) -> Lease:
        """``sys/leases/renew``; the answer's duration is what Vault granted."""
        answer = self._vault.request(
            "PUT", "sys/leases/renew", {"lease_id": lease_id, "increment": max(1, int(increment))}
        )
        return Lease(lease_id, _seconds(answer.get("lease_duration")), bool(answer.get("renewable")))

    def revoke(self, lease_id: str) -> None:
        """``sys/leases/revoke``: the database role (or other credential) is dropped by Vault now."""
        self._vault.request("PUT", "sys/leases/revoke", {"lease_id": lease_id})

    def close(self) -> None:
        """Close the Vault connections."""
        self._vault.close()

    def _with_retries(self, call: Callable[[], Mapping[str, Any]]) -> Mapping[str, Any]:
        attempts, waited = 0, 0.0
        while True:
            try:
                return call()
            except StoreUnavailable:
                pause = self.spec.retry_interval
                if attempts >= self.spec.max_retries or waited + pause > MAX_RETRY_WAIT:
                    raise
            self._sleep(pause)
            attempts, waited = attempts + 1, waited + pause

    def _result(self, answer: Mapping[str, Any]) -> dict[str, str]:
        if self.spec.result_type == "Raw":
            chosen: Any = answer
        elif self.spec.result_type == "Auth":
            chosen = answer.get("auth")
        else:
            chosen = answer.get("data")
        if not isinstance(chosen, dict):
            raise StoreError(f"{self._where}: Vault's answer has no {self.spec.result_type.lower()} map")
        return {
            str(key): value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            for key, value in chosen.items()
        }


def _seconds(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def build(
    config: GeneratorConfig, *, snapshot: Configuration, settings: Settings, **_: Any
) -> VaultDynamicGenerator:
    """Generator factory (see ``generators.registry``); the referenced Secrets are read from
    ``snapshot``; nothing is sent to Vault before a call."""
    return VaultDynamicGenerator(config, snapshot, settings)
