"""Kafka in and out: the TA signal topic as raw records, and JSON sinks for intents and decisions.

The signal topic carries the JSON form of torghut's Avro ``torghut.ta.TaSignal`` envelope. The source
step emits ``(raw_bytes, InputPosition("kafka", "topic:partition", offset))``; parsing happens downstream,
exactly as for ClickHouse rows and replay lines. Broker errors and records without a value go to an error
stream as ``DeadLetter(stage="source")`` instead of stopping the flow. Offsets live in bytewax recovery
snapshots (bytewax's ``KafkaSource`` uses no consumer group).

Sinks publish contracts as canonical JSON (:func:`torghut.contracts.canonical_json`) keyed by symbol,
through an idempotent producer (``enable.idempotence``, ``acks=all``); a failed delivery fails the batch
so bytewax retries it from the last snapshot rather than losing it. Output is at-least-once around a
crash: consumers de-duplicate by the record's deterministic id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bytewax import operators as op
from bytewax.connectors.kafka import KafkaError, KafkaSourceMessage
from bytewax.connectors.kafka import operators as kop
from bytewax.dataflow import Dataflow, Stream, operator
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import OFFSET_BEGINNING, Producer
from confluent_kafka import KafkaError as ConfluentKafkaError

from torghut.contracts.hashing import canonical_json, json_safe
from torghut.contracts.signal import DeadLetter, InputPosition

SOURCE_NAME = "kafka"

KafkaSignalItem = tuple[bytes, InputPosition]
"""What the signal source emits: the record's value and where it came from."""


def kafka_position(topic: str | None, partition: int | None, offset: int | None) -> InputPosition:
    """Return the position of a Kafka record: ``kafka`` / ``topic:partition`` / offset.

    >>> kafka_position("ta-signals", 2, 41).label()
    'kafka:ta-signals:2:41'
    """
    return InputPosition(SOURCE_NAME, f"{topic}:{partition}", -1 if offset is None else offset)


def record_item(msg: KafkaSourceMessage[Any, Any]) -> KafkaSignalItem | None:
    """Turn a consumed record into a source item; ``None`` when it has no value (see :func:`empty_letter`)."""
    if msg.value is None:
        return None
    return (msg.value, kafka_position(msg.topic, msg.partition, msg.offset))


def empty_letter(msg: KafkaSourceMessage[Any, Any]) -> DeadLetter | None:
    """Turn a record without a value (a tombstone) into a dead letter; ``None`` for any other record."""
    if msg.value is not None:
        return None
    return DeadLetter(
        "source",
        "kafka_record_without_value",
        json_safe(msg.key),
        kafka_position(msg.topic, msg.partition, msg.offset),
    )


def error_letter(error: KafkaError[Any, Any]) -> DeadLetter:
    """Turn a consumer error into a dead letter naming the broker's error."""
    msg = error.msg
    reason = f"kafka_error:{error.err.name()}:{error.err.str()}"
    return DeadLetter(
        "source", reason, json_safe(msg.value), kafka_position(msg.topic, msg.partition, msg.offset)
    )


@dataclass(frozen=True)
class SignalStreams:
    """The signal source's outputs.

    Attributes:
        oks: ``(raw_bytes, InputPosition)`` per record, in offset order within each partition.
        errs: ``DeadLetter(stage="source")`` for broker errors and records without a value.
    """

    oks: Stream[KafkaSignalItem]
    errs: Stream[DeadLetter]


@operator
def signal_input(
    step_id: str,
    flow: Dataflow,
    *,
    brokers: list[str],
    topic: str,
    tail: bool = True,
    starting_offset: int = OFFSET_BEGINNING,
    batch_size: int = 1000,
    add_config: dict[str, str] | None = None,
) -> SignalStreams:
    """Read the TA signal topic: one bytewax partition per Kafka partition.

    Args:
        step_id: Unique step id (persisted by recovery with each partition's offset).
        flow: The dataflow.
        brokers: ``host:port`` bootstrap servers.
        topic: The TA signal topic.
        tail: Keep waiting for new records at the end of the topic; ``False`` ends at the end.
        starting_offset: ``OFFSET_BEGINNING`` or ``OFFSET_END`` when no recovery state exists.
        batch_size: Records per poll at most.
        add_config: Extra librdkafka consumer settings.

    Returns:
        The raw records and the dead letters.

    Example:
        >>> flow = Dataflow("signals")
        >>> streams = signal_input("kafka_in", flow, brokers=["127.0.0.1:9092"], topic="ta-signals")
    """
    raw = kop.input(
        "kafka",
        flow,
        brokers=brokers,
        topics=[topic],
        tail=tail,
        starting_offset=starting_offset,
        add_config=add_config,
        batch_size=batch_size,
    )
    items = op.filter_map("position", raw.oks, record_item)
    empties = op.filter_map("empty_letter", raw.oks, empty_letter)
    broker_errors = op.map("error_letter", raw.errs, error_letter)
    return SignalStreams(items, op.merge("errors", empties, broker_errors))


def symbol_key(item: Any) -> str:
    """Return the record key for a contract: its ``symbol`` (attribute or mapping key).

    Raises:
        ValueError: when the item has no symbol.
    """
    symbol = item.get("symbol") if isinstance(item, Mapping) else getattr(item, "symbol", None)
    if not isinstance(symbol, str):
        msg = f"cannot key {type(item).__name__} by symbol: it has no string 'symbol'"
        raise ValueError(msg)
    return symbol


def producer_config(brokers: Iterable[str], add_config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return the idempotent producer settings (``add_config`` may add to or override them)."""
    config: dict[str, Any] = {
        "bootstrap.servers": ",".join(brokers),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
    }
    config.update(add_config or {})
    return config


class _JsonProducerPartition(StatelessSinkPartition[Any]):
    def __init__(self, producer: Producer, topic: str, key: Callable[[Any], str]) -> None:
        self._producer = producer
        self._topic = topic
        self._key = key
        self._failures: list[str] = []

    def _on_delivery(self, error: ConfluentKafkaError | None, _msg: Any) -> None:
        if error is not None:
            self._failures.append(f"{error.name()}: {error.str()}")

    def write_batch(self, items: list[Any]) -> None:
        for item in items:
            value = canonical_json(item).encode()
            key = self._key(item).encode()
            while True:
                try:
                    self._producer.produce(self._topic, value, key, on_delivery=self._on_delivery)
                    break
                except BufferError:
                    self._producer.poll(0.1)  # local queue full: serve deliveries, then retry
            self._producer.poll(0)
        self._producer.flush()
        if self._failures:
            failures, self._failures = self._failures, []
            msg = f"{len(failures)} record(s) to Kafka topic {self._topic!r} failed; first: {failures[0]}"
            raise RuntimeError(msg)

    def close(self) -> None:
        self._producer.flush()


class JsonKafkaSink(DynamicSink[Any]):
    """Publish contracts (intents, decisions) to one topic as canonical JSON, keyed by symbol.

    Each worker owns one idempotent producer. Example:
        >>> sink = JsonKafkaSink(["127.0.0.1:9092"], "torghut.intents")
    """

    def __init__(
        self,
        brokers: Iterable[str],
        topic: str,
        *,
        key: Callable[[Any], str] = symbol_key,
        add_config: Mapping[str, Any] | None = None,
    ) -> None:
        """Configure the sink.

        Args:
            brokers: ``host:port`` bootstrap servers.
            topic: Destination topic.
            key: The record key of an item (its symbol by default).
            add_config: Extra librdkafka producer settings.
        """
        self._config = producer_config(brokers, add_config)
        self._topic = topic
        self._key = key

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _JsonProducerPartition:
        """Build this worker's producer."""
        return _JsonProducerPartition(Producer(self._config), self._topic, self._key)


def publish_json(
    step_id: str,
    up: Stream[Any],
    *,
    brokers: list[str],
    topic: str,
    key: Callable[[Any], str] = symbol_key,
    add_config: Mapping[str, Any] | None = None,
) -> None:
    """Publish a stream of contracts (intents or decisions) to ``topic`` as JSON keyed by symbol."""
    op.output(step_id, up, JsonKafkaSink(brokers, topic, key=key, add_config=add_config))
