"""Hostile input through parse -> normalize: every input ends as a finite feature vector or a dead letter.

Complements ``tests/operators/test_parse_normalize_properties.py`` (random rows, torghut parity) with
targeted hostile values: NaN and infinities as floats and strings, ints past 64 bits, negative zero,
emoji and SQL in symbols, control characters and NUL, 100k-character strings, wrong types, extreme
timestamps, deep nesting, invalid UTF-8, and batches with duplicate and out-of-order ``seq``.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz.conftest import TALLY, FuzzReport, fuzz_settings
from tests.fuzz.hostile import (
    FIELD_NAMES,
    HOSTILE_NUMBERS,
    HOSTILE_STRINGS,
    HOSTILE_SYMBOLS,
    HOSTILE_TIMESTAMPS,
    NESTED_BLOCKS,
    POSITION,
    SEQS,
    VALID_SYMBOLS,
    check_outcome,
    nested,
    orjson_problems,
    run_chain,
)
from torghut.contracts.features import FeatureVectorV3
from torghut.contracts.hashing import canonical_json
from torghut.contracts.signal import DeadLetter, InputPosition
from torghut.operators.decode import decode_record

ROWS_BUDGET = 600
DEEP_BUDGET = 40
BATCH_BUDGET = 100
ORJSON_BUDGET = 300

HOSTILE_VALUE = st.one_of(
    st.sampled_from(HOSTILE_NUMBERS),
    st.sampled_from(HOSTILE_STRINGS),
    st.floats(),
    st.integers(),
    st.text(max_size=16),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=3),
)
NUMBERISH = st.one_of(st.sampled_from(HOSTILE_NUMBERS), st.sampled_from(HOSTILE_STRINGS), st.floats())
SYMBOL = st.one_of(st.sampled_from(VALID_SYMBOLS), st.sampled_from(HOSTILE_SYMBOLS), HOSTILE_VALUE)
TIMESTAMP = st.one_of(st.sampled_from(HOSTILE_TIMESTAMPS), HOSTILE_VALUE)
SEQ = st.one_of(st.sampled_from(SEQS), HOSTILE_VALUE)
BAD_UTF8 = (b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xe2\x82", b"\xf4\x90\x80\x80", b"\x80abc")
BAD_MARK = "@@BAD_UTF8@@"
ENCODINGS = ("dict", "json_text", "utf8_bytes", "bad_utf8_in_string", "orjson_bytes")


@st.composite
def hostile_rows(draw: st.DrawFn) -> dict[str, Any]:
    """A flat row, a nested Avro row or an envelope, with hostile values in identity and feature fields."""
    row: dict[str, Any] = {}
    identity_ok = draw(st.integers(0, 3)) > 0  # mostly rows that parse, so normalize sees hostile values
    row["symbol"] = draw(st.sampled_from(VALID_SYMBOLS) if identity_ok else SYMBOL)
    ts_key = draw(st.sampled_from(("event_ts", "ts", "timestamp")))
    row[ts_key] = draw(st.sampled_from(("2026-02-19 14:30:05.000", 1.7e9)) if identity_ok else TIMESTAMP)
    for key, strategy in (("ingest_ts", TIMESTAMP), ("seq", SEQ), ("source", HOSTILE_VALUE)):
        if draw(st.booleans()):
            row[key] = draw(strategy)
    features: dict[str, Any] = draw(st.dictionaries(st.sampled_from(FIELD_NAMES), HOSTILE_VALUE, max_size=8))
    if draw(st.booleans()):  # a core the normalizer can accept, made of hostile numbers
        for name in ("price", "macd", "macd_signal", "rsi14"):
            features[name] = draw(NUMBERISH)
    shape = draw(st.sampled_from(("flat", "nested", "payload_dict", "payload_text")))
    if shape == "flat":
        row.update(features)
    elif shape == "nested":
        row.update(features)
        for block in draw(st.lists(st.sampled_from(sorted(NESTED_BLOCKS)), min_size=1, max_size=3)):
            keys = st.sampled_from(NESTED_BLOCKS[block])
            row[block] = draw(st.dictionaries(keys, HOSTILE_VALUE, max_size=4))
    elif shape == "payload_dict":
        row["payload"] = features
    else:
        row["payload"] = json.dumps(features)
    return row


def encode(row: dict[str, Any], encoding: str) -> object:
    """Present ``row`` as the parse stage may receive it."""
    if encoding == "dict":
        return row
    if encoding == "json_text":  # NaN, Infinity, big ints and escaped lone surrogates
        return json.dumps(row)
    if encoding == "utf8_bytes":  # raw UTF-8, lone surrogates written as invalid UTF-8 bytes
        return json.dumps(row, ensure_ascii=False).encode("utf-8", "surrogatepass")
    if encoding == "orjson_bytes":
        try:
            return orjson.dumps(row)
        except TypeError:  # ints past 64 bits, lone surrogates
            return json.dumps(row).encode()
    return json.dumps({**row, "note": BAD_MARK}).encode()


@fuzz_settings(ROWS_BUDGET)
@given(hostile_rows(), st.sampled_from(ENCODINGS), st.sampled_from(BAD_UTF8))
@example({"symbol": "AAPL'; DROP TABLE x;--", "ts": 0}, "dict", b"\xff")
@example(
    {"symbol": "NVDA", "ts": 0, "price": float("nan"), "macd": 1, "macd_signal": 1, "rsi14": 1},
    "json_text",
    b"\xff",
)
@example(
    {"symbol": "NVDA", "ts": 0, "price": "Infinity", "macd": 1, "macd_signal": 1, "rsi14": 1}, "dict", b"\xff"
)
@example(
    {"symbol": "NVDA", "ts": 0, "price": 10**400, "macd": -0.0, "macd_signal": 1e308, "rsi14": "1e999"},
    "json_text",
    b"\xff",
)
@example(
    {
        "symbol": "NVDA",
        "ts": "0001-01-01T00:00:00",
        "ingest_ts": "9999-12-31T23:59:59.999999",
        "price": 1,
        "macd": 1,
        "macd_signal": 1,
        "rsi14": 1,
    },
    "dict",
    b"\xff",
)
@example(
    {"symbol": "NVDA", "ts": 1e20, "price": [1], "macd": {"macd": True}, "macd_signal": {}, "rsi14": None},
    "orjson_bytes",
    b"\xff",
)
@example(
    {"symbol": "NVDA", "ts": 0, "seq": 10**400, "price": 1, "macd": 1, "macd_signal": 1, "rsi14": 1},
    "json_text",
    b"\xff",
)
@example({"symbol": "NVDA\x00", "ts": 0}, "bad_utf8_in_string", b"\xed\xa0\x80")
def check_hostile_rows(row: dict[str, Any], encoding: str, bad: bytes) -> None:
    TALLY["parse_normalize.hostile_rows"] += 1
    raw = encode(row, encoding)
    if isinstance(raw, bytes):
        raw = raw.replace(BAD_MARK.encode(), bad)
    result = check_outcome(run_chain(raw))
    outcome = "features" if isinstance(result, FeatureVectorV3) else f"dead_letters_{result.stage}"
    TALLY[f"parse_normalize.hostile_rows.{outcome}"] += 1


def test_hostile_rows_end_as_features_or_dead_letters(fuzz_report: FuzzReport) -> None:
    fuzz_report.run("parse_normalize.hostile_rows", check_hostile_rows, ROWS_BUDGET)
    # Not vacuous: the hostile values reach the normalizer and some still make valid feature vectors.
    for outcome in ("features", "dead_letters_parse", "dead_letters_normalize"):
        assert TALLY[f"parse_normalize.hostile_rows.{outcome}"] > 0, outcome


DEPTHS = (10, 100, 500, 900, 990, 1000, 1100, 5000, 100_000)
PLACES = ("payload", "feature", "signal_json", "nested_block", "whole")


@fuzz_settings(DEEP_BUDGET)
@given(st.sampled_from(DEPTHS), st.sampled_from(PLACES), st.booleans())
@example(100_000, "whole", True)
@example(100_000, "payload", False)
def check_deep_nesting(depth: int, place: str, as_bytes: bool) -> None:
    TALLY["parse_normalize.deep_nesting"] += 1
    core: dict[str, Any] = {"symbol": "NVDA", "ts": 0, "price": 1, "macd": 1, "macd_signal": 1, "rsi14": 1}
    deep = nested(depth)
    if place == "payload":
        row: Any = {**core, "payload": {"price": 1, "extra": deep}}
    elif place == "feature":
        row = {**core, "price": deep}
    elif place == "signal_json":
        row = {**core, "signal_json": "[" * depth + "]" * depth}
    elif place == "nested_block":
        row = {**core, "macd": {"macd": deep, "signal": 1}}
    else:
        row = deep
    if as_bytes:
        text = "[" * depth + "]" * depth if place == "whole" else None
        if text is None:
            try:
                text = json.dumps(row)
            except RecursionError:  # deeper than json.dumps can write: build the text by hand
                inner = "[" * depth + "1" + "]" * depth
                text = json.dumps({**core, "price": 0}).replace('"price": 0', f'"price": {inner}')
        row = text.encode()
    check_outcome(run_chain(row))


def test_deep_nesting_is_dead_lettered_or_normalized(fuzz_report: FuzzReport) -> None:
    fuzz_report.run("parse_normalize.deep_nesting", check_deep_nesting, DEEP_BUDGET)


@fuzz_settings(BATCH_BUDGET)
@given(
    st.lists(
        st.tuples(st.sampled_from(VALID_SYMBOLS[:2]), st.sampled_from(SEQS), hostile_rows()), max_size=12
    )
)
def check_batches(items: list[tuple[str, Any, dict[str, Any]]]) -> None:
    TALLY["parse_normalize.batches"] += 1
    batch: list[tuple[object, InputPosition]] = [
        ({**row, "symbol": symbol, "seq": seq, "ts": 0}, InputPosition("hostile", "p0", offset))
        for offset, (symbol, seq, row) in enumerate(items)
    ]
    decoded = [decode_record(raw, position) for raw, position in batch]  # the flow's own decoding
    assert [d.position for d in decoded] == [position for _, position in batch]
    for item in decoded:
        assert isinstance(item, FeatureVectorV3 | DeadLetter)
        assert item.reason if isinstance(item, DeadLetter) else item.normalization_hash()
        canonical_json(item)


def test_duplicate_and_out_of_order_seqs_give_one_result_per_row(fuzz_report: FuzzReport) -> None:
    fuzz_report.run("parse_normalize.batches", check_batches, BATCH_BUDGET)


# --- dead letters and orjson: raw is json_safe, so every dead letter round-trips through orjson ---

ORJSON_FAILURES: list[tuple[str, str]] = []


@fuzz_settings(ORJSON_BUDGET, shrink=False)
@given(hostile_rows(), st.sampled_from(("dict", "json_text")))
def check_orjson(row: dict[str, Any], encoding: str) -> None:
    TALLY["parse_normalize.orjson"] += 1
    result = check_outcome(run_chain(encode(row, encoding)))
    if isinstance(result, DeadLetter):
        problems = orjson_problems(result)
        TALLY["parse_normalize.orjson.unsafe_dead_letters"] += bool(problems)
        ORJSON_FAILURES.extend((result.reason, problem) for problem in problems)


def test_every_dead_letter_is_orjson_safe(fuzz_report: FuzzReport) -> None:
    ORJSON_FAILURES.clear()
    fuzz_report.run("parse_normalize.orjson", check_orjson, ORJSON_BUDGET)
    assert not ORJSON_FAILURES, ORJSON_FAILURES[:5]


def _letter(raw: bytes) -> DeadLetter:
    result = run_chain(raw)
    assert isinstance(result, DeadLetter)
    return result


# The replay sink writes canonical JSON and ``run_replay`` reads the merged dead letters back with
# orjson.loads, which refuses NaN, Infinity, big ints and \ud800 escapes: raw must hold none of them.
UNREADABLE_LINES = {
    "nan_float": b'{"ts":0,"price":NaN}',
    "infinity_float": b'{"symbol":"NVDA","ts":0,"price":Infinity,"macd":1,"macd_signal":1,"rsi14":1}',
    "overflowing_exponent": b'{"symbol":"NVDA","ts":0,"price":1e999,"macd":1,"macd_signal":1,"rsi14":1}',
    "int_past_double": b'{"ts":0,"price":1' + b"0" * 400 + b"}",
    "lone_surrogate": b'{"symbol":"\\ud800","ts":0}',
}
UNDUMPABLE_LINES = {
    "int_past_64_bits": b'{"ts":0,"price":1'
    + b"0" * 400
    + b"}",  # orjson refuses it; json.loads makes an int
    "lone_surrogate": b'{"symbol":"\\ud800","ts":0}',
}


@pytest.mark.parametrize("raw", UNREADABLE_LINES.values(), ids=UNREADABLE_LINES.keys())
def test_dead_letter_line_reads_back_with_orjson(raw: bytes) -> None:
    letter = _letter(raw)
    assert orjson.loads(canonical_json(letter))["reason"] == letter.reason


@pytest.mark.parametrize("raw", UNDUMPABLE_LINES.values(), ids=UNDUMPABLE_LINES.keys())
def test_dead_letter_raw_dumps_with_orjson(raw: bytes) -> None:
    raw_value = _letter(raw).raw
    assert orjson.loads(orjson.dumps(raw_value)) == orjson.loads(canonical_json(raw_value))


def test_sql_and_control_characters_in_symbols_are_dead_lettered_verbatim() -> None:
    for symbol in HOSTILE_SYMBOLS:
        if symbol == "\ud800":
            continue  # kept as a "\\ud800" escape: see test_dead_letter_raw_dumps_with_orjson
        letter = _letter(orjson.dumps({"symbol": symbol, "ts": 0, "price": 1}))
        assert letter.reason == "invalid_symbol"
        assert letter.raw["symbol"] == symbol
        assert orjson.loads(canonical_json(letter))["raw"]["symbol"] == symbol


def test_position_survives_every_outcome() -> None:
    assert run_chain(b"\xff").position == POSITION
