"""Exact torghut V3 cases for legacy_macd_rsi@1.0.0 and intraday_tsmom@1.1.0."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.strategies.factories import values
from torghut.strategies.base import IntentDraft
from torghut.strategies.builtin import IntradayTsmom, LegacyMacdRsi

LEGACY = LegacyMacdRsi()
TSMOM = IntradayTsmom()


def legacy(params: dict[str, Any] | None = None, **features: Any) -> tuple[IntentDraft, ...]:
    p = LEGACY.validate_params(params or {})
    drafts, state = LEGACY.evaluate(p, LEGACY.view(values(**features)), None)
    assert state is None
    return tuple(drafts)


def tsmom(params: dict[str, Any] | None = None, **features: Any) -> tuple[IntentDraft, ...]:
    p = TSMOM.validate_params(params or {})
    drafts, _ = TSMOM.evaluate(p, TSMOM.view(values(**features)), None)
    return tuple(drafts)


class TestLegacyMacdRsi:
    def test_buy(self) -> None:
        (draft,) = legacy(macd="0.5", macd_signal="0.4", rsi14="30", price="100")
        assert draft == IntentDraft("buy", Decimal("0.65"), Decimal(100), ("macd_cross_up", "rsi_oversold"))

    def test_sell(self) -> None:
        (draft,) = legacy(macd="0.3", macd_signal="0.4", rsi14="70")
        assert draft == IntentDraft(
            "sell", Decimal("0.65"), Decimal(100), ("macd_cross_down", "rsi_overbought")
        )

    @pytest.mark.parametrize(
        ("macd", "signal", "rsi"),
        [
            ("0.4", "0.4", "20"),  # m == s never buys
            ("0.4", "0.4", "80"),  # m == s never sells
            ("0.5", "0.4", "35"),  # rsi 35 is not oversold
            ("0.3", "0.4", "65"),  # rsi 65 is not overbought
            ("0.5", "0.4", "50"),
            ("0.3", "0.4", "30"),  # down cross but oversold
        ],
    )
    def test_no_decision(self, macd: str, signal: str, rsi: str) -> None:
        assert legacy(macd=macd, macd_signal=signal, rsi14=rsi) == ()

    def test_just_inside_boundaries(self) -> None:
        assert legacy(macd="0.5", macd_signal="0.4", rsi14="34.999")[0].direction == "buy"
        assert legacy(macd="0.3", macd_signal="0.4", rsi14="65.001")[0].direction == "sell"

    @pytest.mark.parametrize("missing", ["macd", "macd_signal", "rsi14"])
    def test_missing_feature_no_decision(self, missing: str) -> None:
        features: dict[str, Any] = {"macd": "0.5", "macd_signal": "0.4", "rsi14": "30", missing: None}
        assert legacy(**features) == ()

    def test_price_not_needed(self) -> None:
        assert legacy(macd="0.5", macd_signal="0.4", rsi14="30", price=None)[0].direction == "buy"

    @pytest.mark.parametrize(
        ("notional", "expected"), [("500", "500.00000000"), ("0", "100"), ("-5", "100"), (None, "100")]
    )
    def test_target_notional(self, notional: str | None, expected: str) -> None:
        params = {"max_notional_per_trade": None if notional is None else f"{Decimal(notional):.8f}"}
        (draft,) = legacy(params, macd="0.5", macd_signal="0.4", rsi14="30")
        assert draft.target_notional == Decimal(expected)


TREND_UP: dict[str, Any] = {
    "ema12": "101",
    "ema26": "100",
    "macd": "0.50",
    "macd_signal": "0.45",
    "rsi14": "55",
}
TREND_DOWN: dict[str, Any] = {
    "ema12": "99",
    "ema26": "100",
    "macd": "-0.10",
    "macd_signal": "0",
    "rsi14": "68",
}
BUY_EXPLAIN = ("tsmom_trend_up", "momentum_confirmed", "volatility_within_budget")
SELL_EXPLAIN = ("tsmom_trend_down", "momentum_reversal_exit")


class TestIntradayTsmom:
    def test_buy_example(self) -> None:
        (draft,) = tsmom(**TREND_UP, vol_realized_w60s="0.01")
        assert draft == IntentDraft("buy", Decimal("0.64"), Decimal(100), BUY_EXPLAIN)

    @pytest.mark.parametrize(
        ("macd", "vol", "confidence"),
        [
            ("0.55", "0.01", "0.69"),  # hist exactly 0.10: +0.05
            ("0.50", "0.008", "0.67"),  # vol exactly 0.008: +0.03
            ("0.60", "0.002", "0.72"),  # both bonuses; the 0.82 cap is never reached by the defaults
            ("0.50", None, "0.64"),  # missing vol is ok but earns no low-vol bonus
        ],
    )
    def test_buy_bonuses(self, macd: str, vol: str | None, confidence: str) -> None:
        (draft,) = tsmom(**{**TREND_UP, "macd": macd}, vol_realized_w60s=vol)
        assert draft.confidence == Decimal(confidence)
        assert draft.confidence <= Decimal("0.82")

    @pytest.mark.parametrize(
        ("vol", "buys"),
        [("0.001", True), ("0.012", True), ("0.000999", False), ("0.012001", False), ("0", False)],
    )
    def test_vol_ok_boundaries(self, vol: str, buys: bool) -> None:
        assert bool(tsmom(**TREND_UP, vol_realized_w60s=vol)) is buys

    @pytest.mark.parametrize(
        ("change", "buys"),
        [
            ({"macd": "0.49"}, True),  # hist exactly 0.04
            ({"macd": "0.4899"}, False),  # hist 0.0399
            ({"rsi14": "52"}, True),
            ({"rsi14": "62"}, True),
            ({"rsi14": "51.99"}, False),
            ({"rsi14": "62.01"}, False),
            ({"ema12": "100"}, False),  # ema12 == ema26 is not a trend
        ],
    )
    def test_buy_boundaries(self, change: dict[str, Any], buys: bool) -> None:
        assert bool(tsmom(**{**TREND_UP, **change})) is buys

    def test_sell_example(self) -> None:
        (draft,) = tsmom(**TREND_DOWN, vol_realized_w60s="0.5")  # vol does not gate exits
        assert draft == IntentDraft("sell", Decimal("0.62"), Decimal(100), SELL_EXPLAIN)

    @pytest.mark.parametrize(
        ("change", "confidence"),
        [
            ({"rsi14": "66"}, "0.62"),
            ({"rsi14": "72"}, "0.65"),
            ({"rsi14": "90"}, "0.65"),
            ({"macd": "-0.06"}, "0.62"),  # signal - macd exactly 0.06
            ({"rsi14": "65.99"}, None),
            ({"macd": "-0.0599"}, None),
        ],
    )
    def test_sell_boundaries(self, change: dict[str, Any], confidence: str | None) -> None:
        drafts = tsmom(**{**TREND_DOWN, **change})
        assert (drafts[0].confidence if drafts else None) == (
            None if confidence is None else Decimal(confidence)
        )

    @pytest.mark.parametrize("missing", ["ema12", "ema26", "macd", "macd_signal", "rsi14"])
    def test_missing_feature_no_decision(self, missing: str) -> None:
        assert tsmom(**{**TREND_UP, missing: None}) == ()

    def test_defaults_are_the_legacy_profile(self) -> None:
        base = {"max_notional_per_trade", "max_position_pct_equity", "base_timeframe", "universe_symbols"}
        assert TSMOM.params_model().model_dump(exclude=base) == {
            "bullish_hist_min": Decimal("0.04"),
            "bearish_hist_min": Decimal("0.06"),
            "min_bull_rsi": Decimal(52),
            "max_bull_rsi": Decimal(62),
            "min_bear_rsi": Decimal(66),
            "vol_floor": Decimal("0.001"),
            "vol_ceil": Decimal("0.012"),
            "low_vol_ceil": Decimal("0.008"),
            "strong_hist_min": Decimal("0.10"),
            "strong_bear_rsi": Decimal(72),
        }

    def test_thresholds_are_params(self) -> None:
        production = {"bullish_hist_min": "0.005", "vol_floor": "0.0001", "vol_ceil": "0.0003"}
        features = {**TREND_UP, "macd": "0.456", "vol_realized_w60s": "0.0002"}
        assert tsmom(**features) == ()
        (draft,) = tsmom(production, **features)
        assert draft.direction == "buy"

    def test_target_notional_from_params(self) -> None:
        (draft,) = tsmom({"max_notional_per_trade": "1000.00000000"}, **TREND_UP)
        assert draft.target_notional == Decimal(1000)
