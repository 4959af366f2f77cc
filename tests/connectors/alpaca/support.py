"""Shared test data: credentials the server expects, a fixed clock, an order builder, a paper server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from torghut.connectors.alpaca_server import AlpacaTestServer
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


def serve(
    monkeypatch: pytest.MonkeyPatch,
    *,
    cash: Decimal = Decimal(100_000),
    price: Decimal = Decimal(100),
    mode: str = "paper",
    env: dict[str, str] | None = None,
) -> Iterator[AlpacaTestServer]:
    """A started server and the ``APCA_*`` / ``TRADING_MODE`` environment (plus ``env``) pointing at it."""
    alpaca = AlpacaTestServer(key_id=KEY_ID, secret=SECRET, cash=cash, default_price=price)
    alpaca.start()
    try:
        for name, value in {
            "APCA_API_KEY_ID": KEY_ID,
            "APCA_API_SECRET_KEY": SECRET,
            "APCA_API_BASE_URL": alpaca.base_url + "/v2",
            "TRADING_MODE": mode,
            **(env or {}),
        }.items():
            monkeypatch.setenv(name, value)
        yield alpaca
    finally:
        alpaca.stop()
