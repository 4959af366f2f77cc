"""Fixtures: a local Alpaca-protocol server per test and an adapter pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from tests.connectors.alpaca.support import FIXED_NOW, KEY_ID, SECRET
from torghut.connectors.alpaca import AlpacaAdapter, AlpacaConfig
from torghut.connectors.alpaca_server import AlpacaTestServer


@pytest.fixture
def server() -> Iterator[AlpacaTestServer]:
    srv = AlpacaTestServer(key_id=KEY_ID, secret=SECRET, default_price=Decimal(100))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def config(server: AlpacaTestServer) -> AlpacaConfig:
    return AlpacaConfig.from_env(
        {
            "APCA_API_KEY_ID": KEY_ID,
            "APCA_API_SECRET_KEY": SECRET,
            "APCA_API_BASE_URL": server.base_url + "/v2",
            "TRADING_MODE": "paper",
            "ALPACA_REQUEST_TIMEOUT_S": "0.5",
        }
    )


@pytest.fixture
def adapter(config: AlpacaConfig) -> Iterator[AlpacaAdapter]:
    adp = AlpacaAdapter(config, clock=lambda: FIXED_NOW)
    try:
        yield adp
    finally:
        adp.close()
