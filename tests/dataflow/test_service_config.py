"""The service configuration, the record mapping to PostgreSQL and the account stage's ingest checkpoints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from torghut.connectors.postgres import TradeCursor
from torghut.contracts.portfolio import DroppedIntents, OrderIntent
from torghut.contracts.signal import DeadLetter
from torghut.contracts.strategy import StrategyError
from torghut.dataflow.config import ConfigError, EngineConfig
from torghut.dataflow.service import cluster_from_env, to_persisted
from torghut.dataflow.service_config import (
    ClickHouseSourceConfig,
    load_service_config,
    service_config_from_data,
)
from torghut.operators.account import AccountPipeline, IngestCheckpoint, IngestMark

PG = {"dsn": "postgresql://torghut:pg-s3cret@db:5432/torghut"}
AT = datetime(2026, 2, 19, 14, 30, tzinfo=UTC)


def test_defaults_secrets_and_the_service_release_lateness() -> None:
    config = service_config_from_data(
        {"source": {"kind": "clickhouse", "host": "ch", "password": "ch-s3cret"}, "postgres": PG}, {}
    )
    assert isinstance(config.source, ClickHouseSourceConfig)
    assert config.engine.account.release_lateness_s == 2
    assert config.metrics_address == "127.0.0.1:9464"
    assert config.adapter_kind == "paper"
    assert config.source.client_dsn() == "http://default:ch-s3cret@ch:8123"
    for text in (
        repr(config),
        str(config),
        config.model_dump_json(),
        config.source.describe(),
        config.postgres.describe(),
    ):
        assert "s3cret" not in text


def test_file_then_environment_precedence(tmp_path: Path) -> None:
    path = tmp_path / "service.yaml"
    path.write_text(
        "source: {kind: clickhouse, batch_size: 100}\n"
        "postgres: {dsn: 'postgresql://file/db'}\n"
        "account: {release_lateness_s: 5}\n"
        "adapter: {kind: dry_run}\n",
        encoding="utf-8",
    )
    env = {
        "TORGHUT_DATABASE_URL": "postgresql://env/db",
        "TRADING_SIGNAL_BATCH_SIZE": "250",
        "TORGHUT_METRICS_ADDRESS": "off",
        "TRADING_MODE": "live",
    }
    config = load_service_config(path, env)
    assert config.postgres.dsn.get_secret_value() == "postgresql://env/db"
    assert isinstance(config.source, ClickHouseSourceConfig)
    assert config.source.batch_size == 250
    assert config.metrics_address is None
    assert config.engine.account.release_lateness_s == 5
    assert config.engine.trading.trading_mode == "live"
    assert config.adapter_kind == "dry_run"


def test_torghut_clickhouse_and_bytewax_recovery_variables_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "service.yaml"
    path.write_text(
        "source: {kind: clickhouse, host: file-host, port: 9000, user: file-user}\n"
        "postgres: {dsn: 'postgresql://file/db'}\n"
        "recovery_dir: /file/recovery\n"
        "snapshot_interval_s: 5\n",
        encoding="utf-8",
    )
    assert load_service_config(path, {}).recovery_backup_interval_s == 0
    env = {
        "TA_CLICKHOUSE_URL": "https://ch.internal:8443",
        "TA_CLICKHOUSE_USERNAME": "torghut",
        "TA_CLICKHOUSE_PASSWORD": "ch-s3cret",
        "BYTEWAX_RECOVERY_DIRECTORY": "/var/lib/torghut/recovery",
        "BYTEWAX_SNAPSHOT_INTERVAL": "30",
        "BYTEWAX_RECOVERY_BACKUP_INTERVAL": "600",
    }
    config = load_service_config(path, env)
    assert isinstance(config.source, ClickHouseSourceConfig)
    assert (config.source.host, config.source.port, config.source.secure) == ("ch.internal", 8443, True)
    assert config.source.user == "torghut"
    assert config.source.client_dsn() == "https://torghut:ch-s3cret@ch.internal:8443"
    assert "s3cret" not in repr(config) and "s3cret" not in config.source.describe()
    assert config.recovery_dir == Path("/var/lib/torghut/recovery")
    assert config.snapshot_interval_s == 30
    assert config.recovery_backup_interval_s == 600
    # Without a port, the scheme's ClickHouse HTTP port; the variables only touch a ClickHouse source.
    plain = load_service_config(path, {"TA_CLICKHOUSE_URL": "http://ch"})
    assert isinstance(plain.source, ClickHouseSourceConfig)
    assert (plain.source.host, plain.source.port, plain.source.user) == ("ch", 8123, "file-user")
    kafka = service_config_from_data(
        {"source": {"kind": "kafka", "brokers": ["k:9092"], "topic": "t"}, "postgres": PG},
        {"TA_CLICKHOUSE_URL": "http://ch:8123"},
    )
    assert kafka.source.kind == "kafka"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ch:8123", "must be http"),
        ("tcp://ch:9000", "must be http"),
        ("http://ch:notaport", "must be http"),
        ("http://torghut:pw-s3cret@ch:8123", "without credentials"),
        ("http://ch:8123/torghut", "without credentials, path or query"),
    ],
)
def test_a_bad_clickhouse_url_fails_naming_the_variable_and_never_echoes_it(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as failure:
        service_config_from_data(
            {"source": {"kind": "clickhouse"}, "postgres": PG}, {"TA_CLICKHOUSE_URL": url}
        )
    assert "TA_CLICKHOUSE_URL" in str(failure.value)
    assert "s3cret" not in str(failure.value)


def test_bad_recovery_variables_fail_with_the_field() -> None:
    source = {"source": {"kind": "clickhouse"}, "postgres": PG}
    with pytest.raises(ConfigError, match="snapshot_interval_s"):
        service_config_from_data(source, {"BYTEWAX_SNAPSHOT_INTERVAL": "0"})
    with pytest.raises(ConfigError, match="recovery_backup_interval_s"):
        service_config_from_data(source, {"BYTEWAX_RECOVERY_BACKUP_INTERVAL": "soon"})


@pytest.mark.parametrize("value", ["0", "15s", "-5", "1.5", ""])
def test_reconcile_ms_is_whole_milliseconds_and_sets_the_broker_account_refresh(value: str) -> None:
    source = {"source": {"kind": "clickhouse"}, "postgres": PG, "adapter": {"kind": "alpaca"}}
    assert service_config_from_data(source, {}).adapter.account_refresh_s == 15.0  # torghut's default
    assert service_config_from_data(source, {"TRADING_RECONCILE_MS": "2500"}).adapter.account_refresh_s == 2.5
    if not value:  # unset: the file's value stands
        config = service_config_from_data({**source, "adapter": {"account_refresh_s": None}}, {})
        assert config.adapter.account_refresh_s is None
        return
    with pytest.raises(ConfigError, match=f"TRADING_RECONCILE_MS must be .* found '{value}'"):
        service_config_from_data(source, {"TRADING_RECONCILE_MS": value})


def test_the_service_refuses_more_than_one_worker_per_process() -> None:
    assert cluster_from_env({"BYTEWAX_WORKERS_PER_PROCESS": "1"}) is None
    with pytest.raises(ConfigError, match="one worker per process"):
        cluster_from_env({"BYTEWAX_WORKERS_PER_PROCESS": "4", "BYTEWAX_ADDRESSES": "a:1;b:1"})


def test_unknown_keys_and_bad_sources_fail_with_the_field() -> None:
    with pytest.raises(ConfigError, match="bogus"):
        service_config_from_data({"source": {"kind": "file", "path": "x"}, "postgres": PG, "bogus": 1}, {})
    with pytest.raises(ConfigError, match="brokers"):
        service_config_from_data({"source": {"kind": "kafka", "topic": "t"}, "postgres": PG}, {})
    with pytest.raises(ConfigError, match="postgres"):
        service_config_from_data({"source": {"kind": "file", "path": "x"}}, {})


def test_records_map_to_what_postgres_stores() -> None:
    error = StrategyError("s1", "tsmom", "tsmom@1", "boom", "NVDA", AT, 3)
    letter = to_persisted(error)
    assert isinstance(letter, DeadLetter)
    assert (letter.stage, letter.symbol, letter.reason) == ("strategy", "NVDA", "strategy_error:s1:boom")
    assert to_persisted(IngestCheckpoint("clickhouse", AT, 7, "NVDA")) == TradeCursor(
        "clickhouse", AT, 7, "NVDA"
    )
    order = OrderIntent("paper", "NVDA", "buy", 1, "market", "day", None, "h", AT)  # type: ignore[arg-type]
    assert to_persisted(order) is None
    dropped = DroppedIntents("NVDA", "1Sec", AT, "torghut", "late", (), AT, 1, False)
    assert to_persisted(dropped) is None


def _mark(second: int, symbol: str, seq: int) -> IngestMark:
    at = AT + timedelta(seconds=second)
    return IngestMark("clickhouse", at, symbol, seq, at + timedelta(seconds=1))


def test_the_account_stage_checkpoints_the_greatest_released_mark_after_the_release() -> None:
    engine = EngineConfig()
    account = engine.account.model_copy(update={"release_lateness_s": 2})
    pipeline = AccountPipeline(
        definitions=(), trading=engine.trading, allocation=engine.allocation, account=account, config_hash="h"
    )
    state = pipeline.initial_state()
    state, out = pipeline.on_items(state, [_mark(0, "MSFT", 1), _mark(0, "AAPL", 1)])
    assert out == []  # nothing is 2 s old yet
    state, out = pipeline.on_items(state, [_mark(1, "AAPL", 2), _mark(3, "AAPL", 4)])
    assert out == [("checkpoints", IngestCheckpoint("clickhouse", AT + timedelta(seconds=1), 2, "AAPL"))]
    state, out = pipeline.flush(state)
    assert out[0] == ("checkpoints", IngestCheckpoint("clickhouse", AT + timedelta(seconds=3), 4, "AAPL"))
    assert out[-1][0] == "account"


def test_an_engine_configuration_given_to_run_is_named_as_such(tmp_path: Path) -> None:
    engine_only = tmp_path / "engine.yaml"
    engine_only.write_text("runtime: {circuit_errors: 3}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as failure:
        load_service_config(engine_only, {"TORGHUT_DATABASE_URL": "postgresql://x/y"})
    message = str(failure.value)
    assert "no 'source' section" in message and "torghut replay --config" in message
    assert "pydantic" not in message  # one sentence, not a validation dump
    with pytest.raises(ConfigError, match=r"no 'postgres' section .*TORGHUT_DATABASE_URL is unset"):
        service_config_from_data({"source": {"kind": "file", "path": "x"}}, {})
