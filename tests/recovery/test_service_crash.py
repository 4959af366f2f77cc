"""The service killed with SIGKILL and resumed places every Alpaca order exactly once (reduced form)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.recovery.service_crash_harness import run_service_crash_test
from torghut.connectors.synthetic.generator import write_sample_signals


@pytest.mark.slow
def test_killed_and_resumed_service_posts_each_order_once_and_matches_an_uninterrupted_run(
    tmp_path: Path,
) -> None:
    signals = tmp_path / "signals.jsonl"
    write_sample_signals(signals, 10, 9, seed=5)  # 5,400 events; scripts/crash-test-service runs 102,000
    report = run_service_crash_test(signals, tmp_path, kills=3, seed=3)
    assert report.kills == 3
    assert report.counts["executions"] > 0 and report.counts["dead_letters"] > 0
    assert report.differences == []
    assert all(report.identical) and all(report.same_ids)
    assert report.max_received and max(report.max_received) == 1
    assert report.exactly_once


@pytest.mark.slow
def test_killed_and_resumed_service_deciding_against_the_broker_sends_no_intent_twice(tmp_path: Path) -> None:
    signals = tmp_path / "signals.jsonl"
    write_sample_signals(signals, 10, 9, seed=5)
    report = run_service_crash_test(signals, tmp_path, kills=3, seed=4, broker_account=True)
    assert report.kills == 3
    assert report.counts["executions"] > 0
    assert report.differences == []
    assert len(report.intents_once) == len(report.max_received) and all(report.intents_once)
    assert report.identical == [] and report.same_ids == []  # not comparable: decisions depend on timing
    assert report.exactly_once
