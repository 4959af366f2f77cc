"""JSON sinks for intents and decisions, with bounded, observable retries while the broker is gone.

Sinks publish contracts as canonical JSON (:func:`torghut.contracts.canonical_json`) keyed by symbol,
through an idempotent producer (``enable.idempotence``, ``acks=all``). A record whose delivery fails is
produced again after a backoff (:class:`DeliveryPolicy`: 0.5 s doubling to 5 s, 20 attempts by default,
each attempt bounded by ``message.timeout.ms`` = ``delivery_timeout_s``), while the batch, and with it the
flow, waits: a warning per retry, ``torghut_sink_retries_total{sink="kafka:<topic>"}``, an info line on
recovery, and every failed delivery in ``torghut_kafka_errors_total{role="producer"}``. A record the
broker refuses for what it is (:data:`PERMANENT_ERRORS`: too large, invalid, not authorized) or a spent
budget raises :class:`KafkaDeliveryError`, naming the topic, the attempts and the last error, and the flow
stops (bytewax resumes from the last snapshot on restart).

Delivery is at-least-once: a record whose acknowledgement was lost (written, but the broker went away
before it answered) is written again, byte for byte (canonical JSON, same key, so the same partition);
consumers de-duplicate by the record's deterministic id. A retried record may land after records of its
batch that were delivered the first time.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from bytewax import operators as op
from bytewax.dataflow import Stream
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import KafkaError as ConfluentKafkaError
from confluent_kafka import KafkaException, Producer

from torghut.contracts.hashing import canonical_json
from torghut.metrics import METRICS

logger = logging.getLogger(__name__)

_E = ConfluentKafkaError
PERMANENT_ERRORS: frozenset[int] = frozenset(
    {
        _E.MSG_SIZE_TOO_LARGE,
        _E.INVALID_MSG,
        _E.INVALID_MSG_SIZE,
        _E.INVALID_RECORD,
        _E.INVALID_TIMESTAMP,
        _E.INVALID_REQUIRED_ACKS,
        _E.TOPIC_AUTHORIZATION_FAILED,
        _E.CLUSTER_AUTHORIZATION_FAILED,
        _E.SASL_AUTHENTICATION_FAILED,
        _E._AUTHENTICATION,
        _E._INVALID_ARG,
        _E._INVALID_TYPE,
    }
)
"""Delivery errors that another attempt cannot cure: the sink fails the batch at once."""

STALE_PRODUCER_ERRORS: frozenset[int] = frozenset(
    {
        _E.PRODUCER_FENCED,
        _E._FENCED,
        _E.INVALID_PRODUCER_EPOCH,
        _E.UNKNOWN_PRODUCER_ID,
        _E.INVALID_PRODUCER_ID_MAPPING,
        _E.OUT_OF_ORDER_SEQUENCE_NUMBER,
    }
)
"""Errors that reject the producer's identity, not the record: the retry goes through a new producer.

A broker that lost its producer state (a restart of tansu, whose producer ids do not survive it, or a
Kafka broker that expired them) answers the old idempotent producer with these; a new one gets a fresh
producer id. Fatal errors (``KafkaError.fatal()``) are handled the same way.
"""


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


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How a JSON sink rides out a broker that is gone: bounded retries with exponential backoff.

    Attributes:
        max_attempts: Deliveries tried per record, the first included, before the batch fails.
        backoff_initial_s: Wait after the first failed attempt; it doubles after each further one.
        backoff_max_s: Longest wait between two attempts.
        delivery_timeout_s: librdkafka's ``message.timeout.ms``: how long one attempt may take (librdkafka
            reconnects and resends within it) before its records count as failed.

    The defaults ride out about three minutes without a broker: 20 attempts of up to 5 s each, with
    0.5 + 1 + 2 + 4 + 15 x 5 s of waits between them.

    >>> list(DeliveryPolicy(max_attempts=6).delays())
    [0.5, 1.0, 2.0, 4.0, 5.0]
    """

    max_attempts: int = 20
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 5.0
    delivery_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            msg = f"DeliveryPolicy.max_attempts must be at least 1, got {self.max_attempts}"
            raise ValueError(msg)
        for name in ("backoff_initial_s", "backoff_max_s", "delivery_timeout_s"):
            if not getattr(self, name) > 0:
                msg = f"DeliveryPolicy.{name} must be positive, got {getattr(self, name)}"
                raise ValueError(msg)

    def delays(self) -> Iterator[float]:
        """Yield the waits between attempts: ``max_attempts - 1`` of them."""
        delay = self.backoff_initial_s
        for _ in range(self.max_attempts - 1):
            yield min(delay, self.backoff_max_s)
            delay *= 2


class KafkaDeliveryError(RuntimeError):
    """Records a JSON sink could not deliver: a permanent error, or every attempt spent."""

    def __init__(self, topic: str, count: int, attempts: int, error: ConfluentKafkaError) -> None:
        self.topic = topic
        self.count = count
        self.attempts = attempts
        self.error = error
        super().__init__(
            f"{count} record(s) to Kafka topic {topic!r} not delivered after {attempts} attempt(s); "
            f"last error {error.name()}: {error.str()}"
        )


def _producer_error(error: ConfluentKafkaError) -> None:
    # Client-level errors (``_TRANSPORT``, ``_ALL_BROKERS_DOWN``): the sink's retry warnings tell the
    # story, so these are counted and logged at debug, except a fatal one.
    METRICS.kafka_error("producer", error.name()).inc()
    level = logging.ERROR if error.fatal() else logging.DEBUG
    logger.log(level, "Kafka producer: %s (%s)", error.name(), error.str())


def producer_config(
    brokers: Iterable[str], add_config: Mapping[str, Any] | None = None, *, delivery_timeout_s: float = 5.0
) -> dict[str, Any]:
    """Return the idempotent producer settings (``add_config`` may add to or override them).

    ``message.timeout.ms`` is ``delivery_timeout_s`` (librdkafka's default is 300 s), so a delivery fails
    within seconds and the sink's own bounded, logged retries take over; ``reconnect.backoff.max.ms`` is
    1 s, so a broker that is back is found within a second.
    """
    config: dict[str, Any] = {
        "bootstrap.servers": ",".join(brokers),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": max(1, round(delivery_timeout_s * 1000)),  # 0 would mean "never"
        "reconnect.backoff.max.ms": 1000,
        "error_cb": _producer_error,
    }
    config.update(add_config or {})
    return config


_Record = tuple[bytes, bytes]
_Failure = tuple[bytes, bytes, ConfluentKafkaError]


class _JsonProducerPartition(StatelessSinkPartition[Any]):
    def __init__(
        self,
        config: dict[str, Any],
        topic: str,
        key: Callable[[Any], str],
        policy: DeliveryPolicy,
        sleep: Callable[[float], None],
    ) -> None:
        self._config = config
        self._producer = Producer(config)
        self._topic = topic
        self._key = key
        self._policy = policy
        self._sleep = sleep
        self._retries = METRICS.sink_retry(f"kafka:{topic}")
        self._failures: list[_Failure] = []

    def _on_delivery(self, error: ConfluentKafkaError | None, msg: Any) -> None:
        if error is not None:
            self._failures.append((msg.key(), msg.value(), error))

    def _attempt(self, records: list[_Record]) -> list[_Failure]:
        """Produce ``records`` and wait for every delivery report; return the failed ones, in order."""
        for key, value in records:
            while True:
                try:
                    self._producer.produce(self._topic, value, key, on_delivery=self._on_delivery)
                    break
                except BufferError:
                    self._producer.poll(0.1)  # local queue full: serve deliveries, then retry
                except KafkaException as exc:  # refused before it was queued (too large, fatal state)
                    self._failures.append((key, value, exc.args[0]))
                    break
            self._producer.poll(0)
        self._producer.flush()  # returns within message.timeout.ms: every record delivered or failed
        failures, self._failures = self._failures, []
        return failures

    def write_batch(self, items: list[Any]) -> None:
        records = [(self._key(item).encode(), canonical_json(item).encode()) for item in items]
        delays = self._policy.delays()
        attempt = 1
        while failures := self._attempt(records):
            errors = [error for _, _, error in failures]
            for reason, count in Counter(error.name() for error in errors).items():
                METRICS.kafka_error("producer", reason).inc(count)
            permanent = next((e for e in errors if e.code() in PERMANENT_ERRORS), None)
            delay = next(delays, None)
            if permanent is not None or delay is None:
                raise KafkaDeliveryError(self._topic, len(failures), attempt, permanent or errors[-1])
            if any(error.fatal() or error.code() in STALE_PRODUCER_ERRORS for error in errors):
                self._producer = Producer(self._config)
            self._retries.inc()
            logger.warning(
                "Kafka sink %r: %d of %d record(s) not delivered on attempt %d of %d, first error %s (%s); "
                "producing them again in %.1f s",
                self._topic,
                len(failures),
                len(records),
                attempt,
                self._policy.max_attempts,
                errors[0].name(),
                errors[0].str(),
                delay,
            )
            self._sleep(delay)
            records = [(key, value) for key, value, _ in failures]
            attempt += 1
        if attempt > 1:
            logger.info(
                "Kafka sink %r recovered: the last %d record(s) delivered on attempt %d",
                self._topic,
                len(records),
                attempt,
            )

    def close(self) -> None:
        self._producer.flush()


class JsonKafkaSink(DynamicSink[Any]):
    """Publish contracts (intents, decisions) to one topic as canonical JSON, keyed by symbol.

    Each worker owns one idempotent producer; failed deliveries are retried as ``policy`` says.

    Example:
        >>> sink = JsonKafkaSink(["127.0.0.1:9092"], "torghut.intents")
    """

    def __init__(
        self,
        brokers: Iterable[str],
        topic: str,
        *,
        key: Callable[[Any], str] = symbol_key,
        add_config: Mapping[str, Any] | None = None,
        policy: DeliveryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Configure the sink.

        Args:
            brokers: ``host:port`` bootstrap servers.
            topic: Destination topic.
            key: The record key of an item (its symbol by default).
            add_config: Extra librdkafka producer settings (over :func:`producer_config`).
            policy: Retries of failed deliveries; :class:`DeliveryPolicy` defaults when ``None``.
            sleep: Waits the backoff between two attempts (``time.sleep``; tests record the waits).
        """
        self._policy = policy or DeliveryPolicy()
        self._config = producer_config(
            brokers, add_config, delivery_timeout_s=self._policy.delivery_timeout_s
        )
        self._topic = topic
        self._key = key
        self._sleep = sleep

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _JsonProducerPartition:
        """Build this worker's producer."""
        return _JsonProducerPartition(self._config, self._topic, self._key, self._policy, self._sleep)


def publish_json(
    step_id: str,
    up: Stream[Any],
    *,
    brokers: list[str],
    topic: str,
    key: Callable[[Any], str] = symbol_key,
    add_config: Mapping[str, Any] | None = None,
    policy: DeliveryPolicy | None = None,
) -> None:
    """Publish a stream of contracts (intents or decisions) to ``topic`` as JSON keyed by symbol."""
    sink = JsonKafkaSink(brokers, topic, key=key, add_config=add_config, policy=policy)
    op.output(step_id, up, sink)
