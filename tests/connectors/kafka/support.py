"""TaSignal JSON records (torghut's Avro ``torghut.ta.TaSignal`` envelope as JSON) and Kafka helpers."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, Producer

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


def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes | None]]) -> None:
    """Produce ``(key, value)`` records and wait for every delivery, failing on the first error."""
    failures: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    for key, value in records:
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(30) == 0
    assert failures == []


def consume(
    bootstrap: str, topic: str, count: int, timeout_s: float = 30.0
) -> list[tuple[bytes, bytes, int]]:
    """Consume ``count`` records from the start of ``topic``: ``(key, value, partition)`` each."""
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
        while len(out) < count and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.5):
                assert msg.error() is None, msg.error()
                out.append((msg.key(), msg.value(), msg.partition()))
    finally:
        consumer.close()
    return out


def encode(record: dict[str, Any]) -> bytes:
    """JSON bytes as a TaSignal producer would send them."""
    return json.dumps(record).encode()
