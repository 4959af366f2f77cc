"""Row builders and a settable clock shared by the ClickHouse source tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest

from tests.connectors.postgres.support import free_port
from torghut.connectors.clickhouse import TableRef
from torghut.connectors.clickhouse.front_process import HttpFrontProcess
from torghut.connectors.local_http import HOST

DSN = "chdb://memory"
BASE_TS = datetime(2026, 2, 19, 14, 30, 0, tzinfo=UTC)
INSERT_COLUMNS = (
    "symbol",
    "event_ts",
    "seq",
    "ingest_ts",
    "is_final",
    "source",
    "window_size",
    "window_step",
    "version",
    "macd",
    "macd_signal",
    "rsi14",
    "vwap_session",
)


def signal_row(symbol: str, event_ts: datetime, seq: int, **overrides: Any) -> tuple[Any, ...]:
    """One ``ta_signals`` row in INSERT_COLUMNS order with plausible indicator values."""
    values: dict[str, Any] = {
        "symbol": symbol,
        "event_ts": event_ts,
        "seq": seq,
        "ingest_ts": event_ts + timedelta(milliseconds=250),
        "is_final": 1,
        "source": "ta",
        "window_size": "PT1S",
        "window_step": "PT1S",
        "version": 1,
        "macd": 0.0123,
        "macd_signal": 0.01,
        "rsi14": 58.2,
        "vwap_session": 187.1,
    }
    values.update(overrides)
    return tuple(values[name] for name in INSERT_COLUMNS)


def insert_rows(client: Any, table: TableRef, rows: list[tuple[Any, ...]]) -> None:
    """Insert rows (INSERT_COLUMNS order) through clickhouse-connect's ``insert``."""
    client.insert(f"{table.database}.{table.table}", rows, column_names=list(INSERT_COLUMNS))


def tie_heavy_rows(symbols: int, timestamps: int, seqs_per_ts: int) -> list[tuple[Any, ...]]:
    """Rows where every timestamp holds every symbol and the same seqs recur across symbols."""
    names = [f"S{index:03d}" for index in range(symbols)]
    rows = []
    for t in range(timestamps):
        ts = BASE_TS + timedelta(milliseconds=500 * t)
        for name in names:
            for k in range(seqs_per_ts):
                rows.append(signal_row(name, ts, seqs_per_ts * t + k, macd=float(t)))
    return rows


class FixedClock:
    """A settable clock for the reader and the source."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make_client() -> Any:
    """Open a clickhouse-connect client on the process's chdb engine, failing with the reason."""
    try:
        return clickhouse_connect.get_client(dsn=DSN)
    except Exception as exc:  # the reason is the test's failure message
        pytest.fail(f"chdb could not start through clickhouse-connect ({DSN}): {exc!r}")


def start_front(directory: Path) -> HttpFrontProcess:
    """Start the chdb HTTP front as a child process on ``directory/chdb`` and a free port (log in ``directory``)."""
    return HttpFrontProcess(directory / "chdb", free_port(), log_path=directory / "front.log").start()


def http_client(front: HttpFrontProcess, **options: Any) -> Any:
    """A clickhouse-connect HTTP client on the front, as production connects to ClickHouse (port 8123)."""
    return clickhouse_connect.get_client(host=HOST, port=front.port, **options)
