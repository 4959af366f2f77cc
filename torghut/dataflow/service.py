"""The engine as a service: a real source, the engine, PostgreSQL for every record, and the broker.

:func:`build_service_flow` wires the configured source (ClickHouse ``ta_signals``, a Kafka topic or a
signal file) into :func:`~torghut.dataflow.build.wire_engine` and every persisted record into one
:class:`~torghut.connectors.postgres.PostgresDynamicSink` (idempotent upserts keyed by deterministic ids).
:func:`run_service` prepares the database, the recovery store and the metrics endpoint, then runs it.

What is persisted: strategy intents (and their strategy versions), symbol and portfolio intents,
decisions, rejections, execution reports, dead letters, and strategy errors as dead letters of stage
``strategy``; the catalog's strategies are written at start. Dropped intents, order intents (the
``executions`` row holds the order) and the final account view are not.

Ingest cursor (ClickHouse source only), the exact semantics:

* every normalized input batch yields an ingest mark, its greatest ``(event_ts, symbol, seq)``, that
  travels to the account stage and is ordered there at the end of its row's aggregation window;
* when the account stage releases marks it emits one checkpoint, the greatest released position, after
  the decisions, rejections and executions of that release; the sink writes it to ``trade_cursor``
  (source ``clickhouse``) last, in the same transaction as those records. A committed cursor therefore
  never runs ahead of the decisions of the rows it covers. Dead letters take a shorter path to the same
  sink and are written in the same or an earlier transaction;
* at start the source resumes from bytewax recovery state when there is some, else from
  ``trade_cursor``, else from ``now - lookback`` (or, with ``start: earliest``, before the table's
  first row);
* with one shard (the default) rows arrive in cursor order and the cursor is exact. With several shards
  one shard may run ahead of another, and a cold start from ``trade_cursor`` (no recovery state) may then
  skip rows of the slower shard; with recovery state every shard resumes from its own snapshot.

Unreachable services: the PostgreSQL sink retries a batch with exponential backoff (5 s cap, a
``PostgresSink: write ... failed ... retrying`` warning per attempt) for ``postgres.max_attempts``
attempts, blocking the flow meanwhile, so nothing is lost; start-up waits for PostgreSQL the same way.
The ClickHouse source treats a failed poll (ClickHouse unreachable, an error answer, no answer within
``source.query_timeout_s``, the client's ``send_receive_timeout``) as transient: the shard's cursor stays,
the poll is retried after 0.5 s doubling to 30 s (a ``ClickHouse poll failed on <shard> (n in a row, retry
in ...)`` warning each time, counted in ``torghut_source_errors_total{source="clickhouse",reason}``), and
reading resumes at the cursor once ClickHouse answers, so no row is lost or read twice. ClickHouse must
answer at start-up.
The Kafka source rides out a broker outage without a deadline: each partition's consumer keeps its
position, reconnects within a second of the broker's return and reads on, so no record is lost, read
twice or dead-lettered; client errors are counted in ``torghut_kafka_errors_total{role="consumer"}`` and
logged (``Kafka consumer of <topic>: ... reconnecting``, at most one warning per 10 s). Publishing to
``source.intents_topic`` re-produces failed deliveries after 0.5 s doubling to 5 s, each attempt bounded
by ``source.delivery.delivery_timeout_s`` (librdkafka's ``message.timeout.ms``), for
``source.delivery.max_attempts`` attempts (about three minutes by default), blocking the flow meanwhile
(``Kafka sink <topic>: n of m record(s) not delivered on attempt k ...`` warnings,
``torghut_sink_retries_total{sink="kafka:<topic>"}``); then it stops the flow with a
:class:`~torghut.connectors.kafka.KafkaDeliveryError` naming the topic. The topic is at-least-once:
a duplicate is byte-identical and consumers de-duplicate by the record's id.

Broker: a retryable :class:`~torghut.connectors.alpaca.AlpacaError` (outcome unknown, throttled,
5xx) does not stop the flow: :class:`RetryTolerantAdapter` reports the order with status
``retry_pending`` and the retryable reason under its client order id, and a later submission of the
same decision (a replay) finds any order the broker did place by that id.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
import clickhouse_connect
import psycopg
from bytewax.dataflow import Dataflow, Stream
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import cluster_main, run_main

from torghut.connectors.alpaca import AlpacaAdapter, AlpacaConfig, AlpacaError
from torghut.connectors.broker import DryRunAdapter, ExecutionAdapter
from torghut.connectors.clickhouse import (
    ClickHouseSource,
    PollSettings,
    ReaderSettings,
    SignalCursor,
    TableRef,
    create_ta_signals,
)
from torghut.connectors.kafka import DeliveryPolicy, publish_json, signal_input
from torghut.connectors.postgres import PostgresDynamicSink, PostgresSink, TradeCursor, load_cursor, migrate
from torghut.connectors.replay_file import ReplayFileSource
from torghut.contracts.account import AccountSnapshot
from torghut.contracts.decision import Rejection, TradeDecision
from torghut.contracts.execution import ExecutionReport
from torghut.contracts.portfolio import OrderIntent, PortfolioIntent, SymbolIntent
from torghut.contracts.signal import DeadLetter
from torghut.contracts.strategy import StrategyError, StrategyIntent
from torghut.dataflow.account_feed import BrokerAccountFeed
from torghut.dataflow.build import wire_engine
from torghut.dataflow.config import ConfigError
from torghut.dataflow.control import CancelOnKillSwitch, build_control_source, cancels_on_kill_switch
from torghut.dataflow.gc_tuning import tuned_gc
from torghut.dataflow.reconcile import OrderStatusRefresh, PersistedOrderGuard, reconcile_at_startup
from torghut.dataflow.service_config import (
    ClickHouseSourceConfig,
    KafkaSourceConfig,
    ServiceConfig,
)
from torghut.metrics import parse_metrics_address, serve_metrics
from torghut.operators.account import AccountFeed, IngestCheckpoint
from torghut.operators.control import ControlSource
from torghut.strategies.catalog import Catalog, load_catalog
from torghut.strategies.registry import default_registry

logger = logging.getLogger(__name__)

SERVICE_FLOW_ID = "torghut_service"
CURSOR_SOURCE = "clickhouse"
RETRY_PENDING = "retry_pending"

_PASSED_THROUGH = (
    StrategyIntent,
    SymbolIntent,
    PortfolioIntent,
    TradeDecision,
    Rejection,
    ExecutionReport,
    AccountSnapshot,
    DeadLetter,
)


def to_persisted(record: object) -> object | None:
    """Map an engine record to what the PostgreSQL sink stores; None for records with no table.

    >>> to_persisted(IngestCheckpoint("clickhouse", datetime.fromisoformat("2026-02-19T14:30:00+00:00"),
    ...                               7, "NVDA"))
    TradeCursor(source='clickhouse', cursor_at=datetime.datetime(2026, 2, 19, 14, 30, tzinfo=datetime.timezone.utc), cursor_seq=7, cursor_symbol='NVDA')
    """  # noqa: E501
    if isinstance(record, _PASSED_THROUGH):
        return record
    if isinstance(record, IngestCheckpoint):
        return TradeCursor(record.source, record.cursor_at, record.cursor_seq, record.cursor_symbol)
    if isinstance(record, StrategyError):
        raw = {
            "strategy_id": record.strategy_id,
            "strategy_type": record.strategy_type,
            "plugin_id": record.plugin_id,
            "seq": record.seq,
        }
        reason = f"strategy_error:{record.strategy_id}:{record.reason}"
        return DeadLetter("strategy", reason, raw, None, record.symbol, record.event_ts)
    return None


class RetryTolerantAdapter:
    """Wraps a broker adapter so a failed submission becomes a report instead of stopping the flow.

    A retryable :class:`AlpacaError` becomes a ``retry_pending`` report and any other an ``rejected``
    one; both keep the order's ``client_order_id`` and carry ``reason`` and ``retryable`` in ``raw``.
    """

    __slots__ = ("_clock", "_inner")

    def __init__(self, inner: ExecutionAdapter, clock: Callable[[], datetime] | None = None) -> None:
        self._inner = inner
        self._clock = clock

    @property
    def name(self) -> str:
        """The wrapped adapter's name."""
        return self._inner.name

    def submit(self, order: OrderIntent) -> ExecutionReport:
        """Submit through the wrapped adapter; a broker error becomes a report."""
        try:
            return self._inner.submit(order)
        except AlpacaError as error:
            status = RETRY_PENDING if error.retryable else "rejected"
            logger.warning(
                "broker submit failed client_order_id=%s retryable=%s: %s",
                order.client_order_id,
                error.retryable,
                error.reason,
            )
            return ExecutionReport.unfilled(
                order,
                status=status,
                adapter=self._inner.name,
                event_ts=order.event_ts if self._clock is None else self._clock(),
                raw={"reason": error.reason, "retryable": error.retryable},
            )

    def get_by_client_order_id(self, client_order_id: str) -> ExecutionReport | None:
        """Look the order up in the wrapped adapter."""
        return self._inner.get_by_client_order_id(client_order_id)

    def account_snapshot(self) -> AccountSnapshot:
        """The wrapped adapter's account snapshot."""
        return self._inner.account_snapshot()


def build_adapter(config: ServiceConfig) -> ExecutionAdapter | None:
    """Return the configured execution adapter; None means the account stage's own paper adapter.

    Raises:
        ValueError: ``alpaca`` without valid ``APCA_*`` settings (the message names the variable).
    """
    kind = config.adapter_kind
    if kind == "paper":
        return None
    if kind == "dry_run":
        return DryRunAdapter(config.engine.account.account, datetime(1970, 1, 1, tzinfo=UTC))
    alpaca = AlpacaConfig.from_env()
    if alpaca.live_blocked:
        logger.warning("TRADING_MODE=live without TRADING_LIVE_ENABLED=true: every order will be refused")
    return RetryTolerantAdapter(AlpacaAdapter(alpaca))


def with_adapter_account(config: ServiceConfig) -> ServiceConfig:
    """Label the account stage with Alpaca's account label when the adapter is alpaca (orders must match)."""
    if config.adapter_kind != "alpaca":
        return config
    label = AlpacaConfig.from_env().account_label
    engine = config.engine
    account = engine.account.model_copy(update={"account": label})
    return config.model_copy(update={"engine": engine.model_copy(update={"account": account})})


class ClickHouseClients:
    """Makes clickhouse-connect clients for the source's settings, the DSN (a secret) kept out of ``repr``.

    Every client waits at most ``query_timeout_s`` for an answer (``send_receive_timeout``; the library's
    default is 300 s), so a hung statement fails the poll, which is retried with backoff.
    """

    def __init__(self, source: ClickHouseSourceConfig) -> None:
        self._dsn = source.client_dsn()
        self._options = source.client_options()

    def __call__(self) -> Any:
        """Open a new client (one per source partition, and one for each start-up query)."""
        return clickhouse_connect.get_client(dsn=self._dsn, **self._options)

    def __repr__(self) -> str:
        return f"ClickHouseClients(dsn=<redacted>, options={self._options!r})"


def _clickhouse_source(
    source: ClickHouseSourceConfig, *, once: bool, until: datetime | None, start_cursor: SignalCursor | None
) -> ClickHouseSource:
    settings = ReaderSettings(
        table=source.table,
        batch_size=source.batch_size,
        lookback_minutes=source.lookback_minutes,
        fast_forward=source.fast_forward,
        cursor_rule="exact",
    )
    return ClickHouseSource(
        ClickHouseClients(source),
        shards=source.shards,
        settings=settings,
        poll=PollSettings(poll_interval_s=source.poll_interval_s, once=once),
        start_cursor=start_cursor,
        until=until,
    )


def build_service_flow(
    config: ServiceConfig,
    *,
    once: bool = False,
    until: datetime | None = None,
    start_cursor: SignalCursor | None = None,
    adapter: ExecutionAdapter | None = None,
    catalog: Catalog | None = None,
    control: ControlSource | None = None,
    account_feed: AccountFeed | None = None,
) -> Dataflow:
    """Wire the configured source, the engine and the PostgreSQL sink (and the Kafka intents topic).

    Args:
        config: The service configuration.
        once: End at the end of the available input (ClickHouse: the first empty poll; Kafka: the end
            of the topic) instead of waiting for more.
        until: ClickHouse only: read no row after this time and end once the range is complete.
        start_cursor: ClickHouse only: where partitions without recovery state start.
        adapter: The execution adapter; None keeps the paper adapter.
        catalog: The loaded catalog (loaded from ``config.catalog`` when None).
        control: The runtime trading control read before every order; None: the static configuration.
        account_feed: The broker's account, read by the account stage (live); None: its own ledger.
    """
    registry = default_registry()
    catalog = catalog if catalog is not None else load_catalog(config.catalog, registry)
    flow = Dataflow(SERVICE_FLOW_ID)
    source = config.source
    cursor_source: str | None = None
    source_errors: list[Stream[Any]] = []
    if isinstance(source, ClickHouseSourceConfig):
        clickhouse = _clickhouse_source(source, once=once, until=until, start_cursor=start_cursor)
        raw: Stream[Any] = op.input("clickhouse_in", flow, clickhouse)
        cursor_source = CURSOR_SOURCE
    elif isinstance(source, KafkaSourceConfig):
        kafka = signal_input(
            "kafka_in", flow, brokers=list(source.brokers), topic=source.topic, tail=not once,
            batch_size=source.batch_size,
        )  # fmt: skip
        raw, source_errors = kafka.oks, [kafka.errs]
    else:
        file_source = ReplayFileSource(source.path, shards=source.shards, batch_size=source.batch_size)
        raw = op.input("file_in", flow, file_source)
    streams = wire_engine(
        raw,
        catalog,
        registry,
        config.engine,
        cursor_source=cursor_source,
        adapter=adapter,
        control=control,
        account_feed=account_feed,
    )
    records = op.merge("all_records", streams.records, *source_errors) if source_errors else streams.records
    persisted = op.filter_map("persisted", records, to_persisted)
    sink = PostgresDynamicSink(
        config.postgres.dsn.get_secret_value(),
        max_attempts=config.postgres.max_attempts,
        backoff_max_s=config.postgres.backoff_max_s,
    )
    op.output("postgres_out", persisted, sink)
    if isinstance(source, KafkaSourceConfig) and source.intents_topic:
        published = op.filter("published", records, lambda r: isinstance(r, StrategyIntent | TradeDecision))
        policy = DeliveryPolicy(**source.delivery.model_dump())
        publish_json(
            "kafka_intents_out",
            published,
            brokers=list(source.brokers),
            topic=source.intents_topic,
            policy=policy,
        )
    return flow


def wait_for_postgres(dsn: str, *, attempts: int, backoff_max_s: float = 5.0) -> None:
    """Block until PostgreSQL accepts a connection, logging every failed try.

    Raises:
        psycopg.OperationalError: still unreachable after ``attempts`` tries.
    """
    delay = 0.2
    for attempt in range(1, attempts + 1):
        try:
            with psycopg.connect(dsn, connect_timeout=5):
                return
        except psycopg.OperationalError as error:
            if attempt == attempts:
                raise
            reason = str(error).strip()
            logger.warning("PostgreSQL unreachable (try %d), retrying in %.1f s: %s", attempt, delay, reason)
            time.sleep(delay)
            delay = min(delay * 2, backoff_max_s)


def prepare_database(config: ServiceConfig, catalog: Catalog) -> list[int]:
    """Wait for PostgreSQL, apply pending migrations (when enabled) and write the catalog's strategies.

    Returns:
        The migration versions applied.
    """
    dsn = config.postgres.dsn.get_secret_value()
    wait_for_postgres(dsn, attempts=config.postgres.max_attempts, backoff_max_s=config.postgres.backoff_max_s)
    applied = migrate(dsn) if config.postgres.migrate else []
    sink = PostgresSink(dsn, max_attempts=config.postgres.max_attempts)
    try:
        sink.write_batch(catalog.definitions)
    finally:
        sink.close()
    return applied


def _start_words(start: SignalCursor | None) -> str:
    # A stored trade_cursor names its row's symbol; the cursor before a table's first row does not.
    if start is None:
        return ""
    if start.cursor_symbol is not None:
        return f", resuming after the stored cursor {start.describe()}"
    return f", starting from {start.describe()} (before the table's first row)"


def start_cursor_for(config: ServiceConfig) -> SignalCursor | None:
    """Return the ClickHouse start cursor.

    It is ``trade_cursor`` when stored, else (``start: earliest``) just before the table's first row,
    else None (``now - lookback``).
    """
    source = config.source
    if not isinstance(source, ClickHouseSourceConfig):
        return None
    with psycopg.connect(config.postgres.dsn.get_secret_value()) as conn:
        stored = load_cursor(conn, CURSOR_SOURCE)
    if stored is not None and stored.cursor_at is not None:
        return SignalCursor(stored.cursor_at, stored.cursor_seq, stored.cursor_symbol)
    if source.start != "earliest":
        return None
    client = ClickHouseClients(source)()
    table = TableRef.parse(source.table)
    first = client.query(f"SELECT min(event_ts), count() FROM {table.database}.{table.table}").result_rows[0]
    if not first[1]:
        return None
    at: datetime = first[0]
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return SignalCursor(at - timedelta(milliseconds=1))


def ensure_signal_table(config: ServiceConfig) -> None:
    """Create the ClickHouse signal table when the source asks for it (``create_table: true``)."""
    source = config.source
    if isinstance(source, ClickHouseSourceConfig) and source.create_table:
        create_ta_signals(ClickHouseClients(source)(), source.table, ttl_days=None)


def cluster_from_env(environ: Mapping[str, str]) -> tuple[list[str], int] | None:
    """Read bytewax's ``BYTEWAX_ADDRESSES`` and ``BYTEWAX_PROCESS_ID`` (one worker per process).

    Returns ``None`` for a single process; raises ``ConfigError`` when the two disagree, or when
    ``BYTEWAX_WORKERS_PER_PROCESS`` asks for anything but the one worker per process the service runs.

    >>> cluster_from_env({"BYTEWAX_ADDRESSES": "a:1;b:1", "BYTEWAX_PROCESS_ID": "1"})
    (['a:1', 'b:1'], 1)
    >>> cluster_from_env({}) is None
    True
    >>> cluster_from_env({"BYTEWAX_WORKERS_PER_PROCESS": "2"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    torghut.dataflow.config.ConfigError: BYTEWAX_WORKERS_PER_PROCESS is '2': the service runs one worker...
    """
    workers = environ.get("BYTEWAX_WORKERS_PER_PROCESS", "").strip()
    if workers not in {"", "1"}:
        msg = (
            f"BYTEWAX_WORKERS_PER_PROCESS is {workers!r}: the service runs one worker per process (worker "
            "threads of one process contend for the GIL); scale with processes"
        )
        raise ConfigError(msg)
    addresses = [a for a in environ.get("BYTEWAX_ADDRESSES", "").split(";") if a.strip()]
    if len(addresses) <= 1:
        return None
    raw_id = environ.get("BYTEWAX_PROCESS_ID", "")
    if not raw_id.isdigit() or int(raw_id) >= len(addresses):
        last = len(addresses) - 1
        msg = f"BYTEWAX_PROCESS_ID must be 0..{last} for {len(addresses)} addresses, got {raw_id!r}"
        raise ConfigError(msg)
    return addresses, int(raw_id)


def recovery_config(directory: Path, backup_interval_s: float = 0.0) -> RecoveryConfig:
    """Return bytewax's recovery configuration, creating one partition in an empty directory first.

    ``backup_interval_s`` is how long bytewax keeps superseded snapshots before garbage collecting them.
    """
    directory.mkdir(parents=True, exist_ok=True)
    if not any(directory.iterdir()):
        init_db_dir(directory, 1)
        logger.info("created bytewax recovery partitions in %s", directory)
    return RecoveryConfig(directory, backup_interval=timedelta(seconds=backup_interval_s))


@dataclass(frozen=True, slots=True)
class ServiceRun:
    """What one run did: migrations applied, start cursor, and the database's counts afterwards."""

    applied_migrations: list[int]
    start_cursor: SignalCursor | None
    counts: dict[str, int]
    elapsed_s: float
    #: The same counts before the run: ``counts`` minus these is what this run added.
    counts_before: dict[str, int] = field(default_factory=dict)

    def added(self) -> dict[str, int]:
        """What this run added to each count (a restart that reads nothing new adds nothing)."""
        return {name: value - self.counts_before.get(name, 0) for name, value in self.counts.items()}


SUMMARY_QUERIES: dict[str, str] = {
    "decisions": "SELECT count(*) FROM trade_decisions",
    "orders": "SELECT count(*) FROM executions",
    "fills": "SELECT count(*) FROM executions WHERE status = 'filled'",
    "rejections": "SELECT count(*) FROM rejections",
    "dead_letters": "SELECT count(*) FROM dead_letters",
    "strategy_intents": "SELECT count(*) FROM strategy_intents",
}


def summarize(dsn: str) -> dict[str, int]:
    """Count decisions, orders, fills, rejections, dead letters and strategy intents in PostgreSQL."""
    counts: dict[str, int] = {}
    with psycopg.connect(dsn) as conn:
        for name, query in SUMMARY_QUERIES.items():
            row = conn.execute(query.encode()).fetchone()
            counts[name] = int(str(row[0])) if row is not None else 0
    return counts


def _broker(
    config: ServiceConfig, say: Callable[[str], None]
) -> tuple[ExecutionAdapter | None, BrokerAccountFeed | None]:
    """The execution adapter and the broker account feed (``alpaca``: reconciled at start, guarded)."""
    adapter = build_adapter(config)
    if adapter is None or config.adapter_kind != "alpaca":
        return adapter, None
    dsn = config.postgres.dsn.get_secret_value()
    broker = AlpacaAdapter(AlpacaConfig.from_env())  # reads only: the orders go through ``adapter``
    reconcile_at_startup(dsn, broker, config.adapter.reconcile, say=say)
    guarded = PersistedOrderGuard(adapter, dsn)
    interval = config.adapter.account_refresh_s
    if interval is None:
        say("account: the stage's own ledger (adapter.account_refresh_s unset)")
        return guarded, None
    say(
        f"account: the broker's, read at most every {interval:g} s (adapter.account_refresh_s), with the "
        "status of open orders"
    )
    refresh_orders = OrderStatusRefresh(dsn, broker, config.engine.account.account)
    return guarded, BrokerAccountFeed(broker, interval, on_open_orders=refresh_orders)


def run_service(
    config: ServiceConfig,
    *,
    once: bool = False,
    until: datetime | None = None,
    say: Callable[[str], None] = logger.info,
) -> ServiceRun:
    """Prepare the database, recovery store and metrics, then run the flow until it ends or is interrupted.

    Args:
        config: The service configuration.
        once: Stop at the end of the available input.
        until: ClickHouse only: stop once every row up to this time is processed.
        say: Where progress lines go (the CLI prints them).
    """
    started = time.perf_counter()
    config = with_adapter_account(config)
    catalog = load_catalog(config.catalog, default_registry())
    say(f"catalog {config.catalog}: {len(catalog.definitions)} strategies")
    applied = prepare_database(config, catalog)
    say(f"{config.postgres.describe()}: migrations applied {applied or 'none (up to date)'}")
    ensure_signal_table(config)
    start = start_cursor_for(config)
    say(f"source {config.source.describe()}{_start_words(start)}")
    before = summarize(config.postgres.dsn.get_secret_value())
    metrics = None
    if config.metrics_address is not None:
        host, port = parse_metrics_address(config.metrics_address)
        metrics = serve_metrics(host, port)
        say(f"metrics on http://{metrics.address}:{metrics.port}/metrics")
    recovery = None
    if config.recovery_dir is not None:
        recovery = recovery_config(config.recovery_dir, config.recovery_backup_interval_s)
        say(
            f"recovery in {config.recovery_dir}, snapshots every {config.snapshot_interval_s} s, "
            f"superseded snapshots kept {config.recovery_backup_interval_s} s"
        )
    adapter, account_feed = _broker(config, say)
    say(f"adapter {config.adapter_kind}, account {config.engine.account.account}")
    control = build_control_source(config)
    source: ControlSource | None = control
    if control is not None:
        say(f"trading control: trading_control rows {control.account!r} and '*', read before every order")
        if cancels_on_kill_switch(config):
            source = CancelOnKillSwitch(control, AlpacaAdapter(AlpacaConfig.from_env()))
    flow = build_service_flow(
        config,
        once=once,
        until=until,
        start_cursor=start,
        adapter=adapter,
        catalog=catalog,
        control=source,
        account_feed=account_feed,
    )
    epoch = timedelta(seconds=config.snapshot_interval_s)
    cluster = cluster_from_env(os.environ)
    try:
        with tuned_gc():
            if cluster is None:
                run_main(flow, epoch_interval=epoch, recovery_config=recovery)
            else:
                addresses, process_id = cluster
                say(f"bytewax process {process_id} of {len(addresses)}: {';'.join(addresses)}")
                cluster_main(flow, addresses, process_id, epoch_interval=epoch, recovery_config=recovery)
    finally:
        if metrics is not None:
            metrics.close()
        if control is not None:
            control.close()
    counts = summarize(config.postgres.dsn.get_secret_value())
    return ServiceRun(applied, start, counts, time.perf_counter() - started, before)
