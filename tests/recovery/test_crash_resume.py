"""Crash and resume: a replay killed with SIGKILL at random moments ends exactly as an uninterrupted run."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from bytewax.recovery import init_db_dir

from tests.recovery.crash_harness import CATALOG, CrashReport, run_crash_test
from torghut.connectors.synthetic.generator import write_sample_signals
from torghut.dataflow.build import FlowSpec
from torghut.dataflow.replay import run_replay
from torghut.recovery.store import (
    CREATING_FILE,
    META_FILE,
    RecoveryStoreError,
    committed_epoch,
    prepare_store,
)


def _assert_killed_cycles_resumed(report: CrashReport) -> None:
    # The harness itself raises ResumeCheckError on these; restated so a change there cannot drop them.
    assert len(report.cycles) == len(report.resumed)
    assert sum(cycle.kills for cycle in report.cycles) == report.kills
    for cycle in report.cycles:
        if cycle.kills:
            assert cycle.resumed is True, cycle
        # No run writes more records to a stream than a whole uninterrupted run holds.
        assert all(n <= report.counts[stream] for stream, n in cycle.rewritten.items()), cycle


@pytest.mark.slow
def test_killed_and_resumed_replay_equals_an_uninterrupted_one(tmp_path: Path) -> None:
    signals = tmp_path / "signals.jsonl"
    write_sample_signals(signals, 30, 10, seed=5)  # 18,000 events, the reduced form of scripts/crash-test
    report = run_crash_test(signals, tmp_path, kills=4, seed=3)
    assert report.kills == 4
    assert report.counts["decisions"] > 0 and report.counts["orders"] > 0
    assert report.resumed and all(digests == report.reference for digests in report.resumed)
    _assert_killed_cycles_resumed(report)


@pytest.mark.slow
def test_a_killed_two_process_replay_resumes_to_the_single_process_outputs(tmp_path: Path) -> None:
    # Two processes, each with its own recovery partition; every kill is SIGKILL to the replay and both
    # workers. Small source batches give many snapshots (epochs) within the run; outputs do not depend
    # on the batch size. The reference is a plain one-process run.
    signals = tmp_path / "signals.jsonl"
    write_sample_signals(signals, 20, 8, seed=6)  # 9,600 events
    report = run_crash_test(
        signals, tmp_path, kills=2, seed=9, replay_args=("--processes", "2", "--batch-size", "500")
    )
    assert report.kills == 2 and report.counts["orders"] > 0
    assert report.resumed and all(digests == report.reference for digests in report.resumed)
    _assert_killed_cycles_resumed(report)


@pytest.mark.slow
def test_a_killed_sharded_replay_releasing_by_frontier_resumes_to_the_same_outputs(tmp_path: Path) -> None:
    # Several shards: the input is split, so the account stage knows every symbol and releases its inputs
    # by frontier while the input is read; its snapshots then hold the frontier and a partial buffer.
    signals = tmp_path / "signals.jsonl"
    write_sample_signals(signals, 30, 10, seed=8)
    report = run_crash_test(signals, tmp_path, kills=3, seed=4, replay_args=("--shards", "3"))
    assert report.kills == 3 and report.counts["orders"] > 0
    assert report.resumed and all(digests == report.reference for digests in report.resumed)
    _assert_killed_cycles_resumed(report)


def test_a_store_with_another_layout_is_refused(tmp_path: Path) -> None:
    store = prepare_store(
        tmp_path / "r", flow_id="torghut_replay", shards=1, partitions=1, snapshot_interval_s=1
    )
    assert not store.resuming and (tmp_path / "r" / META_FILE).is_file()
    again = prepare_store(
        tmp_path / "r", flow_id="torghut_replay", shards=1, partitions=1, snapshot_interval_s=1
    )
    assert again.resuming
    with pytest.raises(RecoveryStoreError, match="shards: store has 1, this run needs 2"):
        prepare_store(tmp_path / "r", flow_id="torghut_replay", shards=2, partitions=1, snapshot_interval_s=1)


def test_a_resumed_run_reports_the_epoch_it_resumed_from(tmp_path: Path) -> None:
    signals = tmp_path / "signals.jsonl"
    write_sample_signals(signals, 5, 2, seed=4)
    recovery = tmp_path / "r"
    store = prepare_store(recovery, flow_id="torghut_replay", shards=1, partitions=1, snapshot_interval_s=1)
    assert (store.resuming, store.resume_epoch) == (False, None)
    assert committed_epoch(recovery) is None  # partitions made, nothing committed: nothing to resume

    def replay() -> dict[str, object]:
        spec = FlowSpec(
            signals=signals,
            catalog=CATALOG,
            parts_dir=tmp_path / ".parts",
            recovery_dir=recovery,
            batch_size=100,
        )
        result = run_replay(spec, tmp_path / "out")
        summary: dict[str, object] = orjson.loads((result.out_dir / "summary.json").read_bytes())
        return summary

    first = replay()  # the store existed, but no run had committed an epoch: it started over
    assert (first["resumed"], first["resumed_from_epoch"]) == (True, None)
    epoch = committed_epoch(recovery)
    assert isinstance(epoch, int) and epoch >= 1
    again = replay()
    assert (again["resumed"], again["resumed_from_epoch"]) == (True, epoch)


def test_a_foreign_non_empty_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "something").write_text("x")
    with pytest.raises(RecoveryStoreError, match="not empty"):
        prepare_store(tmp_path / "r", flow_id="torghut_replay", shards=1, partitions=1, snapshot_interval_s=1)


def test_a_store_whose_creation_was_cut_off_is_created_again(tmp_path: Path) -> None:
    """A kill between the partitions and the layout file leaves a store no run used: it is made anew."""
    directory = tmp_path / "r"
    directory.mkdir()
    (directory / CREATING_FILE).write_bytes(b"")
    init_db_dir(directory, 3)  # partitions of the interrupted creation, one more than this run wants
    (directory / f"{META_FILE}.tmp").write_text("{")  # a layout file cut off mid-write
    store = prepare_store(directory, flow_id="torghut_replay", shards=1, partitions=2, snapshot_interval_s=1)
    assert not store.resuming
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        [META_FILE, "part-0.sqlite3", "part-1.sqlite3"]
    )
    assert orjson.loads((directory / META_FILE).read_bytes())["partitions"] == 2
    # Without the marker, the same leftovers are someone else's: refused, nothing deleted.
    foreign = tmp_path / "f"
    foreign.mkdir()
    init_db_dir(foreign, 1)
    with pytest.raises(RecoveryStoreError, match="not empty"):
        prepare_store(foreign, flow_id="torghut_replay", shards=1, partitions=1, snapshot_interval_s=1)
    assert (foreign / "part-0.sqlite3").is_file()
