"""Shared fixtures: a generated signal file with malformed rows mixed in, and the example catalogs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from torghut.connectors.synthetic.generator import write_sample_signals
from torghut.dataflow.build import FlowSpec
from torghut.dataflow.config import EngineConfig
from torghut.dataflow.replay import STREAMS, ReplayResult, run_replay

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

# One malformed row per failure class the parse and normalize stages must dead-letter.
MALFORMED_ROWS: dict[str, bytes] = {
    "missing_symbol": b'{"event_ts":"2026-02-19 14:30:05.000","seq":"1","macd":0.1,"macd_signal":0.05,"rsi14":30,"vwap_session":10}',
    "invalid_event_ts": b'{"symbol":"BADTS","event_ts":"not-a-time","seq":"1","macd":0.1,"macd_signal":0.05,"rsi14":30,"vwap_session":10}',
    "non_numeric_indicator": b'{"symbol":"NONNUM","event_ts":"2026-02-19 14:30:05.000","seq":"1","window_size":"PT1S","macd":"abc","macd_signal":0.05,"rsi14":30,"vwap_session":10}',
    "wrong_schema_major": b'{"symbol":"SCHEMA","event_ts":"2026-02-19T14:30:05Z","seq":1,"timeframe":"1Sec","payload":{"feature_schema_version":"2.0.0","macd":{"macd":0.1,"signal":0.05},"rsi14":30,"price":10}}',
    "missing_required_feature": b'{"symbol":"NORSI","event_ts":"2026-02-19 14:30:05.000","seq":"1","window_size":"PT1S","macd":0.1,"macd_signal":0.05,"vwap_session":10}',
    "garbage_json": b'{"symbol": "GARBAGE", this is not json',
}


@pytest.fixture(scope="session")
def clean_signals(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve symbols x eight minutes of generated 1-second ta_signals rows (5,760 rows)."""
    path = tmp_path_factory.mktemp("signals") / "clean.jsonl"
    write_sample_signals(path, 12, 8, seed=11)
    return path


@pytest.fixture(scope="session")
def mixed_signals(tmp_path_factory: pytest.TempPathFactory, clean_signals: Path) -> Path:
    """The clean rows with every malformed row class interleaved at fixed places."""
    lines = clean_signals.read_bytes().splitlines()
    step = len(lines) // (len(MALFORMED_ROWS) + 1)
    for i, row in enumerate(MALFORMED_ROWS.values(), start=1):
        lines.insert(i * step, row)
    path = tmp_path_factory.mktemp("signals") / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.fixture(scope="session")
def example_catalog() -> Path:
    """The newer-shape example catalog with four strategies enabled."""
    return EXAMPLES / "strategies.yaml"


Replay = Callable[..., ReplayResult]


@pytest.fixture
def replay(tmp_path: Path) -> Replay:
    """Run a replay into a fresh directory under tmp_path: ``replay(signals, catalog, **options)``."""
    runs = 0

    def run(
        signals: Path,
        catalog: Path,
        *,
        batch_size: int = 1000,
        processes: int = 1,
        emit_features: bool = False,
        engine: EngineConfig | None = None,
        shards: int | None = None,
    ) -> ReplayResult:
        nonlocal runs
        runs += 1
        out = tmp_path / f"run{runs}"
        spec = FlowSpec(
            signals=signals,
            catalog=catalog,
            parts_dir=out / ".parts",
            batch_size=batch_size,
            emit_features=emit_features,
            engine=engine or EngineConfig(),
            shards=shards,
        )
        result = run_replay(spec, out, processes=processes)
        assert_no_repeats_dropped(result)
        return result

    return run


def assert_no_repeats_dropped(result: ReplayResult) -> None:
    """An uninterrupted run writes every record once: its merge drops no repeat in any stream.

    The merge keeps one copy of exact repeats, which only a resume after a crash may write; a repeat in an
    uninterrupted run would be a record emitted twice (by the two-process or small-batch path, say) that
    the merge then hides. Checked in the result and in ``summary.json``, for every stream; every run of
    the ``replay`` fixture is uninterrupted, so each one is checked.
    """
    summary = orjson.loads((result.out_dir / "summary.json").read_bytes())
    assert set(result.streams) >= set(STREAMS)
    assert set(summary["streams"]) == set(result.streams)
    assert summary["resumed"] is False and summary["resumed_from_epoch"] is None
    for name, stream in result.streams.items():
        assert stream.repeats_dropped == 0, (name, stream)
        assert summary["streams"][name]["repeats_dropped"] == 0, (name, summary["streams"][name])
