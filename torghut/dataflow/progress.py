"""Progress of a long replay, shared by worker processes through small files in the run directory.

Wall-clock time is used only to throttle these writes; it never reaches a decision.
"""

from __future__ import annotations

import time
from pathlib import Path

from torghut.connectors.replay_file import ReplayProgress

_INTERVAL_S = 0.5


class ProgressFiles:
    """Writes each shard's ``done total`` to ``<dir>/progress-<shard>`` at most twice a second."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._last: dict[int, float] = {}

    def __call__(self, progress: ReplayProgress) -> None:
        """Record one partition's progress (throttled, but always when it finishes)."""
        now = time.monotonic()
        finished = progress.done >= progress.total
        if not finished and now - self._last.get(progress.shard, 0.0) < _INTERVAL_S:
            return
        self._last[progress.shard] = now
        path = self.directory / f"progress-{progress.shard:03d}"
        path.write_text(f"{progress.done} {progress.total}", encoding="utf-8")


def read_fraction(directory: Path, shards: int) -> float:
    """Return the mean fraction done over all shards (0 for a shard that has not reported yet)."""
    total = 0.0
    for shard in range(shards):
        try:
            done, size = (int(x) for x in (directory / f"progress-{shard:03d}").read_text().split())
        except (OSError, ValueError):
            continue
        total += done / size if size else 1.0
    return total / shards if shards else 1.0
