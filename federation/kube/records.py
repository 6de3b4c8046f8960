"""Lease records in Kubernetes mode: ESI's ``AuthorizedIdentity`` resources on cluster-main.

One ``AuthorizedIdentity`` per identity (a subject of one federation), named after both, holds in
``spec.issuedCredentials`` one entry per revocable credential: ``sourceRef`` (the generator),
``workloadBinding`` (the pod: name, namespace, uid) and ``lease`` (the Vault lease, its term, and the
record id). Writes are read-modify-write with the ``resourceVersion`` read, retried on ``409
Conflict``, so two replicas issuing to one identity at once never lose an entry. Every replica reads
and writes records; only the holder of the status Lease renews and revokes (``is_leader``).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from federation.generators.leases import LeaseRecord, Owner
from federation.generators.model import GENERATOR_API, GeneratorRef
from federation.kube.api import KubeApi, KubeApiError, field_map

log = logging.getLogger(__name__)

API_VERSION = "federation.external-secrets.io/v1alpha1"
COLLECTION = f"/apis/{API_VERSION}/authorizedidentities"
NOT_FOUND, CONFLICT = 404, 409
ATTEMPTS = 8
_INVALID = re.compile(r"[^a-z0-9-]+")


def identity_name(federation: str, subject: str) -> str:
    """A valid, stable object name for the identity (a hash keeps long ones unique within 253)."""
    readable = ".".join(_INVALID.sub("-", part.lower()).strip("-") or "x" for part in (federation, subject))
    if len(readable) <= 253:
        return readable
    digest = hashlib.sha256(f"{federation}\0{subject}".encode()).hexdigest()[:16]
    return f"{readable[:236].rstrip('.-')}-{digest}"


class KubeLeaseStore:
    """``LeaseStore`` on ``AuthorizedIdentity`` resources."""

    def __init__(
        self,
        api: Callable[[], KubeApi | None],
        is_leader: Callable[[], bool],
        issuer_of: Callable[[str], str],
    ) -> None:
        self._api = api
        self._is_leader = is_leader
        self._issuer_of = issuer_of

    def put(self, record: LeaseRecord) -> None:
        """Add or replace the record's entry in its identity's resource; ``OSError`` when the API
        server cannot be written (the caller then revokes the credential)."""
        owner = record.owner
        path = f"{COLLECTION}/{identity_name(owner.federation, owner.subject)}"

        def change(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
            kept = [entry for entry in entries if _record_id(entry) != record.id]
            return [*kept, _entry(record)]

        self._update(path, owner, change)

    def remove(self, record_id: str) -> None:
        """Drop the entry of ``record_id`` (wherever it is)."""
        for item in self._list():
            entries = _entries(item)
            if any(_record_id(entry) == record_id for entry in entries):
                name = str(field_map(item, "metadata").get("name"))
                self._update(
                    f"{COLLECTION}/{name}",
                    None,
                    lambda held: [entry for entry in held if _record_id(entry) != record_id],
                )
                return

    def records(self) -> list[LeaseRecord]:
        """Every record held in every ``AuthorizedIdentity``."""
        found = []
        for item in self._list():
            identity = field_map(field_map(item, "spec"), "identitySpec")
            federation = str(field_map(identity, "federationRef").get("name") or "")
            subject = str(field_map(field_map(identity, "subject"), "oidc").get("subject") or "")
            for entry in _entries(item):
                record = _record(entry, federation, subject)
                if record is not None:
                    found.append(record)
        return found

    def is_leader(self) -> bool:
        """Whether this worker holds the status Lease."""
        return self._is_leader()

    def close(self) -> None:
        """Nothing to release: the status Lease belongs to the status writer."""

    def _client(self) -> KubeApi:
        api = self._api()
        if api is None:
            raise OSError("the Kubernetes API client is not connected yet")
        return api

    def _list(self) -> list[dict[str, Any]]:
        try:
            answer = self._client().get(COLLECTION)
        except KubeApiError as exc:
            raise OSError(f"listing AuthorizedIdentities failed: {exc}") from None
        return [item for item in answer.get("items") or [] if isinstance(item, dict)]

    def _update(
        self,
        path: str,
        owner: Owner | None,
        change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
    ) -> None:
        api = self._client()
        for _ in range(ATTEMPTS):
            try:
                try:
                    current = api.get(path)
                except KubeApiError as exc:
                    if exc.status != NOT_FOUND or owner is None:
                        raise
                    api.create(COLLECTION, self._new(path.rsplit("/", 1)[1], owner, change([])))
                    return
                spec = dict(field_map(current, "spec"))
                spec["issuedCredentials"] = change(_entries(current))
                api.replace(path, {**current, "spec": spec})
                return
            except KubeApiError as exc:
                if exc.status != CONFLICT:
                    raise OSError(
                        f"writing AuthorizedIdentity {path.rsplit('/', 1)[1]} failed: {exc}"
                    ) from None
        raise OSError(
            f"AuthorizedIdentity {path.rsplit('/', 1)[1]} kept changing; gave up after {ATTEMPTS} tries"
        )

    def _new(self, name: str, owner: Owner, entries: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": "AuthorizedIdentity",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "esi-federation"}},
            "spec": {
                "identitySpec": {
                    "federationRef": {"kind": "KubernetesFederation", "name": owner.federation},
                    "subject": {
                        "oidc": {"issuer": self._issuer_of(owner.federation), "subject": owner.subject}
                    },
                },
                "issuedCredentials": entries,
            },
        }


def _entries(item: Mapping[str, Any]) -> list[dict[str, Any]]:
    held = field_map(item, "spec").get("issuedCredentials")
    return [entry for entry in held if isinstance(entry, dict)] if isinstance(held, list) else []


def _record_id(entry: Mapping[str, Any]) -> str | None:
    lease = entry.get("lease")
    return str(lease.get("recordID")) if isinstance(lease, dict) else None


def _entry(record: LeaseRecord) -> dict[str, Any]:
    owner, generator = record.owner, record.generator
    service_account = owner.subject.rsplit(":", 1)[-1]
    return {
        "sourceRef": {
            "apiVersion": GENERATOR_API,
            "kind": generator.kind,
            "name": generator.name,
            "namespace": generator.namespace,
        },
        "workloadBinding": {
            "kind": "Pod" if owner.bound_to_pod else "ServiceAccount",
            "name": owner.pod_name if owner.bound_to_pod else service_account,
            "namespace": owner.namespace,
            "uid": owner.pod_uid or "",
        },
        "lastIssuedAt": datetime.fromtimestamp(record.issued_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "lease": {
            "recordID": record.id,
            "leaseID": record.lease_id,
            "issuedAt": record.issued_at,
            "expiresAt": record.expires_at,
            "duration": record.duration,
            "renewable": record.renewable,
        },
    }


def _record(entry: Mapping[str, Any], federation: str, subject: str) -> LeaseRecord | None:
    """The record an entry holds; None for entries without a lease (ESI's own, or malformed)."""
    lease, source, workload = entry.get("lease"), entry.get("sourceRef"), entry.get("workloadBinding")
    if not (isinstance(lease, dict) and isinstance(source, dict) and isinstance(workload, dict)):
        return None
    try:
        pod = workload.get("kind") == "Pod"
        owner = Owner(
            federation,
            subject,
            str(workload["namespace"]),
            str(workload["name"]) if pod else None,
            str(workload["uid"]) if pod else None,
        )
        generator = GeneratorRef(str(source["namespace"]), str(source["kind"]), str(source["name"]))
        return LeaseRecord(
            str(lease["recordID"]),
            generator,
            owner,
            str(lease["leaseID"]),
            float(lease.get("issuedAt") or 0),
            float(lease["expiresAt"]),
            float(lease["duration"]),
            bool(lease["renewable"]),
        )
    except (KeyError, TypeError, ValueError):
        log.error("an AuthorizedIdentity entry is not a lease record", extra={"federation": federation})
        return None
