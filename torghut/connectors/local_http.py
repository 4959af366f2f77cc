"""The HTTP plumbing of the local stand-ins for remote services: a threaded server on 127.0.0.1.

The chdb HTTP front (ClickHouse's HTTP interface) and the Alpaca-protocol test server both answer
clients that keep one connection alive and send small requests: HTTP/1.1 keep-alive and TCP_NODELAY
are what make a round trip take under a millisecond instead of ~40 ms (Nagle's algorithm holding a
small answer back until the client's delayed ACK).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOST = "127.0.0.1"
"""The only interface the local servers bind: they are for tests and local runs, never exposed."""


class LocalHttpServer(ThreadingHTTPServer):
    """A server on ``127.0.0.1:port`` (0: any free port), one daemon thread per connection."""

    daemon_threads = True

    def __init__(self, port: int, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__((HOST, port), handler)

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self.server_address[1])

    def serve_in_thread(self, poll_interval_s: float, name: str) -> threading.Thread:
        """Serve from a new daemon thread (stop with ``shutdown()``) and return the started thread."""
        thread = threading.Thread(target=self.serve_forever, args=(poll_interval_s,), name=name, daemon=True)
        thread.start()
        return thread


class KeepAliveHandler(BaseHTTPRequestHandler):
    """A request handler speaking HTTP/1.1 keep-alive with TCP_NODELAY on every connection."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def send_body(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        """Answer ``status`` with ``headers``, a ``Content-Length`` and ``body`` (keep-alive needs it)."""
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
