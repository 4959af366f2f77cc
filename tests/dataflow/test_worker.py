"""The replay worker process's start-up: it waits for the input split and for lower-indexed processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.procs import alive
from torghut.connectors.replay_file import load_symbol_keys, split_shards, wait_for_split
from torghut.connectors.synthetic.generator import write_sample_signals
from torghut.dataflow.build import FlowSpec
from torghut.dataflow.replay import free_addresses
from torghut.dataflow.worker import listening_ports, wait_for_listeners

CATALOG = Path(__file__).resolve().parents[2] / "benchmarks" / "catalog.yaml"


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps; every sleep is recorded."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_a_listening_port_is_seen_and_waited_for_without_delay() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
        ports = listening_ports()
        assert ports is not None and port not in ports  # bound, not yet listening
        server.listen()
        assert port in (listening_ports() or set())
        clock = FakeClock()
        assert wait_for_listeners([f"127.0.0.1:{port}"], timeout_s=5, clock=clock, sleep=clock.sleep)
        assert clock.sleeps == []  # seen on the first check: no wait at all


def test_waiting_for_a_port_nobody_listens_on_gives_up_at_the_timeout() -> None:
    (address,) = free_addresses(1)
    clock = FakeClock()
    assert not wait_for_listeners([address], timeout_s=0.2, clock=clock, sleep=clock.sleep)
    # It checked every 5 ms until the deadline and gave up at the first check at or past it.
    assert clock.sleeps and set(clock.sleeps) == {0.005}
    assert clock.now >= 0.2 > clock.now - 0.005
    assert wait_for_listeners([], clock=clock, sleep=clock.sleep)  # the first process waits for nobody
    assert clock.now >= 0.2 > clock.now - 0.005  # ... without a single check's wait


def test_a_worker_waits_for_the_split_and_gives_up_when_the_splitter_is_gone(tmp_path: Path) -> None:
    signals = tmp_path / "signals.jsonl"
    signals.write_text('{"symbol":"A"}\n{"symbol":"B"}\n')
    split_dir = tmp_path / "split"
    clock = FakeClock()
    assert not wait_for_split(signals, 2, split_dir, "paper", alive=lambda: False, sleep=clock.sleep)
    assert clock.sleeps == []  # the splitter is gone: no wait
    # The splitter goes away while the worker waits: it stops at the next check.
    checks = iter([True, True, False])
    assert not wait_for_split(signals, 2, split_dir, "paper", alive=lambda: next(checks), sleep=clock.sleep)
    assert clock.sleeps == [0.005, 0.005]

    # The split is made by another thread once the worker has started waiting for it.
    waiting, split_done = threading.Event(), threading.Event()
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        waiting.set()
        time.sleep(seconds)

    def split() -> None:
        if waiting.wait(timeout=30):
            split_shards(signals, 2, split_dir, account="paper")
            split_done.set()

    def alive() -> bool:  # a splitter that failed ends the wait (False) instead of hanging it
        return splitter.is_alive() or split_done.is_set()

    splitter = threading.Thread(target=split)
    splitter.start()
    try:
        assert wait_for_split(signals, 2, split_dir, "paper", alive=alive, sleep=sleep)
    finally:
        waiting.set()
        splitter.join(timeout=30)
    assert sleeps and set(sleeps) == {0.005}  # it waited for the split, in 5 ms steps
    assert sorted(load_symbol_keys(split_dir)) == ["A", "B"]
    assert wait_for_split(signals, 2, split_dir, "paper", alive=lambda: False, sleep=clock.sleep)
    assert clock.sleeps == [0.005, 0.005]  # a complete split is seen at once, splitter or not


@pytest.mark.parametrize("fork", [True, False], ids=["forked", "new-interpreter"])
def test_a_failed_split_stops_the_started_workers_and_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fork: bool
) -> None:
    from torghut.dataflow import replay as replay_module

    def broken_split(*_: object, **__: object) -> None:
        raise OSError("disk full")

    started: list[object] = []
    start_worker = replay_module._start_worker

    def recording_start(args: list[str], log: Path, *, fork: bool) -> object:
        worker = start_worker(args, log, fork=fork)
        started.append(worker)
        return worker

    monkeypatch.setattr(replay_module, "split_shards", broken_split)
    monkeypatch.setattr(replay_module, "can_fork", lambda: fork)
    monkeypatch.setattr(replay_module, "_start_worker", recording_start)
    signals = tmp_path / "signals.jsonl"
    write_sample_signals(signals, 3, 1, seed=1)
    spec = FlowSpec(signals=signals, catalog=CATALOG, parts_dir=tmp_path / ".parts")
    with pytest.raises(OSError, match="disk full"):
        replay_module.run_replay(spec, tmp_path / "out", processes=2)
    assert len(started) == 2
    assert all(worker.poll() is not None for worker in started)  # type: ignore[attr-defined]
    spec_path = str(tmp_path / ".parts" / "spec.json")
    assert not [pid for pid in _pids() if spec_path in _cmdline(pid)]  # no worker left behind


_IN_A_FRESH_INTERPRETER = """
import json, sys, threading
from pathlib import Path
from torghut.dataflow import replay
from torghut.dataflow.build import FlowSpec

single = replay.can_fork()
stop = threading.Event()
other = threading.Thread(target=stop.wait)
other.start()
with_thread = replay.can_fork()
stop.set()
other.join()
# join() returns when Python is done with the thread; the kernel task may linger a moment longer (and
# can_fork then rightly says no): wait until it is gone, up to a hang guard.
import os, time
deadline = time.monotonic() + 30
while len(os.listdir("/proc/self/task")) > 1 and time.monotonic() < deadline:
    time.sleep(0.01)
modes = []
start_worker = replay._start_worker
def recording_start(args, log, *, fork):
    modes.append(fork)
    return start_worker(args, log, fork=fork)
replay._start_worker = recording_start
signals, catalog, work = map(Path, sys.argv[1:])
spec = FlowSpec(signals=signals, catalog=catalog, parts_dir=work / ".parts")
result = replay.run_replay(spec, work / "out", processes=2)
print(json.dumps({"single": single, "with_thread": with_thread, "forked": modes,
                  "digest": result.summary["digest"]}))
"""


def test_workers_are_forked_from_a_single_threaded_process_with_the_outputs_of_new_interpreters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torghut.dataflow import replay as replay_module

    signals = tmp_path / "signals.jsonl"
    write_sample_signals(signals, 4, 2, seed=3)
    # A fresh interpreter runs one thread (this test process may run others, started by fixtures).
    ran = subprocess.run(
        [sys.executable, "-c", _IN_A_FRESH_INTERPRETER, str(signals), str(CATALOG), str(tmp_path / "forked")],
        check=True,
        capture_output=True,
        text=True,
    )
    forked = json.loads(ran.stdout.strip().splitlines()[-1])
    assert forked["single"] is True
    assert forked["with_thread"] is False  # another thread: no fork
    assert forked["forked"] == [True, True]
    monkeypatch.setattr(replay_module, "can_fork", lambda: False)
    spec = FlowSpec(signals=signals, catalog=CATALOG, parts_dir=tmp_path / "new" / ".parts")
    new = replay_module.run_replay(spec, tmp_path / "new" / "out", processes=2)
    assert new.streams["intents"].count > 0
    assert forked["digest"] == new.summary["digest"]


@pytest.mark.parametrize("fork", [True, False], ids=["forked", "new-interpreter"])
def test_a_failing_worker_fails_the_replay_with_the_end_of_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fork: bool
) -> None:
    from torghut.dataflow import replay as replay_module

    monkeypatch.setattr(replay_module, "can_fork", lambda: fork)
    signals = tmp_path / "signals.jsonl"
    write_sample_signals(signals, 3, 1, seed=1)
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(CATALOG.read_text())
    spec = FlowSpec(signals=signals, catalog=catalog, parts_dir=tmp_path / ".parts")
    spec_path = spec.parts_dir / "spec.json"
    run_cluster = replay_module._run_cluster

    def break_catalog_then_run(*args: object, **kwargs: object) -> None:
        catalog.write_text(
            "strategies: [{strategy_id: broken, strategy_type: no_such_plugin}]\n"
        )  # workers fail
        run_cluster(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(replay_module, "_run_cluster", break_catalog_then_run)
    with pytest.raises(replay_module.ReplayError, match="replay worker 0 of 2 failed") as failure:
        replay_module.run_replay(spec, tmp_path / "out", processes=2)
    assert "broken" in str(failure.value)  # the log's end names what failed
    assert spec_path.is_file()


def _pids() -> list[str]:
    return [name for name in os.listdir("/proc") if name.isdigit()]


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


_PARENT_OF_TWO_CHILDREN = """
import os, subprocess, sys
children = [
    subprocess.Popen([sys.executable, "-c", code, str(os.getpid())], stdout=subprocess.PIPE, text=True)
    for code in sys.argv[1:]
]
print(*[f"{c.pid}:{c.stdout.readline().strip()}" for c in children], flush=True)
for c in children:
    c.wait()
"""

_BOUND_CHILD = """
import sys, time
from torghut.dataflow.worker import die_with_parent
print("bound" if die_with_parent(int(sys.argv[1])) else "orphan", flush=True)
time.sleep(600)
"""

_UNBOUND_CHILD = """
import time
print("unbound", flush=True)
time.sleep(600)
"""


def test_a_worker_bound_to_its_replay_dies_with_it_where_an_unbound_child_lives_on() -> None:
    """A replay killed with SIGKILL takes its workers along (an unbound sibling shows the test can fail)."""
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT_OF_TWO_CHILDREN, _BOUND_CHILD, _UNBOUND_CHILD],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    started = dict(entry.split(":") for entry in parent.stdout.readline().split())
    pids = {said: int(pid) for pid, said in started.items()}
    try:
        assert set(pids) == {"bound", "unbound"}
        assert all(alive(pid) for pid in pids.values())
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 30  # a hang guard: the kernel signals the bound child at once
        while alive(pids["bound"]) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not alive(pids["bound"])
        assert alive(pids["unbound"])
    finally:
        for pid in pids.values():
            if alive(pid):
                os.kill(pid, 9)


def test_a_worker_whose_replay_is_gone_exits_before_doing_anything(tmp_path: Path) -> None:
    missing_spec = tmp_path / "no-such-spec.json"
    ran = subprocess.run(
        [sys.executable, "-m", "torghut.dataflow.worker", str(missing_spec), "0", "127.0.0.1:1;127.0.0.1:2", "1"],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert ran.returncode == 1
    assert "the replay that started this worker (pid 1) is gone" in ran.stderr
    assert "Traceback" not in ran.stderr  # it stopped before reading the (missing) spec
