"""Torghut's legacy decision path: rule boundaries, sizing table, params and golden decision hashes.

The golden hashes were computed with :func:`independent_hash` below, a re-implementation of torghut's
``decision_hash`` written from the contract (sorted-keys compact JSON with ``default=str``), not with the
engine's code; the tests check that both agree with the hard-coded values.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from torghut.contracts.decision import TradeDecision
from torghut.contracts.features import FeatureVectorV3
from torghut.contracts.frozen import EMPTY, FrozenMap
from torghut.contracts.signal import InputPosition, SignalEnvelope
from torghut.contracts.strategy import StrategyDefinition, StrategyId
from torghut.operators.legacy import (
    coerce_timeframe,
    legacy_decisions,
    legacy_features,
    resize_legacy_decision,
    resolve_qty,
    resolve_timeframe,
    route_decisions,
    runtime_enabled,
)
from torghut.operators.trading_config import TradingConfig

TS = datetime(2026, 2, 19, 14, 30, 5, tzinfo=UTC)
D = Decimal
RUNTIME = {
    "plugin_id": "legacy_builtin",
    "plugin_version": "1.0.0",
    "parameter_hash": "legacy",
    "required_features": ["macd", "macd_signal", "rsi14", "price"],
}


def independent_hash(decision: TradeDecision, params: dict[str, Any]) -> str:
    payload: dict[str, Any] = {
        "strategy_id": decision.strategy_id,
        "symbol": decision.symbol,
        "event_ts": decision.event_ts.isoformat(),
        "timeframe": decision.timeframe,
        "action": decision.action,
        "qty": str(decision.qty),
        "order_type": decision.order_type,
        "time_in_force": decision.time_in_force,
        "limit_price": None if decision.limit_price is None else str(decision.limit_price),
        "stop_price": None if decision.stop_price is None else str(decision.stop_price),
        "params": params,
    }
    raw = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def plain(value: Any) -> Any:
    """JSON-shaped view (tuples as lists, decimals as strings) for comparing frozen params."""
    return json.loads(json.dumps(value, default=str))


def strategy(
    sid: str = "6f1d5c3e-0000-4000-8000-000000000001",
    timeframe: str = "1Sec",
    max_notional: str | None = None,
    pct: str | None = None,
    enabled: bool = True,
) -> StrategyDefinition:
    return StrategyDefinition(
        strategy_id=StrategyId(sid),
        strategy_name="macd-rsi-default",
        strategy_type="legacy_macd_rsi",
        version="1.0.0",
        params=EMPTY,
        feature_requirements=("macd", "macd_signal", "rsi14", "price"),
        enabled=enabled,
        base_timeframe=timeframe,
        max_notional_per_trade=None if max_notional is None else D(max_notional),
        max_position_pct_equity=None if pct is None else D(pct),
    )


def fv(
    macd: str = "0.0123",
    signal: str = "0.01",
    rsi: str | None = "30",
    price: str | None = "187.1",
    vol: str | None = "0.004",
) -> FeatureVectorV3:
    values = {
        "price": None if price is None else D(price),
        "macd": D(macd),
        "macd_signal": D(signal),
        "rsi14": None if rsi is None else D(rsi),
        "vol_realized_w60s": None if vol is None else D(vol),
    }
    return FeatureVectorV3(
        event_ts=TS,
        symbol="NVDA",
        timeframe="1Sec",
        seq=1234,
        source="ta",
        feature_schema_version="3.0.0",
        values=FrozenMap(values),
        position=InputPosition("replay", "0", 7),
    )


# --- worked examples with golden hashes --------------------------------------------------------

GOLDEN_BUY = "ee317e17e83f7b6101634a6323ef14419a61cd4ce06ec9a1e370914d651f7320"
GOLDEN_SELL = "86c11ad423a0738e9114438f1a243e25c72a2048027c8b50bda00b1023c8e5e5"


def test_buy_worked_example() -> None:
    # budget min(1000, 100000 x 0.05 = 5000.00) = 1000; qty floor(1000 / 187.1) = 5
    s = strategy(max_notional="1000", pct="0.05")
    [decision] = legacy_decisions(fv(), [s], D("100000"), TradingConfig())
    assert decision.action == "buy"
    assert decision.qty == D(5)
    assert str(decision.qty) == "5"
    assert decision.order_type == "market"
    assert decision.time_in_force == "day"
    assert decision.rationale == "macd_cross_up,rsi_oversold"
    assert decision.timeframe == "1Sec"
    assert decision.account == "paper"
    expected_params = {
        "macd": D("0.0123"),
        "macd_signal": D("0.01"),
        "rsi": D("30"),
        "price": D("187.1"),
        "volatility": D("0.004"),
        "sizing": {"method": "min(max_notional,pct_equity)", "notional_budget": "1000", "price": "187.1"},
        "strategy_runtime": RUNTIME,
    }
    assert plain(decision.params) == plain(expected_params)
    assert decision.provenance["input_position"] == "replay:0:7"
    assert decision.provenance["feature_hashes"] == (fv().normalization_hash(),)
    assert decision.provenance["config_hash"] == TradingConfig().config_hash()
    assert independent_hash(decision, expected_params) == GOLDEN_BUY
    assert decision.decision_hash == GOLDEN_BUY
    assert decision.recompute_hash() == decision.decision_hash


def test_sell_worked_example_from_a_raw_signal() -> None:
    payload = {"macd": {"macd": -0.5, "signal": 0.1}, "rsi14": 70.5, "price": "50", "window_size": "PT1M"}
    envelope = SignalEnvelope(event_ts=TS, symbol="AMD", payload=FrozenMap(payload))
    s = strategy(sid="s-sell", timeframe="1Min", pct="0.02")
    [decision] = legacy_decisions(envelope, [s], D("10000"), TradingConfig())
    # budget 10000 x 0.02 = 200.00; qty floor(200.00 / 50) = 4
    assert (decision.action, decision.qty, decision.rationale) == (
        "sell",
        D(4),
        "macd_cross_down,rsi_overbought",
    )
    expected_params = {
        "macd": D("-0.5"),
        "macd_signal": D("0.1"),
        "rsi": D("70.5"),
        "price": D("50"),
        "sizing": {"method": "max_position_pct_equity", "notional_budget": "200.00", "price": "50"},
        "strategy_runtime": RUNTIME,
    }
    assert plain(decision.params) == plain(expected_params)  # no volatility key when there is none
    assert decision.provenance["feature_hashes"] == ()
    assert independent_hash(decision, expected_params) == GOLDEN_SELL
    assert decision.decision_hash == GOLDEN_SELL


# --- rule boundaries -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("macd", "signal", "rsi", "expected"),
    [
        ("0.02", "0.01", "34.99", "buy"),
        ("0.02", "0.01", "35", None),  # RSI 35 is not oversold
        ("0.01", "0.01", "10", None),  # macd == signal never triggers
        ("0.00", "0.01", "65.01", "sell"),
        ("0.00", "0.01", "65", None),  # RSI 65 is not overbought
        ("0.01", "0.01", "90", None),
        ("0.02", "0.01", "70", None),  # cross up but overbought
        ("0.00", "0.01", "20", None),  # cross down but oversold
    ],
)
def test_rule_uses_strict_inequalities(macd: str, signal: str, rsi: str, expected: str | None) -> None:
    decisions = legacy_decisions(
        fv(macd=macd, signal=signal, rsi=rsi), [strategy(max_notional="1000")], None, TradingConfig()
    )
    assert [d.action for d in decisions] == ([] if expected is None else [expected])


def test_missing_indicator_means_no_decision() -> None:
    assert legacy_decisions(fv(rsi=None), [strategy()], None, TradingConfig()) == []


def test_timeframe_must_match_exactly_and_disabled_strategies_are_skipped() -> None:
    strategies = [
        strategy(sid="a", timeframe="1Sec", max_notional="500"),
        strategy(sid="b", timeframe="1Min", max_notional="500"),
        strategy(sid="c", timeframe="1sec", max_notional="500"),
        strategy(sid="d", timeframe="1Sec", enabled=False),
        strategy(sid="e", timeframe="1Sec", max_notional="1000"),
    ]
    decisions = legacy_decisions(fv(), strategies, None, TradingConfig())
    assert [(d.strategy_id, d.qty) for d in decisions] == [("a", D(2)), ("e", D(5))]
    assert len({d.decision_hash for d in decisions}) == 2


def test_a_raw_signal_without_a_timeframe_yields_nothing() -> None:
    envelope = SignalEnvelope(TS, "AMD", FrozenMap({"macd": 1, "macd_signal": 0, "rsi14": 10, "price": 5}))
    assert legacy_decisions(envelope, [strategy()], None, TradingConfig()) == []


# --- sizing table --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_notional", "pct", "equity", "price", "global_max", "qty", "sizing"),
    [
        (None, None, None, None, None, "1", {"method": "default_qty", "reason": "missing_price"}),
        ("500", None, None, "0", None, "1", {"method": "default_qty", "reason": "missing_price"}),
        (None, None, None, "100", None, "1", {"method": "default_qty", "reason": "missing_budget"}),
        (
            "500",
            "0.05",
            "20000",
            "100",
            None,
            "5",
            {"method": "min(max_notional,pct_equity)", "notional_budget": "500", "price": "100"},
        ),
        (
            "5000",
            "0.05",
            "20000",
            "100",
            None,
            "10",
            {"method": "min(max_notional,pct_equity)", "notional_budget": "1000.00", "price": "100"},
        ),
        (
            "500",
            "0.05",
            None,
            "100",
            None,
            "5",
            {"method": "max_notional_per_trade", "notional_budget": "500", "price": "100"},
        ),
        (
            "0",
            "0.05",
            "20000",
            "100",
            None,
            "10",
            {"method": "max_position_pct_equity", "notional_budget": "1000.00", "price": "100"},
        ),
        (
            None,
            "0",
            "20000",
            "100",
            "1000",
            "10",
            {"method": "global_max_notional_per_trade", "notional_budget": "1000.0", "price": "100"},
        ),
        (None, None, None, "100", "0", "1", {"method": "default_qty", "reason": "missing_budget"}),
        (
            "999.99",
            None,
            None,
            "100",
            None,
            "9",
            {"method": "max_notional_per_trade", "notional_budget": "999.99", "price": "100"},
        ),
        (
            "100",
            None,
            None,
            "187.1",
            None,
            "1",
            {"method": "max_notional_per_trade", "notional_budget": "100", "price": "187.1"},
        ),
    ],
)
def test_resolve_qty_table(
    max_notional: str | None,
    pct: str | None,
    equity: str | None,
    price: str | None,
    global_max: str | None,
    qty: str,
    sizing: dict[str, str],
) -> None:
    config = TradingConfig(trading_max_notional_per_trade=None if global_max is None else D(global_max))
    got_qty, got_sizing = resolve_qty(
        strategy(max_notional=max_notional, pct=pct),
        price=None if price is None else D(price),
        equity=None if equity is None else D(equity),
        config=config,
    )
    assert (str(got_qty), got_sizing) == (qty, sizing)


def test_default_qty_comes_from_config() -> None:
    qty, sizing = resolve_qty(
        strategy(), price=None, equity=None, config=TradingConfig(trading_default_qty=3)
    )
    assert (qty, sizing["reason"]) == (D(3), "missing_price")


# --- sizing again against the broker's equity (live mode) ---------------------------------------


@pytest.mark.parametrize(
    ("max_notional", "pct", "equity"),
    [("1000", "0.05", "4000"), (None, "0.02", "250000.5"), ("1000", "0.05", "0"), (None, "0.05", "1")],
)
def test_a_resized_decision_is_the_decision_made_against_that_equity(
    max_notional: str | None, pct: str, equity: str
) -> None:
    s = strategy(max_notional=max_notional, pct=pct)
    [planned] = legacy_decisions(fv(), [s], D("100000"), TradingConfig())
    [direct] = legacy_decisions(fv(), [s], D(equity), TradingConfig())

    resized = resize_legacy_decision(planned, s, equity=D(equity), config=TradingConfig())

    assert resized.decision_hash == direct.decision_hash != planned.decision_hash
    assert (resized.qty, plain(resized.params)) == (direct.qty, plain(direct.params))
    assert resized.provenance["sizing_equity"] == equity
    assert {k: v for k, v in resized.provenance.items() if k != "sizing_equity"} == dict(planned.provenance)


def test_a_decision_whose_size_does_not_depend_on_equity_is_kept_as_it_is() -> None:
    fixed = strategy(max_notional="1000")  # no pct: equity plays no part
    [planned] = legacy_decisions(fv(), [fixed], D("100000"), TradingConfig())
    assert resize_legacy_decision(planned, fixed, equity=D(5), config=TradingConfig()) is planned

    capped = strategy(max_notional="1000", pct="0.05")  # the notional cap binds at both equities
    [planned] = legacy_decisions(fv(), [capped], D("100000"), TradingConfig())
    assert resize_legacy_decision(planned, capped, equity=D(50_000), config=TradingConfig()) is planned


# --- features and timeframes --------------------------------------------------------------------


def test_legacy_features_from_raw_payload_follow_the_v3_mapping() -> None:
    def features(payload: dict[str, Any]) -> tuple[Any, ...]:
        f = legacy_features(SignalEnvelope(TS, "X", FrozenMap(payload), timeframe="1Sec"))
        return (f.macd, f.macd_signal, f.rsi, f.price, f.volatility)

    assert features({"macd": 1, "macd_signal": 0.5, "rsi14": 0, "rsi": 40, "vwap_session": 9}) == (
        D(1),
        D("0.5"),
        D(40),
        D(9),
        None,
    )
    assert features({"vwap": {"session": None, "w5m": 3}, "vol_realized": {"w60s": 0.01}})[3:] == (
        D(3),
        D("0.01"),
    )
    assert features({"price": None, "close": 5})[3] is None  # a present null ends the price search
    assert features({"imbalance": {"bid_px": 10, "ask_px": 11}, "sigma": 2})[3:] == (D("10.5"), D(2))
    assert features({"macd": "abc"})[0] is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("PT1S", "1Sec"),
        ("PT5M", "5Min"),
        ("PT1H", "1Hour"),
        ("1m", "1Min"),
        ("1min", "1Min"),
        ("1 hour", "1Hour"),
        ("15s", "15Sec"),
        ("weekly", None),
    ],
)
def test_coerce_timeframe(raw: str, expected: str | None) -> None:
    assert coerce_timeframe(raw) == expected


def test_resolve_timeframe_precedence() -> None:
    def tf(payload: dict[str, Any], own: str | None = None) -> str | None:
        return resolve_timeframe(SignalEnvelope(TS, "X", FrozenMap(payload), timeframe=own))

    assert tf({"timeframe": "1m"}, own="1Sec") == "1Sec"
    assert tf({"timeframe": "1m", "window": {"size": "PT1S"}}) == "1Min"
    assert tf({"window": {"size": "PT1S"}, "window_size": "PT1M"}) == "1Sec"
    assert tf({"window_size": "PT1M", "window_step": "PT1S"}) == "1Min"
    assert tf({"window_step": "PT1S"}) == "1Sec"
    assert tf({}) is None


# --- runtime switch and fallback ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "scheduler", "expected"),
    [
        ("plugin_v3", False, True),
        ("plugin_v3", True, True),
        ("scheduler_v3", True, True),
        ("scheduler_v3", False, False),
        ("legacy", True, False),
        ("legacy", False, False),
    ],
)
def test_runtime_enabled_table(mode: str, scheduler: bool, expected: bool) -> None:
    assert runtime_enabled(mode, scheduler) is expected  # type: ignore[arg-type]


def test_route_decisions_fallback() -> None:
    def cfg(**kwargs: Any) -> TradingConfig:
        return TradingConfig(**kwargs)

    legacy_calls: list[int] = []

    def legacy() -> list[str]:
        legacy_calls.append(1)
        return ["legacy"]

    routed = route_decisions(cfg(), lambda: ["runtime"], legacy)
    assert (routed.decisions, routed.runtime_enabled, routed.fallback_to_legacy) == (
        ("legacy",),
        False,
        False,
    )
    routed = route_decisions(cfg(trading_strategy_runtime_mode="plugin_v3"), lambda: ["runtime"], legacy)
    assert (routed.decisions, routed.fallback_to_legacy) == (("runtime",), False)
    routed = route_decisions(cfg(trading_strategy_runtime_mode="plugin_v3"), list, legacy)
    assert (routed.decisions, routed.runtime_enabled, routed.fallback_to_legacy) == (("legacy",), True, True)
    no_fallback = cfg(
        trading_strategy_runtime_mode="plugin_v3", trading_strategy_runtime_fallback_legacy=False
    )
    assert route_decisions(no_fallback, list, legacy).decisions == ()
    assert len(legacy_calls) == 2
