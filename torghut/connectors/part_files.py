"""A bytewax sink writing each worker's records to its own part file, for a later canonical merge.

Each line is the sort key, a tab, then the canonical JSON. Output around a crash is at-least-once,
so the merge (:mod:`torghut.recovery.replay_digest`) drops repeated lines and a torn last line; the
sink itself only appends whole batches with one ``write`` each.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from bytewax.outputs import DynamicSink, StatelessSinkPartition

Encoder = Callable[[Any], tuple[str, str]]
PART_SUFFIX = ".part"


def part_path(parts_dir: Path, stream: str, worker_index: int) -> Path:
    """Return the part file of ``stream`` written by worker ``worker_index``."""
    return parts_dir / f"{stream}-w{worker_index:03d}{PART_SUFFIX}"


def part_paths(parts_dir: Path, stream: str) -> list[Path]:
    """Every worker's part file of ``stream``, in worker order."""
    return sorted(parts_dir.glob(f"{stream}-w*{PART_SUFFIX}"))


class _PartFilePartition(StatelessSinkPartition[Any]):
    def __init__(self, path: Path, encode: Encoder) -> None:
        self._handle: TextIO = path.open("a", encoding="utf-8")
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


class _CountPartition(StatelessSinkPartition[Any]):
    def __init__(self, path: Path) -> None:
        self._path = path
        self._count = 0

    def write_batch(self, items: list[int]) -> None:
        self._count += sum(items)
        self._path.write_text(str(self._count), encoding="utf-8")


class CountSink(DynamicSink[Any]):
    """Sums a stream of counts per worker (for run summaries)."""

    def __init__(self, parts_dir: Path, stream: str) -> None:
        self.parts_dir = parts_dir
        self.stream = stream

    def build(self, step_id: str, worker_index: int, worker_count: int) -> StatelessSinkPartition[Any]:
        """Start this worker's counter."""
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        return _CountPartition(self.parts_dir / f"{self.stream}-w{worker_index:03d}{COUNT_SUFFIX}")


def read_count(parts_dir: Path, stream: str) -> int:
    """Sum the per-worker counts of ``stream``."""
    return sum(int(p.read_text() or 0) for p in parts_dir.glob(f"{stream}-w*{COUNT_SUFFIX}"))


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
            handle = part_path(self._parts_dir, stream, self._worker_index).open("a", encoding="utf-8")
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
