"""Helpers shared by the PostgreSQL tests."""

from __future__ import annotations

import socket

import psycopg
from psycopg import sql


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def dump(conn: psycopg.Connection[tuple[object, ...]], table: str) -> list[tuple[str, str]]:
    """Every row of ``table`` with its ``xmin``: equal dumps mean no row was inserted or rewritten."""
    query = sql.SQL("SELECT t.xmin::text, to_jsonb(t)::text FROM {} t ORDER BY 2").format(
        sql.Identifier(table)
    )
    return [(str(x), str(j)) for x, j in conn.execute(query).fetchall()]


def count(conn: psycopg.Connection[tuple[object, ...]], table: str) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
    assert row is not None
    return int(str(row[0]))


#: Every table the engine writes, in foreign-key order (for full dumps in idempotency tests).
TABLES = (
    "strategies",
    "strategy_versions",
    "strategy_intents",
    "symbol_intents",
    "portfolio_intents",
    "trade_decisions",
    "rejections",
    "executions",
    "position_snapshots",
    "dead_letters",
    "trade_cursor",
)
