"""The service flow from a Kafka topic (tansu): TaSignal JSON in, decisions in PostgreSQL, intents out."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import psycopg
import pytest

from tests.connectors.kafka.support import consume, encode, produce
from tests.integration.support import counts, service_config
from torghut.connectors.synthetic.generator import generate_rows
from torghut.connectors.tansu import TansuBroker
from torghut.dataflow.service import run_service

pytestmark = pytest.mark.integration


def _iso(text: str | None) -> str | None:
    return None if text is None else text.replace(" ", "T") + "Z"


def ta_signal(row: dict[str, Any]) -> dict[str, Any]:
    """A generated ``ta_signals`` row as torghut's TaSignal envelope (``ta-signals.avsc``) in JSON."""
    return {
        "ingest_ts": _iso(row["ingest_ts"]),
        "event_ts": _iso(row["event_ts"]),
        "symbol": row["symbol"],
        "seq": int(row["seq"]),
        "feature_schema_version": "3.0.0",
        "is_final": True,
        "source": "ta",
        "window": {
            "size": "PT1S",
            "step": "PT1S",
            "start": _iso(row["window_start"]),
            "end": _iso(row["window_end"]),
        },
        "macd": {"macd": row["macd"], "signal": row["macd_signal"], "hist": row["macd_hist"]},
        "ema": {"ema12": row["ema12"], "ema26": row["ema26"]},
        "rsi14": row["rsi14"],
        "boll": {"mid": row["boll_mid"], "upper": row["boll_upper"], "lower": row["boll_lower"]},
        "vwap": {"session": row["vwap_session"], "w5m": row["vwap_w5m"]},
        "imbalance": {
            "spread": row["imbalance_spread"],
            "bid_px": row["imbalance_bid_px"],
            "ask_px": row["imbalance_ask_px"],
            "bid_sz": int(row["imbalance_bid_sz"]),
            "ask_sz": int(row["imbalance_ask_sz"]),
        },
        "vol_realized": {"w60s": row["vol_realized_w60s"]},
        "version": 1,
    }


def test_c_kafka_round_trip_decisions_in_postgres_intents_on_a_topic(broker: TansuBroker, dsn: str) -> None:
    signals, intents = f"ta-{uuid.uuid4().hex[:8]}", f"intents-{uuid.uuid4().hex[:8]}"
    broker.create_topics([signals, intents])
    records = [ta_signal(row) for row in generate_rows(8, 5, seed=3)]
    bad = [(b"AAPL", b'{"symbol": "AAPL", not json'), (b"x", b'{"event_ts": "2026-02-19T14:30:05Z"}')]
    produce(broker.bootstrap, signals, [(r["symbol"].encode(), encode(r)) for r in records] + bad)
    source = {"kind": "kafka", "brokers": [broker.bootstrap], "topic": signals, "intents_topic": intents}

    result = run_service(service_config(source, dsn), once=True)

    rows = counts(dsn)
    assert rows["trade_decisions"] > 0
    assert rows["strategy_intents"] > 0
    published = consume(broker.bootstrap, intents, rows["strategy_intents"] + rows["trade_decisions"])
    assert len(published) == rows["strategy_intents"] + rows["trade_decisions"]
    with psycopg.connect(dsn) as conn:
        hashes = {str(h) for (h,) in conn.execute("SELECT decision_hash FROM trade_decisions")}
    published_hashes = {
        orjson.loads(value)["decision_hash"] for _, value, _ in published if b'"decision_hash"' in value
    }
    assert published_hashes == hashes
    assert result.counts["decisions"] == rows["trade_decisions"]
    with psycopg.connect(dsn) as conn:
        reasons = {str(r) for (r,) in conn.execute("SELECT reason FROM dead_letters WHERE stage = 'parse'")}
    assert {"invalid_json", "missing_symbol"} <= reasons
