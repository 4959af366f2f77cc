"""The parse stage: torghut's parse_row rules, the dead-letter reasons, and the bytewax wrapper."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from tests.operators.decode_flow import decode_in_flow
from torghut.contracts.features import FeatureVectorV3
from torghut.contracts.frozen import FrozenMap
from torghut.contracts.hashing import canonical_json
from torghut.contracts.signal import DeadLetter, InputPosition, SignalEnvelope
from torghut.operators.parse import (
    parse_record,
    parse_ts,
    payload_from_flat_row,
    timeframe_from_duration,
)

T0 = datetime(2026, 2, 19, 14, 30, 5, tzinfo=UTC)


def envelope(raw: object, position: InputPosition | None = None) -> SignalEnvelope:
    result = parse_record(raw, position or InputPosition("t", "p", 0))
    assert isinstance(result, SignalEnvelope), result
    return result


def dead(raw: object, position: InputPosition | None = None) -> DeadLetter:
    result = parse_record(raw, position or InputPosition("t", "p", 0))
    assert isinstance(result, DeadLetter), result
    return result


# --- the documented worked example (contracts 1.3) ---


def test_nvda_worked_example(nvda_row: dict[str, Any], position: InputPosition) -> None:
    env = envelope(orjson.dumps(nvda_row), position)
    assert env.symbol == "NVDA"
    assert env.event_ts == T0
    assert env.ingest_ts == T0 + timedelta(milliseconds=250)
    assert (env.timeframe, env.seq, env.source, env.position) == ("1Sec", 1234, "ta", position)
    assert dict(env.payload) == {
        "macd": {"macd": 0.0123, "signal": 0.01},
        "rsi14": 58.2,
        "price": 187.1,
        "macd_hist": 0.0023,
        "ema12": 187.05,
        "ema26": 186.9,
        "vwap_session": 187.1,
        "vwap_w5m": 187.08,
        "boll_mid": 187.0,
        "boll_upper": 187.6,
        "boll_lower": 186.4,
        "imbalance_spread": 0.02,
        "vol_realized_w60s": 0.00031,
    }
    assert "imbalance" not in env.payload


def test_payload_is_deeply_frozen(nvda_row: dict[str, Any]) -> None:
    env = envelope(nvda_row)
    assert isinstance(env.payload, FrozenMap)
    assert isinstance(env.payload["macd"], FrozenMap)
    with pytest.raises(TypeError):
        env.payload["macd"]["macd"] = 1  # type: ignore[index]


def test_bytes_str_and_dict_inputs_parse_identically(nvda_row: dict[str, Any]) -> None:
    data = orjson.dumps(nvda_row)
    assert envelope(data) == envelope(data.decode()) == envelope(nvda_row) == envelope(bytearray(data))


# --- timestamps ---


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-02-19 14:30:05.000", T0),
        ("2026-02-19 14:30:05", T0),
        ("2026-02-19T14:30:05Z", T0),
        ("2026-02-19T14:30:05.000Z", T0),
        ("2026-02-19T14:30:05+00:00", T0),
        ("2026-02-19T09:30:05-05:00", T0),
        ("2026-02-19 14:30:05.123", T0 + timedelta(milliseconds=123)),
        (1771511405, T0),
        (1771511405.5, T0 + timedelta(milliseconds=500)),
        (datetime(2026, 2, 19, 14, 30, 5), T0),  # noqa: DTZ001 - a naive datetime is read as UTC
        (datetime(2026, 2, 19, 15, 30, 5, tzinfo=timezone(timedelta(hours=1))), T0),
    ],
)
def test_parse_ts_forms(value: object, expected: datetime) -> None:
    parsed = parse_ts(value)
    assert parsed == expected
    assert parsed is not None and parsed.tzinfo is UTC
    assert parsed.isoformat() == expected.isoformat()


@pytest.mark.parametrize("value", ["", "not-a-time", "2026-13-01 00:00:00", [], {}, 1e30, float("nan")])
def test_parse_ts_rejects(value: object) -> None:
    assert parse_ts(value) is None


@pytest.mark.parametrize("key", ["event_ts", "ts", "timestamp"])
def test_event_time_column_names(key: str) -> None:
    assert envelope({"symbol": "A", key: "2026-02-19 14:30:05.000"}).event_ts == T0


def test_event_ts_precedence_and_fall_through() -> None:
    later = "2026-02-19 14:31:00.000"
    assert envelope({"symbol": "A", "event_ts": later, "ts": "2026-02-19 14:30:05"}).event_ts > T0
    # torghut's `_parse_ts(event_ts) or _parse_ts(ts)`: an unparseable event_ts falls through to ts.
    assert envelope({"symbol": "A", "event_ts": "garbage", "ts": "2026-02-19 14:30:05"}).event_ts == T0


def test_missing_and_invalid_event_ts() -> None:
    letter = dead({"symbol": "A", "seq": 1})
    assert (letter.reason, letter.symbol, letter.event_ts) == ("missing_event_ts", "A", None)
    assert dead({"symbol": "A", "event_ts": None}).reason == "missing_event_ts"
    assert dead({"symbol": "A", "event_ts": "nope", "ts": "worse"}).reason == "invalid_event_ts:nope"
    assert dead({"symbol": "A", "event_ts": 1e300}).reason == "invalid_event_ts:1e+300"


def test_unparseable_ingest_ts_text_is_dropped_like_torghut() -> None:
    env = envelope({"symbol": "A", "event_ts": 0, "ingest_ts": "later"})
    assert env.ingest_ts is None
    assert dead({"symbol": "A", "event_ts": 0, "ingest_ts": 1e300}).reason.startswith("invalid_ingest_ts:")


# --- timeframe ---


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ("PT1S", "1Sec"),
        ("PT5S", "5Sec"),
        ("PT1M", "1Min"),
        ("PT15M", "15Min"),
        ("PT1H", "1Hour"),
        ("PT01S", "1Sec"),
        ("1s", "1Sec"),
        ("1sec", "1Sec"),
        ("10 secs", "10Sec"),
        ("1m", "1Min"),
        ("1min", "1Min"),
        ("5 minutes", "5Min"),
        ("1 MINUTE", "1Min"),
        ("1 hour", "1Hour"),
        ("2h", "2Hour"),
        (" 1m ", "1Min"),
        ("P1D", None),
        ("PT1.5S", None),
        ("1d", None),
        ("", None),
        (None, None),
    ],
)
def test_timeframe_mapping(size: str | None, expected: str | None) -> None:
    assert timeframe_from_duration(size) == expected


def test_timeframe_precedence() -> None:
    base: dict[str, Any] = {"symbol": "A", "event_ts": 0}
    assert envelope({**base, "window_step": "PT5S"}).timeframe == "5Sec"
    assert envelope({**base, "window_size": "PT1M", "window_step": "PT5S"}).timeframe == "1Min"
    window = {"size": "PT1H", "step": "PT1S"}
    assert envelope({**base, "window": window, "window_size": "PT1M"}).timeframe == "1Hour"
    assert envelope({**base, "window": window, "timeframe": "1Day"}).timeframe == "1Day"
    payload = {"timeframe": "1Week", "rsi14": 1}
    assert envelope({**base, "timeframe": "1Day", "payload": payload}).timeframe == "1Week"
    assert envelope({**base, "window_size": 5}).timeframe is None
    assert envelope(base).timeframe is None


# --- seq, source, symbol ---


@pytest.mark.parametrize(
    ("seq", "expected"),
    [("1234", 1234), (1234, 1234), ("0", 0), (None, None), (" 7 ", 7), ("12.0", 12), (3.0, 3), (True, 1)],
)
def test_seq_coercion_follows_pydantic(seq: object, expected: int | None) -> None:
    assert envelope({"symbol": "A", "event_ts": 0, "seq": seq}).seq == expected


@pytest.mark.parametrize("seq", ["abc", "1.5", 1.5, "", [1], {"a": 1}, "0x10"])
def test_invalid_seq(seq: object) -> None:
    letter = dead({"symbol": "A", "event_ts": 0, "seq": seq})
    assert letter.reason.startswith("invalid_seq:")
    assert (letter.symbol, letter.event_ts) == ("A", datetime(1970, 1, 1, tzinfo=UTC))


def test_invalid_seq_reason_shows_the_value() -> None:
    assert dead({"symbol": "A", "event_ts": 0, "seq": "abc"}).reason == "invalid_seq:abc"


def test_source_passed_through_and_validated() -> None:
    assert envelope({"symbol": "A", "event_ts": 0, "source": "ta"}).source == "ta"
    assert envelope({"symbol": "A", "event_ts": 0}).source is None
    assert dead({"symbol": "A", "event_ts": 0, "source": 5}).reason == "invalid_source:5"


@pytest.mark.parametrize("symbol", ["NVDA", "BRK.B", "BTC/USD", "a", "X" * 32, "0-9_x".replace("_", ".")])
def test_valid_symbols(symbol: str) -> None:
    assert envelope({"symbol": symbol, "event_ts": 0}).symbol == symbol


@pytest.mark.parametrize(
    "symbol",
    ["", "X" * 33, ".A", "A B", "A;DROP TABLE x", "NVDA\n", "ÄPFEL", "A'--", 5, ["A"], True],
)
def test_invalid_symbols(symbol: object) -> None:
    letter = dead({"symbol": symbol, "event_ts": 0})
    assert (letter.reason, letter.symbol) == ("invalid_symbol", None)


def test_missing_symbol_carries_raw_and_position(position: InputPosition) -> None:
    raw = b'{"event_ts":"2026-02-19 14:30:05.000","macd":0.1}'
    letter = dead(raw, position)
    assert (letter.stage, letter.reason, letter.position) == ("parse", "missing_symbol", position)
    assert letter.raw == {"event_ts": "2026-02-19 14:30:05.000", "macd": 0.1}
    assert dead({"symbol": None, "event_ts": 0}).reason == "missing_symbol"


# --- undecodable input ---


@pytest.mark.parametrize(
    "raw", [b"{oops", b"", b"\xff\xfe", "{'a': 1}", b'{"a":1}{"b":2}', b"\xff\xfe{\x00}\x00", b'{"a":nan}']
)
def test_invalid_json(raw: bytes | str) -> None:
    letter = dead(raw)
    assert letter.reason == "invalid_json"
    assert isinstance(letter.raw, str)
    canonical_json(letter)  # the dead letter is JSON-safe


def test_json_torghut_accepted_but_orjson_refuses_parses_like_torghut() -> None:
    env = envelope(b'{"symbol":"A","event_ts":0,"macd":NaN,"rsi14":1e400,"ema12":-Infinity}')
    assert math.isnan(env.payload["macd"]["macd"])
    assert (env.payload["rsi14"], env.payload["ema12"]) == (math.inf, -math.inf)


def test_payload_and_signal_json_strings_keep_big_integers_exact() -> None:
    big = 2**70
    env = envelope({"symbol": "A", "event_ts": 0, "payload": f'{{"price": {big}}}'})
    assert env.payload["price"] == big
    assert payload_from_flat_row({"signal_json": f'{{"price": {big}}}'})["price"] == big


def test_invalid_json_keeps_undecodable_bytes_as_text() -> None:
    assert dead(b'{"symbol":"\xff').raw == '{"symbol":"\\xff'


@pytest.mark.parametrize(("raw", "kept"), [(b"[1,2]", (1, 2)), (b"42", 42), (b'"x"', "x"), (b"null", None)])
def test_not_an_object(raw: bytes, kept: object) -> None:
    letter = dead(raw)
    assert (letter.reason, letter.raw) == ("not_an_object", kept)


def test_non_json_python_objects_are_not_objects() -> None:
    assert dead(42).reason == "not_an_object"
    assert dead(["a"]).reason == "not_an_object"


def test_deep_nesting_becomes_a_dead_letter_not_a_crash() -> None:
    deep: Any = 1
    for _ in range(5000):
        deep = {"x": deep}
    letter = parse_record({"symbol": "A", "event_ts": 0, "payload": deep}, InputPosition("t", "p", 0))
    assert isinstance(letter, DeadLetter)
    assert letter.reason == "too_deeply_nested"


# --- payload column, flat rows, nested rows ---


def test_payload_dict_and_json_string() -> None:
    payload = {"macd": {"macd": 1, "signal": 2}, "rsi14": 30, "price": 10}
    base: dict[str, Any] = {"symbol": "A", "event_ts": "2026-01-01T00:01:00Z"}
    from_dict = envelope({**base, "payload": payload})
    from_text = envelope({**base, "payload": orjson.dumps(payload).decode()})
    assert dict(from_dict.payload) == dict(from_text.payload) == payload


def test_payload_string_that_is_not_json_is_rejected() -> None:
    letter = dead({"symbol": "A", "event_ts": 0, "payload": "{broken"})
    assert (letter.reason, letter.symbol) == ("invalid_payload_json", "A")
    assert dead({"symbol": "A", "event_ts": 0, "payload": "[1,2]"}).reason == "invalid_payload_json"
    assert dead({"symbol": "A", "event_ts": 0, "payload": 7}).reason == "invalid_payload_type:int"


def test_empty_payload_falls_back_to_flat_columns() -> None:
    for empty in ({}, "", "  ", "null", None):
        env = envelope({"symbol": "A", "event_ts": 0, "payload": empty, "rsi14": 40})
        assert dict(env.payload) == {"rsi14": 40}


def test_nested_avro_shape_payload_is_the_blocks() -> None:
    row = {
        "ingest_ts": "2026-02-19T14:30:05.250Z",
        "event_ts": "2026-02-19T14:30:05Z",
        "symbol": "NVDA",
        "seq": 9,
        "feature_schema_version": "3.0.0",
        "is_final": True,
        "signal_quality_flag": "ok",
        "source": "ta",
        "window": {"size": "PT1S", "step": "PT1S", "start": None, "end": None},
        "macd": {"macd": 0.5, "signal": 0.4, "hist": 0.1},
        "ema": {"ema12": 10.1, "ema26": 10.0},
        "rsi14": 55.0,
        "boll": {"mid": 10.0, "upper": 10.5, "lower": 9.5},
        "vwap": {"session": 10.05, "w5m": 10.04},
        "imbalance": {"spread": 0.01, "bid_px": 10.0, "ask_px": 10.01, "bid_sz": 100, "ask_sz": 200},
        "vol_realized": {"w60s": 0.002},
        "version": 1,
    }
    env = envelope(row)
    identity = {"ingest_ts", "event_ts", "symbol", "seq", "source"}
    assert dict(env.payload) == {k: v for k, v in row.items() if k not in identity}
    assert (env.timeframe, env.seq, env.source) == ("1Sec", 9, "ta")
    assert env.ingest_ts == T0 + timedelta(milliseconds=250)


def test_signal_envelope_dict_round_trip() -> None:
    # The shape of torghut's fixtures: a SignalEnvelope dict with string decimals.
    row = {
        "event_ts": "2026-01-01T00:01:00Z",
        "symbol": "AAPL",
        "timeframe": "1Min",
        "payload": {"macd": {"macd": "0.5", "signal": "0.4"}, "rsi14": "25", "price": "100"},
    }
    env = envelope(row)
    assert (env.timeframe, env.seq, env.source, env.ingest_ts) == ("1Min", None, None, None)
    assert env.event_ts == datetime(2026, 1, 1, 0, 1, tzinfo=UTC)


class TestFlatPayload:
    """torghut's `_payload_from_flat_row`, rule by rule."""

    def test_only_non_null_values_are_copied(self) -> None:
        assert payload_from_flat_row({"rsi14": None, "ema12": None, "macd": None, "close": None}) == {}

    @pytest.mark.parametrize(
        ("row", "price"),
        [
            ({"price": 1, "vwap_session": 2}, 1),
            ({"close": 5, "vwap_session": 2}, 2),  # close is copied, but price still falls back to vwap
            ({"vwap_session": 2, "vwap_w5m": 3, "vwap": 4}, 2),
            ({"vwap_session": None, "vwap_w5m": 3, "vwap": 4}, 3),
            ({"vwap": 4}, 4),
            ({"imbalance_bid_px": 10, "imbalance_ask_px": 11}, 10.5),
            ({"imbalance_bid_px": "10", "imbalance_ask_px": "11"}, 10.5),
            ({"imbalance_bid_px": 10, "imbalance_ask_px": None}, None),
            ({"imbalance_bid_px": "x", "imbalance_ask_px": 11}, None),
            ({"vwap_w5m": 3, "imbalance_bid_px": 10, "imbalance_ask_px": 11}, 3),
        ],
    )
    def test_price_precedence(self, row: dict[str, Any], price: object) -> None:
        assert payload_from_flat_row(row).get("price") == price

    def test_macd_block_and_signal_alias(self) -> None:
        assert payload_from_flat_row({"macd": 1, "macd_signal": 2})["macd"] == {"macd": 1, "signal": 2}
        assert payload_from_flat_row({"macd": 1, "signal": 3})["macd"] == {"macd": 1, "signal": 3}
        assert payload_from_flat_row({"macd_signal": 2})["macd"] == {"signal": 2}
        # torghut reads `macd_signal or signal`: a zero macd_signal falls through to `signal`.
        assert payload_from_flat_row({"macd": 1, "macd_signal": 0, "signal": 9})["macd"] == {
            "macd": 1,
            "signal": 9,
        }
        assert payload_from_flat_row({"macd": 1, "macd_signal": 0.0})["macd"] == {"macd": 1}

    def test_imbalance_only_with_a_spread_column(self) -> None:
        no_spread = payload_from_flat_row(
            {"imbalance_bid_px": 1, "imbalance_ask_px": 2, "imbalance_spread": 1}
        )
        assert "imbalance" not in no_spread
        assert no_spread["imbalance_spread"] == 1
        with_spread = payload_from_flat_row({"spread": 0.5, "imbalance_bid_px": 1, "imbalance_ask_px": 2})
        assert with_spread["imbalance"] == {"spread": 0.5, "bid_px": 1, "ask_px": 2}

    def test_signal_json_is_merged_first(self) -> None:
        row = {
            "signal_json": '{"rsi14": 11, "price": 7, "macd": {"hist": 0.3}, "imbalance": {"spread": 1}}',
            "rsi14": 99,
            "macd": 1,
            "macd_signal": 2,
            "vwap_session": 5,
            "imbalance_bid_px": 4,
        }
        assert payload_from_flat_row(row) == {
            "rsi14": 11,
            "price": 7,
            "macd": {"hist": 0.3, "macd": 1, "signal": 2},
            "imbalance": {"spread": 1, "bid_px": 4},
            "vwap_session": 5,
        }

    def test_signal_json_non_dict_macd_is_replaced(self) -> None:
        assert payload_from_flat_row({"signal_json": '{"macd": 5}', "macd": 1})["macd"] == {
            "macd": 1,
            "signal": None,
        }

    def test_invalid_signal_json_is_ignored(self) -> None:
        assert payload_from_flat_row({"signal_json": "{nope", "rsi": 3}) == {"rsi": 3}
        assert payload_from_flat_row({"signal_json": "[1]", "rsi": 3}) == {"rsi": 3}

    def test_legacy_columns(self) -> None:
        row = {"rsi": 40, "ema": 3, "vwap": 2, "close": 9}
        assert payload_from_flat_row(row) == {"rsi": 40, "ema": 3, "vwap": 2, "close": 9, "price": 2}


def test_mid_price_overflow_is_a_dead_letter_not_a_crash() -> None:
    row = {"symbol": "A", "event_ts": 0, "imbalance_bid_px": 10**400, "imbalance_ask_px": 1}
    assert dead(row).reason == "invalid_price_mid"


# --- batches and the dataflow wrapper ---


def test_parse_keeps_order_and_length(nvda_row: dict[str, Any]) -> None:
    items: list[tuple[object, InputPosition]] = [
        (nvda_row, InputPosition("t", "p", 0)),
        (b"{", InputPosition("t", "p", 1)),
        ({**nvda_row, "symbol": "AMD"}, InputPosition("t", "p", 2)),
    ]
    results = [parse_record(raw, position) for raw, position in items]
    assert [type(r).__name__ for r in results] == ["SignalEnvelope", "DeadLetter", "SignalEnvelope"]
    assert [r.position.offset for r in results if r.position is not None] == [0, 1, 2]


def _mixed_inputs(nvda_row: dict[str, Any]) -> list[tuple[object, InputPosition]]:
    good = orjson.dumps(nvda_row)
    bad: list[object] = [b"{", b"[]", {"event_ts": 0}, {"symbol": "A"}, {"symbol": "A", "ts": 0, "seq": "x"}]
    items: list[tuple[object, InputPosition]] = []
    for i in range(40):
        raw: object = bad[i % len(bad)] if i % 4 == 3 else good
        items.append((raw, InputPosition("test", "p0", i)))
    return items


@pytest.mark.parametrize("workers", [1, 2])
def test_the_flow_routes_every_input_to_exactly_one_stream(nvda_row: dict[str, Any], workers: int) -> None:
    items = _mixed_inputs(nvda_row)
    envelopes, letters = decode_in_flow(items, workers=workers, batch_size=7)

    assert len(envelopes) + len(letters) == len(items)
    assert len(letters) == 10
    assert all(isinstance(e, FeatureVectorV3) for e in envelopes)
    assert all(isinstance(d, DeadLetter) and d.stage == "parse" for d in letters)
    offsets = sorted(x.position.offset for x in [*envelopes, *letters] if x.position is not None)
    assert offsets == list(range(len(items)))
    assert sorted(d.position.offset for d in letters if d.position) == [i for i in range(40) if i % 4 == 3]
