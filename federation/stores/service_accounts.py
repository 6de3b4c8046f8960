"""Tokens of cluster-main's ServiceAccounts, minted through the TokenRequest API (Kubernetes mode only).

ESO's ``auth.kubernetes.serviceAccountRef`` and ``auth.jwt.kubernetesServiceAccountToken`` (vault), and
``auth.serviceAccount`` (kubernetes provider), log in with a short-lived token of a ServiceAccount
that ESO asks its API server for. The server does the same with cluster-main's API server, the one it
watches in Kubernetes mode (``--kubernetes``, in-cluster or ``--kubeconfig``); its ClusterRole must allow
``create`` on ``serviceaccounts/token``. In local mode there is no API server to ask: such a store is
refused, and ``esi-federation check`` says so. A token is minted at each login, never stored.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from federation.errors import StoreError, StoreUnavailable
from federation.kube.api import KubeApi, KubeApiError
from federation.settings import Settings

DEFAULT_EXPIRATION_SECONDS = 600  # the API server's minimum
_apis: dict[Path | None, KubeApi] = {}
_apis_lock = threading.Lock()


@dataclass(frozen=True)
class ServiceAccountToken:
    """Which token to mint: a ServiceAccount of cluster-main, its audiences and lifetime."""

    where: str
    namespace: str
    name: str
    audiences: tuple[str, ...]
    expiration_seconds: int
    kubeconfig: Path | None

    def mint(self) -> str:
        """A new token (one TokenRequest); ``StoreError``/``StoreUnavailable`` say why there is none."""
        path = (
            f"/api/v1/namespaces/{quote(self.namespace, safe='')}/serviceaccounts/"
            f"{quote(self.name, safe='')}/token"
        )
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"audiences": list(self.audiences), "expirationSeconds": self.expiration_seconds},
        }
        account = f"ServiceAccount {self.namespace}/{self.name}"
        try:
            answer = _api(self.kubeconfig).create(path, body)
        except KubeApiError as exc:
            if exc.status == 0:
                raise StoreUnavailable(f"{self.where}: cluster-main's API server cannot be reached") from None
            raise StoreError(
                f"{self.where}: TokenRequest for {account} refused (HTTP {exc.status})"
            ) from None
        status = answer.get("status")
        token = status.get("token") if isinstance(status, dict) else None
        if not isinstance(token, str) or not token:
            raise StoreError(f"{self.where}: TokenRequest for {account} answered without a token")
        return token


def parse_service_account(
    where: str,
    field: str,
    node: Any,
    settings: Settings,
    *,
    audiences: Any = None,
    expiration_seconds: Any = None,
    default_audiences: tuple[str, ...] = ("vault",),
) -> ServiceAccountToken:
    """ESO's ``ServiceAccountSelector`` ``{name, namespace, audiences}`` at ``field``; ``audiences`` and
    ``expiration_seconds`` given outside it (ESO's older fields) are used when it has none. No audience
    at all asks the API server for its own default audiences."""
    if not isinstance(node, dict):
        raise StoreError(f"{where}: {field} must be {{name, namespace, audiences}}")
    name, namespace = node.get("name"), node.get("namespace")
    missing = [part for part, value in (("name", name), ("namespace", namespace)) if not _text(value)]
    if missing:
        raise StoreError(
            f"{where}: {field} needs {', '.join(missing)} (a ClusterSecretStore names the namespace of "
            "the ServiceAccount)"
        )
    wanted = node.get("audiences") or audiences or list(default_audiences)
    if not isinstance(wanted, list) or not all(_text(audience) for audience in wanted):
        raise StoreError(f"{where}: {field}.audiences must be a list of non-empty strings")
    lifetime = expiration_seconds if expiration_seconds is not None else DEFAULT_EXPIRATION_SECONDS
    if not isinstance(lifetime, int) or isinstance(lifetime, bool) or lifetime < DEFAULT_EXPIRATION_SECONDS:
        raise StoreError(f"{where}: expirationSeconds must be a whole number of at least 600")
    if not settings.kubernetes:
        raise StoreError(
            f"{where}: {field} needs cluster-main's TokenRequest API, which the server asks only in "
            "Kubernetes mode (--kubernetes); in local mode put the token in a Secret and use secretRef"
        )
    return ServiceAccountToken(where, str(namespace), str(name), tuple(wanted), lifetime, settings.kubeconfig)


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _api(kubeconfig: Path | None) -> KubeApi:
    """One client per kubeconfig for the process: logins are rare, connections are reused."""
    with _apis_lock:
        api = _apis.get(kubeconfig)
        if api is None:
            try:
                api = _apis[kubeconfig] = KubeApi.connect(kubeconfig)
            except KubeApiError as exc:
                raise StoreError(
                    f"cannot reach cluster-main's API server for a TokenRequest: {exc}"
                ) from None
        return api
