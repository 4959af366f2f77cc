"""Scrape /metrics while a real replay runs: every design metric is there with plausible values."""

from __future__ import annotations

import threading
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import EXAMPLES, Replay
from torghut.connectors.synthetic.generator import write_sample_signals
from torghut.metrics import serve_metrics

CATALOG = EXAMPLES.parent / "benchmarks" / "catalog.yaml"
DESIGN_METRICS = (
    "strategy_events_total",
    "strategy_intents_total",
    "strategy_errors_total",
    "strategy_latency_ms",
    "intent_conflict_total",
    "allocator_reject_total",
)


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def test_design_metrics_are_scraped_during_a_replay(tmp_path: Path, replay: Replay) -> None:
    signals = tmp_path / "signals.jsonl"
    write_sample_signals(signals, 20, 10, seed=9)
    server = serve_metrics("127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.port}/metrics"
    scrapes: list[str] = []
    done = threading.Event()

    def scrape() -> None:
        while not done.wait(0.05):
            with urllib.request.urlopen(url, timeout=5) as response:
                scrapes.append(response.read().decode())

    scraper = threading.Thread(target=scrape, daemon=True)
    scraper.start()
    try:
        result = replay(signals, CATALOG, batch_size=50)
    finally:
        done.set()
        scraper.join()
    with urllib.request.urlopen(url, timeout=5) as response:
        final = _samples(response.read().decode())
    server.close()

    assert len(scrapes) >= 2, "the endpoint answered while the replay ran"
    for name in DESIGN_METRICS:
        assert any(key.startswith(name) for key in final), name
    ours = {"legacy-macd-rsi", "intraday-tsmom", "bollinger-reversion", "vwap-deviation"}
    # The registry is process-wide: other tests' strategies may be there too; look at this catalog's.
    events = {
        labels["strategy_id"]: value
        for labels, value in final["strategy_events_total"]
        if labels["strategy_id"] in ours
    }
    assert set(events) == ours
    assert all(value >= result.events_normalized for value in events.values()), (
        events,
        result.events_normalized,
    )
    intents = sum(value for _, value in final["strategy_intents_total"])
    assert intents >= result.streams["intents"].count > 0
    latency_counts = [
        v for labels, v in final["strategy_latency_ms_count"] if labels["strategy_id"] in events
    ]
    assert latency_counts and all(v > 0 for v in latency_counts)
    rejects = {labels["reason"]: value for labels, value in final["allocator_reject_total"]}
    assert rejects and all(value > 0 for value in rejects.values())
    assert final["torghut_events_in_total"][0][1] >= result.events_in
    verdicts = {(labels["gate"], labels["outcome"]) for labels, _ in final["torghut_gate_verdicts_total"]}
    assert ("firewall", "pass") in verdicts
