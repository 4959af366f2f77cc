"""``HttpFrontProcess``: the chdb HTTP front as a child process, to stop it hard and start it again.

A fault test kills the front with SIGKILL (ClickHouse gone, no clean-up) and starts it again on the same
data directory and port; clients reconnect on their own. The front itself is
:mod:`torghut.connectors.clickhouse.http_front`.
"""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from torghut.connectors.local_http import HOST


def _request(port: int, method: str, path: str, body: bytes | None = None, timeout_s: float = 2.0) -> bytes:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout_s)
    try:
        conn.request(method, path, body=body)
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            msg = f"{method} {path} answered {response.status}: {data[:200]!r}"
            raise RuntimeError(msg)
        return data
    finally:
        conn.close()


class HttpFrontProcess:
    """The front as a child process, to stop it the hard way (SIGKILL) and start it again on the same port.

    Example (it starts a real process, so it is not a doctest; ``tests/integration/test_fault_clickhouse.py``
    runs it)::

        front = HttpFrontProcess(Path("/tmp/ch"), port=18123).start()
        front.kill()  # an outage
        front.start()
    """

    def __init__(self, path: Path, port: int, *, log_path: Path | None = None) -> None:
        """Configure it: the chdb data directory, the port on 127.0.0.1 and where its output goes."""
        self.path, self.port, self._log_path = path, port, log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The process id while it runs."""
        return None if self._process is None else self._process.pid

    def command(self) -> list[str]:
        """The command line that starts the front."""
        module = "torghut.connectors.clickhouse.http_front"
        return [sys.executable, "-m", module, "--path", str(self.path), "--port", str(self.port)]

    def start(self, timeout_s: float = 30.0) -> HttpFrontProcess:
        """Start the process and wait until ``/ping`` answers.

        Raises:
            RuntimeError: when it exits or does not answer within ``timeout_s``.
        """
        self._log = open(self._log_path, "ab") if self._log_path else None  # closed in _release
        out: Any = self._log if self._log is not None else subprocess.DEVNULL
        self._process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=out)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                self.stop()
                msg = f"the chdb HTTP front exited with code {code} on start ({' '.join(self.command())})"
                raise RuntimeError(msg)
            try:
                _request(self.port, "GET", "/ping", timeout_s=0.5)
            except (OSError, RuntimeError):
                time.sleep(0.05)
                continue
            return self
        self.stop()
        msg = f"the chdb HTTP front did not answer on {HOST}:{self.port} within {timeout_s}s"
        raise RuntimeError(msg)

    def kill(self) -> None:
        """SIGKILL the process (the engine stops with no chance to clean up) and reap it."""
        if self._process is not None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(10)
        self._release()

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM the process, SIGKILL it after ``timeout_s``."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout_s)
        self._release()

    def delay_next(self, delay_s: float, queries: int = 1) -> None:
        """Hold the answers to the next ``queries`` statements for ``delay_s`` seconds (the test hook)."""
        body = json.dumps({"delay_s": delay_s, "queries": queries}).encode()
        _request(self.port, "POST", "/_control/delay", body)

    def stats(self) -> dict[str, int]:
        """Statements answered, failed and delayed since the process started."""
        return dict(json.loads(_request(self.port, "GET", "/_control/stats")))

    def _release(self) -> None:
        self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None
