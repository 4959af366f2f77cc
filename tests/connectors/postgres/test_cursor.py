from __future__ import annotations

import psycopg

from tests.connectors.postgres import records as r
from tests.connectors.postgres.support import dump
from torghut.connectors.postgres import TradeCursor, commit_cursor, load_cursor

Conn = psycopg.Connection[tuple[object, ...]]


def test_commit_then_load_round_trips(conn: Conn) -> None:
    assert load_cursor(conn, "clickhouse") is None
    assert commit_cursor(conn, "clickhouse", r.ts(5), 42, "NVDA")
    assert load_cursor(conn, "clickhouse") == TradeCursor("clickhouse", r.ts(5), 42, "NVDA")


def test_none_commits_nothing(conn: Conn) -> None:
    assert not commit_cursor(conn, "clickhouse", None, 1, "AAPL")
    assert load_cursor(conn, "clickhouse") is None
    commit_cursor(conn, "clickhouse", r.ts(1), 1, "AAPL")
    assert not commit_cursor(conn, "clickhouse", None)
    assert load_cursor(conn, "clickhouse") == TradeCursor("clickhouse", r.ts(1), 1, "AAPL")


def test_the_same_cursor_again_changes_nothing_and_a_rewind_is_kept(conn: Conn) -> None:
    commit_cursor(conn, "clickhouse", r.ts(9), 3, "MSFT")
    before = dump(conn, "trade_cursor")
    assert not commit_cursor(conn, "clickhouse", r.ts(9), 3, "MSFT")
    assert dump(conn, "trade_cursor") == before
    assert commit_cursor(conn, "clickhouse", r.ts(2), None, None)
    assert load_cursor(conn, "clickhouse") == TradeCursor("clickhouse", r.ts(2), None, None)


def test_sources_are_independent(conn: Conn) -> None:
    commit_cursor(conn, "clickhouse", r.ts(1), 1, "AAPL")
    commit_cursor(conn, "kafka", r.ts(2), 2, "AMD")
    assert load_cursor(conn, "clickhouse") == TradeCursor("clickhouse", r.ts(1), 1, "AAPL")
    assert load_cursor(conn, "kafka") == TradeCursor("kafka", r.ts(2), 2, "AMD")
