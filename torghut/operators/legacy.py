"""Torghut's legacy decision path: per-strategy MACD/RSI decisions and sizing, with its exact hashes.

Contracts section 3. For every enabled strategy whose ``base_timeframe`` equals the signal's timeframe
(exact string), whatever its plugin type:

- BUY when ``macd > macd_signal`` and ``rsi < 35`` (rationale ``"macd_cross_up,rsi_oversold"``);
- SELL when ``macd < macd_signal`` and ``rsi > 65`` (rationale ``"macd_cross_down,rsi_overbought"``);
- otherwise, or when any of the three is missing, no decision.

The quantity comes from :func:`resolve_qty`; the decision is a ``market``/``day`` order whose hash is
torghut's V3 decision hash. :func:`route_decisions` implements the runtime switch and the legacy fallback.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any, Generic, TypeVar

from torghut.contracts.decision import TradeDecision
from torghut.contracts.features import FeatureVectorV3
from torghut.contracts.frozen import freeze
from torghut.contracts.signal import SignalEnvelope
from torghut.contracts.strategy import Direction, StrategyDefinition
from torghut.operators.trading_config import RuntimeMode, TradingConfig

T = TypeVar("T")

LEGACY_REQUIRED_FEATURES: tuple[str, ...] = ("macd", "macd_signal", "rsi14", "price")
BUY_RATIONALE = "macd_cross_up,rsi_oversold"
SELL_RATIONALE = "macd_cross_down,rsi_overbought"
RSI_OVERSOLD = Decimal(35)
RSI_OVERBOUGHT = Decimal(65)
_PRICE_KEYS = ("price", "close", "c", "last", "vwap", "vwap_session", "vwap_w5m")
_VOL_KEYS = ("vol_realized_w60s", "volatility", "vol", "sigma")
_LEGACY_TF = re.compile(r"(?i)\s*(\d+)\s*(sec|secs|s|min|minute|minutes|m|hour|hours|h)\s*")
_ISO_TF = re.compile(r"PT(\d+)([SMH])")
_UNIT_NAMES = {"s": "Sec", "m": "Min", "h": "Hour"}


def legacy_runtime_metadata() -> dict[str, Any]:
    """Return ``params.strategy_runtime`` of a legacy decision (a fresh dict each call)."""
    return {
        "plugin_id": "legacy_builtin",
        "plugin_version": "1.0.0",
        "parameter_hash": "legacy",
        "required_features": list(LEGACY_REQUIRED_FEATURES),
    }


@dataclass(frozen=True, slots=True)
class LegacyFeatures:
    """Torghut's legacy ``SignalFeatures``."""

    macd: Decimal | None
    macd_signal: Decimal | None
    rsi: Decimal | None
    price: Decimal | None
    volatility: Decimal | None


def _dec(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _payload_price(payload: Mapping[str, Any]) -> Decimal | None:
    vwap = payload.get("vwap")
    if isinstance(vwap, Mapping):
        session = _dec(vwap.get("session"))
        return session if session is not None else _dec(vwap.get("w5m"))
    for key in _PRICE_KEYS:
        if key in payload:
            # a key that is present but null ends the search, as in torghut
            return _dec(payload[key])
    imbalance = payload.get("imbalance")
    if isinstance(imbalance, Mapping):
        bid, ask = _dec(imbalance.get("bid_px")), _dec(imbalance.get("ask_px"))
        if bid is not None and ask is not None:
            return (bid + ask) / 2
    return None


def _payload_volatility(payload: Mapping[str, Any]) -> Decimal | None:
    nested = payload.get("vol_realized")
    if isinstance(nested, Mapping) and "w60s" in nested:
        return _dec(nested.get("w60s"))
    for key in _VOL_KEYS:
        if key in payload:
            return _dec(payload[key])
    return None


def legacy_features(source: FeatureVectorV3 | SignalEnvelope) -> LegacyFeatures:
    """Return the legacy features of a feature vector or a raw signal (section 2's value mapping)."""
    if isinstance(source, FeatureVectorV3):
        values = source.values
        return LegacyFeatures(
            _dec(values.get("macd")),
            _dec(values.get("macd_signal")),
            _dec(values.get("rsi14")),
            _dec(values.get("price")),
            _dec(values.get("vol_realized_w60s")),
        )
    payload = source.payload
    macd_block = payload.get("macd")
    if isinstance(macd_block, Mapping):
        macd, signal = _dec(macd_block.get("macd")), _dec(macd_block.get("signal"))
    else:
        macd, signal = _dec(macd_block), _dec(payload.get("macd_signal"))
    # torghut falls back from rsi14 to rsi by truthiness, so an rsi14 of 0 falls through
    rsi = _dec(payload.get("rsi14") or payload.get("rsi"))
    return LegacyFeatures(macd, signal, rsi, _payload_price(payload), _payload_volatility(payload))


def coerce_timeframe(value: str) -> str | None:
    """Map ``PT1S``/``1s``/``1 min``/``2hours`` style strings to torghut's ``1Sec``/``1Min``/``2Hour``."""
    legacy = _LEGACY_TF.fullmatch(value)
    if legacy is not None:
        return f"{int(legacy.group(1))}{_UNIT_NAMES[legacy.group(2).lower()[0]]}"
    iso = _ISO_TF.fullmatch(value)
    if iso is not None:
        return f"{int(iso.group(1))}{_UNIT_NAMES[iso.group(2).lower()]}"
    return None


def resolve_timeframe(source: FeatureVectorV3 | SignalEnvelope) -> str | None:
    """Return the signal's timeframe, or ``None`` when it has none.

    A feature vector always has one. A raw signal uses its own, else the payload's ``timeframe``,
    ``window.size``, ``window_size`` or ``window_step``, coerced by :func:`coerce_timeframe`.
    """
    if isinstance(source, FeatureVectorV3) or source.timeframe is not None:
        return source.timeframe
    payload = source.payload
    window = payload.get("window")
    candidates = (
        payload.get("timeframe"),
        window.get("size") if isinstance(window, Mapping) else None,
        payload.get("window_size"),
        payload.get("window_step"),
    )
    for candidate in candidates:
        if isinstance(candidate, str):
            return coerce_timeframe(candidate)
    return None


def _torghut_float_setting(value: Decimal) -> Decimal:
    # torghut holds TRADING_MAX_NOTIONAL_PER_TRADE as a float and converts with Decimal(str(x)):
    # "1000" becomes Decimal("1000.0"), and that string is part of the hashed sizing metadata
    return Decimal(str(float(value)))


def resolve_qty(
    strategy: StrategyDefinition, *, price: Decimal | None, equity: Decimal | None, config: TradingConfig
) -> tuple[Decimal, dict[str, str]]:
    """Torghut's ``_resolve_qty``: a whole-share quantity and its sizing metadata.

    >>> from torghut.contracts.frozen import EMPTY
    >>> s = StrategyDefinition("s", "s", "legacy", "1.0.0", EMPTY, (), max_notional_per_trade=Decimal(5))
    >>> resolve_qty(s, price=Decimal("187.1"), equity=None, config=TradingConfig())
    (Decimal('1'), {'method': 'max_notional_per_trade', 'notional_budget': '5', 'price': '187.1'})
    """
    default_qty = Decimal(str(config.trading_default_qty))
    if price is None or price <= 0:
        return default_qty, {"method": "default_qty", "reason": "missing_price"}
    max_notional = strategy.max_notional_per_trade
    max_pct = strategy.max_position_pct_equity
    pct_notional = equity * max_pct if equity is not None and max_pct is not None and max_pct > 0 else None
    budget: Decimal | None = None
    method = "default_qty"
    if max_notional is not None and max_notional > 0 and pct_notional is not None:
        budget, method = min(max_notional, pct_notional), "min(max_notional,pct_equity)"
    elif max_notional is not None and max_notional > 0:
        budget, method = max_notional, "max_notional_per_trade"
    elif pct_notional is not None:
        budget, method = pct_notional, "max_position_pct_equity"
    elif config.trading_max_notional_per_trade is not None:
        global_notional = _torghut_float_setting(config.trading_max_notional_per_trade)
        if global_notional > 0:
            budget, method = global_notional, "global_max_notional_per_trade"
    if budget is None or budget <= 0:
        return default_qty, {"method": "default_qty", "reason": "missing_budget"}
    qty = (budget / price).quantize(Decimal(1), rounding=ROUND_DOWN)
    if qty < 1:
        qty = Decimal(1)
    return qty, {"method": method, "notional_budget": str(budget), "price": str(price)}


def resize_legacy_decision(
    decision: TradeDecision, strategy: StrategyDefinition, *, equity: Decimal, config: TradingConfig
) -> TradeDecision:
    """``decision`` (a legacy one) sized against ``equity``: torghut sizes with the account it last read.

    The strategies stage sizes legacy decisions against ``account.starting_equity``; in live mode the
    account stage re-sizes them against the broker's account. Only a strategy with
    ``max_position_pct_equity`` depends on equity: any other decision, and one whose size and sizing
    metadata come out the same, is returned as it is. Otherwise the decision is made again with the new
    quantity and sizing (so a new decision hash) and ``sizing_equity`` in its provenance.

    >>> from datetime import UTC, datetime
    >>> from torghut.contracts.frozen import EMPTY
    >>> s = StrategyDefinition("s", "s", "legacy", "1.0.0", EMPTY, (),
    ...     max_position_pct_equity=Decimal("0.05"))
    >>> d = TradeDecision.create(strategy_id="s", symbol="AAPL",
    ...     event_ts=datetime(2026, 1, 1, tzinfo=UTC), timeframe="1Min", action="buy", qty=Decimal(50),
    ...     params={"price": Decimal(100), "sizing": {"method": "max_position_pct_equity",
    ...     "notional_budget": "5000.00", "price": "100"}})
    >>> resized = resize_legacy_decision(d, s, equity=Decimal(20_000), config=TradingConfig())
    >>> resized.qty, resized.params["sizing"]["notional_budget"], resized.provenance["sizing_equity"]
    (Decimal('10'), '1000.00', '20000')
    """
    pct = strategy.max_position_pct_equity
    if pct is None or pct <= 0:
        return decision
    price = _dec(decision.params.get("price"))
    qty, sizing = resolve_qty(strategy, price=price, equity=equity, config=config)
    planned = decision.params.get("sizing")
    if qty == decision.qty and planned is not None and dict(planned) == sizing:
        return decision
    resized = dataclasses.replace(
        decision,
        qty=qty,
        params=freeze({**decision.params, "sizing": sizing}),
        provenance=freeze({**decision.provenance, "sizing_equity": str(equity)}),
    )
    return dataclasses.replace(resized, decision_hash=resized.recompute_hash())


def legacy_signal(features: LegacyFeatures) -> tuple[Direction, str] | None:
    """Return the legacy rule's action and rationale, or ``None`` (strict inequalities)."""
    macd, signal, rsi = features.macd, features.macd_signal, features.rsi
    if macd is None or signal is None or rsi is None:
        return None
    if macd > signal and rsi < RSI_OVERSOLD:
        return "buy", BUY_RATIONALE
    if macd < signal and rsi > RSI_OVERBOUGHT:
        return "sell", SELL_RATIONALE
    return None


def legacy_decisions(
    source: FeatureVectorV3 | SignalEnvelope,
    strategies: Sequence[StrategyDefinition],
    equity: Decimal | None,
    config: TradingConfig,
) -> list[TradeDecision]:
    """Return torghut's legacy decisions for one signal, in strategy order, with torghut's hashes."""
    timeframe = resolve_timeframe(source)
    if timeframe is None:
        return []
    features = legacy_features(source)
    signal = legacy_signal(features)
    if signal is None:
        return []
    action, rationale = signal
    feature_hash = source.normalization_hash() if isinstance(source, FeatureVectorV3) else None
    position = source.position.label() if source.position is not None else None
    decisions: list[TradeDecision] = []
    for strategy in strategies:
        if not strategy.enabled or strategy.base_timeframe != timeframe:
            continue
        qty, sizing = resolve_qty(strategy, price=features.price, equity=equity, config=config)
        params: dict[str, Any] = {
            "macd": features.macd,
            "macd_signal": features.macd_signal,
            "rsi": features.rsi,
            "price": features.price,
            "strategy_runtime": legacy_runtime_metadata(),
        }
        if features.volatility is not None:
            params["volatility"] = features.volatility
        params["sizing"] = sizing
        provenance = {
            "path": "legacy",
            "strategy_versions": {strategy.strategy_id: strategy.version},
            "parameter_hashes": {strategy.strategy_id: "legacy"},
            "feature_hashes": [] if feature_hash is None else [feature_hash],
            "config_hash": config.config_hash(),
            "input_position": position,
        }
        decisions.append(
            TradeDecision.create(
                strategy_id=strategy.strategy_id,
                symbol=source.symbol,
                event_ts=source.event_ts,
                timeframe=timeframe,
                action=action,
                qty=qty,
                rationale=rationale,
                params=params,
                account=config.account_label,
                provenance=provenance,
            )
        )
    return decisions


def runtime_enabled(mode: RuntimeMode, scheduler_enabled: bool) -> bool:
    """Torghut's runtime switch: ``plugin_v3`` always, ``scheduler_v3`` only with the scheduler flag."""
    if mode == "plugin_v3":
        return True
    if mode == "scheduler_v3":
        return scheduler_enabled
    return False


@dataclass(frozen=True, slots=True)
class RoutedDecisions(Generic[T]):
    """The decisions of one signal and which path produced them (torghut's runtime telemetry)."""

    decisions: tuple[T, ...]
    runtime_enabled: bool
    fallback_to_legacy: bool


def route_decisions(
    config: TradingConfig, runtime: Callable[[], Sequence[T]], legacy: Callable[[], Sequence[T]]
) -> RoutedDecisions[T]:
    """Run the runtime path or the legacy path per config, falling back to legacy when the runtime is empty.

    >>> cfg = TradingConfig(trading_strategy_runtime_mode="plugin_v3")
    >>> route_decisions(cfg, lambda: [], lambda: ["legacy"])
    RoutedDecisions(decisions=('legacy',), runtime_enabled=True, fallback_to_legacy=True)
    """
    if not runtime_enabled(config.trading_strategy_runtime_mode, config.trading_strategy_scheduler_enabled):
        return RoutedDecisions(tuple(legacy()), runtime_enabled=False, fallback_to_legacy=False)
    produced = tuple(runtime())
    if produced or not config.trading_strategy_runtime_fallback_legacy:
        return RoutedDecisions(produced, runtime_enabled=True, fallback_to_legacy=False)
    return RoutedDecisions(tuple(legacy()), runtime_enabled=True, fallback_to_legacy=True)
