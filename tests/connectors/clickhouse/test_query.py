"""The pure parts: torghut's query text and bound parameters, column selection, cursor rules, snapshots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from torghut.connectors.clickhouse import (
    TA_SIGNALS_COLUMNS,
    Shard,
    SignalCursor,
    TableRef,
    build_latest_query,
    build_signal_query,
    decode_snapshot,
    encode_snapshot,
    format_ch_ts,
    is_valid_symbol,
    next_cursor,
    parse_ch_ts,
    scan_cursor,
    select_columns,
    ta_signals_ddl,
)

TABLE = TableRef("torghut", "ta_signals")
AT = datetime(2026, 2, 19, 14, 30, 5, 123456, tzinfo=UTC)
COLS = ("event_ts", "symbol", "seq")
HEAD = "SELECT event_ts, symbol, seq FROM {database:Identifier}.{table:Identifier} WHERE "
TAIL = " ORDER BY event_ts ASC, symbol ASC, seq ASC LIMIT {limit:UInt32}"
C = "{cursor_at:DateTime64(3, 'UTC')}"
BASE_PARAMS = {
    "database": "torghut",
    "table": "ta_signals",
    "cursor_at": "2026-02-19 14:30:05.123",
    "limit": 500,
}


@pytest.mark.parametrize(
    ("cursor", "where", "extra"),
    [
        (
            SignalCursor(AT, cursor_seq=42, cursor_symbol="NVDA"),
            f"event_ts > {C} OR (event_ts = {C} AND (symbol > {{cursor_symbol:String}} OR "
            "(symbol = {cursor_symbol:String} AND seq > {cursor_seq:UInt64})))",
            {"cursor_symbol": "NVDA", "cursor_seq": 42},
        ),
        (
            SignalCursor(AT, cursor_symbol="NVDA"),
            f"event_ts > {C} OR (event_ts = {C} AND symbol > {{cursor_symbol:String}})",
            {"cursor_symbol": "NVDA"},
        ),
        (
            SignalCursor(AT, cursor_seq=42),
            f"event_ts > {C} OR (event_ts = {C} AND seq > {{cursor_seq:UInt64}})",
            {"cursor_seq": 42},
        ),
        (SignalCursor(AT), f"event_ts > {C}", {}),
    ],
    ids=["symbol-and-seq", "only-symbol", "only-seq", "neither"],
)
def test_cursor_cases_reproduce_torghut_where_order_limit(
    cursor: SignalCursor, where: str, extra: dict[str, object]
) -> None:
    query = build_signal_query(TABLE, COLS, cursor, 500)
    assert query.sql == HEAD + where + TAIL
    assert dict(query.parameters) == {**BASE_PARAMS, **extra}


def test_shard_until_and_final_are_anded_and_bound() -> None:
    cursor = SignalCursor(AT, cursor_seq=1, cursor_symbol="A")
    until = datetime(2026, 2, 19, 15, 0, tzinfo=UTC)
    query = build_signal_query(TABLE, COLS, cursor, 10, shard=Shard(2, 4), until=until, final=True)
    assert query.sql == (
        "SELECT event_ts, symbol, seq FROM {database:Identifier}.{table:Identifier} FINAL WHERE "
        f"(event_ts > {C} OR (event_ts = {C} AND (symbol > {{cursor_symbol:String}} OR "
        "(symbol = {cursor_symbol:String} AND seq > {cursor_seq:UInt64})))) "
        "AND cityHash64(symbol) % {shard_count:UInt32} = {shard_index:UInt32} "
        "AND event_ts <= {until:DateTime64(3, 'UTC')}" + TAIL
    )
    assert query.parameters["shard_count"] == 4
    assert query.parameters["shard_index"] == 2
    assert query.parameters["until"] == "2026-02-19 15:00:00.000"
    assert query.parameters["limit"] == 10


def test_a_single_shard_adds_no_predicate() -> None:
    query = build_signal_query(TABLE, COLS, SignalCursor(AT), 5, shard=Shard(0, 1))
    assert "cityHash64" not in query.sql
    assert "shard_count" not in query.parameters


def test_no_value_is_formatted_into_the_text() -> None:
    cursor = SignalCursor(AT, cursor_seq=987654321, cursor_symbol="X'); DROP TABLE t; --")
    query = build_signal_query(TABLE, COLS, cursor, 500, shard=Shard(1, 3))
    for value in ("987654321", "DROP", "2026", "500", "torghut", "ta_signals"):
        assert value not in query.sql


def test_latest_query() -> None:
    assert (
        build_latest_query(TABLE).sql
        == "SELECT maxOrNull(event_ts) FROM {database:Identifier}.{table:Identifier}"
    )
    sharded = build_latest_query(TABLE, shard=Shard(1, 2))
    assert sharded.sql.endswith("WHERE cityHash64(symbol) % {shard_count:UInt32} = {shard_index:UInt32}")
    assert dict(sharded.parameters) == {
        "database": "torghut",
        "table": "ta_signals",
        "shard_count": 2,
        "shard_index": 1,
    }


def test_selected_columns_against_the_real_table_follow_the_wish_list() -> None:
    columns = [name for name, _ in TA_SIGNALS_COLUMNS]
    assert select_columns(columns) == (
        "event_ts",
        "ingest_ts",
        "symbol",
        "window_size",
        "window_step",
        "seq",
        "source",
        "macd",
        "macd_signal",
        "macd_hist",
        "rsi14",
        "ema12",
        "ema26",
        "vwap_session",
        "vwap_w5m",
        "boll_mid",
        "boll_upper",
        "boll_lower",
        "imbalance_spread",
        "vol_realized_w60s",
        "imbalance_bid_px",
        "imbalance_ask_px",
    )


def test_selected_columns_for_a_ts_keyed_flat_table() -> None:
    assert select_columns(["price", "ts", "symbol", "signal_json", "rsi", "seq"]) == (
        "ts",
        "symbol",
        "seq",
        "rsi",
        "signal_json",
        "price",
    )


def _row(ts: str, symbol: str, seq: int) -> dict[str, str]:
    return {"event_ts": f"2026-02-19 14:30:{ts}", "symbol": symbol, "seq": str(seq)}


def test_next_cursor_takes_the_largest_event_ts_first() -> None:
    rows = [_row("06.000", "AAA", 1), _row("05.000", "ZZZ", 99)]
    assert next_cursor(rows) == SignalCursor(parse_ch_ts("2026-02-19 14:30:06.000"), 1, "AAA")


def test_next_cursor_takes_the_largest_seq_within_the_timestamp() -> None:
    rows = [_row("05.000", "AAA", 9), _row("05.000", "ZZZ", 3), _row("05.000", "MMM", 7)]
    assert next_cursor(rows) == SignalCursor(parse_ch_ts("2026-02-19 14:30:05.000"), 9, "AAA")


def test_next_cursor_breaks_seq_ties_by_the_larger_symbol() -> None:
    rows = [_row("05.000", "MSFT", 9), _row("05.000", "AAPL", 9), _row("05.000", "NVDA", 9)]
    assert next_cursor(rows) == SignalCursor(parse_ch_ts("2026-02-19 14:30:05.000"), 9, "NVDA")


def test_next_cursor_compares_seq_as_numbers_and_accepts_typed_rows() -> None:
    naive = datetime(2026, 2, 19, 14, 30, 5)  # noqa: DTZ001 - chdb returns naive UTC datetimes
    rows = [{"event_ts": naive, "symbol": "A", "seq": 10}, {"event_ts": naive, "symbol": "B", "seq": 9}]
    assert next_cursor(rows) == SignalCursor(naive.replace(tzinfo=UTC), 10, "A")
    assert next_cursor([]) is None


def test_scan_cursor_is_the_last_row_in_scan_order() -> None:
    rows = [_row("05.000", "AAA", 9), _row("05.000", "BBB", 3)]
    assert scan_cursor(rows) == SignalCursor(parse_ch_ts("2026-02-19 14:30:05.000"), 3, "BBB")
    assert scan_cursor([]) is None


def test_timestamps_format_as_clickhouse_sends_them() -> None:
    assert format_ch_ts(AT) == "2026-02-19 14:30:05.123"
    eastern = AT.astimezone(__import__("zoneinfo").ZoneInfo("America/New_York"))
    assert format_ch_ts(eastern) == "2026-02-19 14:30:05.123"
    assert parse_ch_ts("2026-02-19T14:30:05Z") == datetime(2026, 2, 19, 14, 30, 5, tzinfo=UTC)


def test_naive_cursor_is_refused() -> None:
    with pytest.raises(ValueError, match="tz-aware"):
        SignalCursor(datetime(2026, 2, 19))  # noqa: DTZ001


@pytest.mark.parametrize("name", ["ta_signals", "a.b.c", "torghut.ta-signals", "x;y.z"])
def test_table_names_must_be_two_identifiers(name: str) -> None:
    with pytest.raises(ValueError, match=r"database\.table"):
        TableRef.parse(name)


def test_shard_bounds() -> None:
    assert Shard(3, 4).label == "shard-3-of-4"
    with pytest.raises(ValueError, match="shard index"):
        Shard(4, 4)


def test_symbol_validation_uses_torghut_pattern() -> None:
    assert is_valid_symbol("BRK/B") and is_valid_symbol("A" * 32)
    assert not is_valid_symbol("A" * 33) and not is_valid_symbol(".A") and not is_valid_symbol("")


def test_snapshot_round_trip_keeps_milliseconds_exactly() -> None:
    for ms in range(1000):
        cursor = SignalCursor(
            datetime(2026, 2, 19, 14, 30, 5, tzinfo=UTC) + timedelta(milliseconds=ms), 3, "A"
        )
        assert decode_snapshot(encode_snapshot(cursor, 17)) == (cursor, 17)
    assert encode_snapshot(SignalCursor(AT.replace(microsecond=123000)), 0) == (
        1,
        1771511405123,
        None,
        None,
        0,
    )
    with pytest.raises(ValueError, match="snapshot version"):
        decode_snapshot((2, 0, None, None, 0))


def test_ddl_keeps_torghut_keys_and_engine() -> None:
    ddl = ta_signals_ddl(TABLE)
    assert "ENGINE = ReplacingMergeTree(ingest_ts)" in ddl
    assert "PARTITION BY toDate(event_ts)" in ddl
    assert "ORDER BY (symbol, event_ts, seq)" in ddl
    assert "TTL toDateTime(event_ts) + INTERVAL 14 DAY" in ddl
    assert "TTL" not in ta_signals_ddl(TABLE, ttl_days=None)
    assert "microstructure_signal_v1 Nullable(String)" in ta_signals_ddl(TABLE, with_microstructure=True)
