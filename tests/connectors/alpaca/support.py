"""Shared test data: credentials the server expects, a fixed clock and an order builder."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from torghut.contracts.portfolio import OrderIntent

KEY_ID = "AKTESTKEYID0000"
SECRET = "sEcReT-do-not-leak-8f3a"
FIXED_NOW = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)


def make_order(
    client_order_id: str = "a" * 64,
    *,
    symbol: str = "AAPL",
    side: str = "buy",
    qty: str = "10",
    order_type: str = "market",
    limit_price: str | None = None,
    account: str = "paper",
    time_in_force: str = "day",
) -> OrderIntent:
    return OrderIntent(
        account=account,
        symbol=symbol,
        side=side,  # type: ignore[arg-type]
        qty=Decimal(qty),
        order_type=order_type,
        time_in_force=time_in_force,
        limit_price=None if limit_price is None else Decimal(limit_price),
        client_order_id=client_order_id,
        event_ts=FIXED_NOW,
    )
