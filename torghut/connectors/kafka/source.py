"""The TA signal topic as raw records, with broker outages ridden out rather than dead-lettered.

The signal topic carries the JSON form of torghut's Avro ``torghut.ta.TaSignal`` envelope. The source
step emits ``(raw_bytes, InputPosition("kafka", "topic:partition", offset))``; parsing happens downstream,
exactly as for ClickHouse rows and replay lines. Offsets live in bytewax recovery snapshots (bytewax's
``KafkaSource`` uses no consumer group).

A broker that goes away is not bad input: the consumer keeps its position, reconnects
(``reconnect.backoff.max.ms`` 1 s) and goes on where it stopped, so no record is lost or dead-lettered.
Client-level errors (``_TRANSPORT``, ``_ALL_BROKERS_DOWN``, ...) reach :class:`ConsumerHealth` through
librdkafka's ``error_cb``: every error counts in ``torghut_kafka_errors_total{role="consumer"}``, an
outage logs a warning when it starts and every 10 s while it lasts, and the next record read logs an
info line. Partition errors that bytewax puts on its error stream are dead letters
(``DeadLetter(stage="source")``) unless they are connectivity errors (:data:`TRANSIENT_ERRORS`), which
are logged and counted instead. Records without a value are dead letters too. At start, bytewax lists
the topic's partitions and waits for the broker as long as it takes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bytewax import operators as op
from bytewax.connectors.kafka import KafkaError, KafkaSourceMessage
from bytewax.connectors.kafka import operators as kop
from bytewax.dataflow import Dataflow, Stream, operator
from confluent_kafka import OFFSET_BEGINNING
from confluent_kafka import KafkaError as ConfluentKafkaError

from torghut.contracts.hashing import json_safe
from torghut.contracts.signal import DeadLetter, InputPosition
from torghut.metrics import METRICS

logger = logging.getLogger(__name__)

SOURCE_NAME = "kafka"

_E = ConfluentKafkaError
TRANSIENT_ERRORS: frozenset[int] = frozenset(
    {
        _E._TRANSPORT,
        _E._ALL_BROKERS_DOWN,
        _E._RESOLVE,
        _E._TIMED_OUT,
        _E._TIMED_OUT_QUEUE,
        _E._MSG_TIMED_OUT,
        _E._NODE_UPDATE,
        _E._WAIT_COORD,
        _E.NETWORK_EXCEPTION,
        _E.REQUEST_TIMED_OUT,
        _E.BROKER_NOT_AVAILABLE,
        _E.LEADER_NOT_AVAILABLE,
        _E.NOT_LEADER_FOR_PARTITION,
        _E.REPLICA_NOT_AVAILABLE,
        _E.NOT_COORDINATOR,
        _E.COORDINATOR_NOT_AVAILABLE,
        _E.COORDINATOR_LOAD_IN_PROGRESS,
        _E.FENCED_LEADER_EPOCH,
        _E.UNKNOWN_LEADER_EPOCH,
        _E.NOT_ENOUGH_REPLICAS,
        _E.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
    }
)
"""Error codes that say the broker is unreachable or busy, not that a record is bad."""

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


def error_letter(error: KafkaError[Any, Any]) -> DeadLetter | None:
    """Turn a consumer error into a dead letter naming the broker's error; ``None`` for a transient one.

    Every error counts in ``torghut_kafka_errors_total{role="consumer"}``; a connectivity error
    (:data:`TRANSIENT_ERRORS`) is logged instead of dead-lettered, since the consumer retries it itself.
    """
    err, msg = error.err, error.msg
    METRICS.kafka_error("consumer", err.name()).inc()
    if err.code() in TRANSIENT_ERRORS:
        logger.warning(
            "Kafka consumer: %s on %s:%s (%s); the consumer reconnects and resumes",
            err.name(),
            msg.topic,
            msg.partition,
            err.str(),
        )
        return None
    reason = f"kafka_error:{err.name()}:{err.str()}"
    return DeadLetter(
        "source", reason, json_safe(msg.value), kafka_position(msg.topic, msg.partition, msg.offset)
    )


class ConsumerHealth:
    """librdkafka's ``error_cb`` for the signal consumers: count client errors, log outages and recovery.

    Errors that concern the client rather than one record (``_TRANSPORT``, ``_ALL_BROKERS_DOWN``) reach
    this callback instead of the consumer's message stream, several a second while a broker is gone (one
    per connection and reconnect). Each counts in ``torghut_kafka_errors_total{role="consumer"}``; the
    first of an outage is a warning, then one warning every ``warn_every_s`` at most (the rest at debug
    level). The next record read logs, once, that records flow again.
    """

    __slots__ = ("_errors", "_next_warning", "topic", "warn_every_s")

    def __init__(self, topic: str, *, warn_every_s: float = 10.0) -> None:
        self.topic = topic
        self.warn_every_s = warn_every_s
        self._errors = 0
        self._next_warning = 0.0

    def __call__(self, error: ConfluentKafkaError) -> None:
        """Count and log one client error (librdkafka calls it from ``consume``)."""
        self._errors += 1
        METRICS.kafka_error("consumer", error.name()).inc()
        now = time.monotonic()
        level = logging.DEBUG
        if self._errors == 1 or now >= self._next_warning:
            level = logging.WARNING
            self._next_warning = now + self.warn_every_s
        logger.log(
            level,
            "Kafka consumer of %r: %s (%s); %d error(s) since the last record, reconnecting",
            self.topic,
            error.name(),
            error.str(),
            self._errors,
        )

    def record_item(self, msg: KafkaSourceMessage[Any, Any]) -> KafkaSignalItem | None:
        """:func:`record_item`, logging once that the consumer is back after errors."""
        if self._errors:
            logger.info("Kafka consumer of %r reading again after %d error(s)", self.topic, self._errors)
            self._errors = 0
            self._next_warning = 0.0
        return record_item(msg)


def consumer_config(health: ConsumerHealth, add_config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return the signal consumers' settings (``add_config`` may add to or override them)."""
    config: dict[str, Any] = {"reconnect.backoff.max.ms": 1000, "error_cb": health}
    config.update(add_config or {})
    return config


@dataclass(frozen=True)
class SignalStreams:
    """The signal source's outputs.

    Attributes:
        oks: ``(raw_bytes, InputPosition)`` per record, in offset order within each partition.
        errs: ``DeadLetter(stage="source")`` for records without a value and non-transient consumer
            errors.
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
    add_config: Mapping[str, Any] | None = None,
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
        add_config: Extra librdkafka consumer settings (over :func:`consumer_config`).

    Returns:
        The raw records and the dead letters.

    Example:
        >>> flow = Dataflow("signals")
        >>> streams = signal_input("kafka_in", flow, brokers=["127.0.0.1:9092"], topic="ta-signals")
    """
    health = ConsumerHealth(topic)
    raw = kop.input(
        "kafka",
        flow,
        brokers=brokers,
        topics=[topic],
        tail=tail,
        starting_offset=starting_offset,
        add_config=consumer_config(health, add_config),
        batch_size=batch_size,
    )
    items = op.filter_map("position", raw.oks, health.record_item)
    empties = op.filter_map("empty_letter", raw.oks, empty_letter)
    broker_errors = op.filter_map("error_letter", raw.errs, error_letter)
    return SignalStreams(items, op.merge("errors", empties, broker_errors))
