"""The service flow from a signal file into PostgreSQL: idempotent re-runs, and PostgreSQL outages."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.connectors.postgres.support import create_database, throwaway_postgres
from tests.integration.support import content, counts, dump_tables, service_config
from torghut.connectors.postgres import LocalPostgres
from torghut.dataflow.service import run_service

pytestmark = pytest.mark.integration


def test_a_second_run_of_the_same_file_adds_no_rows_and_changes_none(dsn: str, clean_signals: Path) -> None:
    config = service_config({"kind": "file", "path": str(clean_signals)}, dsn)
    first = run_service(config, once=True)
    before = dump_tables(dsn)
    assert first.counts["decisions"] > 0
    assert first.counts["fills"] > 0
    assert first.counts["dead_letters"] > 0  # the generator's first bars lack RSI: normalize dead letters
    assert {t: len(rows) for t, rows in before.items()}["strategies"] == 5

    second = run_service(config, once=True)

    assert second.applied_migrations == []
    assert dump_tables(dsn) == before  # same rows, same xmin: nothing inserted, nothing rewritten


@pytest.fixture
def own_server() -> Iterator[LocalPostgres]:
    """A PostgreSQL of this test's own: it is stopped and restarted mid-run."""
    with throwaway_postgres("torghut-pg-outage-") as server:
        yield server


def _rows(dsn: str, table: str) -> int:
    try:
        with psycopg.connect(dsn, connect_timeout=1) as conn:
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
    except psycopg.Error:
        return 0
    return 0 if row is None else int(str(row[0]))


def test_d_postgres_stopped_mid_run_waits_logs_and_loses_nothing(
    own_server: LocalPostgres, clean_signals: Path, caplog: pytest.LogCaptureFixture
) -> None:
    undisturbed, disturbed = create_database(own_server), create_database(own_server)
    source = {"kind": "file", "path": str(clean_signals), "batch_size": 40}
    run_service(service_config(source, undisturbed), once=True)

    errors: list[BaseException] = []

    def run() -> None:
        try:
            run_service(service_config(source, disturbed), once=True)
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    caplog.set_level(logging.WARNING, logger="torghut.connectors.postgres.sink")
    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 30
    while _rows(disturbed, "strategy_intents") == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    own_server.stop()
    stopped_mid_run = worker.is_alive()
    time.sleep(2.0)
    assert own_server.directory is not None and own_server.port is not None
    own_server.start(own_server.directory, own_server.port)
    worker.join(timeout=120)

    assert not worker.is_alive()
    assert errors == []
    assert stopped_mid_run, "the run finished before PostgreSQL was stopped: make the input slower"
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert retries, "the sink never logged a retry"
    assert "PostgresSink: write of" in retries[0]
    assert content(disturbed) == content(undisturbed)
    assert counts(disturbed)["trade_decisions"] > 0
