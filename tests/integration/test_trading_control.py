"""The runtime kill switch and trading switch against a real PostgreSQL: flips apply to the next order.

The account pipeline is driven event by event with the service's PostgreSQL-backed control reader, and the
operator flips the switch with the ``torghut control`` command between two events; the service flow is run
once with the kill switch engaged; and PostgreSQL is stopped between two events (fail closed).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from tests.connectors.postgres.support import create_database, throwaway_postgres
from tests.integration.support import service_config
from torghut.cli import app
from torghut.connectors.postgres import LocalPostgres, PostgresControlSource, migrate
from torghut.contracts.decision import TradeDecision
from torghut.dataflow.config import EngineConfig
from torghut.dataflow.service import run_service
from torghut.metrics import METRICS
from torghut.operators.account import AccountPipeline, AccountState

pytestmark = pytest.mark.integration

T0 = datetime(2026, 2, 19, 14, 30, tzinfo=UTC)
ACCOUNT = "paper"


def _pipeline(control: PostgresControlSource) -> AccountPipeline:
    engine = EngineConfig()
    account = engine.account.model_copy(update={"release_lateness_s": 0})  # release every event at once
    return AccountPipeline(
        definitions=(),
        trading=engine.trading,
        allocation=engine.allocation,
        account=account,
        config_hash="h",
        control=control,
    )


def _decision(i: int) -> TradeDecision:
    return TradeDecision.create(
        strategy_id="s",
        symbol="NVDA",
        event_ts=T0 + timedelta(seconds=i),
        timeframe="1Sec",
        action="buy",
        qty=Decimal(1),
        params={"price": Decimal(100)},
        account=ACCOUNT,
    )


class Driver:
    """Feeds one decision per event and returns what happened to its order."""

    def __init__(self, pipeline: AccountPipeline) -> None:
        self.pipeline = pipeline
        self.state: AccountState = pipeline.initial_state()
        self.events = 0

    def event(self) -> tuple[str, tuple[str, ...], Any]:
        self.state, outputs = self.pipeline.on_items(self.state, [_decision(self.events)])
        self.events += 1
        (decision,) = [r for kind, r in outputs if kind == "decisions"]
        rejections = [r for kind, r in outputs if kind == "rejections"]
        reasons = rejections[0].reasons if rejections else ()
        assert isinstance(decision, TradeDecision)
        return decision.status, reasons, decision.gate_trace[-1]

    def events_n(self, n: int) -> list[tuple[str, tuple[str, ...], Any]]:
        return [self.event() for _ in range(n)]


def _cli(dsn: str, *args: str) -> str:
    result = CliRunner().invoke(app, ["control", *args], env={"TORGHUT_DATABASE_URL": dsn, "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def _gauge() -> float:
    return METRICS.kill_switch_engaged._value.get()


def test_a_kill_switch_flipped_between_two_events_applies_to_the_next_order_and_releases(dsn: str) -> None:
    control = PostgresControlSource(dsn, ACCOUNT)
    driver = Driver(_pipeline(control))
    try:
        before = driver.events_n(4)
        assert [status for status, _, _ in before] == ["filled"] * 4
        assert _gauge() == 0

        _cli(dsn, "kill-switch", "on", "--reason", "incident 7", "--by", "tests")
        engaged = driver.events_n(4)
        assert [(status, reasons) for status, reasons, _ in engaged] == [
            ("rejected", ("kill_switch_enabled",))
        ] * 4
        firewall = engaged[0][2]
        assert firewall.gate == "firewall"
        assert (firewall.inputs["control_revision"], firewall.inputs["control_reason"]) == (
            "*@1",
            "*: incident 7",
        )
        assert _gauge() == 1

        _cli(dsn, "kill-switch", "off", "--by", "tests")
        released = driver.events_n(3)
        assert [status for status, _, _ in released] == ["filled"] * 3
        assert released[0][2].inputs["control_revision"] == "*@2"
        assert _gauge() == 0

        # the account's own row: trading disabled for this account only
        _cli(dsn, "trading", "disable", "--account", ACCOUNT, "--by", "tests")
        assert [(s, r) for s, r, _ in driver.events_n(2)] == [("rejected", ("trading_disabled",))] * 2
        _cli(dsn, "trading", "disable", "--account", "live", "--by", "tests")
        _cli(dsn, "trading", "enable", "--account", ACCOUNT, "--by", "tests")
        assert [s for s, _, _ in driver.events_n(2)] == ["filled"] * 2  # another account's row does not apply
    finally:
        control.close()


@pytest.fixture
def own_server() -> Iterator[LocalPostgres]:
    """A PostgreSQL of this test's own: it is stopped and restarted between two events."""
    with throwaway_postgres("torghut-pg-control-") as server:
        yield server


def test_b_postgres_stopped_between_two_events_fails_closed_then_recovers(own_server: LocalPostgres) -> None:
    dsn = create_database(own_server)
    migrate(dsn)
    assert own_server.port is not None and own_server.directory is not None
    control = PostgresControlSource(dsn, ACCOUNT, timeout_s=1)
    driver = Driver(_pipeline(control))
    failures = METRICS.control_read_failures._value.get()
    try:
        assert [s for s, _, _ in driver.events_n(2)] == ["filled"] * 2

        own_server.stop()
        down = driver.events_n(3)  # no exception: every order is rejected instead
        assert [(s, r) for s, r, _ in down] == [("rejected", ("trading_control_unavailable",))] * 3
        assert down[0][2].inputs["control_available"] is False
        assert METRICS.control_read_failures._value.get() > failures
        assert _gauge() == 1

        own_server.start(own_server.directory, own_server.port)
        assert [s for s, _, _ in driver.events_n(2)] == ["filled"] * 2
        assert _gauge() == 0
    finally:
        control.close()


def test_c_the_service_reads_the_control_and_records_every_blocked_order(
    dsn: str, clean_signals: Path
) -> None:
    _cli(dsn, "kill-switch", "on", "--reason", "before the run", "--by", "tests")
    config = service_config({"kind": "file", "path": str(clean_signals)}, dsn, trading_control="on")

    result = run_service(config, once=True)

    assert result.counts["decisions"] > 0
    assert result.counts["orders"] == 0
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT reasons, gate_trace -> -1 -> 'inputs' ->> 'control_revision' FROM rejections "
            "WHERE stage = 'firewall'"
        ).fetchall()
    assert rows, "no order reached the firewall"
    assert {(str(r[0]), str(r[1])) for r in rows} == {("kill_switch_enabled", "*@1")}


def test_d_the_control_command_shows_writes_and_explains(dsn: str, pg_server: LocalPostgres) -> None:
    assert "no trading_control row for any account" in _cli(dsn, "show")
    out = _cli(dsn, "kill-switch", "on", "--account", "live", "--reason", "broker incident", "--by", "ops")
    assert "kill switch engaged by: live" in out
    _cli(dsn, "trading", "disable", "--by", "ops")
    shown = _cli(dsn, "show", "--account", "live")
    assert "broker incident" in shown
    assert "account live: kill switch ENGAGED, trading DISABLED" in shown
    assert "revision *@1,live@1" in shown

    unmigrated = create_database(pg_server)
    missing = CliRunner().invoke(app, ["control", "show"], env={"TORGHUT_DATABASE_URL": unmigrated})
    assert missing.exit_code == 2
    assert "torghut db migrate" in missing.output
    bad = CliRunner().invoke(app, ["control", "kill-switch", "maybe"], env={"TORGHUT_DATABASE_URL": dsn})
    assert bad.exit_code == 2
