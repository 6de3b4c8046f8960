"""The pure parts of Kubernetes mode: secret references, change detection, status, Lease, TokenReview."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from federation.config.model import Configuration, Federation, Grant, KubeSecret, SecretKeyRef
from federation.config.references import SecretSelection, referenced_selection
from federation.errors import Unauthorized, Unavailable
from federation.kube.api import KubeApiError
from federation.kube.lease import Lease, micro_time
from federation.kube.source import ObjectCache
from federation.kube.status import (
    authorization_status,
    federation_status,
    needs_write,
    with_generation,
    with_transition_times,
)
from federation.kube.watch import Backoff
from federation.settings import Settings
from federation.tokenreview import TokenReviewer, TokenReviewFailed, check_review
from federation.tokens import Identity

SUBJECT = "system:serviceaccount:monitoring:prometheus-esi-client"
IDENTITY = Identity("alpha", "https://issuer", SUBJECT, "monitoring", "prometheus-esi-client", None)
REVIEW_REF = SecretKeyRef("reviewer", "esi-system", "token")


def test_referenced_selection_reads_federation_and_store_references() -> None:
    federation = {
        "kind": "KubernetesFederation",
        "spec": {
            "tokenSecretRef": {"name": "jwks-token", "namespace": "esi", "key": "token"},
            "tokenReview": {"tokenSecretRef": {"name": "reviewer", "namespace": "esi", "key": "token"}},
        },
    }
    vault = {
        "kind": "ClusterSecretStore",
        "spec": {
            "provider": {
                "vault": {"auth": {"tokenSecretRef": {"name": "vault", "namespace": "v", "key": "t"}}}
            }
        },
    }
    kube = {"kind": "ClusterSecretStore", "spec": {"provider": {"kubernetes": {}}}}
    assert referenced_selection([federation, vault, kube]) == SecretSelection(
        frozenset({("esi", "jwks-token"), ("esi", "reviewer"), ("v", "vault")}), frozenset({"default"})
    )


def test_a_status_only_change_does_not_trigger_a_rebuild() -> None:
    changes: list[int] = []
    cache = ObjectCache(on_change=lambda: changes.append(1))
    grant = {"metadata": {"name": "a", "resourceVersion": "1"}, "spec": {"x": 1}}
    cache.replace_all("Authorization", "federation.external-secrets.io/v1alpha1", [grant])
    assert len(changes) == 1
    written = {**grant, "metadata": {"name": "a", "resourceVersion": "2"}, "status": {"conditions": []}}
    cache.apply("Authorization", "federation.external-secrets.io/v1alpha1", "MODIFIED", written)
    assert len(changes) == 1
    cache.apply(
        "Authorization", "federation.external-secrets.io/v1alpha1", "MODIFIED", {**written, "spec": {"x": 2}}
    )
    assert len(changes) == 2


def test_unreferenced_secrets_are_not_kept() -> None:
    cache = ObjectCache(on_change=lambda: None, selection=SecretSelection(frozenset({("ns", "wanted")})))
    items = [{"metadata": {"namespace": "ns", "name": name}, "data": {}} for name in ("wanted", "other")]
    cache.replace_all("Secret", "v1", items)
    assert set(cache.of_kind("Secret")) == {("ns", "wanted")}
    assert all(obj["kind"] == "Secret" and obj["apiVersion"] == "v1" for obj in cache.resources())


def _config(**federation: Any) -> Configuration:
    alpha = Federation(name="alpha", url="https://alpha", **federation)
    grant = Grant("g", "alpha", alpha.issuer, SUBJECT, frozenset({"vault-prod"}))
    secrets = {
        ("esi-system", "reviewer"): KubeSecret("esi-system", "reviewer", {"token": b"reviewer-token\n"})
    }
    return Configuration({"alpha": alpha}, (grant,), {}, secrets, "test")


def test_a_federation_without_keys_is_not_ready_and_says_why() -> None:
    from federation.kube.status import KeyView  # noqa: PLC0415

    status = federation_status("alpha", _config(), [], [], KeyView((), None, "connection refused"))
    assert status["conditions"][0]["status"] == "False"
    assert status["conditions"][0]["message"] == "connection refused"
    assert status["keys"] == []
    assert status["lastRefreshTime"] is None


def test_an_object_left_out_of_a_rejected_batch_says_why() -> None:
    rejected = authorization_status(
        "new", _config(), [], ["Authorization new: allowedClusterSecretStores is required"]
    )
    assert rejected["conditions"][0]["reason"] == "Rejected"
    assert "allowedClusterSecretStores" in rejected["conditions"][0]["message"]


def test_a_problem_of_another_object_with_a_longer_name_is_not_reported() -> None:
    problems = ["Authorization g-2: allowedClusterSecretStores names 'x', which does not exist"]
    status = authorization_status("g", _config(), problems, [])
    assert status["conditions"][0]["status"] == "True"


def test_transition_times_are_kept_while_the_status_is_unchanged() -> None:
    observed = {
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}]
    }
    same = with_transition_times({"conditions": [{"type": "Ready", "status": "True"}]}, observed, 1e9)
    flipped = with_transition_times({"conditions": [{"type": "Ready", "status": "False"}]}, observed, 1e9)
    assert same["conditions"][0]["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    assert flipped["conditions"][0]["lastTransitionTime"] == "2001-09-09T01:46:40Z"
    assert not needs_write({"conditions": [{"type": "Ready", "status": "True"}]}, observed)
    assert needs_write({"conditions": [{"type": "Ready", "status": "False"}]}, observed)


class FakeLeaseApi:
    """Answers a Lease's GET/POST/PUT from a dict; ``conflict`` makes the next write a 409."""

    def __init__(self, lease: dict[str, Any] | None = None) -> None:
        self.lease = lease
        self.conflict = False
        self.writes: list[dict[str, Any]] = []

    def get(self, path: str) -> dict[str, Any]:
        if self.lease is None:
            raise KubeApiError(404, "not found")
        return self.lease

    def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._write(body)

    def replace(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._write(body)

    def _write(self, body: Mapping[str, Any]) -> dict[str, Any]:
        if self.conflict:
            raise KubeApiError(409, "the object has been modified")
        self.lease = dict(body)
        self.writes.append(dict(body))
        return self.lease


def _lease(api: FakeLeaseApi, identity: str, now: float = 1000.0) -> Lease:
    return Lease(api, "esi-system", "status", identity=identity, duration=15, clock=lambda: now)  # type: ignore[arg-type]


def test_a_missing_lease_is_created_and_held() -> None:
    api = FakeLeaseApi()
    assert _lease(api, "me").hold()
    assert api.lease is not None
    assert api.lease["spec"]["holderIdentity"] == "me"


def test_a_lease_renewed_by_another_worker_is_not_taken() -> None:
    api = FakeLeaseApi({"metadata": {}, "spec": {"holderIdentity": "other", "renewTime": micro_time(990.0)}})
    assert not _lease(api, "me").hold()
    assert api.writes == []


def test_an_expired_lease_is_taken_over_with_its_resource_version() -> None:
    lease = {
        "metadata": {"resourceVersion": "42"},
        "spec": {"holderIdentity": "other", "renewTime": micro_time(900.0), "leaseDurationSeconds": 15},
    }
    api = FakeLeaseApi(lease)
    assert _lease(api, "me").hold()
    assert api.writes[0]["metadata"]["resourceVersion"] == "42"
    assert api.writes[0]["spec"]["leaseTransitions"] == 1


def test_a_lost_race_for_the_lease_means_not_holding_it() -> None:
    api = FakeLeaseApi({"metadata": {}, "spec": {"holderIdentity": "other", "renewTime": micro_time(900.0)}})
    api.conflict = True
    assert not _lease(api, "me").hold()


def test_check_review_accepts_only_an_authenticated_answer_for_the_identity_and_audience() -> None:
    good = {"status": {"authenticated": True, "user": {"username": SUBJECT}, "audiences": ["esi-federation"]}}
    check_review(good, IDENTITY, ["esi-federation"])
    for status in (
        {"authenticated": False},
        {"authenticated": True, "user": {"username": "someone-else"}, "audiences": ["esi-federation"]},
        {"authenticated": True, "user": {"username": SUBJECT}, "audiences": ["other"]},
        {"authenticated": True, "user": {"username": SUBJECT}},
    ):
        with pytest.raises(Unauthorized):
            check_review({"status": status}, IDENTITY, ["esi-federation"])


def test_the_reviewer_caches_positive_answers_for_the_ttl_only() -> None:
    import jwt  # noqa: PLC0415

    now = [1000.0]
    calls: list[tuple[str, dict[str, Any]]] = []

    def poster(
        federation: Federation, reviewer: str, body: dict[str, Any], settings: Settings
    ) -> dict[str, Any]:
        calls.append((reviewer, body))
        return {
            "status": {"authenticated": True, "user": {"username": SUBJECT}, "audiences": ["esi-federation"]}
        }

    reviewer = TokenReviewer(Settings(token_review_cache_ttl=10), poster=poster, clock=lambda: now[0])
    token = jwt.encode({"exp": 5000}, "k" * 32, algorithm="HS256")
    config = _config(token_review_secret_ref=REVIEW_REF)
    reviewer.confirm(token, IDENTITY, config)
    reviewer.confirm(token, IDENTITY, config)
    assert len(calls) == 1
    assert calls[0][0] == "reviewer-token"
    now[0] += 11
    reviewer.confirm(token, IDENTITY, config)
    assert len(calls) == 2


def test_a_federation_without_token_review_is_not_reviewed() -> None:
    def poster(*_: Any) -> dict[str, Any]:
        raise AssertionError("no review must be asked")

    TokenReviewer(Settings(), poster=poster).confirm("t", IDENTITY, _config())


def test_a_missing_reviewer_secret_or_an_unreachable_cluster_is_unavailable() -> None:
    def unreachable(*_: Any) -> dict[str, Any]:
        raise TokenReviewFailed("connection refused")

    config = _config(token_review_secret_ref=SecretKeyRef("absent", "esi-system", "token"))
    with pytest.raises(Unavailable):
        TokenReviewer(Settings(), poster=unreachable).confirm("t", IDENTITY, config)
    with pytest.raises(Unavailable):
        TokenReviewer(Settings(), poster=unreachable).confirm(
            "t", IDENTITY, _config(token_review_secret_ref=REVIEW_REF)
        )


@pytest.mark.parametrize("content", ["a: [b\n", "apiVersion: v1\nclusters: 5\n", None])
def test_serve_refuses_a_kubeconfig_that_cannot_be_loaded(tmp_path: Path, content: str | None) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    if content is not None:
        kubeconfig.write_text(content, encoding="utf-8")
    command = [
        str(Path(sys.executable).parent / "esi-federation"),
        "serve",
        "--kubernetes",
        "--insecure-http",
    ]
    result = subprocess.run(
        [*command, "--kubeconfig", str(kubeconfig)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert f"cannot load {kubeconfig}" in result.stderr


def test_concurrent_requests_with_one_token_share_one_review() -> None:
    import jwt  # noqa: PLC0415

    calls: list[int] = []
    gate = threading.Event()

    def slow_poster(*_: Any) -> dict[str, Any]:
        calls.append(1)
        gate.wait(2)
        return {
            "status": {"authenticated": True, "user": {"username": SUBJECT}, "audiences": ["esi-federation"]}
        }

    reviewer = TokenReviewer(Settings(), poster=slow_poster)
    token = jwt.encode({"exp": 4_000_000_000}, "k" * 32, algorithm="HS256")
    config = _config(token_review_secret_ref=REVIEW_REF)
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(reviewer.confirm, token, IDENTITY, config) for _ in range(8)]
        time.sleep(0.2)
        gate.set()
        for future in futures:
            future.result(timeout=5)
    assert len(calls) == 1


def test_a_status_already_written_for_this_generation_is_not_written_again() -> None:
    desired = with_generation({"conditions": [{"type": "Ready", "status": "True", "reason": "Valid"}]}, 3)
    written = with_transition_times(desired, {}, 1e9)
    assert not needs_write(desired, written)
    assert needs_write(with_generation(desired, 4), written)


def test_fields_written_by_others_do_not_cause_a_write() -> None:
    desired = {"conditions": [{"type": "Ready", "status": "True"}], "lastRefreshTime": None}
    observed = {"conditions": [{"type": "Ready", "status": "True"}], "written-by-someone-else": 1}
    assert not needs_write(desired, observed)
    assert needs_write(desired, {**observed, "lastRefreshTime": "2020-01-01T00:00:00Z"})


def test_the_watch_backoff_leaves_the_random_module_alone() -> None:
    backoff = Backoff(initial=1.0, maximum=8.0)
    state = random.getstate()
    delays = [backoff.delay() for _ in range(5)]
    assert random.getstate() == state
    assert all(cap / 2 <= delay <= cap for delay, cap in zip(delays, (1, 2, 4, 8, 8), strict=True))
