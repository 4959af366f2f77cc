"""The normalize stage: torghut's V3 value mapping, rejections, the normalization hash, the wrapper."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest

from tests.operators.decode_flow import decode_in_flow
from torghut.contracts.features import VALUE_FIELDS_V3, FeatureVectorV3
from torghut.contracts.frozen import freeze
from torghut.contracts.hashing import canonical_json, json_safe
from torghut.contracts.signal import DeadLetter, InputPosition, SignalEnvelope
from torghut.operators.normalize import (
    map_feature_values_v3,
    normalize,
    optional_decimal,
    schema_major_version,
)
from torghut.operators.parse import parse_record

T0 = datetime(2026, 2, 19, 14, 30, 5, tzinfo=UTC)
D = Decimal
REQUIRED: dict[str, Any] = {"price": 100, "macd": {"macd": 0.5, "signal": 0.4}, "rsi14": 50}

# The canonical JSON torghut hashes for the NVDA row of contracts section 1.3 (values in
# tests/operators/conftest.py), written out by hand: sorted keys, compact separators, Decimals as
# strings, staleness 250 ms, null signal_quality_flag and spread.
NVDA_CANONICAL = (
    '{"event_ts":"2026-02-19T14:30:05+00:00","feature_schema_version":"3.0.0","seq":1234,"source":"ta",'
    '"symbol":"NVDA","timeframe":"1Sec","values":{"boll_lower":"186.4","boll_mid":"187.0",'
    '"boll_upper":"187.6","ema12":"187.05","ema26":"186.9","imbalance_spread":"0.02","macd":"0.0123",'
    '"macd_hist":"0.0023","macd_signal":"0.01","price":"187.1","rsi14":"58.2","signal_quality_flag":null,'
    '"spread":null,"staleness_ms":250,"vol_realized_w60s":"0.00031","vwap_session":"187.1",'
    '"vwap_w5m":"187.08"}}'
)
NVDA_GOLDEN_HASH = "169d6854ade981cc21d48fff58c3d4adb46c7146a885b980b023df664c827631"


def env(
    payload: dict[str, Any],
    *,
    ingest_ts: datetime | None = None,
    seq: int | None = None,
    source: str | None = None,
    timeframe: str | None = None,
    event_ts: datetime = T0,
    symbol: str = "AAPL",
) -> SignalEnvelope:
    return SignalEnvelope(event_ts, symbol, freeze(payload), timeframe, ingest_ts, seq, source)


def values(payload: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return map_feature_values_v3(env(payload, **kwargs))


def torghut_hash(envelope: SignalEnvelope, vals: dict[str, Any]) -> str:
    """torghut's normalize_feature_vector_v3 hash, re-implemented from the contracts description."""
    obj = {
        "event_ts": envelope.event_ts.isoformat(),
        "symbol": envelope.symbol,
        "timeframe": envelope.timeframe or "1Min",
        "seq": envelope.seq or 0,
        "source": envelope.source or "unknown",
        "feature_schema_version": "3.0.0",
        "values": {k: (str(v) if isinstance(v, Decimal) else v) for k, v in sorted(vals.items())},
    }
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def feature(envelope: SignalEnvelope) -> FeatureVectorV3:
    result = normalize(envelope)
    assert isinstance(result, FeatureVectorV3), result
    return result


def rejection(envelope: SignalEnvelope) -> str:
    result = normalize(envelope)
    assert isinstance(result, DeadLetter), result
    return result.reason


# --- the golden hash ---


def test_golden_canonical_json_digest() -> None:
    assert hashlib.sha256(NVDA_CANONICAL.encode()).hexdigest() == NVDA_GOLDEN_HASH


def test_nvda_worked_example_hash(nvda_row: dict[str, Any]) -> None:
    parsed = parse_record(orjson.dumps(nvda_row), InputPosition("t", "p", 0))
    assert isinstance(parsed, SignalEnvelope)
    fv = feature(parsed)
    assert fv.normalization_hash() == NVDA_GOLDEN_HASH
    assert torghut_hash(parsed, dict(fv.values)) == NVDA_GOLDEN_HASH
    assert tuple(fv.values) == VALUE_FIELDS_V3
    assert fv.values["price"] == D("187.1")
    assert fv.values["staleness_ms"] == 250


def test_hash_changes_with_any_value(nvda_row: dict[str, Any]) -> None:
    for column in ("macd", "rsi14", "ema12", "vol_realized_w60s"):
        changed = {**nvda_row, column: nvda_row[column] + 0.001}
        parsed = parse_record(changed, InputPosition("t", "p", 0))
        assert isinstance(parsed, SignalEnvelope)
        assert feature(parsed).normalization_hash() != NVDA_GOLDEN_HASH


# --- identity fields ---


def test_identity_defaults_and_carry_through() -> None:
    position = InputPosition("t", "p", 3)
    ingest = T0 + timedelta(seconds=1)
    base = SignalEnvelope(T0, "AAPL", freeze(REQUIRED), None, ingest, None, None, position)
    fv = feature(base)
    assert (fv.timeframe, fv.seq, fv.source, fv.feature_schema_version) == ("1Min", 0, "unknown", "3.0.0")
    assert (fv.ingest_ts, fv.position, fv.event_ts, fv.symbol) == (base.ingest_ts, position, T0, "AAPL")
    explicit = feature(env(REQUIRED, seq=7, source="ta", timeframe="1Sec"))
    assert (explicit.timeframe, explicit.seq, explicit.source) == ("1Sec", 7, "ta")
    # torghut hashes `seq or 0` and `source or "unknown"`: storing the defaults changes nothing.
    same = env(REQUIRED, ingest_ts=base.ingest_ts, seq=0, source="")
    assert feature(same).normalization_hash() == fv.normalization_hash()


def test_empty_timeframe_defaults_like_none() -> None:
    assert feature(env(REQUIRED, timeframe="")).timeframe == "1Min"


# --- value mapping ---


def test_optional_decimal() -> None:
    assert optional_decimal(0.1) == D("0.1")
    assert optional_decimal("1.50") == D("1.50")
    assert optional_decimal(D("2")) == D("2")
    assert optional_decimal(None) is None
    assert optional_decimal("abc") is None
    assert optional_decimal(True) is None
    assert optional_decimal({"a": 1}) is None
    assert optional_decimal("NaN").is_nan()  # type: ignore[union-attr]


def test_macd_nested_vs_flat() -> None:
    nested = values({"macd": {"macd": 1, "signal": 2, "hist": 3}, "macd_signal": 9})
    assert (nested["macd"], nested["macd_signal"], nested["macd_hist"]) == (D(1), D(2), D(3))
    flat = values({"macd": 1, "macd_signal": 2, "macd_hist": 3})
    assert (flat["macd"], flat["macd_signal"], flat["macd_hist"]) == (D(1), D(2), D(3))
    # A nested block without `signal` does not fall back to the flat column.
    assert values({"macd": {"macd": 1}, "macd_signal": 2})["macd_signal"] is None


def test_rsi_falls_back_to_rsi_by_truthiness() -> None:
    assert values({"rsi14": 40, "rsi": 70})["rsi14"] == D(40)
    assert values({"rsi": 70})["rsi14"] == D(70)
    assert values({"rsi14": 0, "rsi": 70})["rsi14"] == D(70)  # 0 falls through
    assert values({"rsi14": 0})["rsi14"] is None
    assert values({"rsi14": 0.0, "rsi": 0})["rsi14"] == D(0)
    assert values({"rsi14": "0"})["rsi14"] == D(0)  # a non-empty string is truthy


@pytest.mark.parametrize(
    ("payload", "price"),
    [
        ({"vwap": {"session": 1, "w5m": 2}, "price": 9}, D(1)),
        ({"vwap": {"session": None, "w5m": 2}, "price": 9}, D(2)),
        ({"vwap": {"session": "x", "w5m": 2}}, D(2)),
        # vwap dict without usable values: `price` comes first in the key order.
        ({"vwap": {"session": None}, "price": 9}, D(9)),
        # ... and without price/close/c/last, the present `vwap` key (a dict) ends the search with None.
        ({"vwap": {"session": None}, "vwap_session": 5}, None),
        ({"price": 1, "close": 2}, D(1)),
        ({"close": 2, "c": 3}, D(2)),
        ({"c": 3, "last": 4}, D(3)),
        ({"last": 4, "vwap": 5}, D(4)),
        ({"vwap": 5, "vwap_session": 6}, D(5)),
        ({"vwap_session": 6, "vwap_w5m": 7}, D(6)),
        ({"vwap_w5m": 7}, D(7)),
        # present but null ends the search, even when later keys have values
        ({"price": None, "close": 2}, None),
        ({"close": None, "vwap_session": 6}, None),
        ({"price": "n/a", "close": 2}, None),
        ({"imbalance": {"bid_px": 10, "ask_px": 11}}, D("10.5")),
        ({"imbalance": {"bid_px": 10, "ask_px": None}}, None),
        ({"imbalance": {"bid_px": "x", "ask_px": 11}}, None),
        ({"imbalance": {"bid_px": "Infinity", "ask_px": "-Infinity"}}, None),
        ({"price": None, "imbalance": {"bid_px": 10, "ask_px": 11}}, None),
        ({}, None),
    ],
)
def test_price_rule(payload: dict[str, Any], price: Decimal | None) -> None:
    assert values(payload)["price"] == price


def test_nested_fallbacks_when_flat_is_falsy() -> None:
    payload = {
        "ema": {"ema12": 1, "ema26": 2},
        "vwap": {"session": 3, "w5m": 4},
        "boll": {"mid": 5, "upper": 6, "lower": 7},
        "imbalance": {"spread": 8},
        "macd": {"hist": 9},
        "ema12": 0,
        "vwap_w5m": None,
    }
    got = values(payload)
    expected = {
        "ema12": 1,
        "ema26": 2,
        "vwap_session": 3,
        "vwap_w5m": 4,
        "boll_mid": 5,
        "boll_upper": 6,
        "boll_lower": 7,
        "imbalance_spread": 8,
        "macd_hist": 9,
    }
    assert {k: got[k] for k in expected} == {k: D(v) for k, v in expected.items()}
    assert values({"ema12": 11, "ema": {"ema12": 1}})["ema12"] == D(11)


def test_vol_realized_rule() -> None:
    assert values({"vol_realized": {"w60s": 1}, "vol_realized_w60s": 2})["vol_realized_w60s"] == D(1)
    assert values({"vol_realized": {"w60s": None}, "vol_realized_w60s": 2})["vol_realized_w60s"] == D(2)
    assert values({"volatility": 3, "vol": 4})["vol_realized_w60s"] == D(3)
    assert values({"vol": 4, "sigma": 5})["vol_realized_w60s"] == D(4)
    assert values({"sigma": 5})["vol_realized_w60s"] == D(5)
    assert values({"vol_realized_w60s": None, "sigma": 5})["vol_realized_w60s"] is None  # first present


def test_spread_is_flat_only_and_flag_is_raw() -> None:
    got = values({"imbalance": {"spread": 1}, "signal_quality_flag": ["stale", 1]})
    assert got["spread"] is None
    assert got["imbalance_spread"] == D(1)
    assert got["signal_quality_flag"] == ("stale", 1)
    assert values({"spread": "0.5"})["spread"] == D("0.5")


@pytest.mark.parametrize(
    ("ingest_delta", "staleness"),
    [
        (None, 0),
        (timedelta(milliseconds=250), 250),
        (timedelta(seconds=3, microseconds=999), 3000),
        (timedelta(seconds=-5), 0),
        (timedelta(days=2), 172_800_000),
    ],
)
def test_staleness_ms(ingest_delta: timedelta | None, staleness: int) -> None:
    ingest = None if ingest_delta is None else T0 + ingest_delta
    assert values({}, ingest_ts=ingest)["staleness_ms"] == staleness


def test_values_have_exactly_the_v3_fields_in_order() -> None:
    assert tuple(values({})) == VALUE_FIELDS_V3


# --- rejections ---


@pytest.mark.parametrize(
    ("declared", "accepted"),
    [
        ("3.0.0", True),
        ("v3.1", True),
        ("V3", True),
        (3, True),
        ("garbage", True),
        ("", True),
        ("²", True),  # isdigit() but not int(): unparseable, so compatible
        ("2.0.0", False),
        ("v2", False),
        (4, False),
        (" 10.1 ", False),
    ],
)
def test_schema_check(declared: object, accepted: bool) -> None:
    result = normalize(env({**REQUIRED, "feature_schema_version": declared}))
    if accepted:
        assert isinstance(result, FeatureVectorV3)
    else:
        assert isinstance(result, DeadLetter)
        assert result.reason == f"incompatible_feature_schema:{declared}"


def test_schema_major_version() -> None:
    assert schema_major_version("v3.1") == 3
    assert schema_major_version("garbage") is None


def test_schema_is_checked_before_missing_features() -> None:
    assert rejection(env({"feature_schema_version": "2.0.0"})) == "incompatible_feature_schema:2.0.0"


def test_missing_required_names_are_sorted_and_joined() -> None:
    assert rejection(env({})) == "missing_required_features:macd|macd_signal|price|rsi14"
    assert rejection(env({"rsi14": 1, "price": 1, "macd": 1})) == "missing_required_features:macd_signal"
    assert rejection(env({"macd": {"macd": 1, "signal": 1}, "rsi14": 0})) == (
        "missing_required_features:price|rsi14"
    )


def test_non_numeric_required_value_is_missing() -> None:
    assert rejection(env({**REQUIRED, "price": "abc"})) == "missing_required_features:price"


@pytest.mark.parametrize("bad", ["NaN", "-Infinity", "inf", "sNaN", float("nan"), float("inf")])
def test_non_finite_values_are_rejected(bad: object) -> None:
    assert rejection(env({**REQUIRED, "ema12": bad})) == "non_finite_feature:ema12"
    assert rejection(env({**REQUIRED, "rsi14": bad, "boll_mid": bad})) == "non_finite_feature:boll_mid|rsi14"


def test_dead_letter_carries_the_envelope() -> None:
    position = InputPosition("t", "p", 9)
    envelope = SignalEnvelope(T0, "AAPL", freeze({}), position=position)
    letter = normalize(envelope)
    assert isinstance(letter, DeadLetter)
    assert (letter.stage, letter.raw, letter.position) == ("normalize", json_safe(envelope), position)
    assert letter.raw["symbol"] == "AAPL"
    assert canonical_json(letter.raw) == canonical_json(envelope)
    assert (letter.symbol, letter.event_ts) == ("AAPL", T0)


# --- the dataflow wrapper ---


@pytest.mark.parametrize("workers", [1, 2])
def test_parse_then_normalize_flow_accounts_for_every_event(nvda_row: dict[str, Any], workers: int) -> None:
    rows: list[object] = []
    for i in range(30):
        row = {**nvda_row, "seq": str(i)}
        if i % 5 == 1:
            row.pop("rsi14")  # normalize dead letter
        elif i % 5 == 2:
            row = {**row, "feature_schema_version": "2"}  # still flat: the column is not in the payload
        elif i % 5 == 3:
            row = {**row, "event_ts": "yesterday"}  # parse dead letter
        rows.append(orjson.dumps(row))
    items = [(raw, InputPosition("t", "p0", i)) for i, raw in enumerate(rows)]

    features, letters = decode_in_flow(items, workers=workers, batch_size=4)
    parse_dead = [d for d in letters if d.stage == "parse"]
    normalize_dead = [d for d in letters if d.stage == "normalize"]

    assert len(features) + len(parse_dead) + len(normalize_dead) == len(items)
    assert (len(features), len(parse_dead), len(normalize_dead)) == (18, 6, 6)
    assert {d.reason for d in parse_dead} == {"invalid_event_ts:yesterday"}
    assert {d.reason for d in normalize_dead} == {"missing_required_features:rsi14"}
    assert all(d.stage == "normalize" for d in normalize_dead)
    assert sorted(f.seq for f in features) == [i for i in range(30) if i % 5 in (0, 2, 4)]
    assert all(f.values["price"] == D("187.1") for f in features)
