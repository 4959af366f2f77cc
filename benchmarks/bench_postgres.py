"""Upsert rate of strategy intents into a real PostgreSQL (COPY to a temp table, INSERT ... ON CONFLICT).

    .venv/bin/python benchmarks/bench_postgres.py [--n 100000] [--batch 1000] [--dsn DSN]

Without ``--dsn`` it starts a throw-away server (LocalPostgres) in a temporary directory and stops it after.
Prints: row building alone, first insert, re-delivery of the same batches (all conflicts), and the
PostgresSink path (buffer + one transaction per batch), each in rows per second.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg

from torghut.connectors.postgres import LocalPostgres, PostgresSink, migrate, upsert_strategy_intents
from torghut.connectors.postgres.rows import strategy_intent_row
from torghut.contracts import InputPosition, StrategyId, StrategyIntent

T0 = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
SYMBOLS = ("AAPL", "MSFT", "NVDA", "AMD", "AVGO", "MU")


def intents(n: int, offset: int = 0) -> list[StrategyIntent]:
    return [
        StrategyIntent(
            strategy_id=StrategyId(f"tsmom_{i % 3}@paper"),
            symbol=SYMBOLS[i % len(SYMBOLS)],
            direction="buy" if i % 2 else "sell",
            confidence=Decimal("0.65"),
            target_notional=Decimal("1000.00"),
            horizon="1m",
            explain=("macd_cross_up", "rsi_ok"),
            feature_snapshot_hash=f"{i:064x}",
            strategy_type="intraday_tsmom",
            strategy_version="1.1.0",
            parameter_hash="ab" * 32,
            event_ts=T0 + timedelta(milliseconds=i),
            seq=i,
            price=Decimal("187.25"),
            position=InputPosition("bench", "0", i),
        )
        for i in range(offset, offset + n)
    ]


def batches(items: Sequence[StrategyIntent], size: int) -> list[Sequence[StrategyIntent]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def rate(label: str, n: int, run: Callable[[], object]) -> None:
    started = time.perf_counter()
    run()
    elapsed = time.perf_counter() - started
    print(f"{label:<44} {n:>8} rows {elapsed:7.2f} s {n / elapsed:>10,.0f} rows/s")


def bench(dsn: str, n: int, size: int) -> None:
    migrate(dsn)
    items = intents(n)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE strategy_intents, strategy_versions")

        def upsert_all() -> None:
            for batch in batches(items, size):
                upsert_strategy_intents(conn, batch)

        rate(
            "row building only (canonical JSON + sha256)", n, lambda: [strategy_intent_row(i) for i in items]
        )
        rate(f"upsert_strategy_intents, first insert, batch {size}", n, upsert_all)
        rate(f"upsert_strategy_intents, re-delivery, batch {size}", n, upsert_all)
        stored = conn.execute("SELECT count(*) FROM strategy_intents").fetchone()
        assert stored == (n,), stored

    more = intents(n, offset=n)
    sink = PostgresSink(dsn)

    def through_sink() -> None:
        for batch in batches(more, size):
            sink.write_batch(batch)

    rate(f"PostgresSink.write_batch (+ versions), batch {size}", n, through_sink)
    sink.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--dsn", default=None)
    args = parser.parse_args()
    if args.dsn:
        bench(args.dsn, args.n, args.batch)
        return
    directory = Path(tempfile.mkdtemp(prefix="torghut-pg-bench-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = LocalPostgres()
    try:
        started = time.perf_counter()
        dsn = server.start(directory, port)
        print(f"server (initdb + start) up in {time.perf_counter() - started:.2f} s: {dsn}")
        bench(dsn, args.n, args.batch)
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
