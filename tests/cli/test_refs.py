"""The reference parser shared by esi-cli and the webhook: examples, odd keys, and properties."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cli.durations import parse_duration
from cli.refs import ReferenceError, SecretRef, parse_ref


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("db-credentials.password", SecretRef(None, "db-credentials", "password")),
        ("vault-prod:db-credentials.password", SecretRef("vault-prod", "db-credentials", "password")),
        ("vault-prod:db-credentials", SecretRef("vault-prod", "db-credentials", None)),
        ("team/app.v2#password", SecretRef(None, "team/app.v2", "password")),
        ("vault-prod:team/app.v2#password", SecretRef("vault-prod", "team/app.v2", "password")),
        ("a.b.c", SecretRef(None, "a.b", "c")),
        ("key#prop.with.dots", SecretRef(None, "key", "prop.with.dots")),
        ("key#p#q", SecretRef(None, "key", "p#q")),
        ("store:path:with:colons.p", SecretRef("store", "path:with:colons", "p")),
        ("  vault-prod:api-keys.service-a-token \n", SecretRef("vault-prod", "api-keys", "service-a-token")),
        ("secret/data/app.", None),
    ],
)
def test_references_split_at_the_last_dot_or_the_first_hash(text: str, expected: SecretRef | None) -> None:
    if expected is None:
        with pytest.raises(ReferenceError):
            parse_ref(text)
    else:
        assert parse_ref(text) == expected


def test_the_default_store_fills_only_references_without_one() -> None:
    assert parse_ref("k.p", "vault-prod") == SecretRef("vault-prod", "k", "p")
    assert parse_ref("other:k.p", "vault-prod") == SecretRef("other", "k", "p")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty reference"),
        ("   ", "empty reference"),
        (":key", "empty store"),
        ("store:", "empty key"),
        (".property", "empty key"),
        ("store:#property", "empty key"),
        ("key.", "empty property after '.'"),
        ("key#", "empty property after '#'"),
        ("team/app.v2#", "empty property after '#'"),
    ],
)
def test_invalid_references_are_refused_with_the_problem_named(text: str, problem: str) -> None:
    with pytest.raises(ReferenceError, match=problem):
        parse_ref(text)


@pytest.mark.parametrize(
    ("ref", "text"),
    [
        (SecretRef("s", "db", "password"), "s:db.password"),
        (SecretRef("s", "team/app.v2", "password"), "s:team/app.v2#password"),
        (SecretRef("s", "k", "p.q"), "s:k#p.q"),
        (SecretRef("s", "k", "p#q"), "s:k#p#q"),
        (SecretRef(None, "k", None), "k"),
    ],
)
def test_render_writes_the_canonical_form(ref: SecretRef, text: str) -> None:
    assert ref.render() == text
    assert parse_ref(text) == ref


_NAME_CHARS = st.characters(min_codepoint=33, max_codepoint=0x2FF, exclude_categories=("Z", "C"))
_stores = st.none() | st.text(_NAME_CHARS, min_size=1, max_size=12).filter(lambda s: ":" not in s)
_properties = st.none() | st.text(_NAME_CHARS, min_size=1, max_size=12)


@st.composite
def representable_refs(draw: st.DrawFn) -> SecretRef:
    """References that have a text form: no '#' in the key, and no ':' anywhere before a missing store."""
    store = draw(_stores)
    prop = draw(_properties)
    key = draw(st.text(_NAME_CHARS, min_size=1, max_size=16).filter(lambda k: "#" not in k))
    if store is None and (":" in key or (prop is not None and ":" in prop)):
        store = "vault-prod"
    if prop is None and "." in key:
        prop = "p"  # a whole secret of a dotted key cannot be named: its last dot would split it
    return SecretRef(store, key, prop)


@settings(deadline=None)  # pure and fast; a loaded CI machine must not make it flaky
@given(representable_refs())
@example(SecretRef(None, "team/app.v2", "password"))
@example(SecretRef("vault-prod", "a.b", "c.d"))
def test_render_then_parse_gives_the_same_reference(ref: SecretRef) -> None:
    assert parse_ref(ref.render()) == ref


@settings(deadline=None)
@given(st.text(max_size=40))
@example("team/app.v2#password")
@example("s:k.p:q")
def test_any_parsed_text_renders_to_a_text_that_parses_the_same(text: str) -> None:
    try:
        ref = parse_ref(text)
    except ReferenceError:
        return
    assert parse_ref(ref.render()) == ref


@settings(deadline=None)
@given(st.text(max_size=40), st.none() | st.sampled_from(["vault-prod", "kube"]))
def test_parsing_never_fails_with_anything_but_a_reference_error(text: str, store: str | None) -> None:
    try:
        ref = parse_ref(text, store)
    except ReferenceError as exc:
        message = str(exc)
        ref = None
    else:
        message = ""
    assert message or (ref is not None and ref.key and (ref.property is None or ref.property))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("5m", 300), ("1h", 3600), (" 2M ", 120), ("0.5s", 0.5), ("0", 0)],
)
def test_durations_accept_seconds_minutes_and_hours(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "abc", "-1", "5d", "nan", "inf", "1e308h"])
def test_malformed_or_endless_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_a_reference_is_an_immutable_hashable_value() -> None:
    ref = parse_ref("vault-prod:db-credentials.password")

    assert ref == SecretRef("vault-prod", "db-credentials", "password")
    assert ref != SecretRef("vault-prod", "db-credentials")
    assert ref != ("vault-prod", "db-credentials", "password")
    assert len({ref, SecretRef("vault-prod", "db-credentials", "password")}) == 1
    assert repr(ref) == "SecretRef(store='vault-prod', key='db-credentials', property='password')"
    with pytest.raises(AttributeError, match="immutable"):
        ref.key = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError, match="immutable"):
        del ref.store


def test_with_default_store_fills_only_a_missing_store() -> None:
    assert SecretRef(None, "k").with_default_store("s") == SecretRef("s", "k")
    assert SecretRef("own", "k").with_default_store("s") == SecretRef("own", "k")
    assert SecretRef(None, "k").with_default_store(None) == SecretRef(None, "k")
