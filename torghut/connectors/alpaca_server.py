"""A local Alpaca-protocol trading server for tests, the crash test and local runs.

It speaks enough of Alpaca's trading API v2 for alpaca-py's ``TradingClient`` (account, orders,
positions, clock), enforces ``client_order_id`` uniqueness like Alpaca, fills marketable orders at once,
and lets a test script the next responses (rate limits, server errors, non-JSON bodies, slow or lost
responses, with or without the order having been accepted first).

In process::

    with AlpacaTestServer() as base_url:
        client = TradingClient("key", "secret", url_override=base_url)

As a process (always bound to 127.0.0.1; ``--port 0`` picks a free port and prints it)::

    python -m torghut.connectors.alpaca_server --port 8711

Control API (no auth): ``POST /_control/faults`` (one fault object or a list), ``GET /_control/faults``,
``GET /_control/orders`` (every order stored plus ``received``: POST counts per ``client_order_id``),
``POST /_control/prices`` (``{"AAPL": "190.25"}``), ``POST /_control/reset``.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from torghut.connectors.local_http import HOST, KeepAliveHandler, LocalHttpServer

FaultAction = Literal["error", "delay", "hang", "drop"]

_ORDERS = "/v2/orders"
_BY_CLIENT_ID = "/v2/orders:by_client_order_id"
_OPEN_STATUSES = frozenset({"new", "accepted", "pending_new", "partially_filled"})
_SIDES = frozenset({"buy", "sell"})
_TYPES = frozenset({"market", "limit"})
_TIFS = frozenset({"day", "gtc", "opg", "cls", "ioc", "fok"})
_NOT_FOUND = {"code": 40410000, "message": "order not found"}
_UNIQUE = {"code": 40010001, "message": "client_order_id must be unique"}


@dataclass(frozen=True, slots=True)
class Fault:
    """One scripted response, consumed by the next request that matches ``method`` and ``path``.

    Attributes:
        action: ``error`` answers ``status`` with ``body``; ``delay`` sleeps ``delay_s`` then answers
            normally; ``hang`` sends nothing for ``delay_s`` (or until shutdown) and closes; ``drop``
            closes the connection at once without an answer.
        status: HTTP status for ``error``.
        body: JSON object, or a string sent as ``text/plain`` (a non-JSON error body).
        delay_s: Seconds to sleep (``delay``) or to hold the connection (``hang``).
        accept: Process the request first (the order is stored, the position moves), then misbehave.
        method: Only requests with this method match; None matches any.
        path: Only requests with this path (no query string) match; None matches any.
    """

    action: FaultAction = "error"
    status: int = 500
    body: Any = None
    delay_s: float = 0.0
    accept: bool = False
    method: str | None = None
    path: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fault:
        """Build a fault from its control-API JSON form (the field names above)."""
        return cls(**data)

    def matches(self, method: str, path: str) -> bool:
        """Return whether this fault applies to a request."""
        return (self.method is None or self.method == method) and (self.path is None or self.path == path)


class _Reply(Exception):
    """Internal: answer the current request with ``status`` and ``body`` (JSON)."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _dec(value: Any, field: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise _Reply(422, {"code": 40010001, "message": f"invalid {field}"}) from None
    if not number.is_finite() or number <= 0:
        raise _Reply(422, {"code": 40010001, "message": f"{field} must be > 0"})
    return number


class Brokerage:
    """The simulated account: orders, positions and cash, guarded by one lock."""

    def __init__(self, cash: Decimal, default_price: Decimal) -> None:
        self._lock = threading.Lock()
        self._initial_cash = cash
        self.default_price = default_price
        self.account_id = str(uuid.uuid4())
        self.reset()

    def reset(self) -> None:
        """Forget every order, position, price and fault."""
        with self._lock:
            self.cash = self._initial_cash
            self.prices: dict[str, Decimal] = {}
            self.orders: dict[str, dict[str, Any]] = {}
            self.by_client_id: dict[str, str] = {}
            self.received: Counter[str] = Counter()
            self.positions: dict[str, tuple[Decimal, Decimal]] = {}  # symbol -> (signed qty, avg price)
            self.faults: list[Fault] = []

    def set_prices(self, prices: dict[str, Any]) -> None:
        """Set the price market orders fill at, per symbol."""
        with self._lock:
            self.prices.update({symbol: _dec(price, "price") for symbol, price in prices.items()})

    def push_faults(self, faults: list[Fault]) -> None:
        """Append faults to the queue."""
        with self._lock:
            self.faults.extend(faults)

    def take_fault(self, method: str, path: str) -> Fault | None:
        """Remove and return the first queued fault matching the request, if any."""
        with self._lock:
            for index, fault in enumerate(self.faults):
                if fault.matches(method, path):
                    return self.faults.pop(index)
        return None

    def note_received(self, body: dict[str, Any]) -> None:
        """Count one ``POST /v2/orders`` under its ``client_order_id`` before anything else happens."""
        with self._lock:
            self.received[str(body.get("client_order_id"))] += 1

    def _price(self, symbol: str) -> Decimal:
        return self.prices.get(symbol, self.default_price)

    def place(self, body: Any) -> dict[str, Any]:
        """Validate and store an order; fill it at once when it is marketable."""
        if not isinstance(body, dict):
            raise _Reply(422, {"code": 40010001, "message": "order must be an object"})
        symbol = body.get("symbol")
        side, order_type, tif = body.get("side"), body.get("type"), body.get("time_in_force")
        if not isinstance(symbol, str) or not symbol:
            raise _Reply(422, {"code": 40010001, "message": "symbol is required"})
        if side not in _SIDES or order_type not in _TYPES or tif not in _TIFS:
            raise _Reply(422, {"code": 40010001, "message": "invalid side, type or time_in_force"})
        qty = _dec(body.get("qty"), "qty")
        if order_type == "limit" and body.get("limit_price") is None:
            raise _Reply(422, {"code": 40010001, "message": "limit_price is required"})
        limit = _dec(body["limit_price"], "limit_price") if order_type == "limit" else None
        client_id = str(body.get("client_order_id") or uuid.uuid4())
        if len(client_id) > 128:
            raise _Reply(422, {"code": 40010001, "message": "client_order_id must be at most 128 characters"})
        with self._lock:
            if client_id in self.by_client_id:
                raise _Reply(422, _UNIQUE)
            market = self._price(symbol)
            fill = self._fill_price(side, market, limit)
            if side == "buy" and fill is not None and qty * fill > self.cash:
                raise _Reply(403, {"code": 40310000, "message": "insufficient buying power"})
            now = _now_iso()
            order = {
                "id": str(uuid.uuid4()),
                "client_order_id": client_id,
                "created_at": now,
                "updated_at": now,
                "submitted_at": now,
                "filled_at": None,
                "canceled_at": None,
                "asset_id": str(uuid.uuid5(uuid.NAMESPACE_URL, symbol)),
                "symbol": symbol,
                "asset_class": "us_equity",
                "qty": str(qty),
                "filled_qty": "0",
                "filled_avg_price": None,
                "order_class": "simple",
                "order_type": order_type,
                "type": order_type,
                "side": side,
                "time_in_force": tif,
                "limit_price": None if limit is None else str(limit),
                "stop_price": None,
                "status": "new",
                "extended_hours": bool(body.get("extended_hours", False)),
                "legs": None,
            }
            if fill is not None:
                self._apply_fill(symbol, qty if side == "buy" else -qty, fill)
                order.update(status="filled", filled_at=now, filled_qty=str(qty), filled_avg_price=str(fill))
            self.orders[order["id"]] = order
            self.by_client_id[client_id] = order["id"]
            return dict(order)

    @staticmethod
    def _fill_price(side: str, market: Decimal, limit: Decimal | None) -> Decimal | None:
        if limit is None:
            return market
        marketable = limit >= market if side == "buy" else limit <= market
        return limit if marketable else None

    def _apply_fill(self, symbol: str, signed_qty: Decimal, price: Decimal) -> None:
        self.cash -= signed_qty * price
        old_qty, old_avg = self.positions.get(symbol, (Decimal(0), Decimal(0)))
        new_qty = old_qty + signed_qty
        if new_qty == 0:
            self.positions.pop(symbol, None)
            return
        if old_qty == 0 or (old_qty > 0) != (new_qty > 0):
            avg = price  # opened, or flipped through zero: the remainder was bought at this price
        elif abs(new_qty) > abs(old_qty):
            avg = (old_qty * old_avg + signed_qty * price) / new_qty
        else:
            avg = old_avg  # reduced: the entry price of what remains is unchanged
        self.positions[symbol] = (new_qty, avg)

    def order_by_id(self, order_id: str) -> dict[str, Any]:
        """Return one order or raise a 404 reply."""
        with self._lock:
            if order_id not in self.orders:
                raise _Reply(404, _NOT_FOUND)
            return dict(self.orders[order_id])

    def order_by_client_id(self, client_id: str) -> dict[str, Any]:
        """Return the order stored under a client order id or raise a 404 reply."""
        with self._lock:
            if client_id not in self.by_client_id:
                raise _Reply(404, _NOT_FOUND)
            return dict(self.orders[self.by_client_id[client_id]])

    def list_orders(self, status: str) -> list[dict[str, Any]]:
        """Return orders newest first, filtered by Alpaca's ``open``/``closed``/``all``."""
        with self._lock:
            orders = [dict(o) for o in reversed(self.orders.values())]
        if status == "all":
            return orders
        want_open = status == "open"
        return [o for o in orders if (o["status"] in _OPEN_STATUSES) == want_open]

    def cancel(self, order_id: str) -> None:
        """Cancel one open order; 404 when unknown, 422 when it is no longer cancelable."""
        with self._lock:
            order = self.orders.get(order_id)
            if order is None:
                raise _Reply(404, _NOT_FOUND)
            if order["status"] not in _OPEN_STATUSES:
                raise _Reply(422, {"code": 42210000, "message": "order is not cancelable"})
            now = _now_iso()
            order.update(status="canceled", canceled_at=now, updated_at=now)

    def cancel_all(self) -> list[dict[str, Any]]:
        """Cancel every open order; return Alpaca's multi-status list."""
        open_ids = [o["id"] for o in self.list_orders("open")]
        for order_id in open_ids:
            self.cancel(order_id)
        return [{"id": order_id, "status": 200, "body": None} for order_id in open_ids]

    def account(self) -> dict[str, Any]:
        """Return the account JSON (multiplier 1: buying power is cash)."""
        with self._lock:
            long_value = sum(
                (q * self._price(s) for s, (q, _) in self.positions.items() if q > 0), Decimal(0)
            )
            short_value = sum(
                (q * self._price(s) for s, (q, _) in self.positions.items() if q < 0), Decimal(0)
            )
            equity = self.cash + long_value + short_value
            return {
                "id": self.account_id,
                "account_number": "PA0TORGHUT01",
                "status": "ACTIVE",
                "currency": "USD",
                "cash": str(self.cash),
                "buying_power": str(max(self.cash, Decimal(0))),
                "equity": str(equity),
                "last_equity": str(equity),
                "portfolio_value": str(equity),
                "long_market_value": str(long_value),
                "short_market_value": str(short_value),
                "multiplier": "1",
                "shorting_enabled": True,
                "trading_blocked": False,
                "account_blocked": False,
            }

    def position_list(self) -> list[dict[str, Any]]:
        """Return positions like Alpaca: ``qty`` negative and ``side`` ``short`` for shorts."""
        with self._lock:
            rows = []
            for symbol, (qty, avg) in sorted(self.positions.items()):
                price = self._price(symbol)
                rows.append(
                    {
                        "asset_id": str(uuid.uuid5(uuid.NAMESPACE_URL, symbol)),
                        "symbol": symbol,
                        "exchange": "NASDAQ",
                        "asset_class": "us_equity",
                        "avg_entry_price": str(avg),
                        "qty": str(qty),
                        "qty_available": str(qty),
                        "side": "long" if qty > 0 else "short",
                        "market_value": str(qty * price),
                        "cost_basis": str(qty * avg),
                        "unrealized_pl": str(qty * (price - avg)),
                        "current_price": str(price),
                    }
                )
            return rows

    def control_orders(self) -> dict[str, Any]:
        """Return every stored order and the POST counts per client order id."""
        with self._lock:
            return {"orders": [dict(o) for o in self.orders.values()], "received": dict(self.received)}


def _clock() -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "timestamp": now.isoformat(),
        "is_open": True,
        "next_open": (now + timedelta(days=1)).isoformat(),
        "next_close": (now + timedelta(hours=1)).isoformat(),
    }


class _Server(LocalHttpServer):
    allow_reuse_address = True

    def __init__(self, port: int, brokerage: Brokerage, key_id: str | None, secret: str | None) -> None:
        super().__init__(port, _Handler)
        self.brokerage = brokerage
        self.key_id = key_id
        self.secret = secret
        self.stopping = threading.Event()


class _Handler(KeepAliveHandler):  # keep-alive: alpaca-py reuses one connection
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests capture logs

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        parts = urlsplit(self.path)
        path, query = parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            self._send(400, {"code": 40010000, "message": "request body is not JSON"})
            return
        if path.startswith("/_control/"):
            self._respond(lambda: self._control(method, path, body))
            return
        if not self.headers.get("APCA-API-KEY-ID") or not self.headers.get("APCA-API-SECRET-KEY"):
            self._send(401, {"code": 40110000, "message": "request is not authorized"})
            return
        if (self.server.key_id, self.server.secret) != (None, None) and (
            self.headers["APCA-API-KEY-ID"],
            self.headers["APCA-API-SECRET-KEY"],
        ) != (self.server.key_id, self.server.secret):
            self._send(401, {"code": 40110000, "message": "request is not authorized"})
            return
        brokerage = self.server.brokerage
        if method == "POST" and path == _ORDERS and isinstance(body, dict):
            brokerage.note_received(body)
        fault = brokerage.take_fault(method, path)
        if fault is None:
            self._respond(lambda: self._api(method, path, query, body))
        else:
            self._misbehave(fault, lambda: self._api(method, path, query, body))

    def _misbehave(self, fault: Fault, process: Callable[[], tuple[int, Any]]) -> None:
        if fault.action == "delay":
            self.server.stopping.wait(fault.delay_s)
            self._respond(process)
            return
        if fault.accept:
            try:
                process()
            except _Reply:
                pass  # the request was refused anyway; still misbehave as scripted
        if fault.action == "error":
            self._send(fault.status, fault.body)
            return
        if fault.action == "hang":
            self.server.stopping.wait(fault.delay_s or None)
        self.close_connection = True  # hang and drop: no answer at all

    def _respond(self, process: Callable[[], tuple[int, Any]]) -> None:
        try:
            status, payload = process()
        except _Reply as reply:
            status, payload = reply.status, reply.body
        self._send(status, payload)

    def _send(self, status: int, payload: Any) -> None:
        if status == 204:
            data, content_type = b"", "application/json"
        elif isinstance(payload, str):
            data, content_type = payload.encode(), "text/plain; charset=utf-8"
        else:
            data, content_type = json.dumps(payload).encode(), "application/json"
        try:
            self.send_body(status, data, {"Content-Type": content_type})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (timed out) first

    def _api(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        brokerage = self.server.brokerage
        routes: dict[tuple[str, str], Callable[[], tuple[int, Any]]] = {
            ("GET", "/v2/account"): lambda: (200, brokerage.account()),
            ("GET", "/v2/positions"): lambda: (200, brokerage.position_list()),
            ("GET", "/v2/clock"): lambda: (200, _clock()),
            ("GET", _BY_CLIENT_ID): lambda: (
                200,
                brokerage.order_by_client_id(query.get("client_order_id", "")),
            ),
            ("POST", _ORDERS): lambda: (200, brokerage.place(body)),
            ("GET", _ORDERS): lambda: (200, brokerage.list_orders(query.get("status", "open"))),
            ("DELETE", _ORDERS): lambda: (207, brokerage.cancel_all()),
        }
        route = routes.get((method, path))
        if route is not None:
            return route()
        order_id = path.removeprefix(_ORDERS + "/")
        if order_id != path and method == "GET":
            return 200, brokerage.order_by_id(order_id)
        if order_id != path and method == "DELETE":
            brokerage.cancel(order_id)
            return 204, None
        raise _Reply(404, {"code": 40410000, "message": "endpoint not found"})

    def _control(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        brokerage = self.server.brokerage
        if path == "/_control/faults" and method == "POST":
            items = body if isinstance(body, list) else [body]
            try:
                brokerage.push_faults([Fault.from_json(item) for item in items])
            except TypeError as exc:
                raise _Reply(400, {"message": f"bad fault: {exc}"}) from None
            return 200, {"queued": len(items)}
        if path == "/_control/faults" and method == "GET":
            return 200, [asdict(f) for f in brokerage.faults]
        if path == "/_control/orders" and method == "GET":
            return 200, brokerage.control_orders()
        if path == "/_control/prices" and method == "POST":
            brokerage.set_prices(body)
            return 200, {k: str(v) for k, v in brokerage.prices.items()}
        if path == "/_control/reset" and method == "POST":
            brokerage.reset()
            return 200, {"reset": True}
        raise _Reply(404, {"message": "unknown control endpoint"})


class AlpacaTestServer:
    """Run the server on a background thread; ``with`` yields the base URL for ``url_override``.

    Args:
        port: TCP port on 127.0.0.1; 0 picks a free one.
        cash: Starting cash (and buying power).
        default_price: Fill price of market orders for symbols without a price set.
        key_id: When set together with ``secret``, requests must carry exactly these credentials.
        secret: See ``key_id``.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        cash: Decimal = Decimal(100_000),
        default_price: Decimal = Decimal(100),
        key_id: str | None = None,
        secret: str | None = None,
    ) -> None:
        self.brokerage = Brokerage(cash, default_price)
        self._server = _Server(port, self.brokerage, key_id, secret)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """The URL to pass as ``url_override`` (no ``/v2``)."""
        return f"http://{HOST}:{self._server.port}"

    def start(self) -> str:
        """Start serving on a daemon thread; return the base URL."""
        self._thread = self._server.serve_in_thread(0.02, "alpaca-test-server")
        return self.base_url

    def stop(self) -> None:
        """Stop serving, release hanging handlers and close the socket."""
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def inject(self, *faults: Fault) -> None:
        """Queue faults for the next matching requests."""
        self.brokerage.push_faults(list(faults))

    def received(self, client_order_id: str) -> int:
        """Return how many ``POST /v2/orders`` carried this client order id."""
        return self.brokerage.control_orders()["received"].get(client_order_id, 0)  # type: ignore[no-any-return]

    def stored_orders(self) -> list[dict[str, Any]]:
        """Return every order the server accepted, oldest first."""
        return self.brokerage.control_orders()["orders"]  # type: ignore[no-any-return]

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted; print the base URL on the first line of stdout."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--cash", type=Decimal, default=Decimal(100_000))
    parser.add_argument("--price", type=Decimal, default=Decimal(100), help="default fill price")
    args = parser.parse_args(argv)
    # SIGINT and SIGTERM stop the server, even when started from a shell that ignores SIGINT for
    # background jobs (an inherited SIG_IGN would otherwise make it unstoppable but by SIGKILL).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    server = AlpacaTestServer(args.port, cash=args.cash, default_price=args.price)
    print(server.base_url, flush=True)  # the first line of stdout is the CLI's contract
    try:
        server._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server._server.server_close()


if __name__ == "__main__":
    main()
