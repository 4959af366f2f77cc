"""bollinger_reversion@1.0.0 and vwap_deviation@1.0.0/@2.0.0: documented rules, state, versions."""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from tests.strategies.factories import values
from torghut.strategies.base import IntentDraft, StrategyPlugin
from torghut.strategies.builtin import BollingerReversion, VwapDeviationV1, VwapDeviationV2


def run(
    plugin: StrategyPlugin[Any, Any], bars: Iterable[dict[str, Any]], params: dict[str, Any] | None = None
) -> tuple[list[tuple[IntentDraft, ...]], Any]:
    p = plugin.validate_params(params or {})
    state = plugin.initial_state(p)
    out = []
    for bar in bars:
        drafts, state = plugin.evaluate(p, plugin.view(values(**bar)), state)
        out.append(tuple(drafts))
    return out, state


def band(price: str, rsi: str = "50") -> dict[str, str]:
    return {"price": price, "boll_upper": "105", "boll_lower": "95", "rsi14": rsi}


class TestBollingerReversion:
    def test_buy_needs_confirmed_break_and_oversold_rsi(self) -> None:
        out, state = run(BollingerReversion(), [band("94", "25"), band("94", "25"), band("100")])
        assert out[0] == ()
        assert out[1] == (
            IntentDraft(
                "buy",
                Decimal("0.60"),
                Decimal(100),
                ("bollinger_lower_break", "rsi_oversold", "mean_reversion_entry"),
            ),
        )
        assert state == (0, 0, 9)  # cooldown 10 started, one bar elapsed

    def test_sell_and_extreme_bonus(self) -> None:
        out, _ = run(BollingerReversion(), [band("106", "85")] * 2)
        (draft,) = out[1]
        assert (draft.direction, draft.confidence) == ("sell", Decimal("0.65"))
        assert draft.explain == ("bollinger_upper_break", "rsi_overbought", "mean_reversion_exit")

    def test_rsi_thresholds_are_strict(self) -> None:
        out, _ = run(BollingerReversion(), [band("94", "30")] * 3)
        assert out == [(), (), ()]

    def test_cooldown_blocks_then_releases(self) -> None:
        bars = [band("94", "25")] * 6
        out, _ = run(BollingerReversion(), bars, {"cooldown_bars": 2})
        assert [bool(x) for x in out] == [False, True, False, False, True, False]

    def test_buffer_and_streak_bonus(self) -> None:
        out, _ = run(BollingerReversion(), [band("94.9", "25")] * 2, {"band_buffer_bps": "200"})
        assert out == [(), ()]  # 94.9 is not 2% below 95
        out, _ = run(BollingerReversion(), [band("94", "40"), band("94", "25")], {"confirm_bars": 1})
        assert out[0] == ()  # confirmed break, but RSI 40 is not oversold
        assert out[1][0].confidence == Decimal("0.63")  # streak 2 >= 2 * confirm_bars: +0.03

    def test_missing_feature_resets_streaks(self) -> None:
        out, state = run(BollingerReversion(), [band("94", "25"), {"price": "94"}, band("94", "25")])
        assert out == [(), (), ()]
        assert state == (1, 0, 0)

    def test_state_is_small_plain_data(self) -> None:
        _, state = run(BollingerReversion(), [band("94", "25")] * 3)
        assert pickle.loads(pickle.dumps(state)) == state


def vwap(price: str, session: str = "100") -> dict[str, str]:
    return {"vwap_w5m": price, "vwap_session": session}


class TestVwapDeviationV1:
    def test_persistent_deviation_below_vwap_buys(self) -> None:
        out, state = run(VwapDeviationV1(), [vwap("99.7")] * 4)  # -30 bps
        assert [bool(x) for x in out] == [False, False, True, False]
        assert out[2][0] == IntentDraft(
            "buy",
            Decimal("0.55"),
            Decimal(100),
            ("vwap_deviation", "vwap_5m_below_session", "deviation_persistent"),
        )
        assert state == (-1, 1)

    def test_side_change_restarts_streak_and_large_deviation_bonus(self) -> None:
        bars = [vwap("99.7"), vwap("99.7"), vwap("100.6"), vwap("100.6"), vwap("100.6")]
        out, _ = run(VwapDeviationV1(), bars)
        assert [bool(x) for x in out] == [False, False, False, False, True]
        assert (out[4][0].direction, out[4][0].confidence) == ("sell", Decimal("0.60"))

    def test_entry_is_inclusive_and_missing_vwap_resets(self) -> None:
        out, _ = run(VwapDeviationV1(), [vwap("99.75")] * 3)  # exactly -25 bps
        assert bool(out[2])
        out, state = run(VwapDeviationV1(), [vwap("99.7"), vwap("99.7"), {"vwap_w5m": "99.7"}, vwap("99.7")])
        assert out == [(), (), (), ()]
        assert state == (-1, 1)


class TestVwapDeviationV2:
    def test_one_intent_per_excursion(self) -> None:
        bars = [vwap("99.8")] * 4 + [vwap("100")] * 12 + [vwap("99.8")] * 5
        out, _ = run(VwapDeviationV2(), bars)
        fired = [i for i, x in enumerate(out) if x]
        assert fired == [0, 20]  # re-armed once |ewma| < 5 bps, fires when the ewma passes -15 again
        assert out[0][0] == IntentDraft(
            "buy", Decimal("0.58"), Decimal(100), ("vwap_ewma_deviation", "vwap_5m_below_session")
        )

    def test_ewma_smooths_a_spike(self) -> None:
        out, state = run(VwapDeviationV2(), [vwap("100"), vwap("100.3"), vwap("100")])
        assert out == [(), (), ()]  # ewma peaks at 7.5 bps, below the 15 bps entry
        assert state == (Decimal("5.625000"), 0)

    def test_versions_differ_on_the_same_bars(self) -> None:
        bars = [vwap("99.8")] * 4  # -20 bps: inside v1's 25 bps entry, beyond v2's 15 bps
        v1, _ = run(VwapDeviationV1(), bars)
        v2, _ = run(VwapDeviationV2(), bars)
        assert not any(v1)
        assert any(v2)
        assert VwapDeviationV2.warmup_bars == 5 and VwapDeviationV1.warmup_bars == 0
