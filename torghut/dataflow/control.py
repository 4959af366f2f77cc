"""The service's runtime trading control: its source, and the broker-side cancel when the kill switch engages.

:func:`build_control_source` returns the ``trading_control`` reader the account stage consults before every
order (:mod:`torghut.connectors.postgres.control`), or None when the service runs without one
(``trading_control: off``, or ``auto`` with the paper adapter).

:class:`CancelOnKillSwitch` adds torghut's kill-switch cancel (contracts 5.5: while the kill switch is on,
open orders are cancelled at the start of every cycle) for a live Alpaca service. The engine cancels
once per engagement: the first read (the account stage reads at the start of every release, its cycle,
and before every order) that sees the control's kill switch engaged, at start-up included, cancels every
open order of the account through the adapter's firewall-token-guarded ``cancel_all``; a failed cancel
is retried at the next read. It is only wired when the static kill switch is released: with a static kill
switch the engine sends nothing, so any open order belongs to another process (torghut in the shadow phase
of the cut-over) and must not be touched.
"""

from __future__ import annotations

import logging
from typing import Protocol

from torghut.connectors.alpaca import AlpacaError, OrderFirewallToken
from torghut.connectors.postgres import PostgresControlSource
from torghut.dataflow.service_config import ServiceConfig
from torghut.metrics import METRICS
from torghut.operators.control import ControlSource, ControlState

logger = logging.getLogger(__name__)

CANCEL_ISSUER = "torghut.operators.firewall:kill_switch"
"""The issuer recorded on the firewall token of the kill-switch cancel (the adapter logs it)."""


class CancelsAllOrders(Protocol):
    """A broker that cancels every open order of the account, given the firewall's token."""

    def cancel_all(self, token: OrderFirewallToken) -> tuple[str, ...]:
        """Cancel every open order; return the ids cancelled."""
        ...


def build_control_source(config: ServiceConfig) -> PostgresControlSource | None:
    """The service's control source: ``trading_control`` for the account stage's account, or None."""
    if not config.reads_trading_control:
        return None
    return PostgresControlSource(config.postgres.dsn.get_secret_value(), config.engine.account.account)


def cancels_on_kill_switch(config: ServiceConfig) -> bool:
    """Whether the kill switch's broker cancel applies: live Alpaca, static kill switch released."""
    trading = config.engine.trading
    return (
        config.reads_trading_control
        and config.adapter_kind == "alpaca"
        and trading.trading_mode == "live"
        and not trading.kill_switch_engaged
    )


class CancelOnKillSwitch:
    """A control source that cancels the broker's open orders once each time the kill switch engages.

    Args:
        inner: The control source read.
        broker: Where open orders are cancelled (the Alpaca adapter).
    """

    __slots__ = ("_armed", "_broker", "_inner")

    def __init__(self, inner: ControlSource, broker: CancelsAllOrders) -> None:
        self._inner = inner
        self._broker = broker
        self._armed = True

    def __repr__(self) -> str:
        return f"CancelOnKillSwitch({self._inner!r})"

    def read(self) -> ControlState:
        """Read the control; cancel every open order when its kill switch is newly engaged."""
        state = self._inner.read()
        if not state.available:
            return state
        if not state.kill_switch:
            self._armed = True
            return state
        if self._armed:
            try:
                cancelled = self._broker.cancel_all(OrderFirewallToken(issuer=CANCEL_ISSUER))
            except AlpacaError as error:
                METRICS.broker_error(error.reason).inc()
                logger.warning("kill switch engaged: cancel of open orders failed, retried: %s", error.reason)
            else:
                self._armed = False
                logger.warning(
                    "kill switch engaged (%s): cancelled %d open order(s)", state.revision, len(cancelled)
                )
        return state

    def close(self) -> None:
        """Close the wrapped source when it has a ``close``."""
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()
