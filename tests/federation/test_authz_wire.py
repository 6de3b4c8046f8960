"""The pure cores behind 403 and 400: authz.py decides, wire.py checks the body's shape."""

from __future__ import annotations

import json
from typing import Any

import pytest

from federation.authz import RequestedItem, covers, denied_items, grants_of
from federation.config.model import Grant
from federation.errors import BadRequest
from federation.tokens import Hints, Identity
from federation.wire import decode_json, hints_of, parse_secrets_request

ISSUER = "https://kubernetes.default.svc.cluster.local"
SUB = "system:serviceaccount:monitoring:prometheus-esi-client"
ALPHA = Identity("alpha", ISSUER, SUB, "monitoring", "prometheus-esi-client", None)


def _grant(
    name: str = "g",
    *,
    federation: str = "alpha",
    issuer: str = ISSUER,
    subject: str = SUB,
    stores: tuple[str, ...] = ("vault-prod",),
    patterns: tuple[str, ...] | None = None,
) -> Grant:
    return Grant(name, federation, issuer, subject, frozenset(stores), patterns)


# -- authz -------------------------------------------------------------------------------------------


def test_no_grant_denies_everything() -> None:
    items = [RequestedItem("vault-prod", "db")]
    assert denied_items(ALPHA, [], items) == items


def test_a_grant_applies_only_to_its_federation_issuer_and_exact_subject() -> None:
    matching = _grant("ok")
    others = [
        _grant("other-federation", federation="beta"),
        _grant("other-issuer", issuer="https://other"),
        _grant("other-subject", subject=SUB + "-x"),
        _grant("prefix-subject", subject="system:serviceaccount:monitoring:prometheus"),
    ]
    assert [g.name for g in grants_of(ALPHA, [*others, matching])] == ["ok"]


def test_a_grant_of_another_federation_with_the_same_issuer_grants_nothing() -> None:
    beta_grant = _grant(federation="beta")
    assert denied_items(ALPHA, [beta_grant], [RequestedItem("vault-prod", "db")]) != []


def test_every_denied_item_is_returned_in_request_order() -> None:
    items = [RequestedItem("a", "k"), RequestedItem("vault-prod", "k"), RequestedItem("b", "k", "p")]
    assert denied_items(ALPHA, [_grant()], items) == [items[0], items[2]]


def test_grants_combine_across_authorizations() -> None:
    grants = [_grant("one", stores=("a",)), _grant("two", stores=("b",))]
    assert denied_items(ALPHA, grants, [RequestedItem("a", "k"), RequestedItem("b", "k")]) == []


@pytest.mark.parametrize(
    ("patterns", "key", "allowed"),
    [
        (None, "anything/at/all", True),
        (("db-credentials",), "db-credentials", True),
        (("db-credentials",), "db-credentials-2", False),
        (("team-a/*",), "team-a/db", True),
        (("team-a/*",), "team-a/nested/db", True),
        (("team-a/*",), "team-a", False),
        (("team-a/*",), "team-b/db", False),
        (("team-a/*",), "TEAM-A/db", False),
        (("team-?",), "team-a", True),
        (("team-[ab]/db",), "team-c/db", False),
        ((), "db-credentials", False),
    ],
)
def test_covers_applies_allowed_secrets_globs(
    patterns: tuple[str, ...] | None, key: str, allowed: bool
) -> None:
    assert covers(_grant(patterns=patterns), RequestedItem("vault-prod", key)) is allowed


def test_a_pattern_never_grants_another_store() -> None:
    assert not covers(_grant(patterns=("*",)), RequestedItem("vault-staging", "db"))


def test_describe_names_store_key_and_property() -> None:
    assert RequestedItem("s", "k").describe() == "s:k"
    assert RequestedItem("s", "k", "p").describe() == "s:k#p"


# -- wire --------------------------------------------------------------------------------------------


def test_a_full_request_is_parsed() -> None:
    parsed = parse_secrets_request(
        {
            "cluster": "client-cluster-alpha",
            "caCert": "PEM",
            "secrets": [
                {"store": "vault-prod", "key": "db", "property": "password"},
                {"store": "s", "key": "k"},
            ],
        }
    )
    assert parsed.hints == Hints("client-cluster-alpha", "PEM")
    assert parsed.items == (RequestedItem("vault-prod", "db", "password"), RequestedItem("s", "k"))


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (None, "object"),
        ([], "object"),
        ({"secrets": []}, "secrets"),
        ({"secrets": [{"store": "s", "key": "k"}] * 101}, "101"),
        ({"secrets": {}}, "secrets"),
        ({"secrets": [{"store": "s", "key": "k"}], "extra": 1, "more": 2}, "extra, more"),
        ({"secrets": [{"store": "s", "key": "k", "colour": 1}]}, "secrets[0] has unknown fields: colour"),
        (
            {"secrets": [{"store": "s", "key": "k", "version": "2"}]},
            "secrets[0].version is ESO's and not taken here (version: the latest version of the key is read)",
        ),
        (
            {"secrets": [{"store": "s", "key": "k", "metadataPolicy": "Fetch"}]},
            "secrets[0].metadataPolicy is ESO's and not taken here (metadataPolicy: only a secret's data is "
            "served, never its metadata)",
        ),
        ({"secrets": [{"store": "s", "key": "k"}, 5]}, "secrets[1]"),
        ({"secrets": [{"store": "S", "key": "k"}]}, "secrets[0].store"),
        ({"secrets": [{"store": "-s", "key": "k"}]}, "secrets[0].store"),
        ({"secrets": [{"store": "s" * 254, "key": "k"}]}, "secrets[0].store"),
        ({"secrets": [{"store": "s", "key": "k" * 1025}]}, "secrets[0].key"),
        ({"secrets": [{"store": "s", "key": "k\x7f"}]}, "secrets[0].key"),
        ({"secrets": [{"store": "s", "key": "k", "property": ""}]}, "secrets[0].property"),
        ({"secrets": [{"store": "s", "key": "k", "property": "p" * 257}]}, "secrets[0].property"),
        ({"secrets": [{"store": "s", "key": "k"}], "cluster": ""}, "cluster"),
        ({"secrets": [{"store": "s", "key": "k"}], "caCert": "x" * (32 * 1024 + 1)}, "caCert"),
    ],
)
def test_a_bad_document_is_refused_naming_the_field(document: Any, field: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_secrets_request(document)
    assert field in caught.value.detail


def test_limits_are_inclusive() -> None:
    parsed = parse_secrets_request(
        {
            "secrets": [{"store": "s" * 63, "key": "k" * 1024, "property": "p" * 256}] * 100,
            "caCert": "x" * 32768,
        }
    )
    assert len(parsed.items) == 100


def test_keys_may_hold_paths_and_unicode() -> None:
    parsed = parse_secrets_request({"secrets": [{"store": "s", "key": "team-a/db/ключ"}]})
    assert parsed.items[0].key == "team-a/db/ключ"


def test_decode_json_refuses_what_is_not_json() -> None:
    assert decode_json(b'{"a": 1}') == {"a": 1}
    for body in (b"", b"{", b"\xff", b"{'a': 1}"):
        with pytest.raises(BadRequest, match="JSON"):
            decode_json(body)


@pytest.mark.parametrize(
    ("document", "hints"),
    [
        ({"cluster": "alpha", "caCert": "PEM"}, Hints("alpha", "PEM")),
        ({"cluster": 5, "caCert": ["PEM"]}, Hints()),
        ({"cluster": "Not A Name"}, Hints()),
        ({"caCert": "x" * (32 * 1024 + 1)}, Hints()),
        ([1, 2], Hints()),
        ("text", Hints()),
    ],
)
def test_hints_are_read_leniently_and_malformed_ones_ignored(document: Any, hints: Hints) -> None:
    assert hints_of(document) == hints


def test_a_bad_request_detail_never_echoes_a_value() -> None:
    secret_looking = "pw-" + "a" * 40
    with pytest.raises(BadRequest) as caught:
        parse_secrets_request({"secrets": [{"store": "s", "key": secret_looking + "\n"}]})
    assert secret_looking not in caught.value.detail
    assert secret_looking not in json.dumps(caught.value.detail)
