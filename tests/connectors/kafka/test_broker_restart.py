"""Fault tests: the tansu broker is killed in the middle of a flow and started again on the same data.

The broker keeps its data in an S3-compatible store of its own (``restartable_broker``), so what it had
acknowledged before the kill is still there afterwards and every record can be accounted for.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import defaultdict
from typing import Any

import pytest
from bytewax import operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from tests.connectors.kafka.support import SYMBOLS, BrokerRestart, consume, encode, produce, ta_signal
from torghut.connectors.kafka import (
    ConsumerHealth,
    DeliveryPolicy,
    JsonKafkaSink,
    KafkaSignalItem,
    consumer_config,
    signal_input,
)
from torghut.connectors.tansu import TansuBroker
from torghut.contracts import DeadLetter, canonical_json
from torghut.metrics import REGISTRY

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

OUTAGE_S = 2.5
SMALL_FETCHES = {
    # Read a few record batches per fetch, so the consumer still needs the broker after the restart
    # (by default it would have prefetched the whole topic before the kill).
    "queued.max.messages.kbytes": 16,
    "fetch.queue.backoff.ms": 5,
    "fetch.message.max.bytes": 16_000,
    "fetch.max.bytes": 32_000,
    "message.max.bytes": 32_000,
}


def _sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _consumer_errors() -> float:
    return sum(
        sample.value
        for family in REGISTRY.collect()
        if family.name == "torghut_kafka_errors"
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels["role"] == "consumer"
    )


def test_the_sink_rides_out_a_broker_restart_without_losing_a_record(
    restartable_broker: TansuBroker, caplog: pytest.LogCaptureFixture
) -> None:
    broker = restartable_broker
    topic = f"intents-{uuid.uuid4().hex[:8]}"
    broker.create_topics([topic], partitions=3)
    n = 2_000
    items = [{"symbol": SYMBOLS[i % len(SYMBOLS)], "seq": i, "target_notional": "100.50"} for i in range(n)]
    passed = [0]

    def paced(item: dict[str, Any]) -> dict[str, Any]:
        # 20 batches over ~3 s: the broker dies in the middle of the stream, not before or after it.
        passed[0] += 1
        if passed[0] % 100 == 0:
            time.sleep(0.15)
        return item

    flow = Dataflow("kafka_sink_restart")
    stream = op.map("paced", op.input("in", flow, TestingSource(items, batch_size=100)), paced)
    policy = DeliveryPolicy(max_attempts=30, backoff_initial_s=0.2, backoff_max_s=1.0, delivery_timeout_s=1.0)
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # the sink's backoff, recorded
        waits.append(seconds)
        time.sleep(seconds)

    sink = JsonKafkaSink([broker.bootstrap], topic, policy=policy, sleep=sleep)
    assert sink._config["message.timeout.ms"] == 1000  # every attempt is bounded by delivery_timeout_s
    op.output("out", stream, sink)
    retries = {"sink": f"kafka:{topic}"}
    before = _sample("torghut_sink_retries_total", retries)

    with caplog.at_level(logging.INFO, logger="torghut.connectors.kafka"):
        restart = BrokerRestart(broker, lambda: passed[0] >= n // 3, OUTAGE_S, progress=lambda: passed[0])
        with restart:
            run_main(flow)
    assert restart.error is None
    assert restart.progress_at_restart is not None
    assert restart.progress_at_restart < n  # records were still to be written when the broker came back

    back = consume(broker.bootstrap, topic, n, distinct=True)
    values = [value for _, value, _ in back]
    assert set(values) == {canonical_json(item).encode() for item in items}  # nothing lost
    # At-least-once: only records whose acknowledgement the kill swallowed can appear twice, and a
    # duplicate is the same bytes under the same key.
    assert len(values) - len(set(values)) <= 100
    for key, value, _ in back:
        assert key.decode() == json.loads(value)["symbol"]

    # The sink waited out the outage by the policy's backoff, one wait per retry: each batch that had to
    # retry waited 0.2, 0.4, 0.8, 1.0, 1.0, ... s (and recovered before its 30 attempts were spent).
    assert waits, "the sink never retried: the broker was not down while it wrote"
    assert _sample("torghut_sink_retries_total", retries) - before == len(waits)
    schedule = list(policy.delays())
    assert waits[0] == schedule[0], waits
    runs: list[list[float]] = []
    for wait in waits:
        if wait == schedule[0]:  # a batch's first retry
            runs.append([])
        runs[-1].append(wait)
    assert all(run == schedule[: len(run)] for run in runs), waits
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        w.startswith(f"Kafka sink {topic!r}: ") and "not delivered on attempt 1 of 30" in w for w in warnings
    )
    assert any(r.getMessage().startswith(f"Kafka sink {topic!r} recovered") for r in caplog.records)


def test_the_source_reads_every_record_once_across_a_broker_restart(
    restartable_broker: TansuBroker, caplog: pytest.LogCaptureFixture
) -> None:
    broker = restartable_broker
    topic = f"ta-signals-{uuid.uuid4().hex[:8]}"
    broker.create_topics([topic], partitions=2)
    n = 600
    records = [encode(ta_signal(i)) for i in range(n)]
    keyed = [(SYMBOLS[i % len(SYMBOLS)].encode(), record) for i, record in enumerate(records)]
    produce(broker.bootstrap, topic, keyed, flush_every=20)  # small record batches: a few per fetch

    seen: list[KafkaSignalItem] = []
    errors: list[DeadLetter] = []
    flow = Dataflow("kafka_source_restart")
    streams = signal_input(
        "kafka_in", flow, brokers=[broker.bootstrap], topic=topic, tail=False, batch_size=50,
        add_config=SMALL_FETCHES,
    )  # fmt: skip
    op.output("seen", streams.oks, TestingSink(seen))
    op.output("errors", streams.errs, TestingSink(errors))
    errors_before = _consumer_errors()

    with caplog.at_level(logging.INFO, logger="torghut.connectors.kafka"):
        restart = BrokerRestart(broker, lambda: len(seen) >= n // 4, OUTAGE_S, progress=lambda: len(seen))
        with restart:
            run_main(flow)
    assert restart.error is None
    assert restart.progress_at_restart is not None
    assert restart.progress_at_restart < n  # the flow had to read from the restarted broker

    assert errors == []  # an outage is not bad input: no dead letter
    assert sorted(raw for raw, _ in seen) == sorted(records)  # every record ...
    by_partition: dict[str, list[int]] = defaultdict(list)
    for _, position in seen:
        by_partition[position.partition].append(position.offset)
    for offsets in by_partition.values():
        assert offsets == list(range(len(offsets)))  # ... once, in offset order

    assert _consumer_errors() > errors_before
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(w.startswith(f"Kafka consumer of {topic!r}: ") for w in warnings)
    assert len(warnings) <= 10  # one per outage and consumer, plus one per 10 s: no flood
    assert any(
        r.getMessage().startswith(f"Kafka consumer of {topic!r} reading again") for r in caplog.records
    )
    # librdkafka retries the restarted broker at most a second apart (its default backs off to 10 s).
    assert consumer_config(ConsumerHealth(topic), SMALL_FETCHES)["reconnect.backoff.max.ms"] == 1000
