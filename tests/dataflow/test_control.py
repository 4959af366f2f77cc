"""The service's trading control wiring: when it is read, and the kill switch's broker-side cancel."""

from __future__ import annotations

from typing import Any

import pytest

from torghut.connectors.alpaca import AlpacaError, BrokerFailure, OrderFirewallToken
from torghut.connectors.postgres import PostgresControlSource
from torghut.dataflow.control import (
    CANCEL_ISSUER,
    CancelOnKillSwitch,
    build_control_source,
    cancels_on_kill_switch,
)
from torghut.dataflow.service_config import ServiceConfig, service_config_from_data
from torghut.metrics import METRICS
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
    def __init__(self, failures: int = 0) -> None:
        self.tokens: list[OrderFirewallToken] = []
        self.failures = failures

    def cancel_all(self, token: OrderFirewallToken) -> tuple[str, ...]:
        if self.failures:
            self.failures -= 1
            raise AlpacaError(BrokerFailure(reason="alpaca_order_submit_failed timeout", retryable=True))
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


def test_a_kill_switch_engaged_at_start_cancels_at_the_first_read() -> None:
    broker = Broker()
    CancelOnKillSwitch(Scripted(ON), broker).read()
    assert len(broker.tokens) == 1


def test_a_failed_cancel_is_retried_at_the_next_read_and_counted() -> None:
    broker = Broker(failures=1)
    errors = METRICS.broker_error("alpaca_order_submit_failed timeout")
    before = errors._value.get()
    source = CancelOnKillSwitch(Scripted(ON, ON, ON), broker)
    assert source.read() is ON  # the failure does not propagate: the firewall still blocks every order
    assert broker.tokens == []
    source.read()
    source.read()
    assert len(broker.tokens) == 1
    assert errors._value.get() == before + 1
