"""AlpacaAdapter through alpaca-py against the local Alpaca-protocol server."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.connectors.alpaca.support import FIXED_NOW, make_order
from torghut.connectors.alpaca import (
    AlpacaAdapter,
    AlpacaConfig,
    AlpacaError,
    OrderFirewallBoundaryViolation,
    OrderFirewallToken,
)
from torghut.connectors.alpaca_server import AlpacaTestServer, Fault
from torghut.contracts.frozen import FrozenMap

pytestmark = pytest.mark.integration

CID = "c" * 64
LOOKUP = "/v2/orders:by_client_order_id"
LOOKUP_404 = Fault(
    status=404, body={"code": 40410000, "message": "order not found"}, method="GET", path=LOOKUP
)


def test_single_attempt_client_disables_alpaca_py_retries(adapter: AlpacaAdapter) -> None:
    client = adapter._client
    assert client._retry == 0
    assert client._retry_codes == []


def test_submit_market_order_fills_at_server_price(adapter: AlpacaAdapter, server: AlpacaTestServer) -> None:
    server.brokerage.set_prices({"AAPL": "190.25"})
    report = adapter.submit(make_order(CID, qty="10"))
    assert report.status == "filled"
    assert report.client_order_id == CID
    assert report.account == "paper"
    assert report.adapter == "alpaca"
    assert (report.symbol, report.side, report.qty) == ("AAPL", "buy", Decimal(10))
    assert report.filled_qty == Decimal(10)
    assert report.avg_fill_price == Decimal("190.25")
    assert report.fee == Decimal(0)
    assert report.is_final
    assert report.event_ts.tzinfo is not None
    assert isinstance(report.raw, FrozenMap)
    assert report.raw["client_order_id"] == CID
    assert report.raw["id"] == report.broker_order_id
    assert [o["client_order_id"] for o in server.stored_orders()] == [CID]


def test_submit_limit_order_sends_limit_price(adapter: AlpacaAdapter, server: AlpacaTestServer) -> None:
    server.brokerage.set_prices({"MSFT": "400"})
    resting = adapter.submit(make_order("r1", symbol="MSFT", order_type="limit", limit_price="390.5"))
    assert resting.status == "new"
    assert resting.avg_fill_price is None
    assert resting.raw["limit_price"] == "390.5"
    assert resting.raw["type"] == "limit"
    marketable = adapter.submit(make_order("m1", symbol="MSFT", order_type="limit", limit_price="401"))
    assert marketable.status == "filled"
    assert marketable.avg_fill_price == Decimal(401)


def test_get_by_client_order_id(adapter: AlpacaAdapter) -> None:
    assert adapter.get_by_client_order_id("never-sent") is None
    placed = adapter.submit(make_order(CID))
    found = adapter.get_by_client_order_id(CID)
    assert found == placed


def test_submit_again_back_fills_without_a_second_post(
    adapter: AlpacaAdapter, server: AlpacaTestServer
) -> None:
    first = adapter.submit(make_order(CID))
    second = adapter.submit(make_order(CID))
    assert second.broker_order_id == first.broker_order_id
    assert server.received(CID) == 1
    assert len(server.stored_orders()) == 1


def test_duplicate_rejected_by_broker_returns_the_existing_order(
    adapter: AlpacaAdapter, server: AlpacaTestServer
) -> None:
    # Another process placed the order between our lookup and our POST: the lookup misses (a scripted
    # 404), the POST gets Alpaca's 422 duplicate answer, and the adapter returns the first order.
    first = adapter.submit(make_order(CID))
    server.inject(LOOKUP_404)
    again = adapter.submit(make_order(CID))
    assert again.broker_order_id == first.broker_order_id
    assert server.received(CID) == 2  # the second POST was refused by the server, not stored
    assert len(server.stored_orders()) == 1


def test_account_snapshot_signs_short_positions(adapter: AlpacaAdapter, server: AlpacaTestServer) -> None:
    server.brokerage.set_prices({"AAPL": "100", "TSLA": "200"})
    adapter.submit(make_order("b1", symbol="AAPL", side="buy", qty="10"))
    adapter.submit(make_order("s1", symbol="TSLA", side="sell", qty="3"))
    snap = adapter.account_snapshot()
    assert snap.account == "paper"
    assert snap.positions == {"AAPL": Decimal(10), "TSLA": Decimal(-3)}
    assert snap.cash == Decimal(100_000) - Decimal(1000) + Decimal(600)
    assert snap.equity == snap.cash + Decimal(1000) - Decimal(600)
    assert snap.buying_power == snap.cash
    assert snap.event_ts == FIXED_NOW


def test_open_orders_and_cancel_all_through_the_firewall_token(
    adapter: AlpacaAdapter, server: AlpacaTestServer
) -> None:
    server.brokerage.set_prices({"AAPL": "100"})
    adapter.submit(make_order("filled", qty="1"))
    resting = adapter.submit(make_order("resting", order_type="limit", limit_price="90"))
    assert [r.client_order_id for r in adapter.open_orders()] == ["resting"]
    with pytest.raises(OrderFirewallBoundaryViolation, match="order_firewall_boundary_violation"):
        adapter.cancel_all("not-a-token")  # type: ignore[arg-type]
    assert adapter.open_orders()  # nothing was cancelled
    cancelled = adapter.cancel_all(OrderFirewallToken(issuer="tests"))
    assert cancelled == (resting.broker_order_id,)
    assert adapter.open_orders() == ()
    canceled = adapter.get_by_client_order_id("resting")
    assert canceled is not None
    assert canceled.status == "canceled"


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"account": "other"}, "local_pre_submit_rejected reason=account_mismatch"),
        ({"qty": "0"}, "local_pre_submit_rejected reason=qty_not_positive"),
        ({"order_type": "stop"}, "local_pre_submit_rejected reason=unsupported_order_type"),
        ({"order_type": "limit"}, "local_pre_submit_rejected reason=missing_limit_price"),
        ({"time_in_force": "forever"}, "local_pre_submit_rejected reason=invalid_time_in_force"),
    ],
)
def test_invalid_intents_are_rejected_before_any_request(
    adapter: AlpacaAdapter, server: AlpacaTestServer, kwargs: dict[str, str], reason: str
) -> None:
    report = adapter.submit(make_order(CID, **kwargs))
    assert report.status == "rejected"
    assert report.raw["reason"] == reason
    assert server.received(CID) == 0


def test_live_mode_without_live_enabled_sends_nothing(config: AlpacaConfig, server: AlpacaTestServer) -> None:
    live = config.model_copy(update={"trading_mode": "live", "account_label": "paper"})
    adapter = AlpacaAdapter(live, clock=lambda: FIXED_NOW)
    report = adapter.submit(make_order(CID))
    assert report.status == "rejected"
    assert report.raw["reason"] == "live_trading_disabled"
    assert server.received(CID) == 0


def test_bad_credentials_raise_a_final_error_without_the_secret(
    config: AlpacaConfig, server: AlpacaTestServer
) -> None:
    wrong = config.model_copy(update={"api_secret_key": config.api_key_id})
    adapter = AlpacaAdapter(wrong)
    with pytest.raises(AlpacaError) as info:
        adapter.account_snapshot()
    assert info.value.failure.status_code == 401
    assert not info.value.retryable
    assert info.value.reason == "alpaca_order_rejected code=40110000"


def test_lookup_failure_is_raised_and_nothing_is_posted(
    adapter: AlpacaAdapter, server: AlpacaTestServer
) -> None:
    server.inject(Fault(status=503, body="upstream down", method="GET", path=LOOKUP))
    with pytest.raises(AlpacaError) as info:
        adapter.submit(make_order(CID))
    assert info.value.retryable
    assert info.value.reason == "alpaca_order_submit_failed APIError: upstream down"
    assert server.received(CID) == 0


def test_implements_the_execution_adapter_protocol(adapter: AlpacaAdapter) -> None:
    from torghut.connectors.broker import ExecutionAdapter

    assert isinstance(adapter, ExecutionAdapter)
    assert adapter.name == "alpaca"
