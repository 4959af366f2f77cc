"""FeatureView restricts reads to declared features; the network guard blocks sockets while evaluating."""

from __future__ import annotations

import socket
import threading
from decimal import Decimal

import pytest

from tests.strategies.factories import values
from torghut.strategies.guard import (
    NetworkAccessBlocked,
    begin_evaluation,
    blocking_network,
    end_evaluation,
    install_network_guard,
    network_guard_installed,
)
from torghut.strategies.view import FeatureView, UndeclaredFeatureError


class TestFeatureView:
    def test_declared_reads(self) -> None:
        view = FeatureView(values(price="10.5", rsi14=40, staleness_ms=12), ("price", "staleness_ms"))
        assert view["price"] == Decimal("10.5")
        assert view.decimal("staleness_ms") == Decimal(12)
        assert list(view) == ["price", "staleness_ms"]
        assert len(view) == 2
        assert dict(view.items()) == {"price": Decimal("10.5"), "staleness_ms": 12}

    @pytest.mark.parametrize("read", ["getitem", "get", "decimal"])
    def test_undeclared_read_raises(self, read: str) -> None:
        view = FeatureView(values(price=1, rsi14=40), ("price",))
        with pytest.raises(UndeclaredFeatureError, match="rsi14"):
            if read == "getitem":
                view["rsi14"]
            else:
                getattr(view, read)("rsi14")
        assert "rsi14" not in view

    def test_undeclared_is_not_a_key_error(self) -> None:
        assert not issubclass(UndeclaredFeatureError, KeyError)

    def test_missing_declared_value(self) -> None:
        view = FeatureView({"price": None}, ("price", "ema12"))
        assert view.decimal("price") is None
        assert view.get("ema12") is None
        with pytest.raises(KeyError):
            view["ema12"]

    def test_decimal_coerces_like_torghut(self) -> None:
        view = FeatureView({"price": 1.5, "ema12": "x", "ema26": True}, ("price", "ema12", "ema26"))
        assert view.decimal("price") == Decimal("1.5")
        assert view.decimal("ema12") is None
        assert view.decimal("ema26") is None


class TestNetworkGuard:
    def test_install_is_idempotent(self) -> None:
        install_network_guard()
        connect = socket.socket.connect
        install_network_guard()
        assert socket.socket.connect is connect
        assert network_guard_installed()

    @pytest.mark.parametrize(
        "attempt",
        [
            lambda: socket.create_connection(("127.0.0.1", 9), timeout=0.1),
            lambda: socket.getaddrinfo("localhost", 80),
            lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).connect(("127.0.0.1", 9)),
            lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).connect_ex(("127.0.0.1", 9)),
            lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("127.0.0.1", 9)),
        ],
        ids=["create_connection", "getaddrinfo", "connect", "connect_ex", "sendto"],
    )
    def test_blocked_while_evaluating(self, attempt: object) -> None:
        with blocking_network(), pytest.raises(NetworkAccessBlocked):
            attempt()  # type: ignore[operator]

    def test_swallowed_attempt_is_still_reported(self) -> None:
        install_network_guard()
        begin_evaluation()
        try:
            socket.getaddrinfo("localhost", 80)
        except Exception:
            pass
        violation = end_evaluation()
        assert isinstance(violation, NetworkAccessBlocked)
        begin_evaluation()
        assert end_evaluation() is None

    def test_allowed_outside_evaluation_and_in_other_threads(self) -> None:
        install_network_guard()
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        results: list[int] = []

        def other_thread() -> None:
            with socket.socket() as client:
                results.append(client.connect_ex(("127.0.0.1", port)))

        with blocking_network():
            thread = threading.Thread(target=other_thread)
            thread.start()
            thread.join()
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            pass
        server.close()
        assert results == [0]
