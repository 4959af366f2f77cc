"""Deterministic sample records of every persisted contract, for the PostgreSQL tests and benchmark."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from torghut.contracts import (
    AccountSnapshot,
    DeadLetter,
    FrozenMap,
    InputPosition,
    LosingIntent,
    PortfolioIntent,
    StrategyDefinition,
    StrategyId,
    StrategyIntent,
    SymbolIntent,
)
from torghut.contracts.decision import Rejection, TradeDecision, passed, rejected
from torghut.contracts.execution import ExecutionReport

T0 = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
SYMBOLS = ("AAPL", "MSFT", "NVDA", "AMD")


def ts(i: int) -> datetime:
    return T0 + timedelta(seconds=i)


def definition(n: int = 0, *, enabled: bool = True) -> StrategyDefinition:
    return StrategyDefinition(
        strategy_id=StrategyId(f"tsmom_{n}@paper"),
        strategy_name=f"intraday-tsmom-{n}",
        strategy_type="intraday_tsmom",
        version="1.1.0",
        params=FrozenMap({"bullish_hist_min": "0.005"}),
        feature_requirements=("macd", "macd_signal"),
        enabled=enabled,
        base_timeframe="1Sec",
        universe_symbols=("AAPL", "NVDA"),
        max_notional_per_trade=Decimal("1000"),
        max_position_pct_equity=Decimal("0.08"),
        parameter_hash=f"p{n}" * 8,
        description="Intraday momentum",
    )


def strategy_intent(i: int, strategy: int = 0) -> StrategyIntent:
    return StrategyIntent(
        strategy_id=StrategyId(f"tsmom_{strategy}@paper"),
        symbol=SYMBOLS[i % len(SYMBOLS)],
        direction="buy" if i % 2 == 0 else "sell",
        confidence=Decimal("0.65"),
        target_notional=Decimal("1000.00"),
        horizon="1m",
        explain=("macd_cross_up", "rsi_ok"),
        feature_snapshot_hash=f"{i:064x}",
        strategy_type="intraday_tsmom",
        strategy_version="1.1.0",
        parameter_hash=f"p{strategy}" * 8,
        event_ts=ts(i),
        seq=i,
        price=Decimal("187.25"),
        position=InputPosition("replay", "0", i),
    )


def symbol_intent(i: int) -> SymbolIntent:
    return SymbolIntent(
        symbol=SYMBOLS[i % len(SYMBOLS)],
        direction="buy",
        confidence=Decimal("0.7"),
        target_notional=Decimal("1500"),
        horizon="1m",
        explain=("macd_cross_up",),
        source_strategy_ids=(StrategyId("tsmom_0@paper"), StrategyId("tsmom_1@paper")),
        feature_snapshot_hashes=(f"{i:064x}",),
        event_ts=ts(i),
        window_end=ts(i + 60),
        seq=i,
        policy="net_direction",
        conflict=i % 3 == 0,
        losers=(LosingIntent(StrategyId("mr_0@paper"), "sell", Decimal("0.4"), Decimal(500), "outvoted"),),
        price=Decimal("187.25"),
    )


def portfolio_intent(i: int) -> PortfolioIntent:
    return PortfolioIntent(
        account="paper",
        symbol=SYMBOLS[i % len(SYMBOLS)],
        net_target_qty=Decimal(5),
        allocator_trace=(FrozenMap({"check": "symbol_cap", "ok": True}),),
        regime_label="neutral",
        capacity_bucket="normal",
        event_ts=ts(i),
        source_strategy_ids=(StrategyId("tsmom_0@paper"),),
        direction="buy",
        requested_qty=Decimal(6),
        approved_qty=Decimal(5),
        price=Decimal("187.25"),
        status="approved",
        reason_codes=("clipped_by_symbol_cap",),
    )


def decision(i: int, *, qty: int = 5) -> TradeDecision:
    return TradeDecision.create(
        strategy_id="tsmom_0@paper",
        symbol=SYMBOLS[i % len(SYMBOLS)],
        event_ts=ts(i),
        timeframe="1Sec",
        action="buy",
        qty=Decimal(qty),
        rationale="macd_cross_up,rsi_ok",
        params={"price": "187.25"},
        account="paper",
        provenance={"config_hash": "c" * 64, "input_position": f"replay:0:{i}"},
    )


def rejection(d: TradeDecision) -> Rejection:
    return Rejection(
        decision_hash=d.decision_hash,
        symbol=d.symbol,
        event_ts=d.event_ts,
        stage="risk",
        reasons=("max_orders_per_minute",),
        gate_trace=(passed("kill_switch"), rejected("rate", "max_orders_per_minute", limit=10, seen=11)),
    )


def execution(
    d: TradeDecision, *, status: str = "accepted", seconds: int = 0, filled: int = 0
) -> ExecutionReport:
    return ExecutionReport(
        client_order_id=d.decision_hash,
        broker_order_id=f"broker-{d.decision_hash[:16]}",
        account="paper",
        symbol=d.symbol,
        side=d.action,
        qty=d.qty,
        filled_qty=Decimal(filled),
        avg_fill_price=Decimal("187.30") if filled else None,
        fee=Decimal(0),
        status=status,
        adapter="paper",
        event_ts=d.event_ts + timedelta(seconds=seconds),
        raw=FrozenMap({"type": "market", "time_in_force": "day", "status": status}),
    )


def dead_letter(i: int) -> DeadLetter:
    return DeadLetter(
        stage="parse",
        reason="missing field 'symbol'",
        raw={"line": f"{{bad json {i}", "nul": "a\x00b", "nan": float("nan"), "bytes": b"\xff\x00"},
        position=InputPosition("replay", "0", i),
        symbol=None,
        event_ts=None,
    )


def snapshot(i: int) -> AccountSnapshot:
    return AccountSnapshot(
        account="paper",
        equity=Decimal("100000"),
        cash=Decimal("50000"),
        buying_power=Decimal("200000"),
        positions=FrozenMap({"AAPL": Decimal(10), "NVDA": Decimal(-3)}),
        event_ts=ts(i),
    )
