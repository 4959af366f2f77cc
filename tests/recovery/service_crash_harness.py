"""Service crash harness: ``kill -9`` ``torghut run --once`` with the Alpaca adapter, resume, compare.

Run in full as its own command (``scripts/crash-test-service``, defaults: 102,000 events, 20 kills); the
test suite runs a reduced form. Every component is real and separate:

* the service is a subprocess, ``python -m torghut.cli run --config CFG --once``, reading a signal file
  with bytewax recovery on (snapshots every 0.2 s) and writing to PostgreSQL;
* PostgreSQL is a :class:`~torghut.connectors.postgres.LocalPostgres` the harness starts (one database
  per run);
* the broker is the local Alpaca-protocol server in its own process
  (``python -m torghut.connectors.alpaca_server``), one fresh server per run, reached through alpaca-py
  with ``TRADING_MODE=paper`` and API keys in the environment.

A cycle runs the service, kills it with SIGKILL at a random moment after start-up while it still runs,
reruns the same command (it resumes from recovery) until it completes; cycles repeat until ``kills``
kills. Each cycle's ``trade_decisions`` (decision_hash, status), ``executions`` (client_order_id, status,
qty) and ``dead_letters`` (every column but wall-clock ones) must equal an uninterrupted run's, and the
cycle's server must have received one ``POST /v2/orders`` per client order id: the same ids as the
uninterrupted run's, none twice. Those runs decide against the account stage's own ledger
(``adapter.account_refresh_s: null``), which makes them comparable byte for byte.

With ``broker_account=True`` the service decides against the broker's account, read every 50 ms, as in
live mode: decisions then depend on when the broker was read, and a resumed run re-makes decisions with
other sizes and ids. The check is then the one that matters at the broker: no client order id POSTed
twice, and every POSTed id the one claimed for its intent in ``order_intents`` (so no intent went out
under two ids).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psycopg
import yaml
from psycopg import sql

from tests.connectors.postgres.support import create_database, throwaway_postgres
from tests.procs import first_line
from tests.recovery.crash_harness import crash_arguments, start_maybe_killed
from torghut.connectors.postgres import LocalPostgres

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "benchmarks" / "catalog.yaml"
KEY_ID = "AKCRASHTESTKEY01"
SECRET = "crash-test-secret-7c1d"
# Ample cash: a refusal for buying power is not stored at the broker, so no lookup could ever find it (see
# the report's note on rejected orders); the test is about accepted orders.
SERVER_CASH = os.environ.get("TORGHUT_CRASH_CASH", "1000000000000")
# Deciding against the broker's account, its equity lands in position_snapshots, whose numeric(20, 8)
# columns (torghut's layout) hold less than 10^12.
BROKER_ACCOUNT_CASH = "100000000"
COMPARED: dict[str, str] = {
    "trade_decisions": "SELECT decision_hash, status FROM trade_decisions ORDER BY 1",
    "executions": "SELECT client_order_id, status, submitted_qty::text FROM executions ORDER BY 1",
    "dead_letters": (
        "SELECT (to_jsonb(t) - 'created_at' - 'updated_at')::text FROM dead_letters t ORDER BY 1"
    ),
}
COUNTED = ("trade_decisions", "executions", "rejections", "dead_letters", "strategy_intents")
Rows = dict[str, list[tuple[Any, ...]]]


@dataclass
class ServiceCrashReport:
    """What the harness did and found; one entry per crashed-and-resumed cycle."""

    events: int
    kills: int = 0
    runs: int = 0
    startup_s: float = 0.0
    reference_s: float = 0.0
    kill_times_s: list[float] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    reference_ids: frozenset[str] = frozenset()
    identical: list[bool] = field(default_factory=list)
    same_ids: list[bool] = field(default_factory=list)
    max_received: list[int] = field(default_factory=list)
    backfills: int = 0
    stored_hits: int = 0
    differences: list[str] = field(default_factory=list)
    #: Per cycle, with the broker's account: whether every POSTed id is its intent's claimed one.
    intents_once: list[bool] = field(default_factory=list)

    @property
    def exactly_once(self) -> bool:
        """Whether no order id was POSTed twice and every cycle matched the uninterrupted run (ledger
        mode) or sent each intent under its claimed id only (broker account mode)."""
        cycles = len(self.max_received)
        once = cycles > 0 and max(self.max_received) == 1
        if self.intents_once:
            return once and len(self.intents_once) == cycles and all(self.intents_once)
        return (
            once
            and len(self.identical) == len(self.same_ids) == cycles
            and all(self.identical + self.same_ids)
        )


class AlpacaServerProcess:
    """The local Alpaca-protocol server in its own process; :meth:`stop` ends it by its pid."""

    def __init__(self, cash: str = SERVER_CASH) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "torghut.connectors.alpaca_server", "--port", "0", "--cash", cash],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self._proc.stdout is not None
        try:
            line = first_line(self._proc.stdout, 60, "the Alpaca test server")
        except TimeoutError:
            self.stop()
            raise
        if not line.startswith("http://127.0.0.1:"):
            self.stop()
            msg = f"the Alpaca test server did not print its base URL (got {line!r})"
            raise RuntimeError(msg)
        self.base_url = line

    def received(self) -> dict[str, int]:
        """``POST /v2/orders`` counts per client order id (``/_control/orders``)."""
        with urllib.request.urlopen(self.base_url + "/_control/orders", timeout=30) as answer:
            body = orjson.loads(answer.read())
        return {str(k): int(v) for k, v in body["received"].items()}

    def stop(self) -> None:
        """Terminate the server process and wait for it."""
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()


def write_config(
    path: Path,
    signals: Path,
    dsn: str,
    recovery: Path | None,
    snapshot_s: float,
    *,
    broker_account: bool = False,
) -> Path:
    """Write a service configuration: file source, PostgreSQL, the alpaca adapter, optional recovery."""
    data: dict[str, Any] = {
        "source": {"kind": "file", "path": str(signals), "batch_size": 1000},
        "postgres": {"dsn": dsn, "max_attempts": 20, "backoff_max_s": 0.5},
        "adapter": {"kind": "alpaca", "account_refresh_s": 0.05 if broker_account else None},
        "catalog": str(CATALOG),
        "metrics_address": None,
        "snapshot_interval_s": snapshot_s,
    }
    if recovery is not None:
        data["recovery_dir"] = str(recovery)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def service_env(base_url: str) -> dict[str, str]:
    """The service's environment: paper mode, API keys, the server's URL, no overriding variables."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"TORGHUT_DATABASE_URL", "TRADING_STRATEGY_CONFIG_PATH", "TORGHUT_METRICS_ADDRESS"}
        and not k.startswith(("APCA_", "BYTEWAX_"))
    }
    env.update(
        APCA_API_KEY_ID=KEY_ID,
        APCA_API_SECRET_KEY=SECRET,
        APCA_API_BASE_URL=base_url + "/v2",
        TRADING_MODE="paper",
        ALPACA_REQUEST_TIMEOUT_S="10",
    )
    return env


def service_command(config: Path) -> list[str]:
    """``torghut run --config CFG --once`` as a subprocess command."""
    return [sys.executable, "-m", "torghut.cli", "run", "--config", str(config), "--once"]


def _run(cmd: list[str], env: dict[str, str], timeout_s: float) -> None:
    done = subprocess.run(cmd, capture_output=True, timeout=timeout_s, env=env, check=False)
    if done.returncode != 0:
        msg = f"service run failed (exit {done.returncode}):\n{done.stderr.decode(errors='replace')[-3000:]}"
        raise RuntimeError(msg)


def compared_rows(dsn: str) -> Rows:
    """The compared columns of trade_decisions, executions and dead_letters, sorted."""
    with psycopg.connect(dsn) as conn:
        return {table: conn.execute(query.encode()).fetchall() for table, query in COMPARED.items()}


def claimed_ids(dsn: str) -> set[str]:
    """The client order id each intent is claimed for (``order_intents``)."""
    with psycopg.connect(dsn) as conn:
        return {str(r[0]) for r in conn.execute("SELECT client_order_id FROM order_intents").fetchall()}


def table_counts(dsn: str) -> dict[str, int]:
    """Rows per table of interest."""
    counts: dict[str, int] = {}
    with psycopg.connect(dsn) as conn:
        for table in COUNTED:
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
            counts[table] = int(str(row[0])) if row is not None else 0
    return counts


def first_difference(reference: Rows, other: Rows) -> str:
    """Name the first table and row where two results differ ('' when equal)."""
    for table, rows in reference.items():
        theirs = other.get(table, [])
        if rows != theirs:
            extra = sorted(set(theirs) - set(rows))[:3]
            missing = sorted(set(rows) - set(theirs))[:3]
            return f"{table}: {len(rows)} vs {len(theirs)} rows; missing {missing}; extra {extra}"
    return ""


def run_service_crash_test(
    signals: Path,
    work: Path,
    *,
    kills: int,
    seed: int = 1,
    snapshot_interval_s: float = 0.2,
    timeout_s: float = 900.0,
    say: Any = None,
    broker_account: bool = False,
) -> ServiceCrashReport:
    """Run the service once uninterrupted, then in cycles killed ``kills`` times in all; compare."""
    rng = random.Random(seed)
    with signals.open("rb") as handle:
        report = ServiceCrashReport(events=sum(1 for line in handle if line.strip()))
    tiny = work / "one-line.jsonl"
    with signals.open("rb") as handle:
        tiny.write_bytes(handle.readline())
    with throwaway_postgres("torghut-svc-crash-pg-") as pg:
        # Start-up (interpreter, imports, catalog, migrations, broker client) on a one-line input, so
        # kills land while events are processed rather than during imports.
        server = AlpacaServerProcess()
        try:
            config = write_config(work / "startup.yaml", tiny, create_database(pg, "startup"), None, 0.2)
            started = time.monotonic()
            _run(service_command(config), service_env(server.base_url), timeout_s)
            report.startup_s = time.monotonic() - started
        finally:
            server.stop()

        server = AlpacaServerProcess(BROKER_ACCOUNT_CASH if broker_account else SERVER_CASH)
        try:
            dsn = create_database(pg, "reference")
            config = write_config(
                work / "reference.yaml",
                signals,
                dsn,
                None,
                snapshot_interval_s,
                broker_account=broker_account,
            )
            started = time.monotonic()
            _run(service_command(config), service_env(server.base_url), timeout_s)
            report.reference_s = time.monotonic() - started
            reference = compared_rows(dsn)
            report.counts = table_counts(dsn)
            received = server.received()
        finally:
            server.stop()
        report.reference_ids = frozenset(received)
        if max(received.values(), default=0) > 1:
            msg = f"the uninterrupted run POSTed an order twice: {received}"
            raise RuntimeError(msg)
        if say is not None:
            say(
                f"start-up {report.startup_s:.2f} s, uninterrupted run {report.reference_s:.2f} s, {report.counts}"
            )

        while report.kills < kills or not report.max_received:
            reference_rows = None if broker_account else reference
            _cycle(pg, signals, work, report, reference_rows, rng, snapshot_interval_s, kills, timeout_s)
            if say is not None:
                matched = (report.intents_once if broker_account else report.identical)[-1]
                say(
                    f"cycle {len(report.max_received)}: kills {report.kills}, runs {report.runs}, back-fills "
                    f"{report.backfills}, {'intents once' if broker_account else 'identical'} "
                    f"{matched}, max received {report.max_received[-1]}"
                )
    return report


def _cycle(
    pg: LocalPostgres,
    signals: Path,
    work: Path,
    report: ServiceCrashReport,
    reference: Rows | None,
    rng: random.Random,
    snapshot_interval_s: float,
    kills: int,
    timeout_s: float,
) -> None:
    cycle = len(report.max_received)
    recovery = work / f"recovery-{cycle}"
    shutil.rmtree(recovery, ignore_errors=True)
    server = AlpacaServerProcess(SERVER_CASH if reference is not None else BROKER_ACCOUNT_CASH)
    try:
        dsn = create_database(pg, f"crashed{cycle}")
        config = write_config(
            work / f"crashed-{cycle}.yaml",
            signals,
            dsn,
            recovery,
            snapshot_interval_s,
            broker_account=reference is None,
        )
        cmd, env = service_command(config), service_env(server.base_url)
        while True:
            report.runs += 1
            log = work / f"crashed-{cycle}-run-{report.runs}.log"
            with log.open("wb") as stderr:
                low, high = report.startup_s, max(report.reference_s, report.startup_s + 0.1)
                delay = rng.uniform(low, high) if report.kills < kills else None
                proc, killed = start_maybe_killed(cmd, env=env, stderr=stderr, delay_s=delay)
                if killed and delay is not None:
                    report.kills += 1
                    report.kill_times_s.append(round(delay, 3))
                else:
                    proc.wait(timeout=timeout_s)
            text = log.read_text(encoding="utf-8", errors="replace")
            # A back-fill is a replayed submission that found its order at the broker instead of POSTing.
            report.backfills += text.count("alpaca order back-filled")
            # A stored hit is a replayed submission answered from PostgreSQL's executions (no broker call).
            report.stored_hits += text.count("order found in PostgreSQL, not resubmitted")
            if killed:
                continue
            if proc.returncode != 0:
                msg = f"resumed service failed (exit {proc.returncode}):\n{text[-3000:]}"
                raise RuntimeError(msg)
            break
        rows = compared_rows(dsn)
        received = server.received()
        claimed = claimed_ids(dsn)
    finally:
        server.stop()
    if reference is None:
        unclaimed = sorted(set(received) - claimed)
        report.intents_once.append(not unclaimed)
        if unclaimed:
            report.differences.append(
                f"cycle {cycle}: POSTed ids not claimed by their intent: {unclaimed[:5]}"
            )
    else:
        difference = first_difference(reference, rows)
        report.identical.append(not difference)
        if difference:
            report.differences.append(f"cycle {cycle}: {difference}")
        report.same_ids.append(frozenset(received) == report.reference_ids)
    report.max_received.append(max(received.values(), default=0))
    twice = sorted(cid for cid, n in received.items() if n > 1)
    if twice:
        report.differences.append(f"cycle {cycle}: POSTed more than once: {twice[:5]} ({len(twice)} ids)")


def main() -> None:
    """Command line: generate an input, run the service crash test, print the figures."""
    args = crash_arguments(__doc__, Path("out/crash-test-service"))
    from torghut.connectors.synthetic.generator import write_sample_signals

    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    signals = args.work / "signals.jsonl"
    write_sample_signals(signals, args.symbols, args.minutes, args.seed)
    report = run_service_crash_test(
        signals, args.work.absolute(), kills=args.kills, seed=args.seed, say=print
    )
    print(
        f"events {report.events:,} · kills {report.kills} · crashed cycles {len(report.max_received)} · "
        f"runs {report.runs} · replayed submits answered from PostgreSQL {report.stored_hits} / by broker "
        f"lookup {report.backfills} · start-up {report.startup_s:.2f} s · uninterrupted {report.reference_s:.2f} s"
    )
    print(f"kill times (s): {report.kill_times_s}")
    print("rows of the uninterrupted run: " + ", ".join(f"{k} {v:,}" for k, v in report.counts.items()))
    print(f"client order ids POSTed (uninterrupted): {len(report.reference_ids):,}")
    print(f"cycles identical to the uninterrupted run: {sum(report.identical)}/{len(report.identical)}")
    print(f"cycles with the same client order ids: {sum(report.same_ids)}/{len(report.same_ids)}")
    print(f"max POSTs per client order id, per cycle: {report.max_received}")
    for line in report.differences:
        print("  " + line)
    print("exactly once at the broker" if report.exactly_once else "NOT exactly once")
    raise SystemExit(0 if report.exactly_once else 1)


if __name__ == "__main__":
    main()
