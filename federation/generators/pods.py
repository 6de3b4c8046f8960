"""Does a credential's pod still exist? Asked of its client cluster with the federation's reviewer token.

``GET {spec.url}/api/v1/namespaces/<namespace>/pods/<name>`` authenticated with the token held in the
``KubernetesFederation``'s ``spec.tokenReview.tokenSecretRef`` (that ServiceAccount needs ``get`` on
pods of the client cluster), over the same pinned HTTPS as the JWKS fetch and the TokenReview: only
the federation's ``caBundle`` is trusted, redirects are not followed, timeouts and a size cap apply.

The answer is one of three: the pod exists with this uid (``ALIVE``); it does not exist, or a pod of
the same name with another uid replaced it (``GONE``); or nothing can be said (no reviewer token, no
answer, another status) — ``UNKNOWN``, which never revokes but also never renews.
"""

from __future__ import annotations

import enum
import json
import logging
from urllib.parse import quote

from federation.config.model import Configuration
from federation.pinned_https import PinnedRequestError, pinned_request
from federation.settings import Settings

log = logging.getLogger(__name__)

MAX_POD_BYTES = 1024 * 1024


class PodState(enum.Enum):
    """What the client cluster says about a pod."""

    ALIVE = "alive"
    GONE = "gone"
    UNKNOWN = "unknown"


class PodChecker:
    """Looks pods up on their client clusters."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def state(
        self, config: Configuration, federation_name: str, namespace: str, name: str, uid: str
    ) -> PodState:
        """Whether pod ``namespace/name`` with ``uid`` still exists on the federation's cluster (as
        ``config`` registers it)."""
        federation = config.federations.get(federation_name)
        where = {"federation": federation_name, "pod": f"{namespace}/{name}"}
        if federation is None or federation.token_review_secret_ref is None:
            log.warning(
                "pods of this federation cannot be checked (no tokenReview.tokenSecretRef)", extra=where
            )
            return PodState.UNKNOWN
        held = config.secret_value(federation.token_review_secret_ref)
        token = held.decode("utf-8", errors="replace").strip() if held else ""
        if not token:
            log.warning("the reviewer token to check pods is missing", extra=where)
            return PodState.UNKNOWN
        path = f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(name, safe='')}"
        try:
            answer = pinned_request(
                "GET",
                federation.url.rstrip("/") + path,
                ca_bundle=federation.ca_bundle,
                headers={"Accept": "application/json", "Authorization": f"Bearer {token}"},
                settings=self._settings,
                max_bytes=MAX_POD_BYTES,
            )
        except PinnedRequestError as exc:
            log.warning("pod check failed", extra={**where, "reason": str(exc)})
            return PodState.UNKNOWN
        return _state_of(answer.status, answer.body, uid, where)


def _state_of(status: int, body: bytes, uid: str, where: dict[str, str]) -> PodState:
    """The pod's state from the API server's answer to ``GET pod``."""
    if status == 404:
        return PodState.GONE
    if status != 200:
        log.warning("pod check answered", extra={**where, "status": status})
        return PodState.UNKNOWN
    try:
        found_uid = json.loads(body)["metadata"]["uid"]
    except (ValueError, KeyError, TypeError):
        log.warning("pod check answered without metadata.uid", extra=where)
        return PodState.UNKNOWN
    return PodState.ALIVE if found_uid == uid else PodState.GONE
