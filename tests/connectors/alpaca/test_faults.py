"""Broker failures: classification, torghut's reason strings, and no duplicate order at the server."""

from __future__ import annotations

import logging
import time
from decimal import Decimal

import pytest

from tests.connectors.alpaca.support import KEY_ID, SECRET, make_order
from torghut.connectors.alpaca import AlpacaAdapter, AlpacaConfig, AlpacaError, OrderFirewallToken
from torghut.connectors.alpaca_server import AlpacaTestServer, Fault

pytestmark = pytest.mark.integration

CID = "f" * 64
POST = {"method": "POST", "path": "/v2/orders"}


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (429, {"code": 42910000, "message": "rate limit exceeded"}, "alpaca_order_rejected code=42910000"),
        (429, "Too Many Requests", "alpaca_order_submit_failed APIError: Too Many Requests"),
        (500, {"code": 50010000, "message": "internal error"}, "alpaca_order_rejected code=50010000"),
        (
            503,
            "<html>Service Unavailable</html>",
            "alpaca_order_submit_failed APIError: <html>Service Unavailable</html>",
        ),
        (504, "Gateway Timeout", "alpaca_order_submit_failed APIError: Gateway Timeout"),
    ],
)
def test_throttling_and_server_errors_are_retryable_and_never_duplicate(
    adapter: AlpacaAdapter, server: AlpacaTestServer, status: int, body: object, reason: str
) -> None:
    server.inject(Fault(status=status, body=body, **POST))  # type: ignore[arg-type]
    with pytest.raises(AlpacaError) as info:
        adapter.submit(make_order(CID))
    assert info.value.retryable
    assert info.value.failure.status_code == status
    assert info.value.reason == reason
    assert server.received(CID) == 1  # alpaca-py did not retry (it would sleep 3 s and POST again)
    assert server.stored_orders() == []
    # The caller's retry is safe and places exactly one order.
    report = adapter.submit(make_order(CID))
    assert report.status == "filled"
    assert server.received(CID) == 2
    assert len(server.stored_orders()) == 1


def test_server_error_after_the_order_was_accepted_returns_that_order(
    adapter: AlpacaAdapter, server: AlpacaTestServer
) -> None:
    server.inject(Fault(status=504, body="Gateway Timeout", accept=True, **POST))  # type: ignore[arg-type]
    report = adapter.submit(make_order(CID))
    assert report.status == "filled"
    assert report.client_order_id == CID
    assert server.received(CID) == 1
    assert len(server.stored_orders()) == 1


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (
            403,
            {
                "code": 40310000,
                "message": "potential wash trade",
                "reject_reason": "wash trade",
                "existing_order_id": "e-1",
            },
            "alpaca_order_rejected code=40310000 reason=wash trade existing_order_id=e-1",
        ),
        (422, {"code": 40010001, "message": "qty must be integer"}, "alpaca_order_rejected code=40010001"),
        (422, "unprocessable entity", "alpaca_order_submit_failed APIError: unprocessable entity"),
        (400, "", "alpaca_order_submit_failed APIError: "),
    ],
)
def test_client_errors_are_final_rejections_as_data(
    adapter: AlpacaAdapter, server: AlpacaTestServer, status: int, body: object, reason: str
) -> None:
    server.inject(Fault(status=status, body=body, **POST))  # type: ignore[arg-type]
    report = adapter.submit(make_order(CID))
    assert report.status == "rejected"
    assert report.is_final
    assert report.broker_order_id == ""
    assert report.raw["reason"] == reason
    assert report.raw["retryable"] is False
    assert report.raw["status_code"] == status
    assert server.received(CID) == 1


def test_insufficient_buying_power_is_the_brokers_own_rejection(
    adapter: AlpacaAdapter, server: AlpacaTestServer
) -> None:
    report = adapter.submit(make_order(CID, qty="5000"))  # 500k at $100 > 100k cash
    assert report.status == "rejected"
    assert report.raw["reason"] == "alpaca_order_rejected code=40310000"
    assert report.raw["message"] == "insufficient buying power"


@pytest.mark.parametrize(
    ("action", "failure"),
    [
        # The server holds the answer for 5 s: the client gives up at its own 0.5 s read timeout.
        ("hang", "alpaca_order_submit_failed ReadTimeout: HTTPConnectionPool"),
        ("drop", "alpaca_order_submit_failed ConnectionError: ('Connection aborted.', RemoteDisconnected("),
    ],
)
def test_lost_response_after_acceptance_is_found_by_client_order_id(
    adapter: AlpacaAdapter,
    server: AlpacaTestServer,
    caplog: pytest.LogCaptureFixture,
    action: str,
    failure: str,
) -> None:
    caplog.set_level(logging.INFO, logger="torghut.connectors.alpaca")
    server.inject(Fault(action=action, delay_s=5.0, accept=True, **POST))  # type: ignore[arg-type]
    report = adapter.submit(make_order(CID))
    assert report.status == "filled"
    assert report.client_order_id == CID
    assert server.received(CID) == 1  # one POST: no retry
    assert [o["client_order_id"] for o in server.stored_orders()] == [CID]
    found = [r.getMessage() for r in caplog.records if r.getMessage().startswith("alpaca order found after")]
    assert len(found) == 1 and found[0].startswith(f"alpaca order found after {failure}"), found
    if action == "hang":
        assert "Read timed out. (read timeout=0.5)" in found[0]  # ALPACA_REQUEST_TIMEOUT_S, not the 5 s hang


def test_lost_request_is_retryable_and_the_retry_places_one_order(
    adapter: AlpacaAdapter, server: AlpacaTestServer
) -> None:
    server.inject(Fault(action="hang", delay_s=5.0, **POST))  # type: ignore[arg-type]
    with pytest.raises(AlpacaError) as info:
        adapter.submit(make_order(CID))
    assert info.value.retryable
    assert info.value.reason.startswith("alpaca_order_submit_failed ReadTimeout: ")
    assert server.stored_orders() == []
    adapter.submit(make_order(CID))
    assert server.received(CID) == 2
    assert len(server.stored_orders()) == 1


def test_order_landing_after_the_timeout_is_back_filled_on_retry(
    adapter: AlpacaAdapter, server: AlpacaTestServer
) -> None:
    # The broker is slow: our request times out, the lookup finds nothing yet, then the order lands.
    server.inject(Fault(action="delay", delay_s=0.8, **POST))  # type: ignore[arg-type]
    with pytest.raises(AlpacaError) as info:
        adapter.submit(make_order(CID))
    assert info.value.retryable
    deadline = time.monotonic() + 5
    while not server.stored_orders() and time.monotonic() < deadline:
        time.sleep(0.05)
    report = adapter.submit(make_order(CID))
    assert report.status == "filled"
    assert server.received(CID) == 1
    assert len(server.stored_orders()) == 1


def test_unreadable_success_response_is_resolved_by_lookup(
    adapter: AlpacaAdapter, server: AlpacaTestServer
) -> None:
    server.inject(Fault(status=200, body={"unexpected": True}, accept=True, **POST))  # type: ignore[arg-type]
    report = adapter.submit(make_order(CID))
    assert report.status == "filled"
    assert server.received(CID) == 1


def test_connection_refused_is_retryable(config: AlpacaConfig) -> None:
    dead = AlpacaTestServer()
    url = dead.base_url
    dead._server.server_close()  # nothing listens there any more
    adapter = AlpacaAdapter(config.model_copy(update={"base_url": url}))
    with pytest.raises(AlpacaError) as info:
        adapter.submit(make_order(CID))
    assert info.value.retryable
    assert info.value.reason.startswith("alpaca_order_submit_failed ConnectionError: ")


def test_secrets_never_reach_logs_reprs_errors_or_reports(
    adapter: AlpacaAdapter,
    server: AlpacaTestServer,
    config: AlpacaConfig,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)  # includes urllib3's request lines
    # Other suites may have disabled or silenced urllib3's logger; this test needs its request lines.
    urllib3_logger = logging.getLogger("urllib3")
    monkeypatch.setattr(urllib3_logger, "disabled", False)
    monkeypatch.setattr(urllib3_logger, "propagate", True)
    caplog.set_level(logging.DEBUG, logger="urllib3")
    server.inject(
        Fault(status=429, body={"code": 42910000, "message": "rate limit"}, **POST),  # type: ignore[arg-type]
        Fault(action="hang", delay_s=5.0, accept=True, **POST),  # type: ignore[arg-type]
    )
    texts: list[str] = []
    with pytest.raises(AlpacaError) as info:
        adapter.submit(make_order(CID))
    texts += [str(info.value), repr(info.value), repr(info.value.failure)]
    report = adapter.submit(make_order(CID))
    rejected = adapter.submit(make_order("x", qty="100000"))
    adapter.account_snapshot()
    adapter.cancel_all(OrderFirewallToken(issuer="tests"))
    wrong = AlpacaAdapter(config.model_copy(update={"api_key_id": config.api_secret_key}))
    with pytest.raises(AlpacaError) as unauthorized:
        wrong.account_snapshot()
    texts += [str(unauthorized.value), repr(unauthorized.value.failure)]
    texts += [repr(report), repr(rejected), repr(adapter), repr(adapter._client), repr(wrong)]
    texts += [repr(config), str(config), config.model_dump_json(), repr(config.model_dump())]
    texts.append(caplog.text)
    assert "alpaca order found after" in caplog.text  # the capture saw the adapter's logs
    assert "urllib3" in {r.name.split(".")[0] for r in caplog.records}
    for text in texts:
        assert SECRET not in text
        assert KEY_ID not in text
    assert report.qty == Decimal(10)
