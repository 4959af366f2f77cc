"""The runtime trading control table: writes, the per-account view, and the fail-closed reader."""

from __future__ import annotations

import logging

import psycopg
import pytest

from tests.connectors.postgres.support import free_port
from torghut.connectors.postgres import PostgresControlSource, control_state, load_controls, set_control
from torghut.metrics import METRICS

Conn = psycopg.Connection[tuple[object, ...]]


def _failures() -> float:
    return METRICS.control_read_failures._value.get()


def test_a_write_creates_then_updates_the_row_keeping_the_other_switch(conn: Conn) -> None:
    first = set_control(conn, "*", updated_by="ops", kill_switch=True, reason="incident 7")
    assert (first.kill_switch, first.trading_enabled, first.version, first.reason) == (
        True,
        True,
        1,
        "incident 7",
    )
    second = set_control(conn, "*", updated_by="ops2", trading_enabled=False)
    assert (second.kill_switch, second.trading_enabled, second.version) == (True, False, 2)
    assert (second.updated_by, second.reason) == ("ops2", None)
    assert second.updated_at >= first.updated_at


def test_an_account_sees_its_own_row_and_the_global_one(conn: Conn) -> None:
    set_control(conn, "*", updated_by="ops", trading_enabled=True)
    set_control(conn, "live", updated_by="ops", kill_switch=True, reason="broker incident")
    set_control(conn, "paper", updated_by="ops", trading_enabled=False)
    assert [r.account_label for r in load_controls(conn)] == ["*", "live", "paper"]
    assert [r.account_label for r in load_controls(conn, "live")] == ["*", "live"]
    live = control_state(load_controls(conn, "live"))
    assert (live.kill_switch, live.trading_enabled, live.revision) == (True, True, "*@1,live@1")
    assert live.reason == "live: broker incident"
    paper = control_state(load_controls(conn, "paper"))
    assert (paper.kill_switch, paper.trading_enabled) == (False, False)
    other = control_state(load_controls(conn, "other"))
    assert (other.kill_switch, other.trading_enabled, other.revision) == (False, True, "*@1")
    assert control_state([]).revision == ""


def test_the_source_reads_the_latest_committed_row_on_every_read(dsn: str, conn: Conn) -> None:
    source = PostgresControlSource(dsn, "live")
    try:
        assert "postgresql" not in repr(source)
        state = source.read()
        assert (state.available, state.kill_switch, state.source, state.revision) == (
            True,
            False,
            "postgres",
            "",
        )
        set_control(conn, "*", updated_by="ops", kill_switch=True)
        assert source.read().kill_switch
        set_control(conn, "*", updated_by="ops", kill_switch=False)
        assert not source.read().kill_switch
        # Every read reuses the connection kept since the first (no connect per read); what a read costs is
        # a benchmark's figure (benchmarks/bench_round_trips.py), not this test's.
        kept = source._conn
        assert kept is not None
        backend = kept.info.backend_pid
        failures = _failures()
        for _ in range(200):
            assert source.read().available
        assert source._conn is kept and not kept.closed
        assert kept.info.backend_pid == backend
        assert _failures() == failures
    finally:
        source.close()


def test_an_unreachable_database_fails_closed_counts_every_failure_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="torghut.connectors.postgres.control")
    source = PostgresControlSource(
        f"postgresql://torghut:s3cret@127.0.0.1:{free_port()}/torghut", "live", timeout_s=1
    )
    before = _failures()
    states = [source.read() for _ in range(3)]
    assert all(not s.available and s.source == "postgres" for s in states)
    assert states[0].reason is not None and states[0].reason.startswith("OperationalError")
    assert _failures() == before + 3
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "trading_control_unavailable" in warnings[0]
    assert "s3cret" not in warnings[0] + repr(source)


def test_a_dropped_connection_is_retried_once_before_failing_closed(dsn: str, conn: Conn) -> None:
    source = PostgresControlSource(dsn, "live")
    try:
        assert source.read().available
        kept = source._conn
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        before = _failures()
        set_control(conn, "live", updated_by="ops", kill_switch=True)
        state = source.read()
        assert state.available and state.kill_switch
        assert source._conn is not kept, "the terminated connection was replaced"
        assert _failures() == before
    finally:
        source.close()


def test_a_missing_table_fails_closed(empty_dsn: str) -> None:
    source = PostgresControlSource(empty_dsn, "live")
    try:
        state = source.read()
        assert not state.available
        assert state.reason is not None and "UndefinedTable" in state.reason
    finally:
        source.close()
