"""The service flow with the Alpaca adapter against the local Alpaca-protocol server."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from tests.connectors.alpaca.support import KEY_ID, SECRET
from tests.integration.support import service_config
from torghut.connectors.alpaca_server import AlpacaTestServer, Fault
from torghut.dataflow.service import RETRY_PENDING, run_service

pytestmark = pytest.mark.integration


def test_orders_go_to_alpaca_and_a_retryable_failure_is_a_report_not_a_crash(
    dsn: str, clean_signals: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = AlpacaTestServer(key_id=KEY_ID, secret=SECRET, default_price=Decimal(100))
    server.start()
    try:
        for name, value in {
            "APCA_API_KEY_ID": KEY_ID,
            "APCA_API_SECRET_KEY": SECRET,
            "APCA_API_BASE_URL": server.base_url + "/v2",
            "TRADING_MODE": "paper",
            "ALPACA_REQUEST_TIMEOUT_S": "2",
        }.items():
            monkeypatch.setenv(name, value)
        # The first order POST answers 503 without placing anything: outcome unknown, retryable.
        server.brokerage.push_faults(
            [Fault(status=503, body="unavailable", method="POST", path="/v2/orders")]
        )
        config = service_config({"kind": "file", "path": str(clean_signals)}, dsn, adapter={"kind": "alpaca"})

        result = run_service(config, once=True)

        with psycopg.connect(dsn) as conn:
            rows = conn.execute(
                "SELECT client_order_id, status, execution_actual_adapter, raw_order->>'retryable' FROM executions"
            ).fetchall()
        pending = [r for r in rows if r[1] == RETRY_PENDING]
        placed = [r for r in rows if r[1] != RETRY_PENDING]
        assert len(pending) == 1
        assert pending[0][3] == "true"
        assert placed, "no order reached the Alpaca server after the failure"
        assert {r[2] for r in rows} == {"alpaca"}
        assert result.counts["orders"] == len(rows)
        # A later submission of the same decision finds nothing placed under the id, so sending it is safe;
        # every placed order is at the server under its client order id.
        orders = server.brokerage.orders
        assert str(pending[0][0]) not in {o["client_order_id"] for o in orders.values()}
        assert {str(r[0]) for r in placed} <= {o["client_order_id"] for o in orders.values()}
    finally:
        server.stop()
