"""Password, UUID and Fake generators: every value meets its spec (property-based), and no two are equal."""

from __future__ import annotations

import string
import uuid

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from federation.generators import fake, password, uuids
from federation.generators.model import GeneratorConfig, GeneratorRef, GeneratorSpecError

SYMBOLS = password.DEFAULT_SYMBOLS


def config(kind: str, spec: dict[str, object]) -> GeneratorConfig:
    return GeneratorConfig(GeneratorRef("apps", kind, "gen"), spec)


@st.composite
def password_specs(draw: st.DrawFn) -> dict[str, object]:
    """Feasible Password specs, with and without each optional field."""
    spec: dict[str, object] = {}
    allow_repeat = draw(st.booleans())
    no_upper = draw(st.booleans())
    symbol_characters = draw(st.one_of(st.none(), st.text(alphabet=SYMBOLS + "§¤", min_size=1, max_size=12)))
    length = draw(st.integers(min_value=1, max_value=200 if allow_repeat else 60))
    digits = draw(st.integers(min_value=0, max_value=min(length, 10 if not allow_repeat else length)))
    symbols = draw(st.integers(min_value=0, max_value=length - digits))
    if not allow_repeat:
        pool = len(set(symbol_characters or SYMBOLS))
        symbols = min(symbols, pool)
        letters = 26 if no_upper else 52
        assume(length - digits - symbols <= letters)
    spec.update(length=length, digits=digits, symbols=symbols, noUpper=no_upper, allowRepeat=allow_repeat)
    if symbol_characters is not None:
        spec["symbolCharacters"] = symbol_characters
    for optional in ("noUpper", "allowRepeat"):
        if not spec[optional] and draw(st.booleans()):
            del spec[optional]  # absent means false
    return spec


@settings(max_examples=300, deadline=None)
@given(password_specs())
def test_password_meets_its_spec(spec: dict[str, object]) -> None:
    generator = password.build(config("Password", spec))
    value = generator.generate().data["password"]
    symbol_set = set(str(spec.get("symbolCharacters") or SYMBOLS))
    assert len(value) == spec["length"]
    assert sum(ch in string.digits for ch in value) == spec["digits"]
    assert sum(ch in symbol_set for ch in value) == spec["symbols"]
    letters = [ch for ch in value if ch in string.ascii_letters]
    assert len(letters) == spec["length"] - spec["digits"] - spec["symbols"]  # type: ignore[operator]
    if spec.get("noUpper"):
        assert not any(ch.isupper() for ch in value)
    if not spec.get("allowRepeat"):
        assert len(set(value)) == len(value)


@settings(max_examples=100, deadline=None)
@given(st.integers(max_value=0))
def test_password_length_zero_or_less_means_eso_default(length: int) -> None:
    value = password.build(config("Password", {"length": length})).generate().data["password"]
    assert len(value) == password.DEFAULT_LENGTH
    assert sum(ch in string.digits for ch in value) == password.DEFAULT_LENGTH // 4
    assert sum(ch in SYMBOLS for ch in value) == password.DEFAULT_LENGTH // 4


def test_password_defaults_follow_eso() -> None:
    spec = password.parse_spec("Password apps/gen", {"length": 40})
    assert (spec.length, spec.digits, spec.symbols) == (40, 10, 10)
    assert spec.symbol_characters == SYMBOLS
    assert not spec.no_upper
    assert not spec.allow_repeat


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ({"length": 4, "digits": 3, "symbols": 2}, "exceed length"),
        ({"length": 80, "digits": 0, "symbols": 0}, "letters without repeats"),
        ({"length": 44}, "11 digits without repeats"),  # ESO's defaults fail there too
        ({"length": 30, "digits": 11, "symbols": 0}, "digits without repeats"),
        ({"length": 10, "symbols": 5, "symbolCharacters": "!!!"}, "symbols without repeats"),
        ({"length": "24"}, "length must be an integer"),
        ({"digits": -1}, "digits must not be negative"),
        ({"noUpper": "yes"}, "noUpper must be true or false"),
        ({"symbolCharacters": 5}, "symbolCharacters must be a string"),
        ({"length": 10**6, "allowRepeat": True}, "length must be at most"),
    ],
)
def test_password_spec_errors_name_the_field(spec: dict[str, object], named: str) -> None:
    with pytest.raises(GeneratorSpecError, match=named) as raised:
        password.build(config("Password", spec))
    assert "Password apps/gen" in str(raised.value)


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=12, max_value=200))
def test_two_callers_never_share_a_password(length: int) -> None:
    generator = password.build(config("Password", {"length": length, "allowRepeat": length > 40}))
    values = {generator.generate().data["password"] for _ in range(20)}
    assert len(values) == 20


def test_uuid_is_a_fresh_version_4_uuid_each_time() -> None:
    generator = uuids.build(config("UUID", {}))
    values = [generator.generate().data["uuid"] for _ in range(1000)]
    assert len(set(values)) == len(values)
    for value in values:
        parsed = uuid.UUID(value)
        assert parsed.version == 4
        assert str(parsed) == value  # canonical, lower case


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=50), max_size=10))
def test_fake_answers_its_data_unchanged(data: dict[str, str]) -> None:
    generated = fake.build(config("Fake", {"data": data})).generate()
    assert dict(generated.data) == data
    assert generated.lease is None


@pytest.mark.parametrize("data", [["a"], {"a": 1}, {"": "x"}])
def test_fake_data_must_map_names_to_strings(data: object) -> None:
    with pytest.raises(GeneratorSpecError, match="data must map non-empty names to strings"):
        fake.build(config("Fake", {"data": data}))
