"""The recovery store of a run: bytewax's SQLite partitions plus a small file that says what wrote them.

bytewax pickles every stateful step's snapshot under its step id, so the step ids and snapshot types are
persisted schema. ``torghut-recovery.json`` records the layout the partitions were written with (snapshot
schema version, input shards, partition count, flow id); resuming with an incompatible layout is refused
with a message saying what differs, rather than mis-reading old state.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from bytewax.recovery import RecoveryConfig, init_db_dir

#: Bump when any stateful step's id or snapshot type changes incompatibly.
#: 2: the replay's ``count_features`` output became a stateful sink (its total is snapshotted).
SNAPSHOT_SCHEMA_VERSION = 2
META_FILE = "torghut-recovery.json"
#: Present while the partitions are being created: a store holding it was never used by any run.
CREATING_FILE = META_FILE + ".creating"


class RecoveryStoreError(RuntimeError):
    """The recovery store cannot be used for this run; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class RecoveryStore:
    """A recovery directory prepared for one run: bytewax's config and whether this run resumes."""

    directory: Path
    config: RecoveryConfig
    epoch_interval: timedelta
    #: Whether the store existed (this run continues an earlier one).
    resuming: bool
    #: The epoch this run's state resumes from: the oldest partition's last committed epoch, or None when
    #: no partition has committed any (the earlier run stopped before its first snapshot: it starts over).
    resume_epoch: int | None = None


def _layout(flow_id: str, shards: int, partitions: int) -> dict[str, Any]:
    return {
        "snapshot_schema_version": SNAPSHOT_SCHEMA_VERSION,
        "flow_id": flow_id,
        "shards": shards,
        "partitions": partitions,
    }


def prepare_store(
    directory: Path, *, flow_id: str, shards: int, partitions: int, snapshot_interval_s: float
) -> RecoveryStore:
    """Create the recovery partitions on first use, or check that an existing store fits this run.

    Raises:
        RecoveryStoreError: the store was written by an incompatible engine version or layout.
    """
    if snapshot_interval_s <= 0:
        msg = f"the snapshot interval must be positive, got {snapshot_interval_s} s"
        raise RecoveryStoreError(msg)
    wanted = _layout(flow_id, shards, partitions)
    meta = directory / META_FILE
    if meta.is_file():
        found = orjson.loads(meta.read_bytes())
        differences = {k: (found.get(k), v) for k, v in wanted.items() if found.get(k) != v}
        if differences:
            detail = ", ".join(
                f"{k}: store has {a!r}, this run needs {b!r}" for k, (a, b) in differences.items()
            )
            msg = (
                f"recovery store {directory} was written with an incompatible layout ({detail}); "
                "resume with the same engine version and shard count, or use a new recovery directory"
            )
            raise RecoveryStoreError(msg)
        resuming = True
    else:
        _create(directory, wanted)
        resuming = False
    return RecoveryStore(
        directory=directory,
        config=RecoveryConfig(directory),
        epoch_interval=timedelta(seconds=snapshot_interval_s),
        resuming=resuming,
        resume_epoch=committed_epoch(directory) if resuming else None,
    )


def committed_epoch(directory: Path) -> int | None:
    """The oldest partition's last committed epoch in bytewax's partitions (``commits``), or None.

    bytewax resumes every partition from the epoch all of them committed; a partition without a commit
    means there is nothing to resume from.
    """
    epochs: list[int] = []
    for part in sorted(directory.glob("part-*.sqlite3")):
        with closing(sqlite3.connect(f"file:{part}?mode=ro", uri=True)) as db:
            (epoch,) = db.execute("SELECT max(commit_epoch) FROM commits").fetchone()
        if epoch is None:
            return None
        epochs.append(epoch)
    return min(epochs, default=None)


def _create(directory: Path, layout: dict[str, Any]) -> None:
    """Create the partitions, then the layout file, so that a crash in between is undone on the next run.

    ``CREATING_FILE`` is written first and removed last; the layout file appears atomically (a rename). A
    directory still holding ``CREATING_FILE`` and no layout file was cut off before any run could snapshot
    into it: its partitions are removed and created again. Any other non-empty directory is refused.
    """
    creating = directory / CREATING_FILE
    if creating.is_file():
        for leftover in [*directory.glob("part-*"), directory / f"{META_FILE}.tmp"]:
            leftover.unlink(missing_ok=True)
        creating.unlink()
    if directory.exists() and any(directory.iterdir()):
        msg = f"recovery directory {directory} is not empty and has no {META_FILE}: refusing to use it"
        raise RecoveryStoreError(msg)
    directory.mkdir(parents=True, exist_ok=True)
    creating.write_bytes(b"")
    init_db_dir(directory, layout["partitions"])
    staged = directory / f"{META_FILE}.tmp"
    staged.write_bytes(orjson.dumps(layout, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    staged.replace(directory / META_FILE)
    creating.unlink()
