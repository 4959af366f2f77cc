"""``json_safe``: any data becomes JSON that canonical JSON and orjson both write and read back."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from torghut.contracts import FrozenMap, InputPosition, SignalEnvelope, canonical_json, json_safe

T0 = datetime(2026, 2, 19, 14, 30, 5, tzinfo=UTC)


def round_trips(value: Any) -> Any:
    """Assert orjson writes ``json_safe(value)`` and reads its canonical JSON; return the decoded data."""
    safe = json_safe(value)
    from_orjson = orjson.loads(orjson.dumps(safe))
    assert orjson.loads(canonical_json(safe)) == from_orjson
    return from_orjson


@pytest.mark.parametrize(
    ("value", "expected"),
    [(math.nan, "NaN"), (math.inf, "Infinity"), (-math.inf, "-Infinity"), (1.5, 1.5), (-0.0, -0.0)],
)
def test_floats(value: float, expected: object) -> None:
    assert json_safe(value) == expected
    assert round_trips([value]) == [expected]


@pytest.mark.parametrize("value", [-(2**63), 2**63 - 1, 2**63, 2**64 - 1, 0, True, False])
def test_64_bit_integers_and_bools_are_kept(value: int) -> None:
    assert json_safe(value) == value
    assert type(json_safe(value)) is type(value)


@pytest.mark.parametrize("value", [2**64, -(2**63) - 1, 10**400, -(10**400)])
def test_integers_past_64_bits_become_their_text(value: int) -> None:
    assert json_safe(value) == str(value)
    assert round_trips({"seq": value}) == {"seq": str(value)}


def test_lone_surrogates_become_escapes_in_values_and_keys() -> None:
    assert json_safe("a\ud800b") == "a\\ud800b"
    assert round_trips({"\udfff": "\ud800"}) == {"\\udfff": "\\ud800"}


@pytest.mark.parametrize("text", ["", "NVDA", "Ω 📈", "a\x00b", "AAPL'; DROP TABLE x;--", "\u202e"])
def test_valid_text_is_kept(text: str) -> None:
    assert json_safe(text) == text
    assert round_trips(text) == text


def test_bytes_become_text_with_invalid_bytes_escaped() -> None:
    assert json_safe(b'{"symbol":"\xff"}') == '{"symbol":"\\xff"}'
    assert json_safe(bytearray(b"ok")) == "ok"
    assert json_safe(memoryview(b"\xed\xa0\x80")) == "\\xed\\xa0\\x80"


class Side(enum.Enum):
    BUY = "buy"


@dataclass(frozen=True, slots=True)
class Point:
    x: Decimal
    when: datetime


def test_other_values_become_what_canonical_json_writes() -> None:
    value = {
        "amount": Decimal("1.50"),
        "bad_amount": Decimal("NaN"),
        "ts": T0,
        "day": date(2026, 2, 19),
        "side": Side.BUY,
        "tags": {"b", "a"},
        "point": Point(Decimal("2"), T0),
        "other": object,
    }
    safe = json_safe(value)
    assert canonical_json(safe) == canonical_json(value)
    assert safe["amount"] == "1.50"
    assert safe["bad_amount"] == "NaN"
    assert safe["ts"] == T0.isoformat()
    assert safe["tags"] == ("a", "b")
    assert safe["point"] == {"x": "2", "when": T0.isoformat()}
    round_trips(value)


def test_containers_are_frozen_with_text_keys() -> None:
    safe = json_safe({"a": [1, {"b": [2]}], 1: "int", None: "null", False: "bool", 1.5: "float"})
    assert isinstance(safe, FrozenMap)
    assert isinstance(safe["a"], tuple)
    assert isinstance(safe["a"][1], FrozenMap)
    assert set(safe) == {"a", "1", "null", "false", "1.5"}
    with pytest.raises(TypeError):
        safe["c"] = 1  # type: ignore[index]


def test_an_envelope_becomes_its_fields() -> None:
    position = InputPosition("file", "p0", 3)
    payload = FrozenMap({"price": math.nan, "seq": 10**30, "note": "\ud800"})
    envelope = SignalEnvelope(T0, "NVDA", payload, seq=7, position=position)
    assert round_trips(envelope) == {
        "event_ts": T0.isoformat(),
        "symbol": "NVDA",
        "payload": {"price": "NaN", "seq": str(10**30), "note": "\\ud800"},
        "timeframe": None,
        "ingest_ts": None,
        "seq": 7,
        "source": None,
        "position": {"source": "file", "partition": "p0", "offset": 3},
    }


def nested(depth: int) -> Any:
    value: Any = math.nan
    for level in range(depth):
        value = {"x": value} if level % 2 else [value]
    return value


@pytest.mark.parametrize("depth", [1, 64, 65, 300, 500])
def test_deep_data_stays_writable_by_orjson(depth: int) -> None:
    # orjson writes at most 254 levels: containers past 64 levels are kept as their canonical JSON text.
    safe = json_safe(nested(depth))
    orjson.dumps(safe)
    inner = safe
    levels = 0
    while isinstance(inner, FrozenMap | tuple):
        inner = inner["x"] if isinstance(inner, FrozenMap) else inner[0]
        levels += 1
    assert levels == min(depth, 64)
    assert inner == ("NaN" if depth <= 64 else canonical_json(nested(depth - 64)))


safe_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(blacklist_categories=["Cs"]), max_size=8),
)
hostile_scalars = st.one_of(
    safe_scalars,
    st.floats(),
    st.integers(),
    st.text(max_size=8),
    st.binary(max_size=8),
    st.decimals(),
    st.datetimes(timezones=st.just(UTC)),
)


def trees(scalars: st.SearchStrategy[Any], keys: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
        max_leaves=20,
    )


@given(trees(safe_scalars, st.text(st.characters(blacklist_categories=["Cs"]), max_size=6)))
def test_safe_data_keeps_its_canonical_json(value: Any) -> None:
    assert canonical_json(json_safe(value)) == canonical_json(value)


@given(trees(hostile_scalars, st.text(max_size=6)))
def test_any_data_round_trips_through_both_encoders(value: Any) -> None:
    safe = json_safe(value)
    round_trips(value)
    assert json_safe(safe) == safe
