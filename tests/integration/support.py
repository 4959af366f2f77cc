"""Helpers shared by the service integration tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from tests.conftest import EXAMPLES
from tests.connectors.postgres.support import TABLES
from torghut.dataflow.service_config import ServiceConfig, service_config_from_data

# Wall-clock columns: the only ones that legitimately differ between two databases holding the same run.
WALL_CLOCK = ("created_at", "updated_at")


def service_config(source: dict[str, Any], dsn: str, **extra: Any) -> ServiceConfig:
    """A service configuration with the example catalog, no metrics endpoint and a short retry cap."""
    data: dict[str, Any] = {
        "source": source,
        "postgres": {"dsn": dsn, "backoff_max_s": 0.5},
        "catalog": str(EXAMPLES / "strategies.yaml"),
        "metrics_address": None,
        **extra,
    }
    return service_config_from_data(data, {})


def dump_tables(dsn: str) -> dict[str, list[tuple[str, str]]]:
    """Every row of every table with its ``xmin``: equal dumps mean no row was inserted or rewritten."""
    query = "SELECT t.xmin::text, to_jsonb(t)::text FROM {} t ORDER BY 2"
    with psycopg.connect(dsn) as conn:
        return {
            table: [
                (str(x), str(j))
                for x, j in conn.execute(sql.SQL(query).format(sql.Identifier(table))).fetchall()
            ]
            for table in TABLES
        }


def content(dsn: str) -> dict[str, list[str]]:
    """Every row of every table without its wall-clock columns, to compare two databases."""
    query = "SELECT (to_jsonb(t) - {})::text FROM {} t ORDER BY 1"
    drop = sql.SQL(" - ").join(sql.Literal(c) for c in WALL_CLOCK)
    with psycopg.connect(dsn) as conn:
        return {
            table: [
                str(row[0])
                for row in conn.execute(sql.SQL(query).format(drop, sql.Identifier(table))).fetchall()
            ]
            for table in TABLES
        }


def counts(dsn: str) -> dict[str, int]:
    """Rows per table."""
    with psycopg.connect(dsn) as conn:
        return {
            table: int(
                str(
                    conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[
                        0
                    ]
                )
            )  # type: ignore[index]
            for table in TABLES
        }


def write_jsonl(path: Path, rows: list[bytes]) -> Path:
    """Write raw JSON lines."""
    path.write_bytes(b"\n".join(rows) + b"\n")
    return path
