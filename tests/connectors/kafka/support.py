"""TaSignal JSON records (torghut's Avro ``torghut.ta.TaSignal`` envelope as JSON) and Kafka helpers."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from confluent_kafka import Consumer, Producer

from torghut.connectors.tansu import TansuBroker, free_port

SYMBOLS = ("AAPL", "MSFT", "NVDA", "TSLA", "AMZN", "META", "GOOG")


def ta_signal(n: int) -> dict[str, Any]:
    """The n-th TaSignal envelope: nested blocks as in ``ta-signals.avsc``."""
    symbol = SYMBOLS[n % len(SYMBOLS)]
    second = n // len(SYMBOLS)
    event_ts = f"2026-02-19T14:{30 + second // 60:02d}:{second % 60:02d}.000Z"
    return {
        "ingest_ts": event_ts.replace(".000Z", ".250Z"),
        "event_ts": event_ts,
        "symbol": symbol,
        "seq": second,
        "feature_schema_version": "3.0.0",
        "is_final": True,
        "signal_quality_flag": None,
        "source": "ta",
        "window": {"size": "PT1S", "step": "PT1S", "start": event_ts, "end": event_ts},
        "macd": {"macd": 0.01 * n, "signal": 0.01, "hist": 0.01 * n - 0.01},
        "ema": {"ema12": 187.0, "ema26": 186.5},
        "rsi14": 58.2,
        "boll": {"mid": 187.0, "upper": 189.0, "lower": 185.0},
        "vwap": {"session": 187.1, "w5m": 187.2},
        "imbalance": {"spread": 0.02, "bid_px": 187.09, "ask_px": 187.11, "bid_sz": 100, "ask_sz": 200},
        "vol_realized": {"w60s": 0.0012},
        "version": 1,
    }


def produce(
    bootstrap: str,
    topic: str,
    records: list[tuple[bytes | None, bytes | None]],
    *,
    flush_every: int | None = None,
) -> None:
    """Produce ``(key, value)`` records and wait for every delivery, failing on the first error.

    ``flush_every`` waits after every so many records, which writes the topic in small record batches.
    """
    failures: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    for n, (key, value) in enumerate(records, 1):
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        if flush_every and n % flush_every == 0:
            assert producer.flush(30) == 0
    assert producer.flush(30) == 0
    assert failures == []


def consume(
    bootstrap: str, topic: str, count: int, timeout_s: float = 30.0, *, distinct: bool = False
) -> list[tuple[bytes, bytes, int]]:
    """Consume from the start of ``topic`` until ``count`` records (``distinct``: distinct ones) arrived.

    Returns ``(key, value, partition)`` per record read, duplicates included.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
        }
    )
    consumer.subscribe([topic])
    out: list[tuple[bytes, bytes, int]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(set(out) if distinct else out) < count and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.5):
                assert msg.error() is None, msg.error()
                out.append((msg.key(), msg.value(), msg.partition()))
    finally:
        consumer.close()
    return out


def encode(record: dict[str, Any]) -> bytes:
    """JSON bytes as a TaSignal producer would send them."""
    return json.dumps(record).encode()


class ObjectStore:
    """The S3-compatible store of ``object_store.py`` in its own process, for a restartable tansu."""

    def __init__(self) -> None:
        self.port = free_port()
        self._process: subprocess.Popen[str] | None = None

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT`` for :class:`~torghut.connectors.tansu.TansuBroker`'s ``s3_endpoint``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ObjectStore:
        """Start the store and wait until it listens."""
        script = Path(__file__).with_name("object_store.py")
        command = [sys.executable, str(script), "--port", str(self.port)]
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if line.strip() != "ready":
            self.stop()
            msg = f"object store did not start: {' '.join(command)} printed {line!r}"
            raise RuntimeError(msg)
        return self

    def stop(self) -> None:
        """Stop the store by the PID it was started with."""
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            process.wait(5)
            if process.stdout is not None:
                process.stdout.close()


class BrokerRestart:
    """Kill a broker once ``ready()`` holds and start it again, same port and data, ``outage_s`` later.

    Used as a context manager around the flow under test; leaving it waits for the restart, so the broker
    runs again whatever the flow did (and the fixture stops it). ``progress()`` is read at the kill and at
    the restart (``progress_at_kill``, ``progress_at_restart``).
    """

    def __init__(
        self,
        broker: TansuBroker,
        ready: Callable[[], bool],
        outage_s: float = 2.5,
        progress: Callable[[], int] = lambda: 0,
    ) -> None:
        self._broker = broker
        self._ready = ready
        self._outage_s = outage_s
        self._progress = progress
        self.progress_at_kill: int | None = None
        self.progress_at_restart: int | None = None
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name="broker-restart", daemon=True)
        self.killed_at: float | None = None
        self.restarted_at: float | None = None
        self.error: BaseException | None = None

    def _run(self) -> None:
        while not self._ready():
            if self._cancel.wait(0.005):
                return
        self._broker.kill()
        self.killed_at = time.monotonic()
        self.progress_at_kill = self._progress()
        time.sleep(self._outage_s)
        self.progress_at_restart = self._progress()
        try:
            self._broker.start()
        except BaseException as exc:  # reported by the test after the flow
            self.error = exc
        self.restarted_at = time.monotonic()

    def __enter__(self) -> BrokerRestart:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._cancel.set()
        self._thread.join(30)
