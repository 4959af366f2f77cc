"""The Kafka signal source and JSON sinks through a real tansu broker and real bytewax flows."""

from __future__ import annotations

import json
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
    JsonKafkaSink,
    KafkaSignalItem,
    error_letter,
    publish_json,
    signal_input,
    symbol_key,
)
from torghut.connectors.tansu import TansuBroker, broker_ready, tansu_binary
from torghut.contracts import DeadLetter, InputPosition, canonical_json


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


def test_broker_errors_become_dead_letters() -> None:
    msg: KafkaSourceMessage[bytes, bytes] = KafkaSourceMessage(b"k", b"v", topic="t", partition=1, offset=9)
    letter = error_letter(KafkaError(ConfluentKafkaError(ConfluentKafkaError._TRANSPORT), msg))
    assert letter.stage == "source"
    assert letter.reason.startswith("kafka_error:_TRANSPORT:")
    assert (letter.raw, letter.position) == ("v", InputPosition("kafka", "t:1", 9))  # bytes as JSON-safe text


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


def test_a_refused_record_fails_the_batch(broker: TansuBroker) -> None:
    sink = JsonKafkaSink([broker.bootstrap], "intents-unused", add_config={"message.max.bytes": 1000})
    with pytest.raises(Exception, match="error writing output batch") as raised:
        run_main(_sink_flow(sink, {"symbol": "AAPL", "pad": "x" * 5000}))
    assert any("MSG_SIZE_TOO_LARGE" in text for text in _error_chain(raised.value))


def test_an_undelivered_record_fails_the_batch() -> None:
    gone = TansuBroker().start()
    gone.stop()  # nothing listens there any more: delivery times out
    sink = JsonKafkaSink([gone.bootstrap], "intents", add_config={"message.timeout.ms": 1000, "log_level": 0})
    with pytest.raises(Exception, match="error writing output batch") as raised:
        run_main(_sink_flow(sink, {"symbol": "AAPL"}))
    assert any("failed; first: _MSG_TIMED_OUT" in text for text in _error_chain(raised.value))


def test_symbol_key() -> None:
    assert symbol_key({"symbol": "AAPL"}) == "AAPL"
    assert symbol_key(Intent("MSFT", 1, Decimal(1), "x")) == "MSFT"
    with pytest.raises(ValueError, match="no string 'symbol'"):
        symbol_key({"account": "a"})
