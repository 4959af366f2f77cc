"""The Kafka signal source and JSON sinks through a real tansu broker and real bytewax flows."""

from __future__ import annotations

import json
import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from bytewax import operators as op
from bytewax.connectors.kafka import KafkaError, KafkaSourceMessage
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main
from confluent_kafka import KafkaError as ConfluentKafkaError

from tests.connectors.kafka.support import SYMBOLS, consume, encode, produce, ta_signal
from torghut.connectors.kafka import (
    ConsumerHealth,
    DeliveryPolicy,
    JsonKafkaSink,
    KafkaSignalItem,
    error_letter,
    producer_config,
    publish_json,
    signal_input,
    symbol_key,
)
from torghut.connectors.tansu import TansuBroker, broker_ready, tansu_binary
from torghut.contracts import DeadLetter, InputPosition, canonical_json
from torghut.dataflow.config import ConfigError
from torghut.dataflow.service_config import KafkaDeliveryConfig, KafkaSourceConfig, service_config_from_data
from torghut.metrics import REGISTRY


@dataclass(frozen=True)
class Intent:
    """A stand-in for an intent contract: what the sink must serialize canonically."""

    symbol: str
    seq: int
    target_notional: Decimal
    source_offset: str


def _topics(broker: TansuBroker, partitions: int = 3) -> tuple[str, str]:
    name = uuid.uuid4().hex[:8]
    signals, intents = f"ta-signals-{name}", f"intents-{name}"
    broker.create_topics([signals], partitions=partitions)
    broker.create_topics([intents], partitions=partitions)
    return signals, intents


def test_broker_listens_on_loopback_only(broker: TansuBroker) -> None:
    command = broker.command()
    assert command[0] == str(tansu_binary())
    assert command[command.index("--listener-url") + 1] == f"tcp://127.0.0.1:{broker.port}"
    assert command[command.index("--advertised-listener-url") + 1] == f"tcp://127.0.0.1:{broker.port}"
    assert broker_ready(broker.bootstrap)


def test_signals_round_trip_through_the_flow_and_intents_come_back(broker: TansuBroker) -> None:
    signals_topic, intents_topic = _topics(broker)
    n = 3_000
    records = [ta_signal(i) for i in range(n)]
    produce(broker.bootstrap, signals_topic, [(r["symbol"].encode(), encode(r)) for r in records])

    seen: list[KafkaSignalItem] = []
    errors: list[DeadLetter] = []
    flow = Dataflow("kafka_round_trip")
    streams = signal_input("kafka_in", flow, brokers=[broker.bootstrap], topic=signals_topic, tail=False)
    op.output("seen", streams.oks, TestingSink(seen))
    op.output("errors", streams.errs, TestingSink(errors))

    def to_intent(item: KafkaSignalItem) -> Intent:
        raw, position = item
        signal = json.loads(raw)
        return Intent(signal["symbol"], signal["seq"], Decimal("1000.50"), position.label())

    publish_json(
        "intents_out",
        op.map("to_intent", streams.oks, to_intent),
        brokers=[broker.bootstrap],
        topic=intents_topic,
    )
    run_main(flow)

    assert errors == []
    assert len(seen) == n
    decoded = sorted(
        (json.loads(raw) for raw, _ in seen), key=lambda r: (r["seq"], SYMBOLS.index(r["symbol"]))
    )
    assert decoded == records

    by_partition: dict[str, list[int]] = defaultdict(list)
    for _, position in seen:
        assert position.source == "kafka"
        assert position.partition.startswith(f"{signals_topic}:")
        by_partition[position.partition].append(position.offset)
    assert sorted(by_partition) == [f"{signals_topic}:{p}" for p in range(3)]
    for offsets in by_partition.values():
        assert offsets == list(range(len(offsets)))  # every record once, in offset order

    back = consume(broker.bootstrap, intents_topic, n)
    assert len(back) == n
    expected = {canonical_json(to_intent(item)) for item in seen}
    assert {value.decode() for _, value, _ in back} == expected
    for key, value, _ in back:
        decoded = json.loads(value)
        assert key.decode() == decoded["symbol"]
        assert decoded["target_notional"] == "1000.50"
    # Keyed by symbol: each symbol's intents land in one partition.
    partitions_of: dict[bytes, set[int]] = defaultdict(set)
    for key, _, partition in back:
        partitions_of[key].add(partition)
    assert all(len(parts) == 1 for parts in partitions_of.values())


def test_signal_contents_arrive_byte_for_byte(broker: TansuBroker) -> None:
    signals_topic, _ = _topics(broker, partitions=1)
    records = [encode(ta_signal(i)) for i in range(50)]
    produce(broker.bootstrap, signals_topic, [(None, r) for r in records])
    seen: list[KafkaSignalItem] = []
    flow = Dataflow("kafka_bytes")
    streams = signal_input("kafka_in", flow, brokers=[broker.bootstrap], topic=signals_topic, tail=False)
    op.output("seen", streams.oks, TestingSink(seen))
    op.output("errors", streams.errs, TestingSink([]))
    run_main(flow)
    assert [raw for raw, _ in seen] == records
    assert [position for _, position in seen] == [
        InputPosition("kafka", f"{signals_topic}:0", i) for i in range(50)
    ]


def test_records_without_a_value_go_to_the_error_stream(broker: TansuBroker) -> None:
    signals_topic, _ = _topics(broker, partitions=1)
    produce(
        broker.bootstrap,
        signals_topic,
        [(b"AAPL", encode(ta_signal(0))), (b"AAPL", None), (b"MSFT", b"{not json")],
    )
    seen: list[KafkaSignalItem] = []
    errors: list[DeadLetter] = []
    flow = Dataflow("kafka_errors")
    streams = signal_input("kafka_in", flow, brokers=[broker.bootstrap], topic=signals_topic, tail=False)
    op.output("seen", streams.oks, TestingSink(seen))
    op.output("errors", streams.errs, TestingSink(errors))
    run_main(flow)
    # A malformed value is still a raw record: the parse stage dead-letters it.
    assert [raw for raw, _ in seen] == [encode(ta_signal(0)), b"{not json"]
    assert errors == [
        DeadLetter(
            "source", "kafka_record_without_value", "AAPL", InputPosition("kafka", f"{signals_topic}:0", 1)
        )
    ]


def _consumer_errors(reason: str) -> float:
    return (
        REGISTRY.get_sample_value("torghut_kafka_errors_total", {"role": "consumer", "reason": reason}) or 0
    )


def test_consumer_errors_about_a_record_become_dead_letters() -> None:
    msg: KafkaSourceMessage[bytes, bytes] = KafkaSourceMessage(b"k", b"v", topic="t", partition=1, offset=9)
    before = _consumer_errors("INVALID_MSG")
    letter = error_letter(KafkaError(ConfluentKafkaError(ConfluentKafkaError.INVALID_MSG), msg))
    assert letter is not None
    assert letter.stage == "source"
    assert letter.reason.startswith("kafka_error:INVALID_MSG:")
    assert (letter.raw, letter.position) == ("v", InputPosition("kafka", "t:1", 9))  # bytes as JSON-safe text
    assert _consumer_errors("INVALID_MSG") == before + 1


@pytest.mark.parametrize("code", [ConfluentKafkaError._TRANSPORT, ConfluentKafkaError._ALL_BROKERS_DOWN])
def test_connectivity_errors_are_logged_and_counted_not_dead_lettered(
    code: int, caplog: pytest.LogCaptureFixture
) -> None:
    # A broker that is gone says nothing about the records: the consumer resumes where it was.
    msg: KafkaSourceMessage[bytes, bytes] = KafkaSourceMessage(
        None, None, topic="t", partition=0, offset=-1001
    )
    name = ConfluentKafkaError(code).name()
    before = _consumer_errors(name)
    with caplog.at_level(logging.WARNING, logger="torghut.connectors.kafka"):
        assert error_letter(KafkaError(ConfluentKafkaError(code), msg)) is None
    assert _consumer_errors(name) == before + 1
    assert f"Kafka consumer: {name} on t:0" in caplog.text


def test_consumer_health_counts_client_errors_and_logs_recovery(caplog: pytest.LogCaptureFixture) -> None:
    health = ConsumerHealth("ta-signals", warn_every_s=60)
    record: KafkaSourceMessage[bytes, bytes] = KafkaSourceMessage(
        b"k", b"v", topic="t", partition=0, offset=3
    )
    before = _consumer_errors("_ALL_BROKERS_DOWN")
    with caplog.at_level(logging.INFO, logger="torghut.connectors.kafka"):
        for _ in range(3):
            health(ConfluentKafkaError(ConfluentKafkaError._ALL_BROKERS_DOWN))
        assert health.record_item(record) == (b"v", InputPosition("kafka", "t:0", 3))
        assert health.record_item(record) == (b"v", InputPosition("kafka", "t:0", 3))
        health(ConfluentKafkaError(ConfluentKafkaError._TRANSPORT))  # a new outage warns again
    assert _consumer_errors("_ALL_BROKERS_DOWN") == before + 3
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert messages == [
        (
            logging.WARNING,
            "Kafka consumer of 'ta-signals': _ALL_BROKERS_DOWN (Local: All broker connections are down); "
            "1 error(s) since the last record, reconnecting",
        ),  # the two repeats within warn_every_s are debug lines
        (
            logging.INFO,
            "Kafka consumer of 'ta-signals' reading again after 3 error(s)",
        ),  # once, not per record
        (
            logging.WARNING,
            "Kafka consumer of 'ta-signals': _TRANSPORT (Local: Broker transport failure); "
            "1 error(s) since the last record, reconnecting",
        ),
    ]


def _error_chain(error: BaseException | None) -> list[str]:
    chain = []
    while error is not None:
        chain.append(str(error))
        error = error.__cause__
    return chain


def _sink_flow(sink: JsonKafkaSink, item: dict[str, Any]) -> Dataflow:
    flow = Dataflow("kafka_sink_failure")
    op.output("out", op.input("in", flow, TestingSource([item])), sink)
    return flow


def _sink_retries(topic: str) -> float:
    return REGISTRY.get_sample_value("torghut_sink_retries_total", {"sink": f"kafka:{topic}"}) or 0


def test_a_refused_record_fails_the_batch_without_retries(broker: TansuBroker) -> None:
    sink = JsonKafkaSink([broker.bootstrap], "intents-unused", add_config={"message.max.bytes": 1000})
    with pytest.raises(Exception, match="error writing output batch") as raised:
        run_main(_sink_flow(sink, {"symbol": "AAPL", "pad": "x" * 5000}))
    chain = _error_chain(raised.value)
    assert any("not delivered after 1 attempt(s); last error MSG_SIZE_TOO_LARGE" in text for text in chain)
    assert _sink_retries("intents-unused") == 0  # a record too large stays too large: no retry


def test_an_undelivered_record_fails_the_batch_once_the_retries_are_spent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gone = TansuBroker().start()
    gone.stop()  # nothing listens there any more: every attempt times out
    topic = f"intents-{uuid.uuid4().hex[:8]}"
    policy = DeliveryPolicy(max_attempts=3, backoff_initial_s=0.1, backoff_max_s=0.2, delivery_timeout_s=0.3)
    waits: list[float] = []
    sink = JsonKafkaSink(
        [gone.bootstrap], topic, add_config={"log_level": 0}, policy=policy, sleep=waits.append
    )
    assert sink._config["message.timeout.ms"] == 300  # each attempt is bounded by delivery_timeout_s
    timeouts = {"role": "producer", "reason": "_MSG_TIMED_OUT"}
    timed_out = REGISTRY.get_sample_value("torghut_kafka_errors_total", timeouts) or 0
    with caplog.at_level(logging.INFO, logger="torghut.connectors.kafka"):
        with pytest.raises(Exception, match="error writing output batch") as raised:
            run_main(_sink_flow(sink, {"symbol": "AAPL"}))
    message = (
        f"1 record(s) to Kafka topic {topic!r} not delivered after 3 attempt(s); last error _MSG_TIMED_OUT"
    )
    assert any(message in text for text in _error_chain(raised.value))
    assert _sink_retries(topic) == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert warnings[0].startswith(f"Kafka sink {topic!r}: 1 of 1 record(s) not delivered on attempt 1 of 3")
    assert "_MSG_TIMED_OUT" in warnings[0]
    assert warnings[0].endswith("again in 0.1 s") and warnings[1].endswith("again in 0.2 s")
    # Three attempts, each ended by librdkafka's message timeout, and the policy's two waits between them.
    assert REGISTRY.get_sample_value("torghut_kafka_errors_total", timeouts) == timed_out + 3
    assert waits == [0.1, 0.2]


def test_delivery_policy_backs_off_exponentially_to_a_cap() -> None:
    assert list(DeliveryPolicy().delays()) == [0.5, 1.0, 2.0, 4.0] + [5.0] * 15
    assert list(DeliveryPolicy(max_attempts=1).delays()) == []
    with pytest.raises(ValueError, match="max_attempts must be at least 1"):
        DeliveryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="backoff_max_s must be positive"):
        DeliveryPolicy(backoff_max_s=0)


def test_the_service_configuration_sets_the_delivery_policy() -> None:
    assert DeliveryPolicy(**KafkaDeliveryConfig().model_dump()) == DeliveryPolicy()  # one set of defaults
    source = {"kind": "kafka", "brokers": ["b:9092"], "topic": "t", "delivery": {"max_attempts": 3}}
    config = service_config_from_data({"source": source, "postgres": {"dsn": "postgresql://x@h/db"}}, {})
    assert isinstance(config.source, KafkaSourceConfig)
    assert DeliveryPolicy(**config.source.delivery.model_dump()) == DeliveryPolicy(max_attempts=3)
    with pytest.raises(ConfigError, match=r"delivery\.backoff_max_s"):
        service_config_from_data(
            {
                "source": {**source, "delivery": {"backoff_max_s": 0}},
                "postgres": {"dsn": "postgresql://x@h/db"},
            },
            {},
        )


def test_producer_settings_surface_failures_within_seconds() -> None:
    config = producer_config(["127.0.0.1:9092"], delivery_timeout_s=2.5)
    assert config["message.timeout.ms"] == 2500  # librdkafka's default is 300 s
    assert config["reconnect.backoff.max.ms"] == 1000
    assert (config["enable.idempotence"], config["acks"]) == (True, "all")
    assert producer_config(["b:1"], {"message.timeout.ms": 900})["message.timeout.ms"] == 900


def test_symbol_key() -> None:
    assert symbol_key({"symbol": "AAPL"}) == "AAPL"
    assert symbol_key(Intent("MSFT", 1, Decimal(1), "x")) == "MSFT"
    with pytest.raises(ValueError, match="no string 'symbol'"):
        symbol_key({"account": "a"})
