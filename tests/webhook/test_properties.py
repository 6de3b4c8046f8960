"""Property-based: any valid opted-in pod gets a patch that applies and validates; nothing yields a 500."""

from __future__ import annotations

import json
import operator
import string
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.webhook.helpers_review import apply, assert_valid_pod, decoded_patch, make_settings, review
from tests.webhook.helpers_shapes import P
from webhook.app import create_app

LOWER = string.ascii_lowercase
# Built from plain text strategies: from_regex is correct too, but several times slower to draw from.
DNS_LABEL = st.builds(
    lambda head, middle, tail: head + middle + tail,
    st.sampled_from(LOWER),
    st.text(LOWER + string.digits + "-", max_size=8),
    st.text(LOWER + string.digits, max_size=1),
).map(lambda label: label.rstrip("-"))
ENV_NAME = st.builds(
    operator.add,
    st.sampled_from(string.ascii_uppercase + "_"),
    st.text(string.ascii_uppercase + string.digits + "_", max_size=10),
)
FILE_NAME = st.builds(
    operator.add, st.sampled_from(LOWER + string.digits), st.text(LOWER + string.digits + "-._", max_size=10)
)
KEY = st.builds(operator.add, st.sampled_from(LOWER), st.text(LOWER + string.digits + "-/", max_size=10))
REF = st.builds(
    lambda store, key, prop: f"{store + ':' if store else ''}{key}{'.' + prop if prop else ''}",
    st.one_of(st.none(), DNS_LABEL),
    KEY,
    st.one_of(st.none(), st.builds(operator.add, st.sampled_from(LOWER), st.text(LOWER + "-_", max_size=6))),
)
PATH = st.lists(st.text(LOWER, min_size=1, max_size=6), min_size=1, max_size=3).map(
    lambda parts: "/" + "/".join(parts)
)


@pytest.fixture(scope="module")
def webhook() -> FlaskClient:
    """One client for all examples of a test: hypothesis runs the body many times per fixture."""
    return create_app(make_settings()).test_client()


@st.composite
def containers(
    draw: st.DrawFn, names: list[str], volumes: list[str], *, command: bool
) -> list[dict[str, Any]]:
    """Containers called ``names``, each mounting some of ``volumes`` at distinct paths."""
    result = []
    for name in names:
        item: dict[str, Any] = {"name": name, "image": f"registry.example/{name}:1"}
        if command or draw(st.booleans()):
            item["command"] = draw(st.lists(st.text(string.printable, max_size=8), min_size=1, max_size=3))
        if draw(st.booleans()):
            item["args"] = draw(st.lists(st.text(max_size=8), max_size=3))
        mounted = draw(st.lists(st.sampled_from(volumes), unique=True)) if volumes else []
        paths = draw(st.lists(PATH, min_size=len(mounted), max_size=len(mounted), unique=True))
        if mounted:
            item["volumeMounts"] = [
                {"name": volume, "mountPath": "/mnt" + path}
                for volume, path in zip(mounted, paths, strict=True)
            ]
        if draw(st.booleans()):
            item["env"] = [
                {"name": "PLAIN_" + str(index), "value": "x"} for index in range(draw(st.integers(0, 2)))
            ]
        result.append(item)
    return result


@st.composite
def opted_in_pods(draw: st.DrawFn) -> dict[str, Any]:
    """A valid pod with random volumes, containers, init containers and a valid set of annotations."""
    names = draw(
        st.lists(DNS_LABEL.filter(lambda n: not n.startswith("esi-")), min_size=1, max_size=6, unique=True)
    )
    split = draw(st.integers(1, len(names)))
    regular, init = names[:split], names[split:]
    volumes = draw(st.lists(DNS_LABEL.filter(lambda n: not n.startswith("esi-")), max_size=3, unique=True))
    env = draw(st.dictionaries(ENV_NAME.filter(lambda n: not n.startswith("ESI_")), REF, max_size=2))
    files = draw(
        st.dictionaries(FILE_NAME.filter(lambda n: n != "mode"), REF, min_size=0 if env else 1, max_size=3)
    )
    annotations = {P + "inject": "true", P + "store": draw(DNS_LABEL)}
    annotations |= {P + "env-" + name: ref for name, ref in env.items()}
    annotations |= {P + "file-" + name: ref for name, ref in files.items()}
    if draw(st.booleans()):
        annotations[P + "containers"] = ",".join(
            draw(st.lists(st.sampled_from(regular), min_size=1, unique=True))
        )
    if draw(st.booleans()):
        annotations[P + "secrets-dir"] = "/secrets" + draw(PATH)
    if files and draw(st.booleans()):
        annotations[P + "refresh-interval"] = draw(st.sampled_from(["90", "30s", "5m", "1h"]))
    if draw(st.booleans()):
        annotations[P + "init-first"] = draw(st.sampled_from(["true", "false"]))
    if draw(st.booleans()):
        annotations[P + "file-mode"] = draw(st.sampled_from(["0400", "0440", "644"]))
    spec: dict[str, Any] = {"containers": draw(containers(regular, volumes, command=bool(env)))}
    if init:
        spec["initContainers"] = draw(containers(init, volumes, command=False))
        if draw(st.booleans()):
            spec["initContainers"][0]["restartPolicy"] = "Always"
    if volumes:
        spec["volumes"] = [{"name": volume, "emptyDir": {}} for volume in volumes]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "app-", "namespace": "team", "annotations": annotations},
        "spec": spec,
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pod=opted_in_pods())
def test_any_valid_opted_in_pod_gets_a_patch_that_applies_and_validates(
    webhook: FlaskClient, pod: dict[str, Any]
) -> None:
    assert_valid_pod(pod)
    response = webhook.post("/mutate", data=json.dumps(review(pod)))
    assert response.status_code == 200
    answer = response.get_json()
    assert answer["response"]["allowed"] is True, answer["response"].get("status")
    mutated = apply(pod, decoded_patch(answer))
    assert_valid_pod(mutated)
    again = webhook.post("/mutate", data=json.dumps(review(mutated))).get_json()
    assert decoded_patch(again) == []


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=30,
)


@st.composite
def mangled_reviews(draw: st.DrawFn) -> Any:
    """A review whose parts, down into the pod, are replaced by arbitrary JSON."""
    document: Any = review(draw(opted_in_pods()))
    paths = [
        (),
        ("request",),
        ("request", "uid"),
        ("request", "namespace"),
        ("request", "object"),
        ("request", "object", "metadata"),
        ("request", "object", "metadata", "annotations"),
        ("request", "object", "spec"),
        ("request", "object", "spec", "containers"),
        ("request", "object", "spec", "volumes"),
        ("request", "object", "spec", "initContainers"),
    ]
    for path in draw(st.lists(st.sampled_from(paths), max_size=3)):
        if not path:
            return draw(JSON)
        parent = document
        for key in path[:-1]:
            if not isinstance(parent, dict) or key not in parent:
                break
            parent = parent[key]
        else:
            if isinstance(parent, dict):
                parent[path[-1]] = draw(JSON)
    return document


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=mangled_reviews())
def test_no_review_ever_gets_a_500(webhook: FlaskClient, document: Any) -> None:
    response = webhook.post("/mutate", data=json.dumps(document))
    assert response.status_code in (200, 400)
    if response.status_code == 200:
        assert response.get_json()["response"]["uid"] == document["request"]["uid"]


@settings(max_examples=100, deadline=None)
@given(body=st.binary(max_size=200))
def test_no_body_ever_gets_a_500(webhook: FlaskClient, body: bytes) -> None:
    assert webhook.post("/mutate", data=body).status_code == 400
