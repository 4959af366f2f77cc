"""The portfolio path through the real flow: kill switch, legacy parity, fallback, determinism."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import EXAMPLES, Replay
from torghut.contracts import FeatureVectorV3, FrozenMap
from torghut.contracts.decision import decision_hash
from torghut.dataflow.config import EngineConfig
from torghut.dataflow.replay import ReplayResult
from torghut.operators.legacy import legacy_decisions
from torghut.strategies.catalog import load_catalog
from torghut.strategies.registry import default_registry

BENCH_CATALOG = EXAMPLES.parent / "benchmarks" / "catalog.yaml"


def _engine(**trading: Any) -> EngineConfig:
    base = EngineConfig()
    return base.model_copy(update={"trading": base.trading.model_copy(update=trading)})


def _records(result: ReplayResult, stream: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (result.out_dir / f"{stream}.jsonl").read_bytes().splitlines()]


def test_paper_replay_allocates_decides_and_fills(replay: Replay, clean_signals: Path) -> None:
    result = replay(clean_signals, BENCH_CATALOG)
    symbol_intents = result.streams["symbol_intents"].count
    decisions = _records(result, "decisions")
    assert symbol_intents > 0
    assert result.streams["portfolio_intents"].count == symbol_intents
    assert len(decisions) == symbol_intents
    orders, rejections = result.streams["orders"].count, result.streams["rejections"].count
    assert orders > 0
    assert orders + rejections == len(decisions)
    assert result.streams["executions"].count == orders
    for decision in decisions:
        assert decision["status"] in {"filled", "rejected"}
        assert len(decision["decision_hash"]) == 64
        assert decision["gate_trace"], decision
        assert set(decision["provenance"]) >= {"strategy_versions", "parameter_hashes", "config_hash"}
    sent = {order["client_order_id"] for order in _records(result, "orders")}
    filled = {d["decision_hash"] for d in decisions if d["status"] == "filled"}
    assert sent == filled  # the client order id is the decision hash
    paper = result.summary["paper_account"]
    assert paper["orders"] == orders
    assert paper["fills"] == orders
    assert sum(paper["rejections_by_reason"].values()) >= rejections
    # The summary reads only each rejection's reasons: they are what the whole records hold.
    reasons = Counter(reason for r in _records(result, "rejections") for reason in r["reasons"])
    assert paper["rejections_by_reason"] == dict(sorted(reasons.items()))


def test_every_rejection_carries_its_reasons_and_trace(replay: Replay, clean_signals: Path) -> None:
    result = replay(clean_signals, BENCH_CATALOG)
    rejections = _records(result, "rejections")
    assert rejections
    for rejection in rejections:
        assert rejection["reasons"] and all(rejection["reasons"])
        assert any(v["outcome"] == "reject" for v in rejection["gate_trace"])


def test_kill_switch_sends_no_order_and_rejects_every_decision(replay: Replay, clean_signals: Path) -> None:
    result = replay(clean_signals, BENCH_CATALOG, engine=_engine(trading_kill_switch_enabled=True))
    decisions = _records(result, "decisions")
    assert decisions
    assert result.streams["orders"].count == 0
    assert result.streams["executions"].count == 0
    assert all(d["status"] == "rejected" for d in decisions)
    rejections = _records(result, "rejections")
    assert len(rejections) == len(decisions)
    reasons = Counter(r for rejection in rejections for r in rejection["reasons"])
    # Decisions that passed allocation, policy and risk are stopped by the firewall's kill switch.
    assert reasons["kill_switch_enabled"] > 0
    firewall = [r for r in rejections if r["stage"] == "firewall"]
    assert firewall and all(r["reasons"] == ["kill_switch_enabled"] for r in firewall)


def _features(result: ReplayResult) -> list[FeatureVectorV3]:
    vectors = []
    for record in _records(result, "features"):
        values = {
            k: (Decimal(v) if isinstance(v, str) and k != "signal_quality_flag" else v)
            for k, v in record["values"].items()
        }
        vectors.append(
            FeatureVectorV3(
                event_ts=datetime.fromisoformat(record["event_ts"]),
                symbol=record["symbol"],
                timeframe=record["timeframe"],
                seq=record["seq"],
                source=record["source"],
                feature_schema_version=record["feature_schema_version"],
                values=FrozenMap(values),
            )
        )
    return vectors


def test_legacy_mode_reproduces_torghuts_decisions_and_hashes(replay: Replay, clean_signals: Path) -> None:
    engine = _engine(trading_strategy_runtime_mode="legacy")
    result = replay(clean_signals, BENCH_CATALOG, engine=engine, emit_features=True)
    decisions = _records(result, "decisions")
    assert decisions
    assert result.streams["symbol_intents"].count == 0  # no aggregation or allocation in legacy mode
    catalog = load_catalog(BENCH_CATALOG, default_registry())
    expected = {
        d.decision_hash: d
        for fv in _features(result)
        for d in legacy_decisions(fv, catalog.definitions, engine.account.starting_equity, engine.trading)
    }
    assert {d["decision_hash"] for d in decisions} == set(expected)
    for record in decisions:
        want = expected[record["decision_hash"]]
        assert Decimal(record["qty"]) == want.qty
        assert record["action"] == want.action
        assert record["rationale"] == want.rationale
        assert record["params"]["strategy_runtime"]["plugin_id"] == "legacy_builtin"
        # The hash is torghut's V3 formula over the decision as emitted (market, day, original qty).
        assert record["decision_hash"] == decision_hash(
            strategy_id=want.strategy_id,
            symbol=want.symbol,
            event_ts=want.event_ts,
            timeframe=want.timeframe,
            action=want.action,
            qty=want.qty,
            order_type="market",
            time_in_force="day",
            limit_price=None,
            stop_price=None,
            params=dict(want.params),
        )


@pytest.mark.parametrize("fallback", [True, False])
def test_runtime_falls_back_to_legacy_only_when_enabled(
    tmp_path: Path, replay: Replay, clean_signals: Path, fallback: bool
) -> None:
    # A plugin strategy that never fires (its thresholds are unreachable) next to the legacy rule's inputs.
    catalog = tmp_path / "silent.yaml"
    catalog.write_text(
        "strategies:\n"
        "  - strategy_id: silent-vwap\n"
        "    strategy_type: vwap_deviation\n"
        "    version: 1.0.0\n"
        "    base_timeframe: 1Sec\n"
        "    max_notional_per_trade: 500\n"
        "    params: {entry_bps: '100000'}\n"
    )
    engine = _engine(trading_strategy_runtime_fallback_legacy=fallback)
    result = replay(clean_signals, catalog, engine=engine)
    assert result.streams["intents"].count == 0
    decisions = _records(result, "decisions")
    if not fallback:
        assert decisions == []
        return
    assert decisions
    assert {d["params"]["strategy_runtime"]["plugin_id"] for d in decisions} == {"legacy_builtin"}
    assert {d["strategy_id"] for d in decisions} == {"silent-vwap"}


def test_portfolio_outputs_are_identical_across_processes_and_batch_sizes(
    replay: Replay, mixed_signals: Path
) -> None:
    one = replay(mixed_signals, BENCH_CATALOG, processes=1, batch_size=1000)
    two = replay(mixed_signals, BENCH_CATALOG, processes=2, batch_size=61)
    assert one.streams["orders"].count > 0
    for stream in ("symbol_intents", "portfolio_intents", "decisions", "orders", "rejections", "executions"):
        assert one.streams[stream].sha256 == two.streams[stream].sha256, stream
    assert one.summary["paper_account"] == two.summary["paper_account"]
    # Stated here too (the fixture checks every run): neither path wrote any record twice.
    for result in (one, two):
        assert {name: s.repeats_dropped for name, s in result.streams.items()} == dict.fromkeys(
            result.streams, 0
        )
