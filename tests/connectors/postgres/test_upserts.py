from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from tests.connectors.postgres import records as r
from tests.connectors.postgres.support import count, dump
from torghut.connectors.postgres import (
    StrategyVersion,
    decision_uuid,
    insert_dead_letters,
    strategy_uuid,
    upsert_decisions,
    upsert_executions,
    upsert_portfolio_intents,
    upsert_position_snapshots,
    upsert_rejections,
    upsert_strategies,
    upsert_strategy_intents,
    upsert_strategy_versions,
    upsert_symbol_intents,
)

Conn = psycopg.Connection[tuple[object, ...]]

DECISIONS = [r.decision(i) for i in range(20)]

# (table, writer, batch, rows expected in the table)
CASES: list[tuple[str, Callable[[Conn, Any], int], Sequence[Any], int]] = [
    ("strategies", upsert_strategies, [r.definition(n) for n in range(3)], 3),
    (
        "strategy_versions",
        upsert_strategy_versions,
        [StrategyVersion.from_intent(r.strategy_intent(i, i % 2)) for i in range(10)],
        2,
    ),
    ("strategy_intents", upsert_strategy_intents, [r.strategy_intent(i) for i in range(500)], 500),
    ("symbol_intents", upsert_symbol_intents, [r.symbol_intent(i) for i in range(50)], 50),
    ("portfolio_intents", upsert_portfolio_intents, [r.portfolio_intent(i) for i in range(50)], 50),
    ("trade_decisions", upsert_decisions, DECISIONS, 20),
    ("executions", upsert_executions, [r.execution(d) for d in DECISIONS], 20),
    ("position_snapshots", upsert_position_snapshots, [r.snapshot(i) for i in range(5)], 5),
    ("dead_letters", insert_dead_letters, [r.dead_letter(i) for i in range(30)], 30),
]


@pytest.mark.parametrize(("table", "writer", "batch", "expected"), CASES, ids=[c[0] for c in CASES])
def test_a_redelivered_batch_changes_nothing(
    conn: Conn, table: str, writer: Callable[[Conn, Any], int], batch: Sequence[Any], expected: int
) -> None:
    upsert_decisions(conn, DECISIONS) if table == "executions" else None
    assert writer(conn, batch) == expected
    assert count(conn, table) == expected
    before = {t: dump(conn, t) for t in ("strategies", "trade_decisions", table)}
    assert writer(conn, batch) == 0
    assert writer(conn, list(reversed(batch))) == 0
    assert {t: dump(conn, t) for t in before} == before


def test_rejections_are_idempotent_and_reject_the_planned_decision(conn: Conn) -> None:
    upsert_decisions(conn, DECISIONS)
    rejections = [r.rejection(d) for d in DECISIONS[:5]]
    assert upsert_rejections(conn, rejections) == 5
    before = {t: dump(conn, t) for t in ("rejections", "trade_decisions")}
    assert upsert_rejections(conn, rejections) == 0
    assert {t: dump(conn, t) for t in before} == before
    rows = conn.execute(
        "SELECT status, decision_json->>'risk_reasons' FROM trade_decisions WHERE decision_hash = %s",
        (DECISIONS[0].decision_hash,),
    ).fetchall()
    assert rows == [("rejected", "max_orders_per_minute")]
    trace = conn.execute("SELECT gate_trace FROM rejections ORDER BY id LIMIT 1").fetchone()
    assert trace is not None
    assert [v["outcome"] for v in trace[0]] == ["pass", "reject"]  # type: ignore[attr-defined]


def test_decision_hash_is_unique_and_the_first_decision_is_kept(conn: Conn) -> None:
    first = DECISIONS[0]
    assert upsert_decisions(conn, [first]) == 1
    # Same hash, different content (a later status and trace): torghut keeps the stored row.
    assert upsert_decisions(conn, [replace(first, status="approved", rationale="other")]) == 0
    rows = conn.execute("SELECT id, status, rationale, decision_hash FROM trade_decisions").fetchall()
    assert rows == [(decision_uuid(first.decision_hash), "planned", first.rationale, first.decision_hash)]
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(
            "INSERT INTO trade_decisions (strategy_id, symbol, timeframe, decision_json, decision_hash) "
            "VALUES (%s, 'AAPL', '1Min', '{}', %s)",
            (strategy_uuid(first.strategy_id), first.decision_hash),
        )


def test_decisions_get_a_placeholder_strategy_that_the_catalog_fills_in(conn: Conn) -> None:
    upsert_decisions(conn, DECISIONS[:1])
    assert conn.execute("SELECT name, universe_type FROM strategies").fetchall() == [
        ("tsmom_0@paper", "unknown")
    ]
    assert upsert_strategies(conn, [r.definition(0)]) == 1
    assert conn.execute("SELECT name, universe_type, enabled FROM strategies").fetchall() == [
        ("intraday-tsmom-0", "intraday_tsmom", True)
    ]
    assert upsert_strategies(conn, [r.definition(0, enabled=False)]) == 1
    assert conn.execute("SELECT enabled FROM strategies").fetchall() == [(False,)]


def test_executions_newest_report_wins_and_status_mirrors_to_the_decision(conn: Conn) -> None:
    d = DECISIONS[0]
    upsert_decisions(conn, [d])
    accepted, filled = (
        r.execution(d, status="accepted", seconds=1),
        r.execution(d, status="filled", seconds=2, filled=5),
    )
    assert upsert_executions(conn, [accepted]) == 1
    assert upsert_executions(conn, [filled]) == 1
    assert upsert_executions(conn, [accepted]) == 0  # a stale report changes nothing
    assert upsert_executions(conn, [filled, accepted]) == 0
    row = conn.execute(
        "SELECT e.status, e.filled_qty, e.order_type, e.time_in_force, e.trade_decision_id, d.status "
        "FROM executions e JOIN trade_decisions d ON d.id = e.trade_decision_id"
    ).fetchall()
    assert row == [
        ("filled", Decimal("5.00000000"), "market", "day", decision_uuid(d.decision_hash), "filled")
    ]


def test_strategy_versions_keep_the_earliest_first_seen(conn: Conn) -> None:
    late, early = (
        StrategyVersion.from_intent(r.strategy_intent(10)),
        StrategyVersion.from_intent(r.strategy_intent(2)),
    )
    assert upsert_strategy_versions(conn, [late]) == 1
    assert upsert_strategy_versions(conn, [early]) == 1
    assert upsert_strategy_versions(conn, [late]) == 0
    assert conn.execute("SELECT first_seen FROM strategy_versions").fetchall() == [(r.ts(2),)]


def test_dead_letters_keep_unstorable_raw_input(conn: Conn) -> None:
    insert_dead_letters(conn, [r.dead_letter(0)])
    raw = conn.execute("SELECT raw, source_offset, stage FROM dead_letters").fetchone()
    assert raw == (
        {"line": "{bad json 0", "nul": "a\ufffdb", "nan": "nan", "bytes": "\\xff\ufffd"},
        0,
        "parse",
    )


def test_two_reasons_for_one_input_are_two_dead_letters(conn: Conn) -> None:
    letter = r.dead_letter(0)
    assert insert_dead_letters(conn, [letter, replace(letter, reason="other"), letter]) == 2


def test_empty_batches_write_nothing(conn: Conn) -> None:
    assert upsert_strategy_intents(conn, []) == 0
    assert upsert_executions(conn, []) == 0
    assert upsert_rejections(conn, []) == 0
    assert upsert_decisions(conn, []) == 0


def test_columns_hold_the_values_of_their_fields(conn: Conn) -> None:
    intent, d = r.strategy_intent(3), DECISIONS[1]
    upsert_strategy_intents(conn, [intent])
    upsert_decisions(conn, [d])
    upsert_executions(conn, [r.execution(d, status="filled", filled=5)])
    upsert_portfolio_intents(conn, [r.portfolio_intent(2)])
    assert conn.execute(
        "SELECT strategy_id, symbol, event_ts, seq, direction, confidence, input_position, "
        "intent_json->>'symbol' FROM strategy_intents"
    ).fetchall() == [("tsmom_0@paper", "AMD", r.ts(3), 3, "sell", Decimal("0.65"), "replay:0:3", "AMD")]
    assert conn.execute(
        "SELECT alpaca_account_label, symbol, timeframe, rationale, decision_hash, "
        "decision_json->>'decision_hash' FROM trade_decisions"
    ).fetchall() == [("paper", d.symbol, "1Sec", d.rationale, d.decision_hash, d.decision_hash)]
    assert conn.execute(
        "SELECT client_order_id, alpaca_order_id, alpaca_account_label, symbol, side, submitted_qty, "
        "avg_fill_price, execution_actual_adapter, last_update_at FROM executions"
    ).fetchall() == [
        (
            d.decision_hash,
            f"broker-{d.decision_hash[:16]}",
            "paper",
            d.symbol,
            "buy",
            Decimal("5.00000000"),
            Decimal("187.30000000"),
            "paper",
            d.event_ts,
        )
    ]
    assert conn.execute(
        "SELECT account, symbol, net_target_qty, approved_qty, status, allocator_trace FROM portfolio_intents"
    ).fetchall() == [
        ("paper", "NVDA", Decimal(5), Decimal(5), "approved", [{"check": "symbol_cap", "ok": True}])
    ]
