"""bytewax's cross-process exchange alone: a bare keyed flow that only decodes each row, 1 vs 2 processes.

Run: ``.venv/bin/python -m benchmarks.bench_exchange [--events 300000] [--symbols 500]``. The flow is the
replay file source, ``key_on`` by routing symbol (one item per row) and a stateful step calling
:func:`~torghut.operators.decode.decode_record` on each row: no strategies, no account stage, no sinks.
It isolates what a second process costs in bytewax itself; prints both wall times and their ratio.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.operators import StatefulBatchLogic
from bytewax.testing import cluster_main, run_main

from benchmarks.bench_replay import _DiscardSink, dataset
from torghut.connectors.replay_file import REPLAY_BATCH_SIZE, ReplayFileSource
from torghut.dataflow.build import raw_symbol
from torghut.operators.decode import decode_record


class _Decode(StatefulBatchLogic[Any, Any, None]):
    def on_batch(self, values: list[Any]) -> tuple[list[Any], bool]:
        for raw, position in values:
            decode_record(raw, position)
        return [], StatefulBatchLogic.RETAIN

    def snapshot(self) -> None:
        return None


def decode_flow(signals: Path, shards: int) -> Dataflow:
    flow = Dataflow("bare_decode")
    raw = op.input("source", flow, ReplayFileSource(signals, shards=shards, batch_size=REPLAY_BATCH_SIZE))
    decoded = op.stateful_batch("decode", op.key_on("key", raw, raw_symbol), lambda _: _Decode())
    op.output("out", decoded, _DiscardSink())
    return flow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument(
        "--worker", nargs=3, metavar=("SIGNALS", "INDEX", "ADDRESSES"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.worker:  # one process of the 2-process run
        signals, index, addresses = Path(args.worker[0]), int(args.worker[1]), args.worker[2].split(";")
        cluster_main(decode_flow(signals, len(addresses)), addresses, index)
        return
    signals = dataset(args.events, args.symbols, 7)
    started = time.perf_counter()
    run_main(decode_flow(signals, 1))
    one = time.perf_counter() - started
    addresses = "127.0.0.1:7461;127.0.0.1:7462"
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "benchmarks.bench_exchange", "--worker", str(signals), str(i), addresses]
        )
        for i in range(2)
    ]
    codes = [p.wait() for p in procs]
    two = time.perf_counter() - started
    if any(codes):
        msg = f"a worker failed: exit codes {codes}"
        raise SystemExit(msg)
    print(
        f"bare keyed decode flow, {signals.name}: 1 process {one:.1f} s, 2 processes {two:.1f} s, {one / two:.2f}x"
    )


if __name__ == "__main__":
    main()
