"""The replay worker process's start-up: it waits for the lower-indexed processes to listen."""

from __future__ import annotations

import socket
import time

from torghut.dataflow.replay import free_addresses
from torghut.dataflow.worker import listening_ports, wait_for_listeners


def test_a_listening_port_is_seen_and_waited_for_without_delay() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
        ports = listening_ports()
        assert ports is not None and port not in ports  # bound, not yet listening
        server.listen()
        assert port in (listening_ports() or set())
        started = time.monotonic()
        assert wait_for_listeners([f"127.0.0.1:{port}"], timeout_s=5)
        assert time.monotonic() - started < 1


def test_waiting_for_a_port_nobody_listens_on_gives_up_at_the_timeout() -> None:
    (address,) = free_addresses(1)
    started = time.monotonic()
    assert not wait_for_listeners([address], timeout_s=0.2)
    assert 0.2 <= time.monotonic() - started < 2
    assert wait_for_listeners([])  # the first process waits for nobody
