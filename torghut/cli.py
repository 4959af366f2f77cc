"""The ``torghut`` command: replay recorded signals, generate samples, inspect strategies."""

from __future__ import annotations

import os
import signal
import sys
import threading
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

app = typer.Typer(
    name="torghut",
    help="torghut strategy engine: a deterministic multi-strategy decision engine on bytewax.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
strategies_app = typer.Typer(
    help="Inspect installed strategy plugins and validate catalogs.", no_args_is_help=True
)
app.add_typer(strategies_app, name="strategies")
db_app = typer.Typer(help="Manage the PostgreSQL schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
control_app = typer.Typer(
    help=(
        "Flip the kill switch and the trading switch of a running service (PostgreSQL trading_control). "
        "The firewall reads them before every order: a change applies to the next order, no restart. "
        "They add to the static TRADING_KILL_SWITCH_ENABLED / TRADING_ENABLED and can only make trading "
        "stricter. Without --account a change applies to every account (row '*')."
    ),
    no_args_is_help=True,
)
app.add_typer(control_app, name="control")

if TYPE_CHECKING:
    from collections.abc import Callable

    import psycopg

    from torghut.connectors.postgres import ControlRow
    from torghut.dataflow.config import EngineConfig
    from torghut.dataflow.service import ServiceRun

_T = TypeVar("_T")


def _width(stream: TextIO) -> int | None:
    # Piped or captured output has no terminal width: rich would wrap it at 80 columns. Tables and summary
    # lines are kept whole there (160 columns) unless COLUMNS says otherwise; a terminal sets its own.
    return None if stream.isatty() or os.environ.get("COLUMNS") else 160


console = Console(stderr=True, width=_width(sys.stderr))
out = Console(width=_width(sys.stdout))


def _fail(message: str) -> typer.Exit:
    # The message is shown as written (catalog entries, values and paths may hold square brackets) and
    # unwrapped, so each line names its entry and field whatever the terminal's width.
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


def _line(text: str, to: Console = out) -> None:
    """Print ``text`` as one unwrapped line, as written: no markup, no highlighting (what operators grep)."""
    to.print(text, markup=False, highlight=False, soft_wrap=True)


def _table(title: str, *columns: str) -> Table:
    """A table of values shown as written: no markup in titles or cells, long values folded, never cut."""
    table = Table(title=Text(title), title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _add_row(table: Table, *cells: str) -> None:
    table.add_row(*(Text(cell) for cell in cells))


@app.command()
def replay(
    signals: Annotated[
        Path, typer.Option(help="Recorded signals: JSONL of ta_signals rows or envelopes, or a JSON array.")
    ],
    catalog: Annotated[
        Path, typer.Option(help="Strategy catalog (torghut strategies.yaml, V3 or newer shape).")
    ],
    out_dir: Annotated[
        Path, typer.Option("--out", help="Directory for the outputs and summary.json.")
    ] = Path("out/replay"),
    batch_size: Annotated[
        int, typer.Option(min=1, help="Source batch size (records per batch).")
    ] = 10_000,  # REPLAY_BATCH_SIZE
    processes: Annotated[int, typer.Option(min=1, help="bytewax processes (one worker each).")] = 1,
    shards: Annotated[
        int, typer.Option(min=1, help="Symbol shards the input is split into (fixed per run).")
    ] = 8,
    emit_features: Annotated[
        bool, typer.Option("--emit-features", help="Also write features.jsonl.")
    ] = False,
    config: Annotated[Path | None, typer.Option(help="Engine configuration file (YAML).")] = None,
    mode: Annotated[
        str | None,
        typer.Option(
            help="Decision path: plugin_v3 (strategies, aggregation, allocation; the default) or legacy "
            "(torghut's MACD/RSI rule).",
            metavar="plugin_v3|legacy",
        ),
    ] = None,
    starting_equity: Annotated[
        str | None,
        typer.Option(
            help="Paper account starting equity, a decimal number (default 100000).",
            metavar="DECIMAL",
        ),
    ] = None,
    recovery_dir: Annotated[
        Path | None,
        typer.Option(help="bytewax recovery directory: snapshot state there and resume an unfinished run."),
    ] = None,
    snapshot_interval: Annotated[
        float, typer.Option(min=0.001, help="Seconds between recovery snapshots (with --recovery-dir).")
    ] = 1.0,
    metrics_address: Annotated[
        str | None, typer.Option(help="Serve Prometheus /metrics on HOST:PORT during the replay.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Replay a signal file through the real flow and write intents, decisions, orders and digests."""
    from torghut.dataflow.build import FlowSpec
    from torghut.dataflow.config import ConfigError, load_engine_config
    from torghut.dataflow.replay import ReplayError, run_replay
    from torghut.recovery.store import RecoveryStoreError
    from torghut.strategies.catalog import CatalogError, load_catalog
    from torghut.strategies.registry import default_registry

    _check_replay_paths(signals, out_dir)
    if mode is not None and mode not in {"plugin_v3", "legacy"}:
        message = f"--mode must be plugin_v3 or legacy, not {mode!r}"
        raise _fail(message)
    try:
        engine = load_engine_config(config)
        load_catalog(catalog, default_registry())
    except (ConfigError, CatalogError, OSError) as exc:
        raise _fail(str(exc)) from exc
    engine = _with_overrides(engine, mode, starting_equity)
    _make_out_dir(out_dir)
    spec = FlowSpec(
        signals=signals.resolve(),
        catalog=catalog.resolve(),
        parts_dir=(out_dir / ".parts").resolve(),
        batch_size=batch_size,
        shards=shards,
        emit_features=emit_features,
        engine=engine,
        recovery_dir=recovery_dir.resolve() if recovery_dir is not None else None,
        snapshot_interval_s=snapshot_interval,
    )
    if metrics_address is not None:
        from torghut.metrics import parse_metrics_address, serve_metrics

        host, port = parse_metrics_address(metrics_address)
        server = serve_metrics(host, port)
        console.print(f"serving metrics on http://{host}:{server.port}/metrics", highlight=False)
    console.print(
        f"replaying [bold]{signals}[/] with [bold]{catalog}[/]: {processes} process(es), "
        f"batch size {batch_size}, {shards or processes} shard(s) -> {out_dir}",
        highlight=False,
    )
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
        transient=True,
    ) as progress:
        task = progress.add_task("replay", total=1.0)
        try:
            result = run_replay(
                spec,
                out_dir,
                processes=processes,
                on_progress=lambda fraction: progress.update(task, completed=fraction),
            )
        except (ReplayError, RecoveryStoreError) as exc:
            raise _fail(str(exc)) from exc
    table = Table(
        title=f"replay of {result.events_in:,} events in {result.elapsed_s:.2f} s", title_justify="left"
    )
    table.add_column("stream")
    table.add_column("records", justify="right")
    table.add_column("sha256")
    for name, stream in result.streams.items():
        table.add_row(name, f"{stream.count:,}", stream.sha256[:16])
    out.print(table)
    stages = ", ".join(f"{k} {v:,}" for k, v in result.dead_letters_by_stage.items()) or "none"
    rate = result.events_in / max(result.elapsed_s, 1e-9)
    _line(
        f"normalized {result.events_normalized:,} · dead letters: {stages} · "
        f"{rate:,.0f} events/s · digest {result.summary['digest'][:16]}"
    )
    if result.events_in == 0:
        _line(f"warning: {signals} holds no events", console)
    elif result.events_normalized == 0:
        _line(f"warning: every event of {signals} was dead-lettered (reasons in dead_letters.jsonl)", console)
    paper = result.summary["paper_account"]
    rejected = ", ".join(f"{k} {v:,}" for k, v in paper["rejections_by_reason"].items()) or "none"
    _line(
        f"paper account ({result.summary['mode']}): {paper['decisions']:,} decisions · "
        f"{paper['orders']:,} orders · {paper['fills']:,} fills · "
        f"equity {_money(paper['equity'])} · P&L {_money(paper['pnl'])} (exact figures in summary.json)"
    )
    _line(f"rejections: {rejected}")
    _line(f"wrote {out_dir}/summary.json")


def _money(value: str) -> str:
    """An amount as people read it: cents, thousands separated (``summary.json`` keeps the exact value).

    >>> _money("99627.15340000000000"), _money("-372.8466"), _money("0E-14")
    ('99,627.15', '-372.85', '0.00')
    """
    return f"{Decimal(value).quantize(Decimal('0.01')):,}"


def _check_replay_paths(signals: Path, out_dir: Path) -> None:
    """Fail with one line unless the signal file exists and the output path is no file."""
    if not signals.is_file():
        message = f"signal file not found: {signals}"
        raise _fail(message)
    if out_dir.exists() and not out_dir.is_dir():
        message = f"--out {out_dir} exists and is not a directory"
        raise _fail(message)


def _make_out_dir(out_dir: Path) -> None:
    """Create the replay's output directory (once the inputs are known to be good), failing in one line."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        message = f"cannot create the output directory {out_dir}: {exc.strerror or exc}"
        raise _fail(message) from exc


def _with_overrides(engine: EngineConfig, mode: str | None, starting_equity: str | None) -> EngineConfig:
    """Apply the replay command's --mode and --starting-equity to the configuration tree."""
    from torghut.dataflow.config import EngineConfig

    if mode is not None:
        trading = engine.trading.model_copy(update={"trading_strategy_runtime_mode": mode})
        engine = engine.model_copy(update={"trading": trading})
    if starting_equity is not None:
        try:
            equity = Decimal(starting_equity.strip())
        except ArithmeticError:
            equity = Decimal("NaN")
        if not equity.is_finite() or equity <= 0:
            message = f"--starting-equity must be a positive decimal number, got {starting_equity!r}"
            raise _fail(message)
        account = engine.account.model_copy(update={"starting_equity": equity})
        engine = engine.model_copy(update={"account": account})
    return EngineConfig.model_validate(engine.model_dump())


@app.command()
def diff(
    left: Annotated[Path, typer.Argument(help="A replay output directory.")],
    right: Annotated[Path, typer.Argument(help="Another replay output directory.")],
) -> None:
    """Compare two replay outputs stream by stream and show the first differing record."""
    from torghut.recovery.replay_digest import differing_field, digest_file, first_difference

    for directory in (left, right):
        if not directory.is_dir():
            message = f"not a replay output directory: {directory}"
            raise _fail(message)
    # Every stream of either side: one that only one side has is a difference too.
    names = sorted({p.name for p in left.glob("*.jsonl")} | {p.name for p in right.glob("*.jsonl")})
    if not names:
        message = f"no replay streams (*.jsonl) in {left} or {right}"
        raise _fail(message)
    differing = 0
    for name in names:
        path, other = left / name, right / name
        lacking = [str(d) for d, f in ((left, path), (right, other)) if not f.is_file()]
        if lacking:
            _line(f"{name}: missing in {lacking[0]}")
            differing += 1
            continue
        a, b = digest_file(path), digest_file(other)
        if a.sha256 == b.sha256:
            _line(f"{name}: identical ({a.count:,} records, {a.sha256[:16]})")
            continue
        differing += 1
        found = first_difference(path, other)
        _line(f"{name}: differs ({a.count:,} vs {b.count:,} records)")
        if found is not None:
            # Name the first field that differs, then each record on one line, as it is in the file.
            number, la, lb = found
            where = differing_field(la, lb)
            field = f", field {where}" if where is not None else ""
            _line(f"  first difference at record {number}{field}:\n  - {la}\n  + {lb}")
    raise typer.Exit(code=1 if differing else 0)


@app.command("sample-signals")
def sample_signals(
    out_file: Annotated[Path, typer.Option("--out", help="Output JSONL file of ta_signals rows.")],
    symbols: Annotated[int, typer.Option(min=1, help="Number of symbols.")] = 20,
    minutes: Annotated[int, typer.Option(min=1, help="Minutes of 1-second bars per symbol.")] = 30,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same file).")] = 7,
) -> None:
    """Generate realistic, seeded torghut.ta_signals rows (1-second microbars with indicators)."""
    from torghut.connectors.synthetic.generator import write_sample_signals

    total = symbols * minutes * 60
    out_file.parent.mkdir(parents=True, exist_ok=True)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("generating", total=total)
        count = write_sample_signals(
            out_file, symbols, minutes, seed, progress=lambda n: progress.update(task, completed=n)
        )
    out.print(f"wrote {count:,} rows for {symbols} symbols x {minutes} min (seed {seed}) to {out_file}")


@strategies_app.command("list")
def strategies_list() -> None:
    """List the installed strategy plugins: built-ins and entry-point plugins."""
    from torghut.strategies.registry import default_registry, plugin_rows

    table = _table("strategy plugins", "type@version", "source", "warm-up", "required features", "parameters")
    for row in plugin_rows(default_registry()):
        _add_row(
            table,
            f"{row.strategy_type}@{row.version}",
            f"{row.source} {row.source_version}",
            str(row.warmup_bars),
            ", ".join(row.required_features),
            "\n".join(row.params),
        )
    out.print(table)


@strategies_app.command("validate")
def strategies_validate(
    catalog: Annotated[Path, typer.Argument(help="Strategy catalog file (YAML or JSON).")],
) -> None:
    """Validate a strategy catalog: shapes, plugins, pins and parameters."""
    from torghut.strategies.catalog import CatalogError, load_catalog
    from torghut.strategies.registry import default_registry

    try:
        loaded = load_catalog(catalog, default_registry())
    except CatalogError as exc:
        raise _fail(str(exc)) from exc
    table = _table(
        f"{catalog}: valid (digest {loaded.digest[:16]})",
        *("strategy_id", "plugin", "enabled", "timeframe", "priority", "parameter hash"),
    )
    for d in loaded.definitions:
        _add_row(
            table,
            d.strategy_id,
            f"{d.strategy_type}@{d.version}",
            "yes" if d.enabled else "no",
            d.base_timeframe,
            str(d.priority),
            d.parameter_hash[:16],
        )
    out.print(table)


DsnOption = Annotated[
    str,
    typer.Option(
        envvar="TORGHUT_DATABASE_URL",
        help="PostgreSQL DSN (postgresql://user:password@host:5432/db); env TORGHUT_DATABASE_URL.",
        show_default=False,
    ),
]


@db_app.command("migrate")
def db_migrate(dsn: DsnOption) -> None:
    """Apply pending migrations (idempotent, safe from several processes) and list what was applied."""
    import psycopg

    from torghut.connectors.postgres import MigrationError, applied_versions, load_migrations, migrate

    try:
        applied = migrate(dsn)
        with psycopg.connect(dsn) as conn:
            present = applied_versions(conn)
    except (MigrationError, psycopg.Error) as exc:
        message = f"migration failed: {exc}"
        raise _fail(message) from exc
    names = {m.version: f"{m.version:04d}_{m.name}" for m in load_migrations()}
    if applied:
        for version in applied:
            out.print(f"applied {names[version]}", highlight=False)
    else:
        out.print("schema up to date: nothing applied", highlight=False)
    out.print(f"schema at {names[present[-1]] if present else 'nothing'}", highlight=False)


AccountOption = Annotated[
    str,
    typer.Option(
        "--account",
        help="Account label (TRADING_ACCOUNT_LABEL, e.g. live or paper); '*' (default) is every account.",
    ),
]
ReasonOption = Annotated[
    str | None, typer.Option("--reason", help="Why, recorded with the change and on every rejection.")
]
ByOption = Annotated[
    str | None,
    typer.Option("--by", help="Who made the change (default: $USER@hostname).", show_default=False),
]


class Switch(StrEnum):
    """``torghut control kill-switch on|off``."""

    on = "on"
    off = "off"


class TradingSwitch(StrEnum):
    """``torghut control trading enable|disable``."""

    enable = "enable"
    disable = "disable"


def _operator() -> str:
    import os
    import socket

    user = os.environ.get("USER") or os.environ.get("LOGNAME") or f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def _control_table(rows: list[ControlRow], title: str) -> Table:
    table = _table(
        title, "account", "kill switch", "trading", "reason", "updated by", "updated at", "version"
    )
    for row in rows:
        _add_row(
            table,
            row.account_label,
            "ENGAGED" if row.kill_switch else "released",
            "enabled" if row.trading_enabled else "DISABLED",
            row.reason or "",
            row.updated_by,
            row.updated_at.astimezone(UTC).isoformat(timespec="seconds"),
            str(row.version),
        )
    return table


def _control_call(action: Callable[[psycopg.Connection[tuple[object, ...]]], _T], dsn: str) -> _T:
    import psycopg

    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            return action(conn)
    except psycopg.errors.UndefinedTable as exc:
        message = "the trading_control table does not exist: run `torghut db migrate` first"
        raise _fail(message) from exc
    except psycopg.Error as exc:
        message = f"trading control: {exc}"
        raise _fail(message) from exc


def _set_control(dsn: str, account: str, reason: str | None, by: str | None, **switches: bool) -> None:
    from torghut.connectors.postgres import load_controls, set_control

    def write(conn: psycopg.Connection[tuple[object, ...]]) -> list[ControlRow]:
        set_control(conn, account, updated_by=by or _operator(), reason=reason, **switches)
        return load_controls(conn)

    rows = _control_call(write, dsn)
    out.print(_control_table(rows, "trading_control (applies to the next order)"))
    engaged = [r.account_label for r in rows if r.kill_switch]
    disabled = [r.account_label for r in rows if not r.trading_enabled]
    if engaged:
        _line(f"kill switch engaged by: {', '.join(engaged)}")
    if disabled:
        _line(f"trading disabled by: {', '.join(disabled)}")
    _line("the static TRADING_KILL_SWITCH_ENABLED / TRADING_ENABLED of each service still apply")


@control_app.command("show")
def control_show(
    dsn: DsnOption,
    account: Annotated[
        str | None, typer.Option("--account", help="Only the rows that apply to this account (its own, '*').")
    ] = None,
) -> None:
    """Show the trading_control rows (no row: the static configuration alone applies)."""
    from torghut.connectors.postgres import control_state, load_controls

    rows = _control_call(lambda conn: load_controls(conn, account), dsn)
    if not rows:
        where = f"account {account!r}" if account else "any account"
        _line(f"no trading_control row for {where}: the static configuration alone applies")
        return
    out.print(_control_table(rows, "trading_control"))
    if account is not None:
        state = control_state(rows)
        _line(
            f"account {account}: kill switch {'ENGAGED' if state.kill_switch else 'released'}, "
            f"trading {'enabled' if state.trading_enabled else 'DISABLED'} by the control "
            f"(revision {state.revision})"
        )


@control_app.command("kill-switch")
def control_kill_switch(
    state: Annotated[
        Switch, typer.Argument(help="on: block every order; off: release the control's switch.")
    ],
    dsn: DsnOption,
    account: AccountOption = "*",
    reason: ReasonOption = None,
    by: ByOption = None,
) -> None:
    """Engage or release the runtime kill switch: orders are rejected with kill_switch_enabled."""
    _set_control(dsn, account, reason, by, kill_switch=state is Switch.on)


@control_app.command("trading")
def control_trading(
    state: Annotated[
        TradingSwitch, typer.Argument(help="disable: reject every order (trading_disabled); enable: allow.")
    ],
    dsn: DsnOption,
    account: AccountOption = "*",
    reason: ReasonOption = None,
    by: ByOption = None,
) -> None:
    """Disable or enable trading at runtime: while disabled, orders are rejected with trading_disabled."""
    _set_control(dsn, account, reason, by, trading_enabled=state is TradingSwitch.enable)


@app.command()
def run(
    config: Annotated[
        Path | None,
        typer.Option(help="Service configuration (YAML: engine and service sections). Default: embedded."),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Process the available input, print a summary and exit.")
    ] = False,
    until: Annotated[
        datetime | None,
        typer.Option(
            help="ClickHouse: stop once every signal up to this UTC time is processed "
            "(2026-02-19T21:00:00, 2026-02-19 21:00:00 or 2026-02-19).",
        ),
    ] = None,
    workdir: Annotated[
        Path, typer.Option(help="Embedded defaults only: where var/chdb and var/postgres live.")
    ] = Path(),
    metrics_address: Annotated[
        str | None,
        typer.Option(
            help="Serve /metrics on HOST:PORT (overrides the configuration's metrics_address, "
            "127.0.0.1:9464 by default; 'off' disables it).",
        ),
    ] = None,
) -> None:
    """Run the engine as a service: source -> engine -> PostgreSQL (and the broker), until interrupted.

    Without --config it runs on embedded defaults: chdb seeded with sample signals under var/chdb, a local
    PostgreSQL under var/postgres, the paper adapter and examples/strategies.yaml.
    """
    import logging

    from torghut.connectors.postgres import PostgresServerError
    from torghut.dataflow.config import ConfigError
    from torghut.dataflow.service import run_service
    from torghut.dataflow.service_config import load_service_config

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop_at = None if until is None else (until if until.tzinfo else until.replace(tzinfo=UTC))
    services = None

    def say(line: str) -> None:
        _line(line, console)

    _check_metrics_address(metrics_address)  # before any service starts
    terminated = _interrupt_on_sigterm()
    try:
        if config is not None:
            service = load_service_config(config)
        else:
            from torghut.dataflow.local import local_service_config, start_local_services

            say(f"no --config: embedded defaults under {workdir.absolute() / 'var'}")
            services = start_local_services(workdir)
            seeded = services.seeded_rows
            data = f"seeded {seeded:,} sample signals" if seeded else "reusing its signals"
            say(f"chdb ClickHouse at {services.chdb_dsn}: {data}")
            say(f"local PostgreSQL in {services.postgres_dir.absolute()} at {services.postgres.dsn}")
            service = local_service_config(services, workdir)
        if metrics_address is not None:
            address = None if metrics_address.lower() in {"off", "none"} else metrics_address
            service = service.model_copy(update={"metrics_address": address})
        result = run_service(service, once=once, until=stop_at, say=say)
    except KeyboardInterrupt:
        say("terminated" if terminated.is_set() else "interrupted")
        raise typer.Exit(code=143 if terminated.is_set() else 130) from None
    except Exception as exc:
        if terminated.is_set():
            say("terminated")
            raise typer.Exit(code=143) from None
        if isinstance(exc, (ConfigError, PostgresServerError, OSError, ValueError)):
            raise _fail(str(exc)) from exc
        raise
    finally:
        if services is not None:
            services.stop()
            if services.started_postgres:
                say("stopped the local PostgreSQL")
    _print_run_summary(result)


def _check_metrics_address(value: str | None) -> None:
    """Fail in one line on a ``--metrics-address`` that is neither ``off`` nor ``HOST:PORT``."""
    if value is None or value.lower() in {"off", "none"}:
        return
    from torghut.metrics import parse_metrics_address

    try:
        parse_metrics_address(value)
    except ValueError as exc:
        raise _fail(str(exc)) from exc


def _interrupt_on_sigterm() -> threading.Event:
    """Make SIGTERM (kill, Kubernetes stopping the pod) end a run as Ctrl-C does; the event tells it was.

    The run's ``finally`` then stops the embedded services it started. The interrupt may reach the caller
    wrapped by bytewax, hence the event. Only the main thread can install a handler.
    """
    terminated = threading.Event()

    def on_sigterm(signum: int, frame: object) -> None:
        terminated.set()
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_sigterm)
    return terminated


def _print_run_summary(result: ServiceRun) -> None:
    table = Table(title=f"run finished in {result.elapsed_s:.1f} s (from PostgreSQL)", title_justify="left")
    table.add_column("records")
    table.add_column("this run", justify="right")
    table.add_column("in total", justify="right")
    added = result.added()
    for name, value in result.counts.items():
        table.add_row(name.replace("_", " "), f"{added[name]:,}", f"{value:,}")
    out.print(table)


def main() -> None:
    """Entry point of the ``torghut`` console script."""
    app()


if __name__ == "__main__":
    main()
