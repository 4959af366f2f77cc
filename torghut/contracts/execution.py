"""What an execution adapter reports back for one order."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from torghut.contracts.frozen import EMPTY as EMPTY_MAP
from torghut.contracts.frozen import FrozenMap, freeze
from torghut.contracts.portfolio import OrderIntent
from torghut.contracts.strategy import Direction

FINAL_STATUSES: frozenset[str] = frozenset({"filled", "canceled", "rejected", "expired"})
"""Torghut's terminal execution statuses (``FINAL_STATUSES``)."""


@dataclass(frozen=True, slots=True)
class ExecutionReport:
    """An adapter's view of one order, keyed by the idempotent ``client_order_id`` (the decision hash).

    Mirrors torghut's ``executions`` row: ``qty`` is the submitted quantity, ``avg_fill_price`` is ``None``
    until something fills, ``raw`` holds the adapter's own order payload.
    """

    client_order_id: str
    broker_order_id: str
    account: str
    symbol: str
    side: Direction
    qty: Decimal
    filled_qty: Decimal
    avg_fill_price: Decimal | None
    fee: Decimal
    status: str
    adapter: str
    event_ts: datetime
    raw: FrozenMap[str, Any] = EMPTY_MAP

    @classmethod
    def unfilled(
        cls,
        order: OrderIntent,
        *,
        status: str,
        adapter: str,
        event_ts: datetime,
        broker_order_id: str = "",
        raw: Any = EMPTY_MAP,
    ) -> ExecutionReport:
        """Report ``order`` with nothing filled (rejected, pending a retry, or a dry run)."""
        return cls(
            client_order_id=order.client_order_id,
            broker_order_id=broker_order_id,
            account=order.account,
            symbol=order.symbol,
            side=order.side,
            qty=order.qty,
            filled_qty=Decimal(0),
            avg_fill_price=None,
            fee=Decimal(0),
            status=status,
            adapter=adapter,
            event_ts=event_ts,
            raw=freeze(raw),
        )

    @property
    def is_final(self) -> bool:
        """Whether the status is terminal."""
        return self.status in FINAL_STATUSES
