"""The replay worker process's start-up: it waits for the input split and for lower-indexed processes."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from torghut.connectors.replay_file import load_symbol_keys, split_shards, wait_for_split
from torghut.connectors.synthetic.generator import write_sample_signals
from torghut.dataflow.build import FlowSpec
from torghut.dataflow.replay import free_addresses
from torghut.dataflow.worker import listening_ports, wait_for_listeners

CATALOG = Path(__file__).resolve().parents[2] / "benchmarks" / "catalog.yaml"


def test_a_listening_port_is_seen_and_waited_for_without_delay() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
        ports = listening_ports()
        assert ports is not None and port not in ports  # bound, not yet listening
        server.listen()
        assert port in (listening_ports() or set())
        started = time.monotonic()
        assert wait_for_listeners([f"127.0.0.1:{port}"], timeout_s=5)
        assert time.monotonic() - started < 1


def test_waiting_for_a_port_nobody_listens_on_gives_up_at_the_timeout() -> None:
    (address,) = free_addresses(1)
    started = time.monotonic()
    assert not wait_for_listeners([address], timeout_s=0.2)
    assert 0.2 <= time.monotonic() - started < 2
    assert wait_for_listeners([])  # the first process waits for nobody


def test_a_worker_waits_for_the_split_and_gives_up_when_the_splitter_is_gone(tmp_path: Path) -> None:
    signals = tmp_path / "signals.jsonl"
    signals.write_text('{"symbol":"A"}\n{"symbol":"B"}\n')
    split_dir = tmp_path / "split"
    assert not wait_for_split(signals, 2, split_dir, "paper", alive=lambda: False)
    splitter = threading.Timer(0.1, lambda: split_shards(signals, 2, split_dir, account="paper"))
    splitter.start()
    started = time.monotonic()
    assert wait_for_split(signals, 2, split_dir, "paper", alive=lambda: True)
    assert 0.1 <= time.monotonic() - started < 5
    assert sorted(load_symbol_keys(split_dir)) == ["A", "B"]
    splitter.join()


def test_a_failed_split_stops_the_started_workers_and_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torghut.dataflow import replay as replay_module

    def broken_split(*_: object, **__: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(replay_module, "split_shards", broken_split)
    signals = tmp_path / "signals.jsonl"
    write_sample_signals(signals, 3, 1, seed=1)
    spec = FlowSpec(signals=signals, catalog=CATALOG, parts_dir=tmp_path / ".parts")
    with pytest.raises(OSError, match="disk full"):
        replay_module.run_replay(spec, tmp_path / "out", processes=2)
    spec_path = str(tmp_path / ".parts" / "spec.json")
    assert not [pid for pid in _pids() if spec_path in _cmdline(pid)]  # no worker left behind


def _pids() -> list[str]:
    return [name for name in os.listdir("/proc") if name.isdigit()]


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""
