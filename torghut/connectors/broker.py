"""The execution adapter protocol, a dry-run adapter, and the router that picks an adapter by config.

Adapters are reached only through :class:`torghut.operators.firewall.OrderFirewall`. Every adapter is
idempotent by ``client_order_id``: submitting the same id twice returns the first report.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Protocol, runtime_checkable

from torghut.contracts.account import AccountSnapshot
from torghut.contracts.execution import ExecutionReport
from torghut.contracts.frozen import EMPTY as EMPTY_MAP
from torghut.contracts.portfolio import OrderIntent
from torghut.operators.trading_config import TradingConfig


class IntentAlreadySent(Exception):
    """Raised by ``submit``: the order's intent was already carried out by an order under another id.

    Nothing was sent. The firewall turns it into a rejection (``duplicate_intent``) naming the earlier
    order's client order id.
    """

    def __init__(self, intent_key: str, client_order_id: str) -> None:
        super().__init__(f"intent {intent_key} was already sent as order {client_order_id}")
        self.intent_key = intent_key
        self.client_order_id = client_order_id


@runtime_checkable
class ExecutionAdapter(Protocol):
    """A broker, real or simulated."""

    @property
    def name(self) -> str:
        """The adapter name recorded in reports (``paper``, ``alpaca``, ``dry_run``)."""
        ...

    def submit(self, order: OrderIntent) -> ExecutionReport:
        """Send ``order``; a repeated ``client_order_id`` returns the existing report.

        Raises:
            IntentAlreadySent: The order's ``intent_key`` was already sent under another id (adapters
                that keep an intent record, such as the service's order guard); nothing was sent.
        """
        ...

    def get_by_client_order_id(self, client_order_id: str) -> ExecutionReport | None:
        """Return the report of an order sent under ``client_order_id``, if any."""
        ...

    def account_snapshot(self) -> AccountSnapshot:
        """Return the account and positions as the adapter last knows them."""
        ...


class DryRunAdapter:
    """Accepts every order and executes nothing: reports have status ``dry_run`` and no fills."""

    __slots__ = ("_account", "_as_of", "_equity", "_reports")

    def __init__(self, account: str, as_of: datetime, equity: Decimal = Decimal(0)) -> None:
        self._account = account
        self._as_of = as_of
        self._equity = equity
        self._reports: dict[str, ExecutionReport] = {}

    @property
    def name(self) -> str:
        """Always ``dry_run``."""
        return "dry_run"

    def submit(self, order: OrderIntent) -> ExecutionReport:
        """Record ``order`` and return a ``dry_run`` report (the same one for a repeated id)."""
        existing = self._reports.get(order.client_order_id)
        if existing is not None:
            return existing
        report = ExecutionReport.unfilled(
            order,
            status="dry_run",
            adapter=self.name,
            event_ts=order.event_ts,
            broker_order_id=f"dry-run-{order.client_order_id}",
            raw={
                "order_type": order.order_type,
                "time_in_force": order.time_in_force,
                "limit_price": order.limit_price,
            },
        )
        self._reports[order.client_order_id] = report
        return report

    def get_by_client_order_id(self, client_order_id: str) -> ExecutionReport | None:
        """Return the recorded report, if any."""
        return self._reports.get(client_order_id)

    def account_snapshot(self) -> AccountSnapshot:
        """Return a flat account at the configured equity, as of construction."""
        return AccountSnapshot(
            self._account, self._equity, self._equity, self._equity, EMPTY_MAP, self._as_of
        )


class ExecutionRouter:
    """Routes orders to the adapter named by ``TRADING_EXECUTION_ADAPTER`` (``paper`` by default).

    The router is itself an :class:`ExecutionAdapter`. A configured adapter that was not provided is a
    start-up error naming the setting, never a silent fallback.
    """

    __slots__ = ("_adapter",)

    def __init__(self, config: TradingConfig, adapters: Mapping[str, ExecutionAdapter]) -> None:
        wanted = config.trading_execution_adapter
        adapter = adapters.get(wanted)
        if adapter is None:
            msg = (
                f"TRADING_EXECUTION_ADAPTER={wanted!r} but no {wanted!r} adapter is available "
                f"(available: {sorted(adapters)}); set TRADING_EXECUTION_ADAPTER=paper or provide one"
            )
            raise ValueError(msg)
        self._adapter = adapter

    @property
    def adapter(self) -> ExecutionAdapter:
        """The selected adapter."""
        return self._adapter

    @property
    def name(self) -> str:
        """The selected adapter's name."""
        return self._adapter.name

    def submit(self, order: OrderIntent) -> ExecutionReport:
        """Send ``order`` through the selected adapter."""
        return self._adapter.submit(order)

    def get_by_client_order_id(self, client_order_id: str) -> ExecutionReport | None:
        """Look the order up in the selected adapter."""
        return self._adapter.get_by_client_order_id(client_order_id)

    def account_snapshot(self) -> AccountSnapshot:
        """Return the selected adapter's account snapshot."""
        return self._adapter.account_snapshot()
