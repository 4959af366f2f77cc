"""Round trips to the local services the tests use, as production's clients make them: latency per call.

Run: ``.venv/bin/python -m benchmarks.bench_round_trips [--calls 200] [--only alpaca,clickhouse,postgres]``.
Prints the median and p99 in milliseconds of:

- ``alpaca``: alpaca-py's ``TradingClient.get_account`` against the local Alpaca-protocol server (in process);
- ``clickhouse``: clickhouse-connect's ``query("SELECT 1")`` against the chdb HTTP front (a child process);
- ``postgres``: ``PostgresControlSource.read`` (the order firewall's trading-control read) against a
  throw-away PostgreSQL (``LocalPostgres``, initdb included in the start-up, not in the figure).

Every client keeps one connection alive and both ends set TCP_NODELAY (the unit tests check the socket
options and the kept connection): a call takes a few milliseconds at most (the unit tests used to require
a median under 20 ms). A median near 40 ms means Nagle's algorithm is back (a small answer held until the
client's delayed ACK).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

CASES = ("alpaca", "clickhouse", "postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def report(label: str, call: Callable[[], object], calls: int) -> None:
    for _ in range(min(calls, 20)):  # warm up: connect, caches
        call()
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    samples.sort()
    median_ms = statistics.median(samples) * 1000
    p99_ms = samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1000
    print(f"{label:<58} median {median_ms:7.3f} ms   p99 {p99_ms:7.3f} ms   ({calls} calls)")


def bench_alpaca(calls: int) -> None:
    from alpaca.trading.client import TradingClient

    from torghut.connectors.alpaca_server import AlpacaTestServer

    server = AlpacaTestServer(default_price=Decimal(100))
    server.start()
    try:
        client = TradingClient("key", "secret", paper=True, url_override=server.base_url)
        report("alpaca: TradingClient.get_account (local Alpaca server)", client.get_account, calls)
        client._session.close()
    finally:
        server.stop()


def bench_clickhouse(calls: int, directory: Path) -> None:
    import clickhouse_connect

    from torghut.connectors.clickhouse.front_process import HttpFrontProcess
    from torghut.connectors.local_http import HOST

    front = HttpFrontProcess(directory / "chdb", free_port(), log_path=directory / "front.log").start()
    try:
        client = clickhouse_connect.get_client(host=HOST, port=front.port)
        report("clickhouse: query('SELECT 1') (chdb HTTP front)", lambda: client.query("SELECT 1"), calls)
        client.close()
    finally:
        front.stop()


def bench_postgres(calls: int) -> None:
    from torghut.connectors.postgres import LocalPostgres, PostgresControlSource, migrate

    # A directory of its own right under /tmp: the 'postgres' OS user must be able to traverse its parents.
    directory = Path(tempfile.mkdtemp(prefix="torghut-pg-round-trips-"))
    server = LocalPostgres()
    try:
        dsn = server.start(directory, free_port())
        migrate(dsn)
        source = PostgresControlSource(dsn, "paper")
        report("postgres: PostgresControlSource.read (trading_control)", source.read, calls)
        source.close()
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument(
        "--only", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}"
    )
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    directory = Path(tempfile.mkdtemp(prefix="torghut-round-trips-"))
    try:
        if "alpaca" in chosen:
            bench_alpaca(args.calls)
        if "clickhouse" in chosen:
            bench_clickhouse(args.calls, directory)
        if "postgres" in chosen:
            bench_postgres(args.calls)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
