"""decode_record is exactly normalize(parse_record(...)); routing_symbol is exactly the parser's symbol."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from torghut.contracts.features import FeatureVectorV3, optional_decimal
from torghut.contracts.hashing import canonical_json
from torghut.contracts.signal import DeadLetter, InputPosition, SignalEnvelope
from torghut.operators import decode as decode_module
from torghut.operators.decode import decode_record, routing_symbol
from torghut.operators.normalize import normalize
from torghut.operators.parse import parse_record

from .test_parse_normalize_properties import FIELD_VALUES, NUMBERS, rows

PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
POSITION = InputPosition("prop", "p0", 3)
FLAT_NUMERIC = (
    "price",
    "close",
    "vwap",
    "macd",
    "macd_signal",
    "signal",
    "macd_hist",
    "ema12",
    "ema26",
    "rsi",
    "rsi14",
    "vwap_session",
    "vwap_w5m",
    "boll_mid",
    "boll_upper",
    "boll_lower",
    "imbalance_spread",
    "imbalance_bid_px",
    "imbalance_ask_px",
    "vol_realized_w60s",
)


def two_stage(raw: object) -> FeatureVectorV3 | DeadLetter:
    parsed = parse_record(raw, POSITION)
    return normalize(parsed) if isinstance(parsed, SignalEnvelope) else parsed


def assert_same(raw: object) -> FeatureVectorV3 | DeadLetter:
    expected = two_stage(raw)
    got = decode_record(raw, POSITION)
    assert type(got) is type(expected)
    # canonical JSON tells Decimal("0.10") from Decimal("0.1"), which == does not.
    assert canonical_json(got) == canonical_json(expected)
    if isinstance(got, FeatureVectorV3):
        assert isinstance(expected, FeatureVectorV3)
        assert got.normalization_hash() == expected.normalization_hash()
        assert tuple(got.values) == tuple(expected.values)
    return got


# Realistic flat rows: every column a number, a zero, null or (sometimes) something odd.
FLAT_VALUE = st.one_of(
    st.none(),
    st.sampled_from([0, 0.0, -0.0]),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.floats(min_value=-1000, max_value=1000),
    st.sampled_from([1, 73.01, 1e308, 5e-324, True]),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
)
PRICE_SOURCES = (
    ("price",),
    ("vwap_session",),
    ("vwap_w5m",),
    ("vwap",),
    ("close",),
    ("imbalance_bid_px", "imbalance_ask_px"),
)


@st.composite
def flat_rows(draw: st.DrawFn) -> dict[str, Any]:
    row: dict[str, Any] = {
        "symbol": draw(st.sampled_from(["AAPL", "BRK.B", "BTC/USD", "x y", ""])),
        "event_ts": draw(st.sampled_from(["2026-02-19 14:30:05.000", "2026-02-19T14:30:05Z", "nope", 1.7e9])),
    }
    for column in draw(st.lists(st.sampled_from(FLAT_NUMERIC), unique=True, max_size=len(FLAT_NUMERIC))):
        row[column] = draw(FLAT_VALUE)
    if draw(st.booleans()):  # usually a normalizable core, priced from one of the price columns
        for column in ("macd", "macd_signal", "rsi14", *draw(st.sampled_from(PRICE_SOURCES))):
            row[column] = draw(st.floats(min_value=-500, max_value=500))
    optional = {
        "ingest_ts": st.sampled_from(
            ["2026-02-19 14:30:05.120", "2026-02-19 14:30:04.000", None, 1.7e9, "x"]
        ),
        "seq": st.one_of(st.integers(-5, 2**40), st.integers(0, 2**40).map(str), st.just("1.5")),
        "source": st.sampled_from(["ta", None, 7]),
        "window_size": st.sampled_from(["PT1S", "PT1M", "1 hour", "P1D", None]),
        "timeframe": st.sampled_from(["1Sec", None, 3]),
        "spread": st.sampled_from([None, 0.01]),
        "payload": st.sampled_from([None, "", "{}", '{"rsi14": 5}']),
        "macd": st.sampled_from([{"macd": 1.0, "signal": 0.5}, None, "1.5"]),
        "signal_quality_flag": st.sampled_from([None, "ok"]),
        "feature_schema_version": st.sampled_from([None, "2.0.0", "3.0.0"]),
        "vwap": FIELD_VALUES,
    }
    for key in draw(st.lists(st.sampled_from(sorted(optional)), unique=True, max_size=4)):
        row[key] = draw(optional[key])
    return row


@PROPS
@given(flat_rows())
def test_flat_rows_decode_exactly_as_the_two_stages(row: dict[str, Any]) -> None:
    assert_same(row)
    assert_same(json.dumps(row).encode())


@PROPS
@given(rows())
def test_any_row_decodes_exactly_as_the_two_stages(row: dict[str, Any]) -> None:
    assert_same(row)
    assert_same(json.dumps(row).encode())  # NaN and huge numbers: the json fallback


@given(st.one_of(st.binary(max_size=120), st.text(max_size=120)))
def test_bytes_and_text_decode_exactly_as_the_two_stages(raw: bytes | str) -> None:
    assert_same(raw)


def test_the_fast_path_serves_ordinary_rows_and_the_slow_path_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ordinary = {
        "symbol": "AAPL",
        "event_ts": "2026-02-19 14:30:05.000",
        "ingest_ts": "2026-02-19 14:30:05.047",
        "seq": "12",
        "source": "ta",
        "window_size": "PT1S",
        "macd": 0.12,
        "macd_signal": 0.1,
        "macd_hist": 0.02,
        "rsi14": 55.5,
        "vwap_session": 73.01,
        "vwap_w5m": 73.0,
        "imbalance_bid_px": 73.0,
        "imbalance_ask_px": 73.02,
        "rsi": None,
    }
    nested = {"symbol": "AAPL", "event_ts": "2026-02-19 14:30:05.000", "macd": {"macd": 1, "signal": 0}}
    slow_calls: list[object] = []
    real = decode_module.parse_record

    def counting(raw: object, position: InputPosition) -> object:
        slow_calls.append(raw)
        return real(raw, position)

    monkeypatch.setattr(decode_module, "parse_record", counting)
    fv = assert_same(orjson.dumps(ordinary))
    assert isinstance(fv, FeatureVectorV3)
    assert (fv.timeframe, fv.seq, str(fv.values["price"]), fv.values["staleness_ms"]) == (
        "1Sec",
        12,
        "73.01",
        47,
    )
    assert slow_calls == []
    assert isinstance(assert_same(nested), DeadLetter)  # price and rsi14 missing
    assert slow_calls == [nested]


@st.composite
def symbol_texts(draw: st.DrawFn) -> bytes:
    symbol = draw(st.sampled_from(["AAPL", "BRK.B", "Ω", "a\\u0041", 'x"y', "", "\ud800"]))
    other = draw(st.sampled_from(["MSFT", "B"]))
    pieces = [
        f'"symbol":{json.dumps(symbol)}',
        f'"payload":{{"symbol":"{other}"}}',
        f'"\\u0073ymbol":"{other}"',
        f'"symbol":"{other}"',
        '"source":"symbol"',
        '"seq":1',
        f'"event_ts":"2026-02-19 14:30:05.000","rsi14":{draw(NUMBERS)}',
    ]
    chosen = draw(st.lists(st.sampled_from(pieces), min_size=1, max_size=5))
    return ("{" + ",".join(chosen) + "}").encode()


@PROPS
@given(st.one_of(symbol_texts(), rows().map(lambda r: json.dumps(r).encode()), st.binary(max_size=80)))
def test_routing_symbol_is_the_parsers_symbol(raw: bytes) -> None:
    parsed = parse_record(raw, POSITION)
    routed = routing_symbol(raw)
    routed.encode()  # a valid bytewax key: no lone surrogates
    if isinstance(parsed, SignalEnvelope):
        assert routed == parsed.symbol
        assert routing_symbol(raw.decode("utf-8", "surrogateescape")) == parsed.symbol


def _routing_by_search(raw: bytes) -> str:
    # The byte-level rule routing_symbol implements faster: search the field, trust it when unique and
    # unescaped, else decode.
    match = decode_module.SYMBOL_FIELD.search(raw)
    if match is not None and raw.count(b'"symbol"') == 1 and b"\\u" not in raw:
        return decode_module._routable(match.group(1).decode("utf-8", "replace"))
    try:
        decoded = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return ""
    return decode_module._routable(decoded.get("symbol") if isinstance(decoded, dict) else None)


_ROUTING_PIECES = st.sampled_from(
    (
        *(b'"symbol"', b'"symbol":"', b'"symbol": "', b'"x"', b"\\", b"\\u0073", b"\xff", "é".encode()),
        *(b":", b'"', b"{", b"}", b" ", b",", b"1", b"A", b"AAPL", b"a" * 70),
    )
)


@PROPS
@given(st.lists(_ROUTING_PIECES, max_size=12).map(b"".join))
def test_routing_symbol_equals_the_search_rule_on_any_bytes(raw: bytes) -> None:
    # Rows that are no JSON included: whatever routing_symbol says, the split and the flow say the same.
    assert routing_symbol(raw) == _routing_by_search(raw)


def test_routing_symbol_reads_duplicates_and_escapes_like_the_parser() -> None:
    assert routing_symbol(b'{"symbol":"A","symbol":"B"}') == "B"
    assert routing_symbol(b'{"symbol":"A","\\u0073ymbol":"B"}') == "B"
    assert routing_symbol(b'{"payload":{"symbol":"B"},"symbol":"A"}') == "A"
    assert routing_symbol(b'{"symbol":"AAPL","seq":1}') == "AAPL"
    assert routing_symbol(b"[1]") == routing_symbol(b"{oops") == routing_symbol(7) == ""


def test_a_column_nested_past_the_recursion_limit_is_the_parsers_dead_letter() -> None:
    # orjson reads 1,000 levels; str() of such a value exceeds Python's recursion limit.
    deep = "[" * 1000 + "1" + "]" * 1000
    raw = (
        '{"symbol":"AAPL","event_ts":"2026-02-19 14:30:05.000","macd":1.0,"macd_signal":0.5,'
        f'"rsi14":40.0,"price":10.0,"ema12":{deep}}}'
    ).encode()
    letter = assert_same(raw)
    assert isinstance(letter, DeadLetter)
    assert letter.reason == "too_deeply_nested"


def decimals_of(raws: tuple[object, ...]) -> list[Decimal | None] | None:
    """The fast path's decimals of ``raws``, the first of a row's decimal columns (the rest absent)."""
    keys = decode_module._FAST_KEYS
    values = decode_module._decimals((*raws, *(None,) * (len(keys) - len(raws))))
    if values is None:
        return None
    assert list(values) == [*keys, "spread", "signal_quality_flag"]  # every V3 value but staleness_ms
    assert values["spread"] is None and all(values[k] is None for k in keys[len(raws) :])
    return [values[k] for k in keys[: len(raws)]]


@settings(max_examples=3000, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, width=64))
def test_a_floats_orjson_text_reads_as_the_same_decimal_as_its_repr(value: float) -> None:
    # The fast path reads floats through orjson's text; torghut reads Decimal(str(value)). Digits and
    # exponent must match, not only the value: Decimal("1.0") and Decimal("1") hash differently.
    expected = Decimal(repr(value)).as_tuple()
    assert optional_decimal(value).as_tuple() == expected  # type: ignore[union-attr]
    batch = decimals_of((value, None, value))
    assert batch is not None
    assert [d.as_tuple() if d is not None else None for d in batch] == [expected, None, expected]


@pytest.mark.parametrize(
    ("raws", "expected"),
    [
        ((1.5, True, "2.5", 7), [Decimal("1.5"), None, Decimal("2.5"), Decimal("7")]),
        ((2**64, 0.1), [Decimal(2**64), Decimal("0.1")]),  # past orjson's 64-bit integers
        (("1,2", 3.0), [None, Decimal("3.0")]),  # a comma inside a string does not shift the texts
        ((), []),
    ],
)
def test_values_orjson_cannot_write_as_numbers_are_converted_one_by_one(
    raws: tuple[object, ...], expected: list[Decimal | None]
) -> None:
    got = decimals_of(raws)
    assert got is not None
    assert [d.as_tuple() if d is not None else None for d in got] == [
        d.as_tuple() if d is not None else None for d in expected
    ]


def test_a_non_finite_float_sends_the_row_to_the_two_stages() -> None:
    assert decimals_of((1.0, float("nan"))) is None
    assert decimals_of((float("inf"),)) is None
