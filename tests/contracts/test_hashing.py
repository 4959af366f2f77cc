"""Canonical JSON and hashing: torghut's encoding, stable under reordering, sensitive to every value."""

from __future__ import annotations

import hashlib
import json
import pickle
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from torghut.contracts import (
    FeatureVectorV3,
    FrozenMap,
    StreamDigest,
    canonical_json,
    freeze,
    normalization_hash,
    sha256_hex,
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.text(max_size=12),
    st.decimals(allow_nan=False, allow_infinity=False, places=6),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


def _torghut_dumps(value: object) -> str:
    """Torghut's own encoding: json.dumps(sort_keys, compact separators, default=str)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


@given(json_values)
def test_canonical_json_equals_torghuts_encoding(value: object) -> None:
    assert canonical_json(value) == _torghut_dumps(value)


@given(st.dictionaries(st.text(max_size=8), json_scalars, max_size=8))
def test_key_order_does_not_change_the_hash(mapping: dict[str, object]) -> None:
    reordered = dict(reversed(list(mapping.items())))
    assert sha256_hex(mapping) == sha256_hex(reordered)


@given(st.dictionaries(st.text(max_size=8), st.integers(), min_size=1, max_size=8), st.data())
def test_changing_any_value_changes_the_hash(mapping: dict[str, int], data: st.DataObject) -> None:
    key = data.draw(st.sampled_from(sorted(mapping)))
    changed = {**mapping, key: mapping[key] + 1}
    assert sha256_hex(mapping) != sha256_hex(changed)


def test_decimals_are_strings_and_keep_their_exponent() -> None:
    assert canonical_json({"q": Decimal("1.50"), "p": Decimal("1E-7")}) == '{"p":"1E-7","q":"1.50"}'


def test_datetimes_and_dataclasses_encode_canonically() -> None:
    ts = datetime(2026, 2, 19, 14, 30, 5, 250000, tzinfo=UTC)
    fv = FeatureVectorV3(ts, "NVDA", "1Sec", 3, "ta", "3.0.0", FrozenMap({"price": Decimal("1")}))
    encoded = json.loads(canonical_json(fv))
    assert encoded["event_ts"] == "2026-02-19T14:30:05.250000+00:00"
    assert encoded["values"] == {"price": "1"}


def test_sha256_hex_of_text_is_the_plain_digest() -> None:
    assert sha256_hex("abc") == hashlib.sha256(b"abc").hexdigest()


def test_normalization_hash_matches_torghuts_formula() -> None:
    ts = datetime(2026, 2, 19, 14, 30, 5, tzinfo=UTC)
    values = {"price": Decimal("187.1"), "rsi14": Decimal("58.2"), "staleness_ms": 250, "spread": None}
    fv = FeatureVectorV3(ts, "NVDA", "1Sec", 0, "unknown", "3.0.0", FrozenMap(values))
    obj = {
        "event_ts": "2026-02-19T14:30:05+00:00",
        "symbol": "NVDA",
        "timeframe": "1Sec",
        "seq": 0,
        "source": "unknown",
        "feature_schema_version": "3.0.0",
        "values": {"price": "187.1", "rsi14": "58.2", "staleness_ms": 250, "spread": None},
    }
    expected = hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert normalization_hash(fv) == expected == fv.normalization_hash()


def test_stream_digest_is_order_sensitive() -> None:
    a, b = StreamDigest(), StreamDigest()
    a.add_lines(["1", "2"])
    b.add_lines(["2", "1"])
    assert a.count == b.count == 2
    assert a.hexdigest() != b.hexdigest()


def test_frozen_map_refuses_mutation_and_pickles() -> None:
    m = freeze({"a": [1, {"b": 2}]})
    assert isinstance(m, FrozenMap)
    assert m["a"] == (1, FrozenMap({"b": 2}))
    with pytest.raises(TypeError):
        m["c"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        m.update({"c": 1})
    assert pickle.loads(pickle.dumps(m)) == m
    assert type(pickle.loads(pickle.dumps(m))) is FrozenMap
    assert hash(m) == hash(freeze({"a": [1, {"b": 2}]}))
