"""Catalog-driven behaviour through the real flow: three strategies at once, on/off, pins, failing plugins."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from tests.conftest import Replay
from tests.strategies.fake_dist import install_fake_distribution

RAISING_SOURCE = '''
from torghut.strategies.base import StrategyParams, StrategyPlugin

class AlwaysRaises(StrategyPlugin[StrategyParams, int]):
    """A broken third-party plugin: every evaluation raises."""

    strategy_type = "always_raises"
    version = "0.1.0"
    params_model = StrategyParams
    required_features = ("price",)
    warmup_bars = 0

    def initial_state(self, params):
        return 0

    def evaluate(self, params, features, state):
        raise RuntimeError("plugin bug")
'''


def _catalog(tmp_path: Path, source: Path, name: str, edit: Any) -> Path:
    data = yaml.safe_load(source.read_text())
    edit(data["strategies"])
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _lines(out_dir: Path, stream: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (out_dir / f"{stream}.jsonl").read_bytes().splitlines()]


def _by_strategy(out_dir: Path) -> dict[str, list[bytes]]:
    grouped: dict[str, list[bytes]] = {}
    for line in (out_dir / "intents.jsonl").read_bytes().splitlines():
        grouped.setdefault(orjson.loads(line)["strategy_id"], []).append(line)
    return grouped


def test_several_strategies_produce_intents_from_one_catalog(
    replay: Replay, clean_signals: Path, example_catalog: Path
) -> None:
    result = replay(clean_signals, example_catalog)
    per_strategy = Counter(record["strategy_id"] for record in _lines(result.out_dir, "intents"))
    assert len(per_strategy) >= 3, per_strategy


def test_turning_a_strategy_off_removes_only_its_intents(
    tmp_path: Path, replay: Replay, clean_signals: Path, example_catalog: Path
) -> None:
    baseline = _by_strategy(replay(clean_signals, example_catalog).out_dir)
    victim = max(baseline, key=lambda sid: len(baseline[sid]))

    def disable(entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            if entry.get("strategy_id", entry.get("name")) == victim:
                entry["enabled"] = False

    edited = _by_strategy(
        replay(clean_signals, _catalog(tmp_path, example_catalog, "off.yaml", disable)).out_dir
    )
    assert victim not in edited
    assert edited == {sid: lines for sid, lines in baseline.items() if sid != victim}


def test_pinning_the_older_version_changes_that_strategys_intents(
    tmp_path: Path, replay: Replay, clean_signals: Path, example_catalog: Path
) -> None:
    def everywhere(entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            entry.pop("universe_symbols", None)
            entry.pop("symbols", None)

    def pin_v1(entries: list[dict[str, Any]]) -> None:
        everywhere(entries)
        for entry in entries:
            if entry["strategy_type"] == "vwap_deviation" and entry["version"] == "2.0.0":
                entry["version"] = "1.0.0"
                entry["params"] = {"entry_bps": "12"}

    current = replay(clean_signals, _catalog(tmp_path, example_catalog, "v2.yaml", everywhere)).out_dir
    rolled_back = replay(clean_signals, _catalog(tmp_path, example_catalog, "v1.yaml", pin_v1)).out_dir
    before, after = _by_strategy(current), _by_strategy(rolled_back)
    assert before["vwap-deviation"] != after["vwap-deviation"]
    versions = {orjson.loads(line)["strategy_version"] for line in after["vwap-deviation"]}
    assert versions == {"1.0.0"}
    assert {k: v for k, v in before.items() if k != "vwap-deviation"} == {
        k: v for k, v in after.items() if k != "vwap-deviation"
    }


@pytest.mark.parametrize("processes", [1, 2])
def test_a_raising_entry_point_plugin_trips_its_breaker_and_leaves_others_unchanged(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    replay: Replay,
    clean_signals: Path,
    example_catalog: Path,
    processes: int,
) -> None:
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    install_fake_distribution(
        plugin_dir, monkeypatch, {"always_raises": "AlwaysRaises"}, source=RAISING_SOURCE
    )
    monkeypatch.setenv("PYTHONPATH", str(plugin_dir))  # the worker processes discover it too

    def add_broken(entries: list[dict[str, Any]]) -> None:
        entries.append(
            {
                "strategy_id": "broken",
                "strategy_type": "always_raises",
                "version": "0.1.0",
                "base_timeframe": "1Sec",
                "universe_symbols": ["NVDA"],
            }
        )

    baseline = replay(clean_signals, example_catalog, processes=processes)
    broken = replay(
        clean_signals, _catalog(tmp_path, example_catalog, "broken.yaml", add_broken), processes=processes
    )

    assert broken.streams["intents"].sha256 == baseline.streams["intents"].sha256
    errors = [e for e in _lines(broken.out_dir, "strategy_errors") if e["strategy_id"] == "broken"]
    reasons = Counter(e["reason"] for e in errors)
    # Three consecutive failures open the breaker; it stays open for 300 s of event time, then retries.
    assert reasons["RuntimeError"] >= 3
    assert reasons["strategy_degraded"] > reasons["RuntimeError"]
    first = sorted(errors, key=lambda e: e["event_ts"])[:4]
    assert [e["reason"] for e in first] == ["RuntimeError"] * 3 + ["strategy_degraded"]
