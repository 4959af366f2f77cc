"""Kafka in and out: the TA signal topic as raw records, and JSON sinks for intents and decisions.

:mod:`~torghut.connectors.kafka.source` reads the signal topic (:func:`signal_input`);
:mod:`~torghut.connectors.kafka.sink` publishes contracts (:class:`JsonKafkaSink`, :func:`publish_json`).
Each module's docstring says how it behaves while the broker is gone: the source waits and resumes
without losing or dead-lettering a record; the sink retries failed deliveries with a bounded backoff and
then fails the flow with an error naming the topic.
"""

from torghut.connectors.kafka.sink import (
    PERMANENT_ERRORS,
    STALE_PRODUCER_ERRORS,
    DeliveryPolicy,
    JsonKafkaSink,
    KafkaDeliveryError,
    producer_config,
    publish_json,
    symbol_key,
)
from torghut.connectors.kafka.source import (
    SOURCE_NAME,
    TRANSIENT_ERRORS,
    ConsumerHealth,
    KafkaSignalItem,
    SignalStreams,
    consumer_config,
    empty_letter,
    error_letter,
    kafka_position,
    record_item,
    signal_input,
)

__all__ = [
    "PERMANENT_ERRORS",
    "SOURCE_NAME",
    "STALE_PRODUCER_ERRORS",
    "TRANSIENT_ERRORS",
    "ConsumerHealth",
    "DeliveryPolicy",
    "JsonKafkaSink",
    "KafkaDeliveryError",
    "KafkaSignalItem",
    "SignalStreams",
    "consumer_config",
    "empty_letter",
    "error_letter",
    "kafka_position",
    "producer_config",
    "publish_json",
    "record_item",
    "signal_input",
    "symbol_key",
]
