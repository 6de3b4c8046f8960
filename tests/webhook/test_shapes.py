"""Every pod shape: the patch applies, the pod validates for 1.29 and 1.33, and a second pass is a no-op."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.webhook.helpers_review import apply, assert_valid_pod, decoded_patch, post_review, review
from tests.webhook.helpers_shapes import shapes

SHAPES = shapes()


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_every_shape_is_injected_into_a_valid_pod(client: FlaskClient, name: str) -> None:
    pod = SHAPES[name]
    answer = post_review(client, review(pod)).get_json()
    assert answer["response"]["allowed"] is True, answer["response"].get("status")
    patch = decoded_patch(answer)
    assert patch, "an opted-in pod gets a patch"
    assert all(op["op"] in ("add", "replace") for op in patch)
    mutated = apply(pod, patch)
    assert_valid_pod(mutated)
    assert mutated["metadata"]["annotations"]["esi.external-secrets.io/status"] == "injected"
    init_names = [item["name"] for item in mutated["spec"]["initContainers"]]
    assert "esi-init" in init_names


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_a_mutated_pod_is_not_mutated_again(client: FlaskClient, name: str) -> None:
    pod = SHAPES[name]
    mutated = apply(pod, decoded_patch(post_review(client, review(pod)).get_json()))
    second = post_review(client, review(mutated)).get_json()
    assert second["response"]["allowed"] is True
    assert decoded_patch(second) == []


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_the_same_review_twice_gives_the_same_patch(client: FlaskClient, name: str) -> None:
    document = review(SHAPES[name])
    first = post_review(client, document).get_json()
    second = post_review(client, document).get_json()
    assert first == second


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_dry_run_gets_the_same_patch(client: FlaskClient, name: str) -> None:
    document = review(SHAPES[name])
    dry = review(SHAPES[name], dryRun=True)
    dry["request"]["uid"] = document["request"]["uid"]
    assert post_review(client, dry).get_json() == post_review(client, document).get_json()


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_the_original_pod_survives_inside_the_mutated_one(client: FlaskClient, name: str) -> None:
    pod = SHAPES[name]
    mutated = apply(pod, decoded_patch(post_review(client, review(pod)).get_json()))
    original: dict[str, Any] = pod["spec"]
    for key in ("volumes", "initContainers"):
        kept = [item["name"] for item in original.get(key, [])]
        assert [item["name"] for item in mutated["spec"].get(key, []) if item["name"] in kept] == kept
    assert [item["name"] for item in mutated["spec"]["containers"]] == [
        item["name"] for item in original["containers"]
    ]
    for before, after in zip(original["containers"], mutated["spec"]["containers"], strict=True):
        assert after.get("args") == before.get("args")
        kept_mounts = before.get("volumeMounts", [])
        assert after.get("volumeMounts", [])[: len(kept_mounts)] == kept_mounts
