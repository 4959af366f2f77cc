"""The reader against a real ClickHouse engine (chdb through clickhouse-connect)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.connectors.clickhouse.support import (
    BASE_TS,
    FixedClock,
    insert_rows,
    signal_row,
    tie_heavy_rows,
)
from torghut.connectors.clickhouse import (
    ClickHouseSignalReader,
    ReaderSettings,
    SignalCursor,
    TableRef,
    build_signal_query,
    parse_ch_ts,
    ta_signals_ddl,
)

BEFORE_ALL = SignalCursor(BASE_TS - timedelta(milliseconds=1))


def _reader(
    client: Any, table: TableRef, clock: FixedClock | None = None, **settings: Any
) -> ClickHouseSignalReader:
    options: dict[str, Any] = {"table": str(table), **settings}
    return ClickHouseSignalReader(client, ReaderSettings(**options), clock=clock or FixedClock(BASE_TS))


def _key(row: dict[str, Any]) -> tuple[str, str, int]:
    return (row["event_ts"], row["symbol"], int(row["seq"]))


def _read_all(reader: ClickHouseSignalReader, cursor: SignalCursor) -> tuple[list[dict[str, Any]], int]:
    rows: list[dict[str, Any]] = []
    batches = 0
    while True:
        result = reader.fetch(cursor)
        if not result.rows:
            return rows, batches
        rows.extend(result.rows)
        batches += 1
        cursor = result.new_cursor


def test_ddl_creates_torghut_column_types(client: Any, table: TableRef) -> None:
    described = client.query(f"DESCRIBE TABLE {table.database}.{table.table}").result_rows
    types = {row[0]: row[1] for row in described}
    assert types["symbol"] == "LowCardinality(String)"
    assert types["event_ts"] == "DateTime64(3, 'UTC')"
    assert types["seq"] == "UInt64"
    assert types["imbalance_bid_sz"] == "Nullable(UInt64)"
    assert types["window_start"] == "Nullable(DateTime64(3, 'UTC'))"
    engine = client.query(
        "SELECT engine_full FROM system.tables WHERE database = {d:String} AND name = 'ta_signals'",
        parameters={"d": table.database},
    ).result_rows[0][0]
    assert engine.startswith(
        "ReplacingMergeTree(ingest_ts) PARTITION BY toDate(event_ts) ORDER BY (symbol, event_ts, seq)"
    )
    assert ta_signals_ddl(table, ttl_days=None).startswith("CREATE TABLE IF NOT EXISTS")


def test_100k_rows_with_ties_come_back_in_exact_order_once_each(client: Any, table: TableRef) -> None:
    rows = tie_heavy_rows(symbols=40, timestamps=1250, seqs_per_ts=2)
    assert len(rows) == 100_000
    insert_rows(client, table, rows)
    reader = _reader(client, table, batch_size=777, fast_forward=False)
    got, batches = _read_all(reader, BEFORE_ALL)
    keys = [_key(row) for row in got]
    expected = sorted((f"{r[1]:%Y-%m-%d %H:%M:%S}.{r[1].microsecond // 1000:03d}", r[0], r[2]) for r in rows)
    assert len(keys) == 100_000
    assert len(set(keys)) == 100_000
    assert keys == expected
    assert batches == -(-100_000 // 777)


def test_torghut_cursor_rule_loses_nothing_but_rereads_at_shared_timestamps(
    client: Any, table: TableRef
) -> None:
    insert_rows(client, table, tie_heavy_rows(symbols=6, timestamps=50, seqs_per_ts=2))
    reader = _reader(client, table, batch_size=7, fast_forward=False, cursor_rule="torghut")
    got, _ = _read_all(reader, BEFORE_ALL)
    counts = Counter(_key(row) for row in got)
    assert len(counts) == 600  # every row read
    assert sum(counts.values()) > 600  # torghut's tie-break re-reads rows when a batch ends mid-timestamp


def test_rows_match_clickhouse_jsoneachrow_exactly(client: Any, table: TableRef) -> None:
    ts = BASE_TS + timedelta(milliseconds=5)
    insert_rows(
        client,
        table,
        [
            signal_row("NVDA", ts, 1234, window_step=None),
            signal_row("AAPL", ts, 18_446_744_073_709_551_615, macd=float("nan"), rsi14=float("inf")),
        ],
    )
    reader = _reader(client, table)
    result = reader.fetch(BEFORE_ALL)
    query = build_signal_query(table, reader.columns, BEFORE_ALL, 500)
    # torghut's server quotes 64-bit integers in JSON (chdb 4.4 defaults to 0).
    quoted = {"output_format_json_quote_64bit_integers": 1}
    raw = client.raw_query(query.sql, parameters=dict(query.parameters), settings=quoted, fmt="JSONEachRow")
    expected = [json.loads(line) for line in raw.decode().splitlines()]
    assert list(result.rows) == expected
    first = result.rows[0]
    assert first["event_ts"] == "2026-02-19 14:30:00.005"
    assert first["ingest_ts"] == "2026-02-19 14:30:00.255"
    assert first["seq"] == "18446744073709551615"
    assert first["macd"] is None and first["rsi14"] is None
    assert list(first) == list(reader.columns)


def test_bad_rows_still_come_through_raw(client: Any, table: TableRef) -> None:
    insert_rows(
        client,
        table,
        [
            signal_row("bad symbol!", BASE_TS, 1, macd=None, macd_signal=None, rsi14=None, vwap_session=None),
            signal_row("MSFT", BASE_TS, 2, window_size="not-a-duration", source=""),
        ],
    )
    rows = _reader(client, table).fetch(BEFORE_ALL).rows
    assert [row["symbol"] for row in rows] == ["MSFT", "bad symbol!"]
    assert rows[0]["window_size"] == "not-a-duration"
    assert rows[1]["macd"] is None and rows[1]["rsi14"] is None and rows[1]["vwap_session"] is None


def test_initial_cursor_is_now_minus_lookback(client: Any, table: TableRef) -> None:
    now = BASE_TS + timedelta(minutes=30)
    insert_rows(
        client,
        table,
        [
            signal_row("OLD", now - timedelta(minutes=16), 1),
            signal_row("NEW", now - timedelta(minutes=14), 1),
        ],
    )
    result = _reader(client, table, FixedClock(now)).fetch(None)
    assert [row["symbol"] for row in result.rows] == ["NEW"]
    assert result.fast_forwarded is False


def test_stale_cursor_is_fast_forwarded_to_now_minus_lookback(client: Any, table: TableRef) -> None:
    now = BASE_TS + timedelta(hours=2)
    insert_rows(
        client, table, [signal_row("OLD", BASE_TS, 1), signal_row("NEW", now - timedelta(minutes=5), 1)]
    )
    stale = SignalCursor(BASE_TS - timedelta(hours=1), cursor_seq=9, cursor_symbol="ZZZ")
    result = _reader(client, table, FixedClock(now)).fetch(stale)
    assert result.fast_forwarded is True
    assert [row["symbol"] for row in result.rows] == ["NEW"]


def test_stale_cursor_at_the_tail_is_not_fast_forwarded(client: Any, table: TableRef) -> None:
    now = BASE_TS + timedelta(hours=2)
    insert_rows(client, table, [signal_row("OLD", BASE_TS, 1)])
    at_tail = SignalCursor(BASE_TS, cursor_seq=1, cursor_symbol="OLD")
    result = _reader(client, table, FixedClock(now)).fetch(at_tail)
    assert result.fast_forwarded is False
    assert (result.no_signal_reason, result.new_cursor) == ("cursor_tail_stable", at_tail)


def test_empty_table_is_no_signals_in_window(client: Any, table: TableRef) -> None:
    cursor = SignalCursor(BASE_TS)
    result = _reader(client, table).fetch(cursor)
    assert (result.rows, result.no_signal_reason, result.new_cursor) == ((), "no_signals_in_window", cursor)
    assert result.signal_lag_seconds is None and result.latest_event_ts is None


def test_cursor_ahead_of_stream_is_rewound_to_the_latest_signal(client: Any, table: TableRef) -> None:
    insert_rows(client, table, [signal_row("A", BASE_TS, 1)])
    ahead = SignalCursor(BASE_TS + timedelta(minutes=16), cursor_seq=5, cursor_symbol="A")
    result = _reader(client, table, FixedClock(BASE_TS + timedelta(minutes=16))).fetch(ahead)
    assert result.no_signal_reason == "cursor_ahead_of_stream"
    assert result.new_cursor == SignalCursor(BASE_TS)


def test_cursor_within_lookback_past_the_tail_is_tail_stable(client: Any, table: TableRef) -> None:
    insert_rows(client, table, [signal_row("A", BASE_TS, 1)])
    cursor = SignalCursor(BASE_TS + timedelta(minutes=14))
    clock = FixedClock(BASE_TS + timedelta(minutes=14, seconds=30))
    result = _reader(client, table, clock).fetch(cursor)
    assert (result.no_signal_reason, result.new_cursor) == ("cursor_tail_stable", cursor)
    assert result.signal_lag_seconds == pytest.approx(14 * 60 + 30)


def test_empty_batch_behind_the_tail_advances_to_poll_start_minus_advance(
    client: Any, table: TableRef
) -> None:
    # Behind the tail with nothing to read: the rows past the cursor lie beyond the reader's range.
    insert_rows(client, table, [signal_row(f"S{n}", BASE_TS + timedelta(seconds=n), 1) for n in range(40)])

    def reader_at(poll_start: datetime) -> ClickHouseSignalReader:
        settings = ReaderSettings(table=str(table))
        return ClickHouseSignalReader(
            client, settings, until=BASE_TS - timedelta(seconds=1), clock=FixedClock(poll_start)
        )

    poll_start = BASE_TS + timedelta(minutes=10)
    result = reader_at(poll_start).fetch(SignalCursor(BASE_TS - timedelta(minutes=2)))
    assert result.no_signal_reason == "empty_batch_advanced"
    assert result.new_cursor == SignalCursor(poll_start - timedelta(seconds=60))

    # A cursor already at or past poll_start - advance stays where it is.
    recent = SignalCursor(BASE_TS + timedelta(seconds=10), cursor_seq=1, cursor_symbol="S10")
    result = reader_at(BASE_TS + timedelta(seconds=60)).fetch(recent)
    assert (result.no_signal_reason, result.new_cursor) == ("empty_batch_advanced", recent)


def test_missing_table_fails_at_start_with_the_fix(client: Any) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        ClickHouseSignalReader(client, ReaderSettings(table="nowhere.ta_signals"))


def test_lag_is_query_end_minus_latest_signal(client: Any, table: TableRef) -> None:
    insert_rows(client, table, [signal_row("A", BASE_TS + timedelta(seconds=3), 1)])
    result = _reader(client, table, FixedClock(BASE_TS + timedelta(seconds=10))).fetch(BEFORE_ALL)
    assert result.signal_lag_seconds == pytest.approx(7.0)
    assert result.latest_event_ts == parse_ch_ts("2026-02-19 14:30:03.000")
    assert isinstance(result.latest_event_ts, datetime)
