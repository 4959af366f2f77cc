"""The service flow from ClickHouse (chdb) into PostgreSQL: bad rows become dead letters, the cursor commits."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from tests.connectors.clickhouse.support import make_client
from tests.integration.support import dump_tables, service_config
from torghut.connectors.clickhouse import SignalCursor
from torghut.connectors.postgres import TradeCursor, load_cursor
from torghut.dataflow.local import seed_signals
from torghut.dataflow.service import run_service
from torghut.metrics import METRICS

pytestmark = pytest.mark.integration

DSN = "chdb://memory"  # chdb holds one data path per process; the ClickHouse tests use the same one


@pytest.fixture
def table() -> Iterator[tuple[Any, str]]:
    client = make_client()
    database = f"torghut_it_{uuid.uuid4().hex[:12]}"
    name = f"{database}.ta_signals"
    seed_signals(client, name, symbols=4, minutes=3, seed=5)
    yield client, name
    client.command(f"DROP DATABASE IF EXISTS {database}")


BAD_COLUMNS = [
    "symbol",
    "event_ts",
    "seq",
    "ingest_ts",
    "window_size",
    "macd",
    "macd_signal",
    "rsi14",
    "vwap_session",
]


def _bad_rows() -> list[list[Any]]:
    at = datetime(2026, 2, 19, 14, 31, 0, tzinfo=UTC)
    return [
        ["BAD SYMBOL!", at, 900, at, "PT1S", 0.01, 0.005, 55.0, 187.0],  # fails torghut's symbol pattern
        ["NORSI", at, 901, at, "PT1S", 0.01, 0.005, None, 187.0],  # a required indicator is NULL
    ]


def _events_in() -> float:
    """Raw signal records the sources have read in this process (``torghut_events_in_total``)."""
    return METRICS.registry.get_sample_value("torghut_events_in_total") or 0.0


def _tail_polls() -> float:
    """ClickHouse polls that found the cursor at the table's newest row and returned nothing."""
    labels = {"reason": "cursor_tail_stable"}
    return METRICS.registry.get_sample_value("torghut_no_signal_reason_total", labels) or 0.0


def test_b_bad_rows_end_as_dead_letters_good_rows_as_decisions_and_paper_fills(
    table: tuple[Any, str], dsn: str
) -> None:
    client, name = table
    client.insert(name, _bad_rows(), column_names=BAD_COLUMNS)
    source = {"kind": "clickhouse", "dsn": DSN, "table": name, "start": "earliest", "fast_forward": False}
    config = service_config(source, dsn)
    events_before = _events_in()

    result = run_service(config, once=True)

    with psycopg.connect(dsn) as conn:
        letters = {
            (str(symbol), str(stage), str(reason).split(":")[0], str(raw))
            for symbol, stage, reason, raw in conn.execute(
                "SELECT symbol, stage, reason, raw::text FROM dead_letters"
            )
        }
        cursor = load_cursor(conn, "clickhouse")
        statuses = dict(conn.execute("SELECT status, count(*) FROM executions GROUP BY 1").fetchall())
    assert any(
        stage == "parse" and reason == "invalid_symbol" and "BAD SYMBOL!" in raw
        for _, stage, reason, raw in letters
    ), letters
    assert any(s == "NORSI" and stage == "normalize" for s, stage, _, _ in letters), letters
    assert result.counts["decisions"] > 0
    assert statuses.get("filled", 0) > 0
    assert result.counts["fills"] == statuses["filled"]
    # The committed cursor is the last row read, in the cursor's (event_ts, symbol, seq) order.
    last = client.query(
        f"SELECT event_ts, symbol, seq FROM {name} ORDER BY event_ts DESC, symbol DESC, seq DESC LIMIT 1"
    ).result_rows[0]
    assert cursor == TradeCursor("clickhouse", last[0].replace(tzinfo=UTC), int(last[2]), str(last[1]))
    # ... and its event time is exported, in Unix seconds.
    assert cursor.cursor_at is not None
    gauge = METRICS.registry.get_sample_value("torghut_cursor_event_ts_seconds", {"source": "clickhouse"})
    assert gauge == cursor.cursor_at.timestamp()
    # Every row of the table went through the source: the counter the restart is judged by moves.
    assert _events_in() - events_before == len(client.query(f"SELECT 1 FROM {name}").result_rows)

    # A restart without recovery state resumes from that cursor and reads nothing again: it starts at the
    # committed cursor, its source reads no row (its one poll finds the cursor at the table's tail), and
    # no row is inserted or rewritten (same rows, same xmin), the cursor included.
    committed = SignalCursor(cursor.cursor_at, cursor.cursor_seq, cursor.cursor_symbol)
    tables_before = dump_tables(dsn)
    events_before, tail_polls_before = _events_in(), _tail_polls()

    again = run_service(config, once=True)

    assert again.start_cursor == committed
    assert _events_in() - events_before == 0
    assert _tail_polls() - tail_polls_before == 1
    assert dump_tables(dsn) == tables_before
    assert again.counts == result.counts
