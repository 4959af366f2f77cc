"""The service's trading control wiring: when it is read, and the kill switch's broker-side cancel."""

from __future__ import annotations

from typing import Any

import pytest

from torghut.connectors.alpaca import OrderFirewallToken
from torghut.connectors.postgres import PostgresControlSource
from torghut.dataflow.control import (
    CANCEL_ISSUER,
    CancelOnKillSwitch,
    build_control_source,
    cancels_on_kill_switch,
)
from torghut.dataflow.service_config import ServiceConfig, service_config_from_data
from torghut.operators.control import ControlState

LIVE = {"TRADING_MODE": "live", "TRADING_LIVE_ENABLED": "true", "TRADING_KILL_SWITCH_ENABLED": "false"}


def _config(environ: dict[str, str] | None = None, **data: Any) -> ServiceConfig:
    base = {"source": {"kind": "file", "path": "x.jsonl"}, "postgres": {"dsn": "postgresql://u:s3cret@db/t"}}
    return service_config_from_data({**base, **data}, environ or {})


@pytest.mark.parametrize(
    ("adapter", "setting", "reads"),
    [
        ("paper", "auto", False),
        ("dry_run", "auto", True),
        ("alpaca", "auto", True),
        ("paper", "on", True),
        ("alpaca", "off", False),
    ],
)
def test_when_the_service_reads_the_control(adapter: str, setting: str, reads: bool) -> None:
    config = _config(adapter={"kind": adapter}, trading_control=setting)
    assert config.reads_trading_control is reads
    source = build_control_source(config)
    assert (source is not None) is reads
    if source is not None:
        assert isinstance(source, PostgresControlSource)
        assert source.account == "paper"
        assert "s3cret" not in repr(source)


def test_the_broker_cancel_is_wired_only_for_live_alpaca_with_the_static_kill_switch_released() -> None:
    assert cancels_on_kill_switch(_config(LIVE, adapter={"kind": "alpaca"}))
    assert not cancels_on_kill_switch(_config(LIVE, adapter={"kind": "dry_run"}))
    assert not cancels_on_kill_switch(_config(LIVE, adapter={"kind": "alpaca"}, trading_control="off"))
    assert not cancels_on_kill_switch(_config({"TRADING_MODE": "paper"}, adapter={"kind": "alpaca"}))
    # a static kill switch: the engine sends nothing, so open orders belong to someone else (shadow phase)
    shadow = {**LIVE, "TRADING_KILL_SWITCH_ENABLED": "true"}
    assert not cancels_on_kill_switch(_config(shadow, adapter={"kind": "alpaca"}))


class Scripted:
    """A control source returning the given states in order."""

    def __init__(self, *states: ControlState) -> None:
        self.states = list(states)

    def read(self) -> ControlState:
        return self.states.pop(0)


class Broker:
    """Records the firewall token of every cancel.

    The cancel against the Alpaca test server (at start-up, mid-run, once per engagement, a failed cancel
    retried) is tested in tests/integration/test_service_alpaca.py; this test adds what a service run
    does not reach: re-arming after a release, an unreadable control, and the token's issuer.
    """

    def __init__(self) -> None:
        self.tokens: list[OrderFirewallToken] = []

    def cancel_all(self, token: OrderFirewallToken) -> tuple[str, ...]:
        self.tokens.append(token)
        return ("o-1", "o-2")


ON = ControlState(kill_switch=True, source="postgres", revision="*@1")
OFF = ControlState(source="postgres", revision="*@2")
DOWN = ControlState(available=False, source="postgres")


def test_open_orders_are_cancelled_once_per_engagement_with_the_firewall_token() -> None:
    broker = Broker()
    source = CancelOnKillSwitch(Scripted(OFF, ON, ON, DOWN, ON, OFF, ON), broker)
    seen = [source.read() for _ in range(7)]
    assert seen == [OFF, ON, ON, DOWN, ON, OFF, ON]  # the states pass through unchanged
    assert len(broker.tokens) == 2  # at the first ON and after the release; not again while engaged
    assert {t.issuer for t in broker.tokens} == {CANCEL_ISSUER}
