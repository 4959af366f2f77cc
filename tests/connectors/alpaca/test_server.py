"""The local Alpaca-protocol server over raw HTTP, and as a module CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

import pytest
from requests.adapters import HTTPAdapter

from tests.connectors.alpaca.support import KEY_ID, SECRET
from tests.procs import first_line
from torghut.connectors.alpaca_server import AlpacaTestServer, _Handler

pytestmark = pytest.mark.integration

AUTH = {"APCA-API-KEY-ID": KEY_ID, "APCA-API-SECRET-KEY": SECRET}
T = TypeVar("T")


def call(
    base: str, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        base + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(headers or AUTH)},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            return err.code, json.loads(raw)
        except json.JSONDecodeError:
            return err.code, raw.decode()


def order(cid: str, **extra: Any) -> dict[str, Any]:
    return {
        "symbol": "AAPL",
        "qty": "2",
        "side": "buy",
        "type": "market",
        "time_in_force": "day",
        "client_order_id": cid,
        **extra,
    }


def test_requests_without_credentials_are_401(server: AlpacaTestServer) -> None:
    status, body = call(server.base_url, "GET", "/v2/account", headers={"X": "y"})
    assert status == 401
    assert body["code"] == 40110000
    status, _ = call(server.base_url, "GET", "/v2/account", headers={**AUTH, "APCA-API-SECRET-KEY": "wrong"})
    assert status == 401


def test_duplicate_client_order_id_is_422_like_alpaca(server: AlpacaTestServer) -> None:
    status, first = call(server.base_url, "POST", "/v2/orders", order("dup"))
    assert status == 200
    assert first["status"] == "filled"
    status, body = call(server.base_url, "POST", "/v2/orders", order("dup"))
    assert (status, body) == (422, {"code": 40010001, "message": "client_order_id must be unique"})
    _, control = call(server.base_url, "GET", "/_control/orders")
    assert control["received"] == {"dup": 2}
    assert [o["id"] for o in control["orders"]] == [first["id"]]


def test_order_lookups_and_status_filter(server: AlpacaTestServer) -> None:
    base = server.base_url
    status, body = call(base, "GET", "/v2/orders:by_client_order_id?client_order_id=nope")
    assert (status, body["code"]) == (404, 40410000)
    _, filled = call(base, "POST", "/v2/orders", order("f1"))
    _, resting = call(base, "POST", "/v2/orders", order("r1", type="limit", limit_price="50"))
    assert resting["status"] == "new"
    assert [o["id"] for o in call(base, "GET", "/v2/orders")[1]] == [resting["id"]]  # default: open
    assert [o["id"] for o in call(base, "GET", "/v2/orders?status=closed")[1]] == [filled["id"]]
    assert len(call(base, "GET", "/v2/orders?status=all")[1]) == 2
    assert call(base, "GET", f"/v2/orders/{filled['id']}")[1]["client_order_id"] == "f1"
    assert call(base, "GET", "/v2/orders:by_client_order_id?client_order_id=r1")[1]["id"] == resting["id"]
    assert call(base, "DELETE", f"/v2/orders/{resting['id']}") == (204, None)
    assert call(base, "DELETE", f"/v2/orders/{resting['id']}")[0] == 422  # already canceled
    assert call(base, "DELETE", "/v2/orders/unknown")[0] == 404
    assert call(base, "DELETE", "/v2/orders") == (207, [])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"qty": "0"}, "qty must be > 0"),
        ({"qty": "abc"}, "invalid qty"),
        ({"side": "hold"}, "invalid side, type or time_in_force"),
        ({"type": "limit"}, "limit_price is required"),
        ({"symbol": ""}, "symbol is required"),
    ],
)
def test_invalid_orders_are_422(server: AlpacaTestServer, extra: dict[str, str], message: str) -> None:
    status, body = call(server.base_url, "POST", "/v2/orders", order("bad", **extra))
    assert (status, body) == (422, {"code": 40010001, "message": message})


def test_positions_and_account_follow_fills(server: AlpacaTestServer) -> None:
    base = server.base_url
    call(base, "POST", "/_control/prices", {"AAPL": "10"})
    call(base, "POST", "/v2/orders", order("b1", qty="4"))
    call(base, "POST", "/v2/orders", order("b2", qty="4", type="limit", limit_price="12"))  # fills at 12
    call(base, "POST", "/v2/orders", order("s1", qty="10", side="sell"))  # flips to short 2
    (position,) = call(base, "GET", "/v2/positions")[1]
    assert (position["qty"], position["side"], position["avg_entry_price"]) == ("-2", "short", "10")
    account = call(base, "GET", "/v2/account")[1]
    assert account["cash"] == str(100_000 - 40 - 48 + 100)
    assert account["equity"] == str(100_000 - 40 - 48 + 100 - 20)
    assert call(base, "GET", "/v2/clock")[1]["is_open"] is True


def test_faults_through_the_control_api(server: AlpacaTestServer) -> None:
    base = server.base_url
    faults = [
        {"status": 503, "body": "down", "method": "GET", "path": "/v2/account"},
        {"action": "error", "status": 429, "body": {"code": 42910000, "message": "slow down"}},
    ]
    assert call(base, "POST", "/_control/faults", faults) == (200, {"queued": 2})
    assert len(call(base, "GET", "/_control/faults")[1]) == 2
    assert call(base, "POST", "/v2/orders", order("o1"))[0] == 429  # the unmatched-path fault
    assert call(base, "GET", "/v2/account") == (503, "down")
    assert call(base, "GET", "/v2/account")[0] == 200
    assert call(base, "POST", "/_control/faults", {"nonsense": 1})[0] == 400
    assert call(base, "POST", "/_control/reset", {}) == (200, {"reset": True})
    assert call(base, "GET", "/_control/orders")[1] == {"orders": [], "received": {}}


def test_alpaca_py_keeps_one_connection_with_nagle_off_on_both_ends(
    server: AlpacaTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Keep-alive without TCP_NODELAY stalls every call ~40 ms on delayed ACKs (Nagle's algorithm holds
    # the body back behind the headers). The figure itself: benchmarks/bench_round_trips.py.
    from alpaca.trading.client import TradingClient

    accepted: list[int] = []  # TCP_NODELAY of each connection the server accepted
    setup = _Handler.setup

    def recording_setup(handler: _Handler) -> None:
        setup(handler)
        accepted.append(handler.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    monkeypatch.setattr(_Handler, "setup", recording_setup)
    assert server.base_url.startswith("http://127.0.0.1:")
    client = TradingClient(KEY_ID, SECRET, paper=True, url_override=server.base_url)
    client.get_clock()
    for _ in range(30):
        client.get_account()
    assert len(accepted) == 1, "alpaca-py's calls did not share one kept-alive connection"
    assert accepted[0] != 0, "the server's connection has Nagle's algorithm on (no TCP_NODELAY)"
    adapter = client._session.get_adapter(server.base_url)
    assert isinstance(adapter, HTTPAdapter)
    pools = adapter.poolmanager.pools
    (pool,) = [pools[key] for key in pools.keys()]
    assert pool.num_connections == 1 and pool.pool is not None
    (connection,) = [c for c in pool.pool.queue if c is not None]  # the idle kept-alive connection
    assert connection.sock is not None
    assert connection.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0  # the client's end


def _within(seconds: float, call: Callable[[], T]) -> T:
    """``call()``'s result, failing the test if it has not returned after ``seconds`` (a hang guard)."""
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(call).result(timeout=seconds)
    except FutureTimeout:
        pytest.fail(f"no answer within {seconds} s")
    finally:
        pool.shutdown(wait=False)


def test_module_cli_serves_alpaca_py(tmp_path: Any) -> None:
    from alpaca.trading.client import TradingClient
    from alpaca.trading.models import TradeAccount

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "torghut.connectors.alpaca_server", "--port", "0", "--price", "42"],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base_url = first_line(proc.stdout, 60, "python -m torghut.connectors.alpaca_server")
        assert base_url.startswith("http://127.0.0.1:")
        client = TradingClient("k", "s", paper=True, url_override=base_url)
        account = _within(30, client.get_account)
        assert isinstance(account, TradeAccount)
        assert account.status.value == "ACTIVE"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    assert proc.returncode == 0
