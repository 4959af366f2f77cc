"""StrategyRuntime (pure) and the strategies_stage dataflow wrapper."""

from __future__ import annotations

import pickle
import socket
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from tests.strategies.factories import LEGACY_BUY, T0, definitions, fv
from tests.strategies.fake_dist import install_fake_distribution
from torghut.contracts import FeatureVectorV3, StrategyDefinition, StrategyError, StrategyIntent
from torghut.contracts.signal import InputPosition
from torghut.operators.decode import decode_record
from torghut.operators.strategies import StrategyRuntime, strategies_stage
from torghut.strategies.base import IntentDraft, StrategyParams, StrategyPlugin
from torghut.strategies.config import RegistryConfig, RuntimeConfig
from torghut.strategies.registry import StrategyRegistry, default_registry
from torghut.strategies.state import RuntimeState, SlotState
from torghut.strategies.view import FeatureView

LEGACY = {
    "strategy_id": "a-legacy",
    "strategy_type": "legacy_macd_rsi",
    "version": "1.0.0",
    "base_timeframe": "1Sec",
}
TSMOM = {
    "strategy_id": "b-tsmom",
    "strategy_type": "intraday_tsmom",
    "version": "1.1.0",
    "base_timeframe": "1Sec",
}
VWAP2 = {
    "strategy_id": "c-vwap",
    "strategy_type": "vwap_deviation",
    "version": "2.0.0",
    "base_timeframe": "1Sec",
}
EXPLODING = {
    "strategy_id": "z-exploding",
    "strategy_type": "exploding",
    "version": "0.1.0",
    "base_timeframe": "1Sec",
}


class _Probe(StrategyPlugin[StrategyParams, int]):
    params_model = StrategyParams
    required_features = ("price",)
    warmup_bars = 0

    def initial_state(self, params: StrategyParams) -> int:
        return 0

    def evaluate(
        self, params: StrategyParams, features: FeatureView, state: int
    ) -> tuple[Sequence[IntentDraft], int]:
        self.misbehave(features)
        return (IntentDraft("buy", Decimal("0.5"), Decimal(1), ("probe",)),), state + 1

    def misbehave(self, features: FeatureView) -> None:
        raise NotImplementedError


class ReadsUndeclared(_Probe):
    strategy_type = "reads_undeclared"
    version = "1.0.0"

    def misbehave(self, features: FeatureView) -> None:
        features.get("rsi14")


class OpensSocket(_Probe):
    strategy_type = "opens_socket"
    version = "1.0.0"

    def misbehave(self, features: FeatureView) -> None:
        socket.create_connection(("127.0.0.1", 9), timeout=0.1)


class SwallowsBlockedSocket(_Probe):
    strategy_type = "swallows_socket"
    version = "1.0.0"

    def misbehave(self, features: FeatureView) -> None:
        try:
            socket.getaddrinfo("example.com", 443)
        except Exception:
            pass


class ReturnsGarbage(_Probe):
    strategy_type = "returns_garbage"
    version = "1.0.0"

    def evaluate(self, params: StrategyParams, features: FeatureView, state: int) -> Any:
        return ["buy"], state


@pytest.fixture
def registry() -> StrategyRegistry:
    registry = default_registry(RegistryConfig(entry_points=False))
    for cls in (ReadsUndeclared, OpensSocket, SwallowsBlockedSocket, ReturnsGarbage):
        registry.register(cls, source="tests")
    return registry


def entry(strategy_type: str, **extra: Any) -> dict[str, Any]:
    return {"strategy_id": strategy_type, "strategy_type": strategy_type, "version": "1.0.0",
            "base_timeframe": "1Sec", **extra}  # fmt: skip


def run(
    runtime: StrategyRuntime, vectors: Sequence[FeatureVectorV3], state: RuntimeState | None = None
) -> tuple[RuntimeState, list[StrategyIntent], list[StrategyError]]:
    state = state or runtime.initial_state()
    intents: list[StrategyIntent] = []
    errors: list[StrategyError] = []
    for vector in vectors:
        state, new_intents, new_errors = runtime.evaluate(state, vector)
        intents += new_intents
        errors += new_errors
    return state, intents, errors


class TestEvaluate:
    def test_intents_in_strategy_id_order_with_provenance(self, registry: StrategyRegistry) -> None:
        cheap = {**LEGACY, "strategy_id": "a", "max_notional_per_trade": 250}
        defs = definitions(registry, {**LEGACY, "strategy_id": "b"}, cheap)
        vector = fv(seq=7, **LEGACY_BUY)
        _, intents, errors = StrategyRuntime(defs, registry).evaluate(RuntimeState(), vector)
        assert errors == []
        assert [i.strategy_id for i in intents] == ["a", "b"]
        first = intents[0]
        assert first == StrategyIntent(
            strategy_id=defs[0].strategy_id,
            symbol="NVDA",
            direction="buy",
            confidence=Decimal("0.65"),
            target_notional=Decimal("250.00000000"),
            horizon="1Sec",
            explain=("macd_cross_up", "rsi_oversold"),
            feature_snapshot_hash=vector.normalization_hash(),
            strategy_type="legacy_macd_rsi",
            strategy_version="1.0.0",
            parameter_hash=defs[0].parameter_hash,
            event_ts=T0,
            seq=7,
            required_features=("macd", "macd_signal", "rsi14", "price"),
            price=Decimal("187.1"),
        )

    def test_skips_other_timeframes_universes_and_disabled(self, registry: StrategyRegistry) -> None:
        defs = definitions(
            registry,
            {**LEGACY, "strategy_id": "tf", "base_timeframe": "1Min"},
            {**LEGACY, "strategy_id": "uni", "universe_symbols": ["AMD"]},
            {**LEGACY, "strategy_id": "off", "enabled": False},
            {**LEGACY, "strategy_id": "on", "universe_symbols": ["NVDA"]},
        )
        runtime = StrategyRuntime(defs, registry)
        state, intents, _ = runtime.evaluate(RuntimeState(), fv(**LEGACY_BUY))
        assert [i.strategy_id for i in intents] == ["on"]
        assert set(state.strategies) == {"tf", "uni", "on"}
        assert state.strategies["tf"].bars_seen == 0
        assert runtime.counters()["tf"].events == 0 and runtime.counters()["on"].events == 1

    def test_warmup_suppresses_intents_but_state_advances(self, registry: StrategyRegistry) -> None:
        runtime = StrategyRuntime(definitions(registry, VWAP2), registry)
        below = [fv(seconds=i, vwap_w5m="99.5", vwap_session="100") for i in range(7)]
        state, intents, _ = run(runtime, below[:5])
        assert intents == []  # the excursion started on bar 1, inside the 5-bar warm-up
        assert state.strategies["c-vwap"].bars_seen == 5
        assert state.strategies["c-vwap"].plugin_state == (Decimal("-50.000000"), -1)
        bars = [fv(seconds=i, vwap_w5m="100", vwap_session="100") for i in range(5)]
        bars.append(fv(seconds=5, seq=6, vwap_w5m="99", vwap_session="100"))  # ewma -25 bps: fires
        _, intents, _ = run(runtime, bars)
        assert [i.seq for i in intents] == [6]  # the 6th bar is past the warm-up

    def test_feature_hash_computed_once_per_event_and_only_for_intents(
        self, registry: StrategyRegistry, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        calls: list[int] = []
        original = FeatureVectorV3.normalization_hash

        def counting(self: FeatureVectorV3) -> str:
            calls.append(self.seq)
            return original(self)

        monkeypatch.setattr(FeatureVectorV3, "normalization_hash", counting)
        runtime = StrategyRuntime(definitions(registry, LEGACY, {**LEGACY, "strategy_id": "x"}), registry)
        _, intents, _ = run(
            runtime, [fv(seq=1, **LEGACY_BUY), fv(seq=2, macd="0", macd_signal="0", rsi14="50")]
        )
        assert len(intents) == 2 and calls == [1]

    def test_unregistered_plugin(self, registry: StrategyRegistry) -> None:
        (definition,) = definitions(registry, LEGACY)
        ghost = StrategyDefinition(**{**_fields(definition), "strategy_type": "ghost"})
        _, _, errors = run(StrategyRuntime([ghost], registry), [fv(**LEGACY_BUY)])
        assert [(e.plugin_id, e.reason) for e in errors] == [("unregistered", "plugin_not_found")]

    def test_invalid_params_fail_at_start(self, registry: StrategyRegistry) -> None:
        (definition,) = definitions(registry, VWAP2)
        bad = StrategyDefinition(**{**_fields(definition), "params": {"alpha": "7"}})
        with pytest.raises(ValueError, match="c-vwap"):
            StrategyRuntime([bad], registry)


def _fields(definition: StrategyDefinition) -> dict[str, Any]:
    return {name: getattr(definition, name) for name in definition.__dataclass_fields__}


class TestFailures:
    @pytest.mark.parametrize(
        ("strategy_type", "reason"),
        [
            ("reads_undeclared", "UndeclaredFeatureError"),
            ("opens_socket", "NetworkAccessBlocked"),
            ("swallows_socket", "NetworkAccessBlocked"),
            ("returns_garbage", "PluginOutputError"),
        ],
    )
    def test_misbehaving_plugins_fail_and_trip_the_breaker(
        self, registry: StrategyRegistry, strategy_type: str, reason: str
    ) -> None:
        runtime = StrategyRuntime(definitions(registry, entry(strategy_type), LEGACY), registry)
        vectors = [fv(seconds=i, seq=i, **LEGACY_BUY) for i in range(4)]
        state, intents, errors = run(runtime, vectors)
        assert [(e.seq, e.plugin_id, e.reason) for e in errors] == [
            (0, strategy_type, reason),
            (1, strategy_type, reason),
            (2, strategy_type, reason),
            (3, "circuit_breaker", "strategy_degraded"),
        ]
        assert [i.strategy_id for i in intents] == ["a-legacy"] * 4
        slot = state.strategies[strategy_type]
        assert slot.degraded_until == T0 + timedelta(seconds=302)
        assert (slot.consecutive_errors, slot.plugin_state, slot.bars_seen) == (0, 0, 0)
        counters = runtime.counters()[strategy_type]
        assert (counters.events, counters.errors, counters.intents) == (4, 4, 0)

    def test_network_allowed_again_after_evaluation(self, registry: StrategyRegistry) -> None:
        run(StrategyRuntime(definitions(registry, entry("opens_socket")), registry), [fv(price=1)])
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            assert server.getsockname()[1] > 0


class TestEntryPointPluginIsolation:
    @pytest.fixture
    def ep_registry(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StrategyRegistry:
        install_fake_distribution(tmp_path, monkeypatch, {"exploding": "Exploding"})
        return default_registry()

    def test_breaker_trips_cools_down_in_event_time_and_reenables(
        self, ep_registry: StrategyRegistry
    ) -> None:
        runtime = StrategyRuntime(
            definitions(ep_registry, EXPLODING, LEGACY, TSMOM),
            ep_registry,
            RuntimeConfig(circuit_errors=3, circuit_cooldown_s=300),
        )
        boom = {**LEGACY_BUY, "signal_quality_flag": "boom"}
        vectors = [
            fv(seconds=0, seq=0, **boom),
            fv(seconds=1, seq=1, **boom),
            fv(seconds=2, seq=2, **boom),  # third consecutive error: degraded until T0+302s
            fv(seconds=3, seq=3, **LEGACY_BUY),
            fv(seconds=302, seq=4, **LEGACY_BUY),  # event_ts == degraded_until: still degraded
            fv(seconds=303, seq=5, **LEGACY_BUY),  # cooled down: evaluated again
        ]
        _, intents, errors = run(runtime, vectors)
        assert [(e.seq, e.reason) for e in errors] == [
            (0, "RuntimeError"),
            (1, "RuntimeError"),
            (2, "RuntimeError"),
            (3, "strategy_degraded"),
            (4, "strategy_degraded"),
        ]
        assert all(e.strategy_id == "z-exploding" for e in errors)
        assert [i.seq for i in intents if i.strategy_id == "z-exploding"] == [5]
        assert [i.seq for i in intents if i.strategy_id == "a-legacy"] == [0, 1, 2, 3, 4, 5]

        without = StrategyRuntime(definitions(ep_registry, LEGACY, TSMOM), ep_registry)
        _, baseline, _ = run(without, vectors)
        assert [i for i in intents if i.strategy_id != "z-exploding"] == baseline

    def test_success_resets_the_error_count(self, ep_registry: StrategyRegistry) -> None:
        runtime = StrategyRuntime(definitions(ep_registry, EXPLODING), ep_registry)
        flags = ["boom", "boom", None, "boom", "boom", None]
        vectors = [fv(seconds=i, seq=i, price=1, signal_quality_flag=f) for i, f in enumerate(flags)]
        state, intents, errors = run(runtime, vectors)
        assert [e.reason for e in errors] == ["RuntimeError"] * 4
        assert [i.seq for i in intents] == [2, 5]
        # bars_seen saturates at the plugin's warm-up length (0 here); the error count is reset.
        assert state.strategies["z-exploding"] == SlotState(
            state.strategies["z-exploding"].fingerprint, 2, bars_seen=0
        )

    def test_catalog_change_resets_state_and_breaker(self, ep_registry: StrategyRegistry) -> None:
        boom = [fv(seconds=i, price=1, signal_quality_flag="boom") for i in range(3)]
        state, _, _ = run(StrategyRuntime(definitions(ep_registry, EXPLODING), ep_registry), boom)
        assert state.strategies["z-exploding"].degraded_until is not None
        changed = StrategyRuntime(
            definitions(ep_registry, {**EXPLODING, "max_notional_per_trade": 5}), ep_registry
        )
        state, intents, errors = run(changed, [fv(seconds=4, price=1)], state)
        assert errors == [] and len(intents) == 1
        assert state.strategies["z-exploding"].degraded_until is None


class TestStatePersistence:
    def test_fingerprint_change_restarts_plugin_state(self, registry: StrategyRegistry) -> None:
        bars = [fv(seconds=i, vwap_w5m="99.5", vwap_session="100") for i in range(3)]
        state, _, _ = run(StrategyRuntime(definitions(registry, VWAP2), registry), bars)
        assert state.strategies["c-vwap"].bars_seen == 3
        same = StrategyRuntime(definitions(registry, VWAP2), registry)
        assert run(same, bars[:1], state)[0].strategies["c-vwap"].bars_seen == 4
        retuned = StrategyRuntime(definitions(registry, {**VWAP2, "params": {"alpha": "0.5"}}), registry)
        assert run(retuned, bars[:1], state)[0].strategies["c-vwap"].bars_seen == 1
        rolled_back = StrategyRuntime(definitions(registry, {**VWAP2, "version": "1.0.0"}), registry)
        assert run(rolled_back, bars[:1], state)[0].strategies["c-vwap"].plugin_state == (-1, 1)

    def test_snapshot_is_picklable_plain_data(self, registry: StrategyRegistry) -> None:
        runtime = StrategyRuntime(definitions(registry, LEGACY, TSMOM, VWAP2), registry)
        state, _, _ = run(runtime, [fv(seconds=i, vwap_w5m="99.5", vwap_session="100") for i in range(3)])
        restored = pickle.loads(pickle.dumps(state))
        assert restored == state
        assert runtime.restore(restored) is restored
        assert runtime.restore(None) == RuntimeState()
        with pytest.raises(ValueError, match="unsupported strategies snapshot"):
            runtime.restore(RuntimeState(version=99))
        with pytest.raises(ValueError, match="unsupported"):
            runtime.restore({"strategies": {}})


def raw_row(vector: FeatureVectorV3) -> dict[str, Any]:
    """The flat signal row the stage decodes into ``vector``'s values."""
    row: dict[str, Any] = {
        "symbol": vector.symbol,
        "event_ts": vector.event_ts.isoformat(),
        "seq": vector.seq,
        "timeframe": vector.timeframe,
        "source": vector.source,
    }
    row.update({name: str(value) for name, value in vector.values.items() if isinstance(value, Decimal)})
    return row


def decoded(vectors: Sequence[FeatureVectorV3]) -> list[FeatureVectorV3]:
    out = [decode_record(raw_row(v), InputPosition("t", v.symbol, v.seq)) for v in vectors]
    assert all(isinstance(v, FeatureVectorV3) for v in out)
    return cast(list[FeatureVectorV3], out)


def _flow(
    runtime: StrategyRuntime, vectors: list[FeatureVectorV3], batch_size: int
) -> tuple[list[StrategyIntent], list[StrategyError]]:
    flow = Dataflow("strategies_test")
    rows = [(raw_row(v), InputPosition("t", v.symbol, v.seq)) for v in vectors]
    stream = op.input("in", flow, TestingSource(rows, batch_size=batch_size))
    keyed = op.map("key", stream, lambda item: (item[0]["symbol"], [item]))
    out = strategies_stage("strategies", keyed, runtime)
    intents: list[StrategyIntent] = []
    errors: list[StrategyError] = []
    op.output("intents", out.intents, TestingSink(intents))
    op.output("errors", out.errors, TestingSink(errors))
    run_main(flow)  # type: ignore[no-untyped-call]
    return intents, errors


@pytest.mark.parametrize("batch_size", [1, 4])
def test_dataflow_matches_the_pure_runtime(registry: StrategyRegistry, batch_size: int) -> None:
    defs = definitions(registry, LEGACY, VWAP2, entry("opens_socket"))
    vectors = []
    for i in range(8):
        for symbol in ("NVDA", "AMD"):
            price = "100" if i < 5 else "99.5"  # the vwap excursion starts after its warm-up
            features = {**LEGACY_BUY, "price": price, "vwap_w5m": price, "vwap_session": "100"}
            vectors.append(fv(symbol, seconds=i, seq=i, **features))
    intents, errors = _flow(StrategyRuntime(defs, registry), vectors, batch_size)

    expected_intents: list[StrategyIntent] = []
    expected_errors: list[StrategyError] = []
    for symbol in ("NVDA", "AMD"):
        _, sym_intents, sym_errors = run(
            StrategyRuntime(defs, registry), decoded([v for v in vectors if v.symbol == symbol])
        )
        expected_intents += sym_intents
        expected_errors += sym_errors

    def key(item: StrategyIntent | StrategyError) -> tuple[str, int, str]:
        return (item.symbol, item.seq, item.strategy_id)

    assert sorted(intents, key=key) == sorted(expected_intents, key=key)
    assert sorted(errors, key=key) == sorted(expected_errors, key=key)
    assert {i.strategy_id for i in intents} == {"a-legacy", "c-vwap"}
    assert {e.reason for e in errors} == {"NetworkAccessBlocked", "strategy_degraded"}
