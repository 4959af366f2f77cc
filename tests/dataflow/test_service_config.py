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
from torghut.dataflow.service import to_persisted
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
