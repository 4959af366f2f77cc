"""The order firewall: the only path from an approved order to an execution adapter.

Before anything reaches an adapter the firewall checks, in this order:

1. the kill switch (``kill_switch_enabled``): the static one (:attr:`TradingConfig.kill_switch_engaged`)
   or the runtime control's (:class:`~torghut.operators.control.ControlState`);
2. the runtime control: unreadable (``trading_control_unavailable``, fail closed) or trading disabled
   (``trading_disabled``);
3. the two live switches: live mode requires ``TRADING_LIVE_ENABLED`` (``live_trading_disabled``);
4. that the upstream trace holds a verdict from every configured risk gate
   (``missing_upstream_verdict:<gate>``) and that none of them rejected (``upstream_rejected:<gate>``);
5. that the ``client_order_id`` (the decision hash) was never sent (``duplicate_client_order_id``).

After the checks, an adapter that keeps a record of sent intents (the service's
:class:`~torghut.dataflow.reconcile.PersistedOrderGuard`) may still refuse the order because its intent
was already sent under another client order id (:class:`~torghut.connectors.broker.IntentAlreadySent`):
the firewall's verdict is then ``duplicate_intent``, with the earlier order's id in its inputs
(``sent_client_order_id``).

The control is passed in as data, read by the caller just before the order is evaluated; without a
control source it is :data:`~torghut.operators.control.STATIC_CONTROL` and the verdict depends on the
configuration alone. Its state is the set of sent client order ids, snapshotted as a sorted tuple.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from torghut.connectors.broker import ExecutionAdapter, IntentAlreadySent
from torghut.contracts.decision import GateVerdict, Rejection, passed, rejected, rejection_from_trace
from torghut.contracts.execution import ExecutionReport
from torghut.contracts.portfolio import OrderIntent
from torghut.operators.control import (
    CONTROL_UNAVAILABLE,
    KILL_SWITCH_ENABLED,
    STATIC_CONTROL,
    TRADING_DISABLED,
    ControlState,
)
from torghut.operators.trading_config import TradingConfig

FIREWALL_GATE = "firewall"
DUPLICATE_INTENT = "duplicate_intent"


def firewall_verdict(
    order: OrderIntent,
    trace: tuple[GateVerdict, ...],
    *,
    config: TradingConfig,
    sent_ids: frozenset[str] | set[str],
    control: ControlState = STATIC_CONTROL,
) -> GateVerdict:
    """Return the firewall's verdict on ``order`` given its upstream ``trace`` and the control; pure."""
    if not order.client_order_id:
        msg = f"order for {order.symbol} at {order.event_ts.isoformat()} has no client_order_id"
        raise ValueError(msg)
    kill_switch = config.kill_switch_engaged or control.kill_switch
    inputs = {
        "client_order_id": order.client_order_id,
        "kill_switch": kill_switch,
        "mode": config.trading_mode,
        "live_enabled": config.trading_live_enabled,
        **control.gate_inputs(),
    }
    switch = _switch_reason(config, control, kill_switch=kill_switch)
    if switch is not None:
        return rejected(FIREWALL_GATE, switch, **inputs)
    seen = {v.gate for v in trace}
    for gate in config.trading_risk_gates:
        if gate not in seen:
            return rejected(FIREWALL_GATE, f"missing_upstream_verdict:{gate}", **inputs)
    for verdict in trace:
        if verdict.blocks:
            return rejected(FIREWALL_GATE, f"upstream_rejected:{verdict.gate}", **inputs)
    if order.client_order_id in sent_ids:
        return rejected(FIREWALL_GATE, "duplicate_client_order_id", **inputs)
    return passed(FIREWALL_GATE, **inputs)


def _switch_reason(config: TradingConfig, control: ControlState, *, kill_switch: bool) -> str | None:
    """The first switch that blocks every order: kill switch, control, live switches; None if none does."""
    if kill_switch:
        return KILL_SWITCH_ENABLED
    if not control.available:
        return CONTROL_UNAVAILABLE
    if not control.trading_enabled:
        return TRADING_DISABLED
    if config.trading_mode == "live" and not config.trading_live_enabled:
        return "live_trading_disabled"
    return None


@dataclass(frozen=True, slots=True)
class FirewallResult:
    """What happened to one order: the full trace ending in the firewall verdict, and the report if sent."""

    verdict: GateVerdict
    trace: tuple[GateVerdict, ...]
    report: ExecutionReport | None
    rejection: Rejection | None


class OrderFirewall:
    """Sends approved orders to ``adapter`` and nothing else; blocked orders become rejections.

    >>> from datetime import UTC, datetime
    >>> from torghut.connectors.broker import DryRunAdapter
    >>> fw = OrderFirewall(TradingConfig(), DryRunAdapter("paper", datetime(2026, 1, 1, tzinfo=UTC)))
    >>> fw.snapshot()
    ()
    """

    __slots__ = ("_adapter", "_config", "_sent")

    def __init__(
        self, config: TradingConfig, adapter: ExecutionAdapter, sent_ids: Iterable[str] = ()
    ) -> None:
        self._config = config
        self._adapter = adapter
        self._sent: set[str] = set(sent_ids)

    def check(
        self, order: OrderIntent, trace: tuple[GateVerdict, ...], control: ControlState = STATIC_CONTROL
    ) -> GateVerdict:
        """Return the verdict :meth:`submit` would reach, without sending."""
        return firewall_verdict(order, trace, config=self._config, sent_ids=self._sent, control=control)

    def submit(
        self, order: OrderIntent, trace: tuple[GateVerdict, ...], control: ControlState = STATIC_CONTROL
    ) -> FirewallResult:
        """Check ``order`` against ``control`` (read just before) and, when it passes, send it once.

        The id is remembered as sent.
        """
        verdict = self.check(order, trace, control)
        if verdict.blocks:
            return _blocked(order, trace, verdict)
        self._sent.add(order.client_order_id)
        try:
            report = self._adapter.submit(order)
        except IntentAlreadySent as sent:
            inputs = {
                **verdict.inputs,
                "intent_key": sent.intent_key,
                "sent_client_order_id": sent.client_order_id,
            }
            return _blocked(order, trace, rejected(FIREWALL_GATE, DUPLICATE_INTENT, **inputs))
        return FirewallResult(verdict, (*trace, verdict), report, None)

    def snapshot(self) -> tuple[str, ...]:
        """Return the sent client order ids, sorted: the firewall's recoverable state."""
        return tuple(sorted(self._sent))


def _blocked(order: OrderIntent, trace: tuple[GateVerdict, ...], verdict: GateVerdict) -> FirewallResult:
    full_trace = (*trace, verdict)
    rejection = rejection_from_trace(
        decision_hash=order.client_order_id,
        symbol=order.symbol,
        event_ts=order.event_ts,
        stage="firewall",
        gate_trace=full_trace,
    )
    return FirewallResult(verdict, full_trace, None, rejection)
