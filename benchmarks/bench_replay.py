"""Replay throughput: the engine's flow against a no-op bytewax chain of the same shape, same input.

Run: ``.venv/bin/python -m benchmarks.bench_replay [--events 1000000] [--symbols 500]``. Prints events per
second for both chains and their ratio, and writes them to ``benchmarks/results/replay.json``.
The no-op chain has the same source (file, shards, batch size), the same ``key_on`` by symbol and a
stateful step per symbol that does nothing; the engine chain parses, normalizes and evaluates every
enabled strategy of the catalog.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import bytewax.operators as op
import orjson
from bytewax.dataflow import Dataflow
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import run_main

from torghut.connectors.replay_file import REPLAY_BATCH_SIZE, ReplayFileSource
from torghut.connectors.synthetic.generator import write_sample_signals
from torghut.contracts.features import VALUE_FIELDS_V3
from torghut.contracts.signal import RawRecord
from torghut.dataflow.build import FlowSpec, build_replay_flow, group_by_symbol, raw_symbol
from torghut.dataflow.config import EngineConfig
from torghut.operators.decode import decode_record

# The V3 values a flat row's number columns become (as Decimals), up to ``spread``.
_DECIMAL_COLUMNS = VALUE_FIELDS_V3[: VALUE_FIELDS_V3.index("spread")]

ROOT = Path(__file__).resolve().parent
DATA = ROOT / ".data"
RESULTS = ROOT / "results"
CATALOG = ROOT / "catalog.yaml"


class _Nothing(StatefulBatchLogic[Any, Any, None]):
    def on_batch(self, values: list[Any]) -> tuple[list[Any], bool]:
        return [], False

    def snapshot(self) -> None:
        return None


class _DecodeOnly(_Nothing):
    """Decodes every record of its symbol's groups (the engine's ``decode_record``) and emits nothing."""

    def on_batch(self, values: list[list[RawRecord]]) -> tuple[list[Any], bool]:
        for group in values:
            for raw, position in group:
                decode_record(raw, position)
        return [], False


class _DecimalsOnly(_Nothing):
    """The least a decoder with torghut's Decimal values does: orjson, then one Decimal per number.

    Per record: ``orjson.loads``, the flat row's V3 number columns picked, and each present one made a
    ``Decimal`` from its JSON text (``optional_decimal``'s result, which ``decode_record`` reaches the same
    way); no timestamps, checks or feature vector.
    """

    def on_batch(self, values: list[list[RawRecord]]) -> tuple[list[Any], bool]:
        for group in values:
            for raw, _ in group:
                row = orjson.loads(raw)
                present = [v for v in map(row.get, _DECIMAL_COLUMNS) if v is not None]
                list(map(Decimal, orjson.dumps(present).decode()[1:-1].split(",")))
        return [], False


class _Discard(StatelessSinkPartition[Any]):
    def write_batch(self, items: list[Any]) -> None:
        return None


class _DiscardSink(DynamicSink[Any]):
    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Discard:
        return _Discard()


def noop_flow(signals: Path, batch_size: int, shards: int) -> Dataflow:
    flow = Dataflow("noop_chain")
    raw = op.input("source", flow, ReplayFileSource(signals, shards=shards, batch_size=batch_size))
    keyed = op.key_on("key_symbol", raw, raw_symbol)  # the engine's own routing key
    nothing = op.stateful_batch("noop", keyed, lambda _: _Nothing())
    op.output("out", nothing, _DiscardSink())
    return flow


def decode_chain_flow(signals: Path, batch_size: int, shards: int, *, floor: bool = False) -> Dataflow:
    """The engine's front alone: source, grouping by symbol, and a keyed step that decodes every record.

    With ``floor``, the keyed step does only what any decoder with Decimal values must
    (:class:`_DecimalsOnly`). Both show how much of the full graph's time decoding alone takes.
    """
    flow = Dataflow("decode_floor" if floor else "decode_chain")
    raw = op.input("source", flow, ReplayFileSource(signals, shards=shards, batch_size=batch_size))
    keyed = op.flat_map_batch("group_by_symbol", raw, group_by_symbol)
    logic = _DecimalsOnly if floor else _DecodeOnly
    nothing = op.stateful_batch("decode", keyed, lambda _: logic())
    op.output("out", nothing, _DiscardSink())
    return flow


def _timed(flow: Dataflow) -> float:
    started = time.perf_counter()
    run_main(flow)
    return time.perf_counter() - started


def dataset(events: int, symbols: int, seed: int) -> Path:
    minutes = max(1, math.ceil(events / symbols / 60))
    path = DATA / f"signals-{symbols}x{minutes}m-seed{seed}.jsonl"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        count = write_sample_signals(path, symbols, minutes, seed)
        print(f"generated {count:,} rows in {time.perf_counter() - started:.1f} s -> {path}")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=REPLAY_BATCH_SIZE)
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--catalog", type=Path, default=CATALOG)
    args = parser.parse_args()

    signals = dataset(args.events, args.symbols, args.seed)
    with signals.open("rb") as handle:
        events = sum(1 for _ in handle)
    noop_s = _timed(noop_flow(signals, args.batch_size, args.shards))
    with tempfile.TemporaryDirectory() as tmp:
        spec = FlowSpec(
            signals=signals,
            catalog=args.catalog,
            parts_dir=Path(tmp),
            batch_size=args.batch_size,
            shards=args.shards,
            engine=EngineConfig(),
        )
        engine_s = _timed(build_replay_flow(spec))
        intents = sum(1 for p in Path(tmp).glob("intents-*.part") for _ in p.open())
    result = {
        "events": events,
        "symbols": args.symbols,
        "batch_size": args.batch_size,
        "catalog": str(args.catalog),
        "intents": intents,
        "noop_events_per_s": round(events / noop_s),
        "engine_events_per_s": round(events / engine_s),
        "ratio": round(noop_s / engine_s, 4),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "replay.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'chain':<10}{'seconds':>10}{'events/s':>14}")
    print(f"{'no-op':<10}{noop_s:>10.2f}{events / noop_s:>14,.0f}")
    print(f"{'engine':<10}{engine_s:>10.2f}{events / engine_s:>14,.0f}")
    print(f"engine / no-op = {noop_s / engine_s:.1%}  ({intents:,} intents from {events:,} events)")


if __name__ == "__main__":
    main()
