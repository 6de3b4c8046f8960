"""Annotation parsing: every bad annotation is refused with a message that names it."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from tests.webhook.helpers_review import post_review, review
from tests.webhook.helpers_shapes import ENV, FILES, P, pod
from webhook import annotations
from webhook.errors import PodRejected

BAD_ANNOTATIONS = [
    ({P + "env-1BAD": "db.password"}, P + "env-1BAD"),
    ({P + "env-BAD-NAME": "db.password"}, P + "env-BAD-NAME"),
    ({P + "file-.hidden": "db.password"}, P + "file-.hidden"),
    ({P + "file-token": ""}, P + "file-token"),
    ({P + "file-token": ":db.password"}, P + "file-token"),
    ({P + "file-token": "db."}, P + "file-token"),
    ({P + "file-token": "db#"}, P + "file-token"),
    ({P + "file-token": "vault-prod:.password"}, P + "file-token"),
    ({P + "file-token": "db\nother"}, P + "file-token"),
    ({P + "store": "a:b"}, P + "store"),
    ({P + "store": " "}, P + "store"),
    ({P + "secrets-dir": "etc/secrets"}, P + "secrets-dir"),
    ({P + "secrets-dir": "/"}, P + "secrets-dir"),
    ({P + "secrets-dir": "/var/run/secrets/esi/files"}, P + "secrets-dir"),
    ({P + "secrets-dir": "/esi"}, P + "secrets-dir"),
    ({P + "secrets-dir": "/etc/../.."}, P + "secrets-dir"),
    ({P + "file-mode": "rw-r-----"}, P + "file-mode"),
    ({P + "file-mode": "0999"}, P + "file-mode"),
    ({P + "file-mode": "01777"}, P + "file-mode"),
    ({P + "containers": "app,,worker"}, P + "containers"),
    ({P + "containers": "App_1"}, P + "containers"),
    ({P + "containers": "missing"}, P + "containers"),
    ({P + "server": "http://esi-federation.cluster-main.example.com"}, P + "server"),
    ({P + "server": "https://not-allowed.example.com"}, P + "server"),
    ({P + "refresh-interval": "soon"}, P + "refresh-interval"),
    ({P + "refresh-interval": "0"}, P + "refresh-interval"),
    ({P + "refresh-interval": "-5m"}, P + "refresh-interval"),
    ({P + "refresh-interval": ""}, P + "refresh-interval"),
    ({P + "init-first": "yes"}, P + "init-first"),
    ({P + "secret-dir": "/etc/secrets"}, P + "secret-dir"),
]


@pytest.mark.parametrize(("extra", "named"), BAD_ANNOTATIONS, ids=[repr(case[0]) for case in BAD_ANNOTATIONS])
def test_a_bad_annotation_is_refused_naming_it(
    client: FlaskClient, extra: dict[str, str], named: str
) -> None:
    document = review(pod({**FILES, **extra}))
    response = post_review(client, document)
    assert response.status_code == 200
    answer = response.get_json()["response"]
    assert answer["uid"] == document["request"]["uid"]
    assert answer["allowed"] is False
    assert named in answer["status"]["message"]
    assert "patch" not in answer


def test_a_reference_without_any_store_is_refused() -> None:
    with pytest.raises(PodRejected, match=f"{P}file-token.*names no store"):
        annotations.parse({P + "inject": "true", P + "file-token": "api-keys.token"})


def test_opting_in_without_anything_to_fetch_is_refused() -> None:
    with pytest.raises(PodRejected, match=f"{P}inject"):
        annotations.parse({P + "inject": "true", P + "store": "vault-prod"})


def test_refreshing_env_only_secrets_is_refused() -> None:
    with pytest.raises(PodRejected, match=f"{P}refresh-interval"):
        annotations.parse({**ENV, P + "refresh-interval": "5m"})


def test_a_non_string_annotation_value_is_refused() -> None:
    with pytest.raises(PodRejected, match=f"{P}file-mode"):
        annotations.parse({**FILES, P + "file-mode": 440})  # type: ignore[dict-item]


@pytest.mark.parametrize("value", ["false", "True", "yes", "", None])
def test_anything_but_inject_true_leaves_the_pod_untouched(value: str | None) -> None:
    found = {**FILES, P + "inject": value, P + "containers": "!!"}
    assert annotations.parse({key: v for key, v in found.items() if v is not None}) is None


def test_a_full_set_of_annotations_is_parsed() -> None:
    spec = annotations.parse(
        {
            **ENV,
            P + "file-b.json": "other:config#raw.json",
            P + "secrets-dir": "/run/app//secrets/",
            P + "file-mode": "400",
            P + "containers": "web, worker,web",
            P + "server": "https://esi.example.com",
            P + "refresh-interval": "1.5m",
            P + "init-first": "TRUE",
            P + "status": "pending",
        }
    )
    assert spec == annotations.InjectionSpec(
        env=(("DB_PASSWORD", "db-credentials.password"),),
        files=(("b.json", "other:config#raw.json"),),
        store="vault-prod",
        secrets_dir="/run/app/secrets",
        file_mode="0400",
        containers=("web", "worker"),
        server="https://esi.example.com",
        refresh_interval="90s",
        init_first=True,
    )
    assert spec.env_mode


def test_every_annotation_constant_is_documented_in_the_docs() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "webhook.md").read_text()
    keys = [value for name, value in vars(annotations).items() if name.isupper() and isinstance(value, str)]
    for key in keys:
        if key.startswith(P):
            assert key.removeprefix(P).rstrip("-") in docs, key


def test_a_set_of_annotations_is_parsed_once_and_a_large_one_every_time() -> None:
    small = {f"{P}inject": "true", f"{P}store": "vault-prod", f"{P}file-token": "api-keys.token"}
    first = annotations.parse(small)
    assert first is not None
    assert annotations.parse(dict(small)) is first  # a second pod of the same template
    assert annotations.parse({**small, f"{P}file-token": "api-keys.other"}) is not first
    large = {**small, f"{P}file-big": "api-keys." + "k" * annotations.REMEMBERED_UP_TO_CHARS}
    assert annotations.parse(large) is not annotations.parse(large)
    assert annotations.parse(large) == annotations.parse(large)


def test_a_refused_set_of_annotations_is_refused_again() -> None:
    refused = {f"{P}inject": "true", f"{P}secret-dir": "/x", f"{P}file-a": "s:k"}
    for _ in range(2):
        with pytest.raises(PodRejected, match="secret-dir"):
            annotations.parse(refused)
