"""The recovery store of a run: bytewax's SQLite partitions plus a small file that says what wrote them.

bytewax pickles every stateful step's snapshot under its step id, so the step ids and snapshot types are
persisted schema. ``torghut-recovery.json`` records the layout the partitions were written with (snapshot
schema version, input shards, partition count, flow id); resuming with an incompatible layout is refused
with a message saying what differs, rather than mis-reading old state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from bytewax.recovery import RecoveryConfig, init_db_dir

#: Bump when any stateful step's id or snapshot type changes incompatibly.
SNAPSHOT_SCHEMA_VERSION = 1
META_FILE = "torghut-recovery.json"


class RecoveryStoreError(RuntimeError):
    """The recovery store cannot be used for this run; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class RecoveryStore:
    """A recovery directory prepared for one run: bytewax's config and whether this run resumes."""

    directory: Path
    config: RecoveryConfig
    epoch_interval: timedelta
    resuming: bool


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
        if directory.exists() and any(directory.iterdir()):
            msg = f"recovery directory {directory} is not empty and has no {META_FILE}: refusing to use it"
            raise RecoveryStoreError(msg)
        directory.mkdir(parents=True, exist_ok=True)
        init_db_dir(directory, partitions)
        meta.write_bytes(orjson.dumps(wanted, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        resuming = False
    return RecoveryStore(
        directory=directory,
        config=RecoveryConfig(directory),
        epoch_interval=timedelta(seconds=snapshot_interval_s),
        resuming=resuming,
    )
