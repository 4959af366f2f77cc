"""What an execution adapter reports back for one order."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from torghut.contracts.frozen import EMPTY as EMPTY_MAP
from torghut.contracts.frozen import FrozenMap
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

    @property
    def is_final(self) -> bool:
        """Whether the status is terminal."""
        return self.status in FINAL_STATUSES
