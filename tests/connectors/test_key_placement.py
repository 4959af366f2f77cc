"""worker_of predicts where bytewax 0.21.1 keeps a state key, checked on a real two-process cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from torghut.connectors.key_placement import siphash13, worker_of
from torghut.connectors.replay_file import symbol_shard
from torghut.dataflow.replay import free_addresses

KEYS = ["AAPL", "MSFT", "NVDA", "ABBV", "ABT", "BRK.B", "BTC/USD", "X", "", "shard-000", "shard-001"]

# One bytewax process of a cluster: a partition per worker emits every key; a stateful step records the
# worker (process) it runs on for each key, and the partition's own process.
_CLUSTER_PROCESS = r"""
import json, os, sys
import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import cluster_main

addresses, index, out_dir, keys = sys.argv[1].split(";"), int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
parts = [f"shard-{i:03d}" for i in range(len(addresses))]

class Part(StatefulSourcePartition):
    def __init__(self, name):
        self.name, self.done = name, False
    def next_batch(self):
        if self.done:
            raise StopIteration
        self.done = True
        return [(key, self.name) for key in keys]
    def snapshot(self):
        return None

class Source(FixedPartitionedSource):
    def list_parts(self):
        return parts
    def build_part(self, step_id, for_part, resume_state):
        return Part(for_part)

class Write(StatelessSinkPartition):
    def write_batch(self, items):
        with open(os.path.join(out_dir, f"{index}.jsonl"), "a") as handle:
            handle.writelines(json.dumps([index, *item]) + "\n" for item in items)

class Sink(DynamicSink):
    def build(self, step_id, worker_index, worker_count):
        return Write()

flow = Dataflow("placement")
keyed = op.input("in", flow, Source())
placed = op.stateful_map("where", keyed, lambda state, part: (state, part))
op.output("out", placed, Sink())
cluster_main(flow, addresses, index)
"""


@pytest.mark.parametrize("processes", [2, 3])
def test_bytewax_keeps_each_key_on_the_worker_worker_of_names(tmp_path: Path, processes: int) -> None:
    addresses = ";".join(free_addresses(processes))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CLUSTER_PROCESS, addresses, str(i), str(tmp_path), json.dumps(KEYS)],
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for i in range(processes)
    ]
    for proc in procs:
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, output.decode(errors="replace")[-2000:]
    rows = [json.loads(line) for f in tmp_path.glob("*.jsonl") for line in f.read_text().splitlines()]
    where = {key: worker for worker, key, _ in rows}
    assert where == {key: worker_of(key, processes) for key in KEYS}
    # Every partition emitted every key: each key's rows came from all of them to its one worker.
    assert len(rows) == len(KEYS) * processes


def test_a_symbols_shard_is_its_worker_when_the_processes_divide_the_shards() -> None:
    for symbol in KEYS:
        for processes, shards in [(1, 1), (2, 2), (2, 4), (3, 6)]:
            # shard i is read by worker i % processes (bytewax assigns partitions round robin)
            assert symbol_shard(symbol, shards) % processes == worker_of(symbol, processes)


def test_one_worker_holds_every_key_and_a_worker_count_below_one_is_refused() -> None:
    assert {worker_of(key, 1) for key in KEYS} == {0}
    # the 8-byte block loop and the tail both count: keys of 7, 8 and 9 bytes hash differently
    assert len({siphash13(b"x" * n) for n in (7, 8, 9)}) == 3
    with pytest.raises(ValueError, match="at least 1"):
        worker_of("AAPL", 0)
