"""Runs a replay through the real bytewax flow, in one or several processes, and writes its outputs.

Outputs in the run directory: one ``<stream>.jsonl`` per stream in canonical order, and
``summary.json`` with counts and a sha256 digest per stream. Identical inputs and configuration give
identical digests whatever the batch size or process count.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import orjson
from bytewax.testing import run_main

from torghut.connectors.part_files import part_paths, read_count
from torghut.connectors.replay_file import read_json_array, split_event_count, split_shards
from torghut.contracts.hashing import canonical_json, sha256_hex
from torghut.dataflow import worker
from torghut.dataflow.build import FLOW_ID, STREAM_TYPES, FlowSpec, build_replay_flow, input_split_dir
from torghut.dataflow.gc_tuning import tuned_gc
from torghut.dataflow.progress import ProgressFiles, read_fraction
from torghut.forking import can_fork, process_pool
from torghut.recovery.replay_digest import StreamSummary, merge_stream
from torghut.recovery.store import RecoveryStore, prepare_store

STREAMS: tuple[str, ...] = tuple(STREAM_TYPES)


class ReplayError(RuntimeError):
    """A replay worker failed; the message carries the end of its error output."""


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What a replay produced: per-stream summaries plus input and timing figures."""

    out_dir: Path
    streams: dict[str, StreamSummary]
    events_in: int
    events_normalized: int
    dead_letters_by_stage: dict[str, int]
    elapsed_s: float
    summary: dict[str, Any] = field(default_factory=dict)


def count_input_events(path: Path) -> int:
    """Count the events in a replay file independently of the flow (non-blank lines or array items)."""
    items = read_json_array(path)
    if items is not None:
        return len(items)
    count = 0
    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                count += 1
    return count


def free_addresses(count: int) -> list[str]:
    """``count`` free ``127.0.0.1:<port>`` addresses for a local bytewax cluster."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


class _Worker(Protocol):
    def wait(self) -> int: ...

    def poll(self) -> int | None: ...

    def kill(self) -> None: ...


class _ForkedWorker:
    """A worker process forked from this one (the :class:`subprocess.Popen` calls the cluster uses)."""

    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self._process = process

    def wait(self) -> int:
        self._process.join()
        return self._process.exitcode or 0

    def poll(self) -> int | None:
        return self._process.exitcode

    def kill(self) -> None:
        self._process.kill()
        self._process.join()


def _forked_main(args: list[str], log: Path) -> None:
    descriptor = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    os.close(descriptor)
    sys.stdout = open(1, "w", encoding="utf-8", errors="replace", closefd=False)
    sys.stderr = open(2, "w", encoding="utf-8", errors="replace", closefd=False)
    sys.exit(worker.main(args))


def _start_worker(args: list[str], log: Path, *, fork: bool) -> _Worker:
    if fork:
        process = multiprocessing.get_context("fork").Process(
            target=_forked_main, args=(args, log), name=f"torghut-worker-{args[1]}"
        )
        process.start()
        return _ForkedWorker(process)
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "torghut.dataflow.worker", *args], stdout=out, stderr=subprocess.STDOUT
        )


def _run_cluster(
    spec_path: Path, processes: int, parts_dir: Path, meanwhile: Callable[[], None] | None = None
) -> None:
    """Run the cluster's worker processes, calling ``meanwhile`` once they are started."""
    addresses = ";".join(free_addresses(processes))
    logs = [parts_dir / f"worker-{i}.log" for i in range(processes)]
    fork = can_fork()
    # Each worker gets this process's pid: it dies with it (a replay killed with SIGKILL leaves none behind).
    parent = str(os.getpid())
    procs = [
        _start_worker([str(spec_path), str(index), addresses, parent], log, fork=fork)
        for index, log in enumerate(logs)
    ]
    if meanwhile is not None:
        try:
            meanwhile()
        except BaseException:
            for proc in procs:
                proc.kill()
                proc.wait()
            raise
    failed = []
    for index, proc in enumerate(procs):
        if proc.wait() != 0:
            failed.append(index)
    if failed:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        tail = logs[failed[0]].read_text(encoding="utf-8", errors="replace")[-4000:]
        msg = f"replay worker {failed[0]} of {processes} failed:\n{tail}"
        raise ReplayError(msg)


def _watch_progress(
    parts_dir: Path, shards: int, on_progress: Callable[[float], None], stop: threading.Event
) -> None:
    while not stop.wait(0.25):
        on_progress(read_fraction(parts_dir, shards))
    on_progress(read_fraction(parts_dir, shards))


def _prepare(spec: FlowSpec, processes: int) -> tuple[FlowSpec, RecoveryStore | None]:
    """Resolve defaults, prepare the recovery store, and reset the part files of a fresh run."""
    if processes < 1:
        msg = f"processes must be at least 1, got {processes}"
        raise ValueError(msg)
    if spec.shards is None:
        spec = spec.model_copy(update={"shards": processes})
    store = None
    if spec.recovery_dir is not None:
        store = prepare_store(
            spec.recovery_dir,
            flow_id=FLOW_ID,
            shards=spec.shards or 1,
            partitions=processes,
            snapshot_interval_s=spec.snapshot_interval_s,
        )
    if (store is None or not store.resuming) and spec.parts_dir.exists():
        # A fresh run starts from empty part files; a resumed one appends (the merge drops repeats).
        shutil.rmtree(spec.parts_dir)
    spec.parts_dir.mkdir(parents=True, exist_ok=True)
    return spec, store


def _split_input(spec: FlowSpec, processes: int) -> None:
    """Split a JSONL input of several shards, once, here: each worker reads only its shards' files.

    The split runs in as many processes as the replay (its workers wait for it).
    """
    split_dir = input_split_dir(spec)
    if split_dir is not None:
        account = spec.engine.account.account
        split_shards(spec.signals, spec.shards or 1, split_dir, account=account, jobs=processes)


def _execute(spec: FlowSpec, processes: int, store: RecoveryStore | None) -> None:
    """Run the flow in this process, or in ``processes`` worker processes."""
    if processes > 1:
        spec_path = spec.parts_dir / "spec.json"
        spec_path.write_text(spec.model_dump_json(), encoding="utf-8")
        # The workers start (interpreter, imports) while the input is split; they wait for the split.
        _run_cluster(spec_path, processes, spec.parts_dir, lambda: _split_input(spec, processes))
        return
    _split_input(spec, processes)
    flow = build_replay_flow(spec, ProgressFiles(spec.parts_dir))
    with tuned_gc():
        if store is None:
            run_main(flow)
        else:
            run_main(flow, epoch_interval=store.epoch_interval, recovery_config=store.config)


def run_replay(
    spec: FlowSpec,
    out_dir: Path,
    *,
    processes: int = 1,
    on_progress: Callable[[float], None] | None = None,
    extra_summary: dict[str, Any] | None = None,
) -> ReplayResult:
    """Replay ``spec.signals`` through the flow; write merged outputs and ``summary.json`` to ``out_dir``.

    With ``spec.recovery_dir`` the run snapshots its state and, when the directory holds an unfinished
    run, resumes it: the merged outputs then equal an uninterrupted run's.
    """
    spec, store = _prepare(spec, processes)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    stop = threading.Event()
    watcher = None
    if on_progress is not None:
        watcher = threading.Thread(
            target=_watch_progress, args=(spec.parts_dir, spec.shards or 1, on_progress, stop), daemon=True
        )
        watcher.start()
    try:
        _execute(spec, processes, store)
    finally:
        stop.set()
        if watcher is not None:
            watcher.join()
    elapsed = time.perf_counter() - started
    extra = {
        "processes": processes,
        "resumed": store is not None and store.resuming,
        "resumed_from_epoch": None if store is None else store.resume_epoch,
        **(extra_summary or {}),
    }
    return _summarize(spec, out_dir, elapsed, extra, processes)


def _merge_and_count(
    spec: FlowSpec, out_dir: Path, names: list[str], processes: int
) -> tuple[dict[str, StreamSummary], int]:
    """Merge every stream and count the input events; a run of several processes does it in as many.

    A split input's events were counted by the split, from the input file.
    """
    parts_dir = spec.parts_dir
    split_dir = input_split_dir(spec)
    events = None if split_dir is None else split_event_count(split_dir)
    if processes <= 1:
        merged = {name: merge_stream(parts_dir, name, out_dir / f"{name}.jsonl") for name in names}
        return merged, count_input_events(spec.signals) if events is None else events
    # The parent has run no flow (its workers did), so forking it copies no bytewax runtime.
    with process_pool(processes) as pool:
        largest_first = sorted(names, key=lambda name: -_stream_bytes(parts_dir, name))
        merging = {n: pool.submit(merge_stream, parts_dir, n, out_dir / f"{n}.jsonl") for n in largest_first}
        if events is None:
            events = pool.submit(count_input_events, spec.signals).result()
        return {name: merging[name].result() for name in names}, events


def _stream_bytes(parts_dir: Path, stream: str) -> int:
    return sum(part.stat().st_size for part in part_paths(parts_dir, stream))


def _summarize(
    spec: FlowSpec, out_dir: Path, elapsed: float, extra: dict[str, Any], processes: int = 1
) -> ReplayResult:
    """Merge the part files canonically, digest every stream and write ``summary.json``."""
    parts_dir = spec.parts_dir
    names = [*STREAMS, "features"] if spec.emit_features else list(STREAMS)
    # An earlier replay into the same directory may have written a stream this one does not (features):
    # leave only this run's streams, so the directory always holds one replay.
    for stale in {*STREAMS, "features"} - set(names):
        (out_dir / f"{stale}.jsonl").unlink(missing_ok=True)
    streams, events_in = _merge_and_count(spec, out_dir, names, processes)
    dead_by_stage = _count_by(out_dir / "dead_letters.jsonl", "stage")
    counts = {name: s.count for name, s in streams.items()}
    paper = paper_account_summary(out_dir, spec.engine.account.starting_equity, counts)
    normalized = read_count(parts_dir, "features")
    summary = {
        "input": {"signals": str(spec.signals), "events_in": events_in},
        "catalog": str(spec.catalog),
        "config_hash": spec.engine.fingerprint(),
        "batch_size": spec.batch_size,
        "shards": spec.shards,
        "events_normalized": normalized,
        "dead_letters_by_stage": dead_by_stage,
        "mode": spec.engine.trading.trading_strategy_runtime_mode,
        "paper_account": paper,
        "elapsed_s": round(elapsed, 3),
        "events_per_s": round(events_in / elapsed, 1) if elapsed > 0 else None,
        "streams": {
            name: {"count": s.count, "sha256": s.sha256, "repeats_dropped": s.repeats_dropped}
            for name, s in streams.items()
        },
        **extra,
    }
    summary["digest"] = sha256_hex({k: v["sha256"] for k, v in summary["streams"].items()})
    (out_dir / "summary.json").write_text(
        orjson.dumps(orjson.loads(canonical_json(summary)), option=orjson.OPT_INDENT_2).decode() + "\n",
        encoding="utf-8",
    )
    return ReplayResult(out_dir, streams, events_in, normalized, dead_by_stage, elapsed, summary)


def _records(path: Path) -> list[dict[str, Any]]:
    # The merged outputs this replay wrote: one canonical JSON object per line, JSON-safe (a dead
    # letter's raw is built with ``json_safe``), so orjson reads every line; anything else is a bug here.
    records = []
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                records.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                msg = f"{path}:{number}: the replay wrote a line orjson cannot read: {exc}"
                raise ReplayError(msg) from exc
    return records


_REASONS = b'"reasons":['


def _rejection_reasons(path: Path) -> Iterable[list[str]]:
    # A rejection line starts with its fields up to ``reasons`` (hash, symbol, time, stage: no brackets,
    # quotes or escapes), so its reasons are the first ``"reasons":[...]``: read just that, not the trace.
    with path.open("rb") as handle:
        for line in handle:
            start = line.find(_REASONS)
            if start >= 0:
                start += len(_REASONS) - 1
                try:
                    reasons = orjson.loads(line[start : line.index(b"]", start) + 1])
                except (ValueError, orjson.JSONDecodeError):
                    reasons = None
                if type(reasons) is list and all(type(r) is str for r in reasons):
                    yield reasons
                    continue
            if line.strip():
                yield list(orjson.loads(line).get("reasons", ()))


def _count_by(path: Path, field_name: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in _records(path):
        value = str(record.get(field_name, "unknown"))
        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items()))


def paper_account_summary(out_dir: Path, starting_equity: Decimal, counts: dict[str, int]) -> dict[str, Any]:
    """Summarise the account after a replay: orders, fills, rejections by reason, equity and P&L.

    ``counts`` are the records per merged stream (the merge counted them).
    """
    rejections: dict[str, int] = {}
    for reasons in _rejection_reasons(out_dir / "rejections.jsonl"):
        for reason in reasons:
            rejections[reason] = rejections.get(reason, 0) + 1
    executions = _records(out_dir / "executions.jsonl")
    views = _records(out_dir / "account.jsonl")
    view = views[-1] if views else {}
    equity = Decimal(view.get("equity", starting_equity))
    return {
        "decisions": counts["decisions"],
        "orders": counts["orders"],
        "fills": sum(1 for e in executions if e.get("status") == "filled"),
        "rejections_by_reason": dict(sorted(rejections.items())),
        "starting_equity": str(starting_equity),
        "equity": str(equity),
        "cash": view.get("cash"),
        "realized_pnl": view.get("realized_pnl"),
        "pnl": str(equity - starting_equity),
        "positions": view.get("positions", {}),
    }
