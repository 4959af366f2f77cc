"""Helpers shared by the PostgreSQL tests."""

from __future__ import annotations

import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from torghut.connectors.postgres import LocalPostgres
from torghut.connectors.postgres.server import dsn_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def throwaway_postgres(prefix: str) -> Iterator[LocalPostgres]:
    """A PostgreSQL of its own on a free port, stopped and its directory removed on exit.

    The directory is under /tmp, not pytest's tmp dirs: those are 0700 and the server runs as the
    ``postgres`` user, which must traverse it.
    """
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    server = LocalPostgres()
    try:
        server.start(directory, free_port())
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def create_database(server: LocalPostgres, label: str = "t") -> str:
    """Create an empty database named ``<label>_<random hex>`` on ``server`` and return its DSN."""
    assert server.port is not None
    name = f"{label}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return dsn_for(server.port, name)


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
    "order_intents",
)
