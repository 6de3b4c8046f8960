"""webhook/planned.py: a pod object seen before gets its patch again without being planned again."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from tests.webhook.helpers_review import OTHER_SERVER_URL, decoded_patch, make_settings, post_review, review
from tests.webhook.helpers_shapes import FILES, P, container, pod, seed_pod
from webhook import admission
from webhook.admission import admit
from webhook.app import create_app
from webhook.planned import PlannedPatch, PlannedPatches
from webhook.reviews import decode


def _decide(pod_object: dict[str, Any], planned: PlannedPatches, **request: Any) -> admission.Decision:
    return admit(decode(json.dumps(review(pod_object, **request)).encode()), make_settings(), planned)


@pytest.fixture
def plans(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The pods ``plan`` was called for."""
    seen: list[dict[str, Any]] = []
    real_plan = admission.plan

    def counting_plan(pod_object: dict[str, Any], *args: Any) -> Any:
        seen.append(pod_object)
        return real_plan(pod_object, *args)

    monkeypatch.setattr(admission, "plan", counting_plan)
    return seen


def test_the_pods_of_one_rollout_are_planned_once_and_answered_alike(plans: list[dict[str, Any]]) -> None:
    planned = PlannedPatches()

    first = _decide(seed_pod(), planned, uid="uid-1")
    second = _decide(seed_pod(), planned, uid="uid-2")

    assert len(plans) == 1
    assert first.result == second.result == "injected"
    assert second.review["response"]["uid"] == "uid-2"
    assert second.review["response"]["patch"] == first.review["response"]["patch"]
    assert second.patch == first.patch


def test_a_kept_patch_is_the_patch_planning_gives() -> None:
    planned = PlannedPatches()
    _decide(seed_pod(), planned)

    kept = _decide(seed_pod(), planned)
    fresh = _decide(seed_pod(), PlannedPatches(capacity=0))

    assert kept.review["response"]["patch"] == fresh.review["response"]["patch"]
    assert kept.patch == fresh.patch


def test_a_pod_that_differs_in_anything_is_planned_for_itself(plans: list[dict[str, Any]]) -> None:
    planned = PlannedPatches()
    variants = [
        pod(FILES, container("app")),
        pod(FILES, container("app"), container("sidecar")),
        pod({**FILES, P + "secrets-dir": "/run/other"}, container("app")),
    ]

    kept = [_decide(item, planned).review["response"]["patch"] for item in variants]
    again = [_decide(item, planned).review["response"]["patch"] for item in variants]

    assert len(plans) == 3
    assert kept == again
    assert len(set(kept)) == 3


def test_refusals_are_worked_out_every_time(plans: list[dict[str, Any]]) -> None:
    planned = PlannedPatches()
    refused = pod({**FILES, P + "containers": "missing"}, container("app"))

    first = _decide(refused, planned)
    second = _decide(refused, planned)

    assert first.result == second.result == "rejected"
    assert second.message == first.message
    assert second.message is not None
    assert "missing" in second.message
    assert len(plans) == 2
    assert len(planned) == 0


def test_pods_and_patches_over_the_size_bound_are_not_kept(plans: list[dict[str, Any]]) -> None:
    large_pod = pod({**FILES, "padding": "x" * 4096}, container("app"))
    small_bound = PlannedPatches(max_entry_bytes=2048)

    _decide(large_pod, small_bound)
    _decide(large_pod, small_bound)

    assert len(plans) == 2
    assert len(small_bound) == 0
    tiny = PlannedPatches(max_entry_bytes=10_000)
    key = tiny.key(seed_pod())
    assert key is not None
    tiny.put(key, PlannedPatch(b"[" + b" " * 10_000 + b"]", ()))
    assert tiny.get(key) is None


def test_the_least_recently_used_pod_is_forgotten_beyond_capacity() -> None:
    planned = PlannedPatches(capacity=2)
    keys = [b"a", b"b", b"c"]
    for index, key in enumerate(keys[:2]):
        planned.put(key, PlannedPatch(str(index).encode(), ()))
    assert planned.get(b"a") is not None  # a is now more recent than b

    planned.put(b"c", PlannedPatch(b"2", ()))

    assert planned.get(b"b") is None
    assert planned.get(b"a") is not None
    assert planned.get(b"c") is not None
    assert len(planned) == 2


def test_each_app_keeps_the_patches_of_its_own_settings() -> None:
    ours = create_app(make_settings()).test_client()
    theirs = create_app(make_settings(server_url=OTHER_SERVER_URL)).test_client()
    document = review(seed_pod())

    clients = (ours, theirs, ours, theirs)
    patches = [decoded_patch(post_review(client, document).get_json()) for client in clients]

    assert patches[0] == patches[2]
    assert patches[1] == patches[3]
    assert patches[0] != patches[1]
    assert OTHER_SERVER_URL in json.dumps(patches[1])


def test_threads_sharing_one_cache_never_see_it_beyond_capacity() -> None:
    planned = PlannedPatches(capacity=8)
    failures: list[BaseException] = []

    def hammer(offset: int) -> None:
        try:
            for index in range(2000):
                key = str((index * 7 + offset) % 32).encode()
                if planned.get(key) is None:
                    planned.put(key, PlannedPatch(key, ()))
        except BaseException as exc:  # reported below, from the main thread
            failures.append(exc)

    threads = [threading.Thread(target=hammer, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert len(planned) == 8
