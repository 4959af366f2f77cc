"""The service's configuration: where signals come from, where records go, the broker, recovery, metrics.

:class:`ServiceConfig` composes the engine's :class:`~torghut.dataflow.config.EngineConfig` with the
service's own sections. One YAML file holds both: the engine sections (``runtime``, ``aggregation``,
``allocation``, ``account``, ``trading``) and the service sections (``source``, ``postgres``, ``adapter``,
``catalog``, ``metrics_address``, ``recovery_dir``, ``snapshot_interval_s``, ``trading_control``)::

    source: {kind: clickhouse, host: torghut-clickhouse, port: 8123, password: "...", shards: 1}
    postgres: {dsn: "postgresql://torghut@db:5432/torghut"}
    adapter: {kind: alpaca}
    catalog: /etc/torghut/strategies.yaml
    recovery_dir: /var/lib/torghut/recovery
    account: {release_lateness_s: 2}

Environment variables override the file: torghut's engine variables (``TRADING_*``), the PostgreSQL DSN
(:data:`DATABASE_URL_ENV`), the metrics address (:data:`METRICS_ADDRESS_ENV`), torghut's signal
settings ``TRADING_SIGNAL_TABLE``, ``TRADING_SIGNAL_BATCH_SIZE``, ``TRADING_SIGNAL_LOOKBACK_MINUTES``,
the broker account refresh (:data:`RECONCILE_MS_ENV`), torghut's ClickHouse connection
(:data:`CLICKHOUSE_URL_ENV`, :data:`CLICKHOUSE_USER_ENV`, :data:`CLICKHOUSE_PASSWORD_ENV`) and bytewax's
recovery settings (:data:`RECOVERY_ENV`:
``BYTEWAX_RECOVERY_DIRECTORY``, ``BYTEWAX_SNAPSHOT_INTERVAL``, ``BYTEWAX_RECOVERY_BACKUP_INTERVAL``).
The Alpaca adapter reads its keys and switches (``APCA_*``, ``TRADING_MODE``, ``TRADING_LIVE_ENABLED``)
from the environment only. Secrets are :class:`~pydantic.SecretStr`: never in ``repr``, logs or dumps.

The service differs from the replay in one default: the account stage releases windows that are
``release_lateness_s = 2`` seconds old in event time instead of holding everything to the end of input.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from torghut.connectors.clickhouse import DEFAULT_SIGNAL_TABLE
from torghut.dataflow.config import ConfigError, EngineConfig, engine_config_from_data

DATABASE_URL_ENV = "TORGHUT_DATABASE_URL"
"""The PostgreSQL DSN (``postgresql://user:password@host:5432/db``); overrides ``postgres.dsn``."""

CATALOG_PATH_ENV = "TRADING_STRATEGY_CONFIG_PATH"
"""torghut's own setting for the strategy catalog file (``/etc/torghut/strategies.yaml`` in production)."""

METRICS_ADDRESS_ENV = "TORGHUT_METRICS_ADDRESS"
"""``host:port`` of ``/metrics`` (``off`` disables it); overrides ``metrics_address``."""

RECONCILE_MS_ENV = "TRADING_RECONCILE_MS"
"""torghut's account refresh interval in milliseconds; overrides ``adapter.account_refresh_s``."""

CLICKHOUSE_URL_ENV = "TA_CLICKHOUSE_URL"
"""torghut's ClickHouse HTTP endpoint ``http(s)://host:port``: sets ``source.host``, ``port``, ``secure``."""

CLICKHOUSE_USER_ENV = "TA_CLICKHOUSE_USERNAME"
"""torghut's ClickHouse user; sets ``source.user``."""

CLICKHOUSE_PASSWORD_ENV = "TA_CLICKHOUSE_PASSWORD"
"""torghut's ClickHouse password (a secret); sets ``source.password``."""

RECOVERY_ENV = {
    "BYTEWAX_RECOVERY_DIRECTORY": "recovery_dir",
    "BYTEWAX_SNAPSHOT_INTERVAL": "snapshot_interval_s",
    "BYTEWAX_RECOVERY_BACKUP_INTERVAL": "recovery_backup_interval_s",
}
"""bytewax's own recovery variables (as ``python -m bytewax.run`` reads them) and the settings they set."""

SERVICE_LATENESS_S = 2
"""The service's default ``account.release_lateness_s``."""

DEFAULT_CATALOG = Path("examples/strategies.yaml")

_ENGINE_SECTIONS = frozenset(EngineConfig.model_fields)
_SIGNAL_ENV = {
    "TRADING_SIGNAL_TABLE": "table",
    "TRADING_SIGNAL_BATCH_SIZE": "batch_size",
    "TRADING_SIGNAL_LOOKBACK_MINUTES": "lookback_minutes",
}


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ClickHouseSourceConfig(_Section):
    """``ta_signals`` in ClickHouse, read incrementally from torghut's cursor.

    Attributes:
        kind: ``clickhouse`` selects this source.
        dsn: A clickhouse-connect DSN (``chdb:///abs/path``, ``chdb://memory``, ``http://...``); when set,
            the host fields are ignored. Secret: it may hold a password.
        host: HTTP host (``TA_CLICKHOUSE_URL``'s host in torghut).
        port: HTTP port.
        user: ClickHouse user.
        password: ClickHouse password.
        secure: Use HTTPS.
        table: ``database.table`` of the signals.
        shards: Symbol shards (bytewax partitions). Keep 1 with one worker: one shard reads in exact
            cursor order, which the committed ``trade_cursor`` relies on (see ``service.py``).
        batch_size: Rows per poll.
        lookback_minutes: With no stored cursor, reading starts at ``now - lookback``; a stored
            cursor older than that is stale (see ``fast_forward``).
        fast_forward: Move a stale cursor forward to ``now - lookback`` (torghut's behaviour); off, the
            source reads the backlog from the cursor.
        start: ``lookback`` (torghut) or ``earliest``: with no stored cursor, start before the table's
            first row (the local default, whose sample signals are historical).
        poll_interval_s: Wait after an empty or partial batch (a full batch polls again at once).
        create_table: Create the table when it is missing (the local default does).
        query_timeout_s: Longest wait for ClickHouse's answer to one statement (clickhouse-connect's
            ``send_receive_timeout``) before the poll fails and is retried with backoff.
    """

    kind: Literal["clickhouse"] = "clickhouse"
    dsn: SecretStr | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8123, gt=0, lt=65536)
    user: str = "default"
    password: SecretStr = SecretStr("")
    secure: bool = False
    table: str = DEFAULT_SIGNAL_TABLE
    shards: int = Field(default=1, ge=1)
    batch_size: int = Field(default=500, ge=1)
    lookback_minutes: float = Field(default=15.0, gt=0)
    fast_forward: bool = True
    start: Literal["lookback", "earliest"] = "lookback"
    poll_interval_s: float = Field(default=1.0, gt=0)
    create_table: bool = False
    query_timeout_s: int = Field(
        default=30,
        ge=1,
        description=(
            "Longest wait in seconds for ClickHouse's answer to one statement (clickhouse-connect's "
            "send_receive_timeout, whole seconds); a slower poll fails and is retried with backoff. "
            "Ignored for chdb DSNs (in process)."
        ),
    )

    def client_dsn(self) -> str:
        """The clickhouse-connect DSN (secret: it may contain the password)."""
        if self.dsn is not None:
            return self.dsn.get_secret_value()
        scheme = "https" if self.secure else "http"
        password = self.password.get_secret_value()
        auth = quote(self.user, safe="") + (f":{quote(password, safe='')}" if password else "")
        return f"{scheme}://{auth}@{self.host}:{self.port}"

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for ``clickhouse_connect.get_client`` besides the DSN (none for chdb).

        >>> ClickHouseSourceConfig(query_timeout_s=5).client_options()
        {'send_receive_timeout': 5}
        >>> ClickHouseSourceConfig(dsn="chdb://memory").client_options()
        {}
        """
        if self.client_dsn().startswith("chdb:"):
            return {}
        return {"send_receive_timeout": self.query_timeout_s}

    def describe(self) -> str:
        """Where the signals come from, without secrets."""
        if self.dsn is not None:
            dsn = self.dsn.get_secret_value()
            where = dsn if dsn.startswith("chdb:") else dsn.split("@")[-1]
        else:
            where = f"{self.host}:{self.port}"
        return f"ClickHouse {where} table {self.table}"


class KafkaDeliveryConfig(_Section):
    """How publishing to ``intents_topic`` rides out a broker that is gone (``source.delivery``).

    Failed deliveries are produced again after a backoff that doubles from ``backoff_initial_s`` to
    ``backoff_max_s``, blocking the flow meanwhile; after ``max_attempts`` attempts the flow stops with
    an error naming the topic. The defaults ride out about three minutes without a broker.
    """

    max_attempts: int = Field(
        default=20,
        ge=1,
        description="Delivery attempts per record, the first included, before the flow stops.",
    )
    backoff_initial_s: float = Field(
        default=0.5, gt=0, description="Wait after the first failed attempt; doubles after each further one."
    )
    backoff_max_s: float = Field(default=5.0, gt=0, description="Longest wait between two attempts.")
    delivery_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="librdkafka's message.timeout.ms: how long one attempt may take before it fails.",
    )


class KafkaSourceConfig(_Section):
    """The TA signal topic (TaSignal JSON); offsets live in the bytewax recovery snapshots.

    Attributes:
        kind: ``kafka`` selects this source.
        brokers: ``host:port`` bootstrap servers.
        topic: The signal topic.
        batch_size: Records per poll.
        intents_topic: When set, strategy intents and decisions are also published there as JSON.
        delivery: Retries of failed deliveries to ``intents_topic`` while the broker is gone.
    """

    kind: Literal["kafka"]
    brokers: tuple[str, ...] = Field(min_length=1)
    topic: str
    batch_size: int = Field(default=1000, ge=1)
    intents_topic: str | None = None
    delivery: KafkaDeliveryConfig = KafkaDeliveryConfig()

    def describe(self) -> str:
        """Where the signals come from."""
        return f"Kafka {','.join(self.brokers)} topic {self.topic}"


class FileSourceConfig(_Section):
    """A recorded signal file (JSONL rows or envelopes): bounded, for tests and back-fills.

    Attributes:
        kind: ``file`` selects this source.
        path: The signal file.
        shards: Symbol shards.
        batch_size: Rows per batch.
    """

    kind: Literal["file"]
    path: Path
    shards: int = Field(default=1, ge=1)
    batch_size: int = Field(default=1000, ge=1)

    def describe(self) -> str:
        """Where the signals come from."""
        return f"file {self.path}"


SourceConfig = Annotated[
    ClickHouseSourceConfig | KafkaSourceConfig | FileSourceConfig, Field(discriminator="kind")
]


class PostgresConfig(_Section):
    """Where every record is persisted.

    Attributes:
        dsn: The DSN, ``postgresql://user:password@host:5432/db``. Secret: it may hold a password.
        migrate: Apply pending migrations at start-up.
        max_attempts: Attempts to connect at start-up and to write each batch while PostgreSQL is
            unreachable; the default waits about 58 days at the 5 s cap, which is "until it is back".
        backoff_max_s: Longest wait between two attempts (the wait doubles up to it).
    """

    dsn: SecretStr
    migrate: bool = True
    max_attempts: int = Field(default=1_000_000, ge=1)
    backoff_max_s: float = Field(default=5.0, gt=0)

    def describe(self) -> str:
        """The server and database, without credentials."""
        return "PostgreSQL " + self.dsn.get_secret_value().split("@")[-1]


class AdapterConfig(_Section):
    """The execution adapter orders go to.

    Attributes:
        kind: ``paper`` (the default: simulated fills in event time), ``alpaca`` (alpaca-py with torghut's
            ``APCA_*``, ``TRADING_MODE``, ``TRADING_LIVE_ENABLED``; live orders need both switches) or
            ``dry_run``. None takes ``TRADING_EXECUTION_ADAPTER``.
        reconcile: ``alpaca`` only: what start-up reconciliation does with differences between the
            broker and PostgreSQL (``torghut.dataflow.reconcile``): ``report`` logs them, ``adopt`` also
            inserts open broker orders PostgreSQL does not know, ``halt`` refuses to start.
        account_refresh_s: ``alpaca`` only: the account stage decides against the broker's account,
            positions and open order count, read at most this often (wall-clock seconds; torghut's
            ``TRADING_RECONCILE_MS``, 15 s) at the start of a release and written to
            ``position_snapshots``. None: never (the stage's own ledger from ``starting_equity``).
    """

    kind: Literal["paper", "alpaca", "dry_run"] | None = None
    reconcile: Literal["adopt", "report", "halt"] = "report"
    account_refresh_s: float | None = Field(default=15.0, gt=0)


class ServiceConfig(_Section):
    """Everything ``torghut run`` needs.

    Attributes:
        source: The signal source.
        postgres: The database.
        adapter: The execution adapter.
        catalog: The strategy catalog file (YAML or JSON).
        metrics_address: ``host:port`` to serve Prometheus ``/metrics`` on; None (``off`` in the
            environment) disables it.
        recovery_dir: bytewax recovery directory (created with one partition on first use); None runs
            without recovery (state restarts empty; the ClickHouse cursor still resumes from
            ``trade_cursor``).
        snapshot_interval_s: Epoch length: how often state is snapshotted (and sinks flushed).
        recovery_backup_interval_s: bytewax's ``backup_interval``: how long superseded snapshots are
            kept before they are garbage collected (0 drops them at once; raise it when the recovery
            partitions are backed up out of band).
        trading_control: The runtime kill switch and trading switch in PostgreSQL's ``trading_control``
            table (``torghut control``), read before every order: ``on``, ``off``, or ``auto`` (on unless
            the adapter is ``paper``).
        engine: The engine's configuration tree.
    """

    source: SourceConfig
    postgres: PostgresConfig
    adapter: AdapterConfig = AdapterConfig()
    catalog: Path = DEFAULT_CATALOG
    metrics_address: str | None = "127.0.0.1:9464"
    recovery_dir: Path | None = None
    snapshot_interval_s: float = Field(default=10.0, gt=0)
    recovery_backup_interval_s: float = Field(
        default=0.0,
        ge=0,
        description=(
            "bytewax's backup_interval: how long superseded recovery snapshots are kept before garbage "
            "collection (0 drops them at once)."
        ),
    )
    trading_control: Literal["auto", "on", "off"] = Field(
        default="auto",
        description=(
            "Read the runtime kill switch and trading switch (PostgreSQL trading_control, set with "
            "`torghut control`) before every order, failing closed: on, off, or auto (on unless the "
            "adapter is paper)."
        ),
    )
    engine: EngineConfig = EngineConfig()

    @property
    def adapter_kind(self) -> Literal["paper", "alpaca", "dry_run"]:
        """The adapter in use: the ``adapter`` section, else ``TRADING_EXECUTION_ADAPTER``."""
        return self.adapter.kind or self.engine.trading.trading_execution_adapter

    @property
    def reads_trading_control(self) -> bool:
        """Whether the firewall reads the runtime control (``trading_control``) before every order."""
        if self.trading_control == "auto":
            return self.adapter_kind != "paper"
        return self.trading_control == "on"


def service_config_from_data(
    data: Mapping[str, Any], environ: Mapping[str, str] | None = None, *, where: str = ""
) -> ServiceConfig:
    """Build the service configuration from file sections and the environment.

    Raises:
        ConfigError: a section or value is invalid; the message names it.
    """
    env = os.environ if environ is None else environ
    if not data.get("source"):
        msg = (
            f"invalid service configuration{where}: no 'source' section (kind: clickhouse, kafka or file). "
            "A file of engine sections alone (runtime, aggregation, allocation, account, trading) is an "
            "engine configuration, for `torghut replay --config`; see docs/configuration.md"
        )
        raise ConfigError(msg)
    if not data.get("postgres") and not env.get(DATABASE_URL_ENV):
        msg = (
            f"invalid service configuration{where}: no 'postgres' section (dsn), "
            f"and {DATABASE_URL_ENV} is unset"
        )
        raise ConfigError(msg)
    engine_data = {k: v for k, v in data.items() if k in _ENGINE_SECTIONS}
    service_data = {k: v for k, v in data.items() if k not in _ENGINE_SECTIONS}
    account = dict(engine_data.get("account") or {})
    account.setdefault("release_lateness_s", SERVICE_LATENESS_S)
    engine_data["account"] = account
    engine = engine_config_from_data(engine_data, env, where=where)
    source = dict(service_data.get("source") or {})
    if source.get("kind", "clickhouse") == "clickhouse":
        source.update({field: env[name] for name, field in _SIGNAL_ENV.items() if env.get(name)})
        source.update(_clickhouse_env(env))
    service_data["source"] = source
    service_data.update({field: env[name] for name, field in RECOVERY_ENV.items() if env.get(name)})
    if env.get(RECONCILE_MS_ENV):
        refresh = _reconcile_ms(env[RECONCILE_MS_ENV])
        service_data["adapter"] = {**(service_data.get("adapter") or {}), "account_refresh_s": refresh}
    if env.get(CATALOG_PATH_ENV):
        service_data["catalog"] = env[CATALOG_PATH_ENV]
    if env.get(DATABASE_URL_ENV):
        service_data["postgres"] = {**(service_data.get("postgres") or {}), "dsn": env[DATABASE_URL_ENV]}
    if env.get(METRICS_ADDRESS_ENV):
        value = env[METRICS_ADDRESS_ENV].strip()
        service_data["metrics_address"] = None if value.lower() in {"off", "none", ""} else value
    try:
        return ServiceConfig.model_validate({**service_data, "engine": engine})
    except ValidationError as exc:
        msg = f"invalid service configuration{where}:\n{exc}"
        raise ConfigError(msg) from exc


def _reconcile_ms(value: str) -> float:
    """``TRADING_RECONCILE_MS`` (milliseconds, a positive integer) as seconds.

    >>> _reconcile_ms("15000")
    15.0
    """
    text = value.strip()
    if not text.isdigit() or int(text) <= 0:
        msg = f"{RECONCILE_MS_ENV} must be a positive whole number of milliseconds, found {value!r}"
        raise ConfigError(msg)
    return int(text) / 1000


def _clickhouse_env(env: Mapping[str, str]) -> dict[str, Any]:
    """The ClickHouse source fields torghut's ``TA_CLICKHOUSE_*`` variables set.

    >>> _clickhouse_env({"TA_CLICKHOUSE_URL": "http://torghut-clickhouse.torghut.svc:8123"})
    {'host': 'torghut-clickhouse.torghut.svc', 'port': 8123, 'secure': False}
    >>> _clickhouse_env({"TA_CLICKHOUSE_URL": "https://ch.example", "TA_CLICKHOUSE_USERNAME": "torghut"})
    {'host': 'ch.example', 'port': 8443, 'secure': True, 'user': 'torghut'}
    """
    fields: dict[str, Any] = {}
    url = env.get(CLICKHOUSE_URL_ENV, "").strip()
    if url:
        parsed = urlsplit(url)
        try:
            port = parsed.port
        except ValueError:
            port = -1
        # The value is never echoed: it may carry a password.
        if parsed.scheme not in {"http", "https"} or not parsed.hostname or port == -1:
            msg = f"{CLICKHOUSE_URL_ENV} must be http(s)://host[:port] (scheme {parsed.scheme!r})"
            raise ConfigError(msg)
        if parsed.username or parsed.password or parsed.path.strip("/") or parsed.query:
            msg = (
                f"{CLICKHOUSE_URL_ENV} must be http(s)://host[:port] without credentials, path or query; "
                f"credentials go in {CLICKHOUSE_USER_ENV} and {CLICKHOUSE_PASSWORD_ENV}"
            )
            raise ConfigError(msg)
        secure = parsed.scheme == "https"
        fields.update(host=parsed.hostname, port=port or (8443 if secure else 8123), secure=secure)
    if env.get(CLICKHOUSE_USER_ENV):
        fields["user"] = env[CLICKHOUSE_USER_ENV]
    if env.get(CLICKHOUSE_PASSWORD_ENV):
        fields["password"] = env[CLICKHOUSE_PASSWORD_ENV]
    return fields


def load_service_config(path: Path, environ: Mapping[str, str] | None = None) -> ServiceConfig:
    """Read the service configuration from a YAML file and the environment.

    Raises:
        ConfigError: the file is unreadable or a value is invalid.
    """
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        msg = f"cannot read service configuration {path}: {exc}"
        raise ConfigError(msg) from exc
    if loaded is not None and not isinstance(loaded, dict):
        msg = f"{path}: expected a mapping of sections, found {type(loaded).__name__}"
        raise ConfigError(msg)
    return service_config_from_data(dict(loaded or {}), environ, where=f" in {path}")
