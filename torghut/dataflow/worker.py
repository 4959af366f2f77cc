"""One process of a multi-process replay: ``python -m torghut.dataflow.worker SPEC INDEX ADDRESSES [PARENT]``.

``PARENT`` is the pid of the replay that started the worker: the worker dies with it (Linux
``PR_SET_PDEATHSIG``), so a replay killed with SIGKILL leaves no worker writing its part files and recovery
store behind, and a worker whose replay is already gone when it starts exits at once.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

from bytewax.recovery import RecoveryConfig
from bytewax.testing import cluster_main

from torghut.connectors.replay_file import wait_for_split
from torghut.dataflow.build import FlowSpec, build_replay_flow, input_split_dir
from torghut.dataflow.gc_tuning import tuned_gc
from torghut.dataflow.progress import ProgressFiles

_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent: int) -> bool:
    """Have the kernel kill this process (SIGKILL) when ``parent`` ends; False when it has already ended.

    Linux only (``prctl(PR_SET_PDEATHSIG)``); elsewhere only the check is made. The check comes after the
    request, so a parent ending in between is seen either way.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            errno = ctypes.get_errno()
            msg = f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(errno)}"
            raise OSError(errno, msg)
    return os.getppid() == parent


def listening_ports() -> set[int] | None:
    """The local TCP ports in the LISTEN state (Linux ``/proc/net/tcp*``); None when that cannot be read."""
    ports: set[int] = set()
    try:
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(table, encoding="ascii") as handle:
                next(handle, None)
                for line in handle:
                    fields = line.split()
                    if len(fields) > 3 and fields[3] == _LISTEN:
                        ports.add(int(fields[1].rpartition(":")[2], 16))
    except OSError:
        return None
    return ports


def wait_for_listeners(
    addresses: Sequence[str],
    timeout_s: float = 10.0,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Wait until every ``host:port`` of ``addresses`` (on this machine) listens; False on timeout or unknown.

    A bytewax process connects to every lower-indexed process, and timely waits a whole second before
    retrying a refused connection: waiting for the listeners first saves that second at every start.
    ``clock`` (seconds) and ``sleep`` pace the checks, 5 ms apart; tests inject them.
    """
    wanted = {int(address.rpartition(":")[2]) for address in addresses}
    deadline = clock() + timeout_s
    while True:
        ports = listening_ports()
        if ports is None:
            return False
        if wanted <= ports:
            return True
        if clock() >= deadline:
            return False
        sleep(0.005)


def main(argv: list[str]) -> int:
    """Build the flow from the spec file and run this process's worker of the cluster."""
    spec_path, index, addresses = Path(argv[0]), int(argv[1]), argv[2].split(";")
    parent = int(argv[3]) if len(argv) > 3 else os.getppid()
    if not die_with_parent(parent):
        print(f"the replay that started this worker (pid {parent}) is gone", file=sys.stderr)
        return 1
    spec = FlowSpec.model_validate_json(spec_path.read_text(encoding="utf-8"))
    split_dir = input_split_dir(spec)
    if split_dir is not None:  # the replay splits the input while its workers start
        account = spec.engine.account.account
        if not wait_for_split(
            spec.signals, spec.shards or 1, split_dir, account, alive=lambda: os.getppid() == parent
        ):
            print("the replay that started this worker is gone before splitting its input", file=sys.stderr)
            return 1
    flow = build_replay_flow(spec, ProgressFiles(spec.parts_dir))
    wait_for_listeners(addresses[:index])
    with tuned_gc():
        if spec.recovery_dir is None:
            cluster_main(flow, addresses, index)
        else:
            cluster_main(
                flow,
                addresses,
                index,
                epoch_interval=timedelta(seconds=spec.snapshot_interval_s),
                recovery_config=RecoveryConfig(spec.recovery_dir),
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
