"""The sample ``ta_signals`` generator: row shape, ordering, determinism and that strategies fire."""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

from torghut.connectors.synthetic import (
    DEFAULT_START,
    TA_SIGNAL_COLUMNS,
    SignalIndicators,
    generate_rows,
    symbol_names,
    write_sample_signals,
)

SYMBOL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,31}$")
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}$")
FLOAT_COLUMNS = (*TA_SIGNAL_COLUMNS[11:25], "vol_realized_w60s")


def parse_ts(text: str) -> datetime:
    assert TS_RE.match(text), text
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)


@pytest.fixture(scope="module")
def sample() -> list[dict[str, Any]]:
    return list(generate_rows(symbols=60, minutes=5, seed=42))


def test_row_count_columns_and_constant_fields(sample: list[dict[str, Any]]) -> None:
    assert len(sample) == 60 * 5 * 60
    for row in sample[:500] + sample[-500:]:
        assert tuple(row) == TA_SIGNAL_COLUMNS
        assert (row["is_final"], row["source"], row["version"]) == (1, "ta", 1)
        assert (row["window_size"], row["window_step"]) == ("PT1S", "PT1S")


def test_formats_parse_back(sample: list[dict[str, Any]]) -> None:
    for row in sample:
        assert SYMBOL_RE.match(row["symbol"])
        event_ts = parse_ts(row["event_ts"])
        assert parse_ts(row["window_start"]) == event_ts
        assert parse_ts(row["window_end"]) == event_ts + timedelta(seconds=1)
        delay = parse_ts(row["ingest_ts"]) - event_ts
        assert timedelta(milliseconds=20) <= delay < timedelta(milliseconds=500)
        for column in ("seq", "imbalance_bid_sz", "imbalance_ask_sz"):  # UInt64: quoted, like ClickHouse
            assert isinstance(row[column], str) and int(row[column]) > 0
        for column in FLOAT_COLUMNS:
            assert row[column] is None or isinstance(row[column], float), column
        assert row["imbalance_ask_px"] > row["imbalance_bid_px"] > 0
        assert row["imbalance_spread"] == pytest.approx(row["imbalance_ask_px"] - row["imbalance_bid_px"])
        assert row["vwap_session"] is not None and row["vwap_w5m"] is not None
        if row["boll_mid"] is not None:
            assert row["boll_lower"] <= row["boll_mid"] <= row["boll_upper"]
        if row["rsi14"] is not None:
            assert 0.0 <= row["rsi14"] <= 100.0


def test_rows_follow_the_cursor_order_and_seq_counts_per_symbol(sample: list[dict[str, Any]]) -> None:
    keys = [(row["event_ts"], row["symbol"], int(row["seq"])) for row in sample]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)
    seqs: dict[str, list[int]] = defaultdict(list)
    for row in sample:
        seqs[row["symbol"]].append(int(row["seq"]))
    assert set(seqs) == set(symbol_names(60))
    assert all(values == list(range(1, 301)) for values in seqs.values())
    assert sample[0]["event_ts"] == "2026-02-19 14:30:00.000"
    assert sample[-1]["event_ts"] == "2026-02-19 14:34:59.000"


def test_nulls_where_the_producer_writes_null(sample: list[dict[str, Any]]) -> None:
    for row in sample:
        seq = int(row["seq"])
        assert (row["rsi14"] is None) == (seq < 2)
        assert (row["boll_mid"] is None) == (seq < 20)
        assert (row["vol_realized_w60s"] is None) == (seq < 61)
        assert None not in (row["macd"], row["macd_signal"], row["macd_hist"], row["ema12"], row["ema26"])


def test_indicator_columns_are_consistent(sample: list[dict[str, Any]]) -> None:
    for row in sample[::97]:
        assert row["macd"] == pytest.approx(row["ema12"] - row["ema26"], abs=1e-9)
        assert row["macd_hist"] == pytest.approx(row["macd"] - row["macd_signal"], abs=1e-12)


def test_symbols_are_tickers_then_generated_names() -> None:
    names = symbol_names(600)
    assert names[:3] == ["AAPL", "MSFT", "NVDA"]
    assert "S0042" not in names[:50] and "S0599" in names
    assert len(set(names)) == 600
    assert all(SYMBOL_RE.match(name) for name in names)


def test_strategies_fire_on_the_sample(sample: list[dict[str, Any]]) -> None:
    """The legacy MACD/RSI rule needs both BUY and SELL conditions somewhere in a sample."""
    rated = [r for r in sample if r["rsi14"] is not None]
    buys = [r for r in rated if r["macd"] > r["macd_signal"] and r["rsi14"] < 35]
    sells = [r for r in rated if r["macd"] < r["macd_signal"] and r["rsi14"] > 65]
    assert buys and sells
    assert len({r["symbol"] for r in buys}) > 10 and len({r["symbol"] for r in sells}) > 10


def test_volatility_differs_by_symbol(sample: list[dict[str, Any]]) -> None:
    last = {row["symbol"]: row["vol_realized_w60s"] for row in sample}
    vols = sorted(v for v in last.values() if v)
    assert vols[-1] > 2.5 * vols[0]


def test_same_seed_same_rows_different_seed_different_rows() -> None:
    first = [orjson.dumps(row) for row in generate_rows(5, 2, seed=7)]
    again = [orjson.dumps(row) for row in generate_rows(5, 2, seed=7)]
    other = [orjson.dumps(row) for row in generate_rows(5, 2, seed=8)]
    assert first == again
    assert first != other


def test_symbol_path_does_not_depend_on_symbol_count() -> None:
    small = [r for r in generate_rows(3, 1, seed=5) if r["symbol"] == "MSFT"]
    large = [r for r in generate_rows(80, 1, seed=5) if r["symbol"] == "MSFT"]
    assert small == large


def test_rows_reproduce_the_indicator_maths() -> None:
    # The row values are SignalIndicators outputs: a second run over the same closes gives the same
    # EMA; closes are recovered from ema12 (close = ema12_prev + (ema12 - ema12_prev) / alpha).
    rows = list(generate_rows(1, 2, seed=3))
    alpha = 2.0 / 13.0
    closes = [rows[0]["ema12"]] + [
        prev["ema12"] + (row["ema12"] - prev["ema12"]) / alpha for prev, row in itertools.pairwise(rows)
    ]
    ind = SignalIndicators()
    for i, (row, close) in enumerate(zip(rows, closes, strict=True)):
        ind.update(i * 1000, round(close, 2), 1.0, 1.0)
        if row["rsi14"] is None:
            assert i == 0 and ind.rsi14 is None
            continue
        assert ind.rsi14 == pytest.approx(row["rsi14"], rel=1e-6, abs=1e-6)
        assert ind.macd == pytest.approx(row["macd"], rel=1e-6, abs=1e-9)


def test_start_argument() -> None:
    eastern = timezone(timedelta(hours=-5))
    rows = list(generate_rows(2, 1, seed=1, start=datetime(2026, 3, 2, 9, 30, tzinfo=eastern)))
    assert rows[0]["event_ts"] == "2026-03-02 14:30:00.000"
    assert DEFAULT_START == datetime(2026, 2, 19, 14, 30, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        next(generate_rows(1, 1, seed=1, start=datetime(2026, 3, 2, 9, 30)))  # noqa: DTZ001
    with pytest.raises(ValueError, match="whole second"):
        next(generate_rows(1, 1, seed=1, start=datetime(2026, 3, 2, 9, 30, 0, 5, tzinfo=UTC)))
    with pytest.raises(ValueError, match=">= 1"):
        next(generate_rows(0, 1, seed=1))


def test_write_sample_signals_writes_jsonl_and_reports_progress(tmp_path: Path) -> None:
    out = tmp_path / "signals.jsonl"
    seen: list[int] = []
    count = write_sample_signals(out, symbols=4, minutes=1, seed=9, progress=seen.append)
    assert count == 240
    assert seen == [240]
    lines = out.read_bytes().splitlines()
    assert len(lines) == count
    assert [orjson.loads(line) for line in lines] == list(generate_rows(4, 1, seed=9))
    again = tmp_path / "again.jsonl"
    write_sample_signals(again, symbols=4, minutes=1, seed=9)
    assert again.read_bytes() == out.read_bytes()
