"""A bytewax sink writing each worker's records to its own part file, for a later canonical merge.

Each line is the sort key, a tab, then the canonical JSON. Output around a crash is at-least-once,
so the merge (:mod:`torghut.recovery.replay_digest`) drops repeated lines and a torn last line; the
sink itself only appends whole batches with one ``write`` each, and a resumed run first cuts a torn last
line off a part file it appends to (:func:`open_for_append`), so no record is glued to a torn one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from bytewax.outputs import DynamicSink, FixedPartitionedSink, StatefulSinkPartition, StatelessSinkPartition

Encoder = Callable[[Any], tuple[str, str]]
PART_SUFFIX = ".part"


def part_path(parts_dir: Path, stream: str, worker_index: int) -> Path:
    """Return the part file of ``stream`` written by worker ``worker_index``."""
    return parts_dir / f"{stream}-w{worker_index:03d}{PART_SUFFIX}"


def part_paths(parts_dir: Path, stream: str) -> list[Path]:
    """Every worker's part file of ``stream``, in worker order."""
    return sorted(parts_dir.glob(f"{stream}-w*{PART_SUFFIX}"))


_TAIL_BLOCK = 1 << 16


def open_for_append(path: Path) -> TextIO:
    r"""Open ``path`` for appending lines, first cutting off a torn last line (a crash mid-``write``).

    Everything up to the file's last newline is kept; the torn rest is re-emitted by the resumed run.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "x.part"
    >>> _ = path.write_text("a\tA\nb\tB-torn")
    >>> with open_for_append(path) as handle:
    ...     _ = handle.write("b\tB\n")
    >>> path.read_text()
    'a\tA\nb\tB\n'
    """
    if path.exists():
        with path.open("r+b") as raw:
            end = raw.seek(0, 2)
            keep = end
            while keep > 0:  # back to just after the last newline (the end itself for whole lines)
                start = max(0, keep - _TAIL_BLOCK)
                raw.seek(start)
                newline = raw.read(keep - start).rfind(b"\n")
                if newline >= 0:
                    keep = start + newline + 1
                    break
                keep = start
            if keep < end:
                raw.truncate(keep)
    return path.open("a", encoding="utf-8")


class _PartFilePartition(StatelessSinkPartition[Any]):
    def __init__(self, path: Path, encode: Encoder) -> None:
        self._handle: TextIO = open_for_append(path)
        self._encode = encode

    def write_batch(self, items: list[Any]) -> None:
        encode = self._encode
        lines = []
        for item in items:
            key, line = encode(item)
            lines.append(f"{key}\t{line}\n")
        self._handle.write("".join(lines))
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


class PartFileSink(DynamicSink[Any]):
    """Writes ``encode(item)`` lines of one output stream into per-worker part files."""

    def __init__(self, parts_dir: Path, stream: str, encode: Encoder) -> None:
        self.parts_dir = parts_dir
        self.stream = stream
        self.encode = encode

    def build(self, step_id: str, worker_index: int, worker_count: int) -> StatelessSinkPartition[Any]:
        """Open this worker's part file for appending."""
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        return _PartFilePartition(part_path(self.parts_dir, self.stream, worker_index), self.encode)


COUNT_SUFFIX = ".count"


class _CountPartition(StatefulSinkPartition[int, int]):
    def __init__(self, path: Path, count: int) -> None:
        self._path = path
        self._count = count
        self._path.write_text(str(count), encoding="utf-8")

    def write_batch(self, values: list[int]) -> None:
        self._count += sum(values)
        self._path.write_text(str(self._count), encoding="utf-8")

    def snapshot(self) -> int:
        return self._count


class CountSink(FixedPartitionedSink[int, int]):
    """Sums a keyed stream of counts into ``<stream>.count`` (for run summaries), exactly across a resume.

    One partition holds the total; bytewax snapshots it with the rest of the flow's state, so a resumed run
    continues from the total of the epoch it resumes at and counts what it re-emits after that once. (A
    per-worker counter starting from zero in every process would count only the last process's share.)
    """

    def __init__(self, parts_dir: Path, stream: str) -> None:
        self.parts_dir = parts_dir
        self.stream = stream

    def list_parts(self) -> list[str]:
        """The one partition, visible to every worker (the parts directory is shared)."""
        return [self.stream]

    def part_fn(self, item_key: str) -> int:
        """Every count goes to the one partition."""
        return 0

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _CountPartition:
        """Start the total at zero, or at the snapshot's total when resuming."""
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        return _CountPartition(self.parts_dir / f"{self.stream}{COUNT_SUFFIX}", resume_state or 0)


def read_count(parts_dir: Path, stream: str) -> int:
    """The total :class:`CountSink` wrote for ``stream`` (0 when it wrote none)."""
    path = parts_dir / f"{stream}{COUNT_SUFFIX}"
    return int(path.read_text(encoding="utf-8") or 0) if path.exists() else 0


Route = tuple[str, Encoder]


class _RoutedPartition(StatelessSinkPartition[Any]):
    def __init__(self, parts_dir: Path, worker_index: int, routes: dict[type, Route]) -> None:
        self._parts_dir = parts_dir
        self._worker_index = worker_index
        self._routes = routes
        self._handles: dict[str, TextIO] = {}

    def _handle(self, stream: str) -> TextIO:
        handle = self._handles.get(stream)
        if handle is None:
            handle = open_for_append(part_path(self._parts_dir, stream, self._worker_index))
            self._handles[stream] = handle
        return handle

    def write_batch(self, items: list[Any]) -> None:
        lines: dict[str, list[str]] = {}
        for item in items:
            route = self._routes.get(type(item))
            if route is None:
                known = sorted(r[0] for r in self._routes.values())
                msg = f"no output stream for {type(item).__name__}; expected one of {known}"
                raise TypeError(msg)
            stream, encode = route
            key, line = encode(item)
            lines.setdefault(stream, []).append(f"{key}\t{line}\n")
        for stream, chunk in lines.items():
            handle = self._handle(stream)
            handle.write("".join(chunk))
            handle.flush()

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()


class RoutedPartFileSink(DynamicSink[Any]):
    """Writes records of several types to one part file per stream, routed by the record's type."""

    def __init__(self, parts_dir: Path, routes: dict[type, Route]) -> None:
        self.parts_dir = parts_dir
        self.routes = routes

    def build(self, step_id: str, worker_index: int, worker_count: int) -> StatelessSinkPartition[Any]:
        """Open this worker's part files lazily, one per stream it writes."""
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        return _RoutedPartition(self.parts_dir, worker_index, self.routes)
