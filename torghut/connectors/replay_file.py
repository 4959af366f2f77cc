"""Replay-file source: recorded signals (JSONL of flat rows or envelopes, or a JSON array) as a bytewax input.

The file is split into a fixed number of symbol shards, each a bytewax partition, so several processes can
share one file while every symbol's rows stay in file order within one partition. A partition reads the
whole file but only keeps its own rows: the shard is that of the row's routing symbol
(:func:`~torghut.operators.decode.routing_symbol`, the symbol the parser reads, found with a byte-level
scan when that is exact), and the row is handed downstream undecoded (the strategies step decodes it
once). Rows without a valid symbol go to the shard of ``""``, where they become dead letters, so nothing
is read twice or lost.

The resume state of a partition is ``(byte_offset, line_number)`` for JSONL and ``(index,)`` for an array,
so bytewax recovery resumes exactly after the last emitted batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate, pairwise
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from torghut.connectors.key_placement import WeightedShards, key_on_worker, worker_of
from torghut.contracts.signal import InputPosition, RawRecord
from torghut.forking import process_pool
from torghut.operators.decode import plain_symbol, routing_symbol

#: Lines per source batch of a replay. Every symbol's share of a batch is evaluated as one symbol batch,
#: so large batches amortize the per-symbol-batch work (watermarks, state, latency metrics): with 500
#: symbols, 10,000 lines are about 20 events per symbol batch and 7 MB of raw lines.
REPLAY_BATCH_SIZE = 10_000
ResumeState = tuple[int, int]
#: Names the symbol-to-shard function in the split marker: a split made by another function is redone.
SHARD_PLACEMENT = "bytewax-0.21-siphash13-weighted-ranges-range-lines"

_PROBE_BYTES = 4096
_SPLIT_BUFFER = 1 << 20
_SPLIT_CHUNK_LINES = 4096  # rows per shard written at once
# A range of a parallel split is at least this large: forking costs more than splitting a small file.
_SPLIT_MIN_JOB_BYTES = 8 << 20
# The head of the file whose symbols every range of a parallel split places first (about 5,000 rows).
_SPLIT_HEAD_BYTES = 4 << 20


def symbol_shard(symbol: str | bytes, shards: int) -> int:
    """Return the shard of ``symbol``: the bytewax worker its state would have among ``shards`` workers.

    Shard ``i`` is read by worker ``i % processes``, so when the process count divides the shard count
    (a replay's default is one shard per process) every row is read on the worker that evaluates its
    symbol and no raw row crosses between processes (:mod:`torghut.connectors.key_placement`).
    """
    text = symbol if isinstance(symbol, str) else symbol.decode("utf-8", "replace")
    return worker_of(text, shards)


def read_json_array(path: Path) -> list[Any] | None:
    r"""Return the records of a replay file that is one JSON array, or ``None`` for a JSONL file.

    A file is an array only if it starts with ``[`` and the whole file parses (with orjson) as a list;
    anything else is JSONL, so a first line such as ``[1]`` is one record (a dead letter), not the file.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "signals.json"
    >>> _ = path.write_bytes(b'[{"symbol": "A"}, 2]')
    >>> read_json_array(path)
    [{'symbol': 'A'}, 2]
    >>> _ = path.write_bytes(b'[1]\n{"symbol": "A"}\n')
    >>> read_json_array(path) is None
    True
    """
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(_PROBE_BYTES).lstrip()
        handle.seek(max(0, size - _PROBE_BYTES))
        tail = handle.read().rstrip()
    if not (head.startswith(b"[") and tail.endswith(b"]")):  # cheap: most JSONL files stop here
        return None
    try:
        items = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError:
        return None
    return items if isinstance(items, list) else None


@dataclass(frozen=True, slots=True)
class ReplayProgress:
    """A partition's progress: bytes (or items) read out of the total."""

    shard: int
    done: int
    total: int


ProgressCallback = Callable[[ReplayProgress], None]


_SPLIT_MARKER = "complete.json"
_PLACEMENT_FILE = "placement.json"


def _split_marker(path: Path, shards: int, account: str) -> dict[str, Any]:
    stat = path.stat()
    return {
        "source": str(path.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "shards": shards,
        "placement": SHARD_PLACEMENT,
        "account": account,
    }


def _split_complete(path: Path, shards: int, split_dir: Path, account: str) -> bool:
    # The marker is written last: present and naming this input, shard count and account, the split is whole.
    try:
        found = orjson.loads((split_dir / _SPLIT_MARKER).read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return False
    return bool(found == _split_marker(path, shards, account))


def _placement(split_dir: Path) -> dict[str, Any] | None:
    # ``placement.json`` of a complete split (any split whose marker was written), else None.
    if not (split_dir / _SPLIT_MARKER).is_file():
        return None
    placement: dict[str, Any] = orjson.loads((split_dir / _PLACEMENT_FILE).read_bytes())
    return placement


def load_symbol_keys(split_dir: Path) -> dict[str, str]:
    """The state key of every symbol of a split input (:func:`split_shards`), in order of first appearance.

    Raises:
        FileNotFoundError: ``split_dir`` holds no complete split.
    """
    placement = _placement(split_dir)
    if placement is None:
        msg = f"{split_dir} holds no complete split: run split_shards first"
        raise FileNotFoundError(msg)
    keys: dict[str, str] = placement["keys"]
    return keys


def wait_for_split(
    path: Path,
    shards: int,
    split_dir: Path,
    account: str,
    *,
    alive: Callable[[], bool],
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Wait until ``split_dir`` holds a complete split of ``path`` (:func:`split_shards`, run elsewhere).

    Returns False as soon as ``alive()`` is false (whoever splits has gone), True once the split is there.
    Between two checks it calls ``sleep(0.005)`` (tests inject it).
    """
    while not _split_complete(path, shards, split_dir, account):
        if not alive():
            return False
        sleep(0.005)
    return True


def split_shard_files(
    path: Path, shards: int, split_dir: Path, shard: int, account: str
) -> list[tuple[Path, int]]:
    """Return the files :func:`split_shards` wrote for ``shard`` of ``path``, each with its line base.

    The shard's rows are theirs, in order; a row's line number in the input is its number in its file plus
    the file's line base (the lines of the input before the file's range).

    Raises:
        FileNotFoundError: ``split_dir`` holds no complete split of this file into ``shards`` shards.
    """
    placement = _placement(split_dir) if _split_complete(path, shards, split_dir, account) else None
    if placement is None:
        msg = f"{split_dir} holds no complete split of {path} into {shards} shards: run split_shards first"
        raise FileNotFoundError(msg)
    bases: list[int] = placement["line_bases"]
    return [(_range_file(split_dir, shard, job), base) for job, base in enumerate(bases)]


def split_event_count(split_dir: Path) -> int | None:
    """The events (non-blank lines) of a completely split input, counted by the split; None without one."""
    placement = _placement(split_dir)
    return None if placement is None else int(placement["events"])


def split_shards(path: Path, shards: int, out_dir: Path, *, account: str, jobs: int = 1) -> Path:
    """Split a JSONL signal file into per-shard files once, in up to ``jobs`` processes; return the directory.

    Each shard's rows are written in file order as ``<line number><TAB><row>``, so a partition reads only its
    own rows instead of scanning the whole file (which every partition of a multi-process replay would
    otherwise do). Symbols are spread over the shards as they first appear in the file
    (:class:`~torghut.connectors.key_placement.WeightedShards`), the shard of ``account``'s worker taking
    fewer, and ``placement.json`` maps each symbol to the state key that bytewax places on its shard's worker
    (:func:`load_symbol_keys`). Rows without a routing symbol go to shard ``worker_of("", shards)``.

    With ``jobs > 1`` the file is cut into that many ranges of whole lines, each split by a process of its
    own (:func:`~torghut.forking.process_pool`) into one file per shard and range. The first range places
    symbols as they appear; every other range places them as the file's head (its first lines) does, which
    is the same placement as long as every symbol of the range appears in the head (as in a file of bars,
    where every symbol has a row in the first seconds). When a range meets a symbol the head does not
    place, the whole file is split again in one process. Either way a shard's rows, read from its files in
    order (:func:`split_shard_files`), are the same.

    The split is deterministic and recorded by a marker naming the source file, its size, the shard count
    and the account: a resumed replay reuses it, anything else splits again.
    """
    if _split_complete(path, shards, out_dir, account):
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    marker_path = out_dir / _SPLIT_MARKER
    marker_path.unlink(missing_ok=True)
    _remove_range_files(out_dir)
    splits = _split_ranges(path, shards, account, out_dir, _line_ranges(path, jobs))
    if splits is None:
        _remove_range_files(out_dir)
        whole = _split_range(_RangeTask(path, shards, account, out_dir, 0, (0, path.stat().st_size), 0))
        assert whole is not None  # the first range places every symbol it meets
        splits = [whole]
    # The first range placed every symbol of the file (any other range meeting one it did not is a miss).
    placement = {
        "shards": shards,
        "jobs": len(splits),
        "events": sum(split.events for split in splits),
        # The lines before each range: a range's files number its rows from 1.
        "line_bases": [0, *accumulate(split.lines for split in splits[:-1])],
        "keys": splits[0].keys,
    }
    (out_dir / _PLACEMENT_FILE).write_bytes(orjson.dumps(placement))
    # Last: a split cut short is never taken as complete.
    marker_path.write_bytes(orjson.dumps(_split_marker(path, shards, account)))
    return out_dir


def _split_ranges(
    path: Path, shards: int, account: str, out_dir: Path, ranges: list[tuple[int, int]]
) -> list[_RangeSplit] | None:
    # Every range split by its own process; None when there is one range or a range missed a symbol.
    if len(ranges) < 2:
        return None
    head = min(ranges[0][1], _SPLIT_HEAD_BYTES)
    tasks = [
        _RangeTask(path, shards, account, out_dir, job, bounds, head if job else 0)
        for job, bounds in enumerate(ranges)
    ]
    with process_pool(len(ranges)) as pool:
        splits = list(pool.map(_split_range, tasks))
    done = [split for split in splits if split is not None]
    return done if len(done) == len(splits) else None


@dataclass(frozen=True, slots=True)
class _RangeTask:
    path: Path
    shards: int
    account: str
    out_dir: Path
    job: int
    bounds: tuple[int, int]
    #: Bytes of the file's head whose symbols the range places first (0 for the first range).
    head: int


@dataclass(frozen=True, slots=True)
class _RangeSplit:
    #: Non-blank lines of the range: input events.
    events: int
    #: Every line of the range, blank ones included (the rows of the next range are numbered after them).
    lines: int
    #: The state key of every symbol the range placed, in order of first appearance.
    keys: dict[str, str]


class _Placement:
    """Symbols to shards in order of first appearance (:class:`WeightedShards`), with their state keys.

    :meth:`shard` routes a row by :func:`~torghut.operators.decode.routing_symbol`, except that a row
    whose plain symbol bytes (:func:`~torghut.operators.decode.plain_symbol`) were already routed takes
    their shard without decoding them again.
    """

    def __init__(self, shards: int, account: str) -> None:
        self._shards = shards
        self._spread = WeightedShards(shards, light=worker_of(account, shards))
        self.shard_of: dict[str, int] = {"": worker_of("", shards)}
        self.keys: dict[str, str] = {}
        self._plain: dict[bytes, int] = {}  # plain symbol bytes already routed -> their shard

    def place(self, symbol: str) -> int:
        shard = self.shard_of[symbol] = self._spread.next()
        self.keys[symbol] = key_on_worker(symbol, shard, self._shards)
        return shard

    def shard(self, row: bytes, *, new: bool) -> int | None:
        """The shard of ``row`` (stripped, not blank); a new symbol is placed if ``new``, else None."""
        plain = plain_symbol(row)
        if plain is not None:
            shard = self._plain.get(plain)
            if shard is not None:
                return shard
        symbol = routing_symbol(row)
        shard = self.shard_of.get(symbol)
        if shard is None:
            if not new:
                return None
            shard = self.place(symbol)
        if plain is not None:
            self._plain[plain] = shard
        return shard


def _line_ranges(path: Path, jobs: int) -> list[tuple[int, int]]:
    # ``jobs`` byte ranges of whole lines (each starts where a line starts), none smaller than a minimum.
    size = path.stat().st_size
    jobs = max(1, min(jobs, size // _SPLIT_MIN_JOB_BYTES))
    starts = [0]
    with path.open("rb") as handle:
        for job in range(1, jobs):
            handle.seek(size * job // jobs - 1)
            handle.readline()  # to the start of the first line at or after the cut
            at = handle.tell()
            if starts[-1] < at < size:
                starts.append(at)
    return list(pairwise([*starts, size]))


def _range_lines(handle: BinaryIO, start: int, end: int) -> Iterator[bytes]:
    handle.seek(start)
    at = start
    for line in handle:
        if at >= end:
            return
        at += len(line)
        yield line


def _range_blocks(handle: BinaryIO, start: int, end: int) -> Iterator[list[bytes]]:
    # The lines of ``[start, end)`` (both line starts, or ``end`` the file's size), a block at a time, without
    # their newlines: a block's ``split`` costs far less than a ``readline`` per line.
    handle.seek(start)
    left = end - start
    carry = b""
    while left > 0:
        block = handle.read(min(left, _SPLIT_BUFFER))
        if not block:
            break
        left -= len(block)
        cut = block.rfind(b"\n") + 1
        if cut == 0:  # no line ends in this block: a line longer than the block
            carry += block
            continue
        lines = (carry + block[:cut] if carry else block[:cut]).split(b"\n")
        lines.pop()  # the empty piece after the block's last newline
        carry = block[cut:]
        yield lines
    if carry:
        yield [carry]  # the last line, without a newline


def _split_range(task: _RangeTask) -> _RangeSplit | None:
    """Write a range's rows to its shard files; None when the range meets a symbol its head does not place.

    Rows are numbered from 1 within the range: the reader adds the lines of the ranges before it.
    """
    start, end = task.bounds
    placement = _Placement(task.shards, task.account)
    pending: list[list[bytes]] = [[] for _ in range(task.shards)]
    events = line_no = 0
    with task.path.open("rb") as handle:
        if task.head:  # place the symbols of the file's head, as the first range does
            for line in _range_lines(handle, 0, task.head):
                if stripped := line.strip():
                    placement.shard(stripped, new=True)
        outs = [_range_file(task.out_dir, shard, task.job).open("wb") for shard in range(task.shards)]
        try:
            for lines in _range_blocks(handle, start, end):
                for line in lines:
                    line_no += 1
                    stripped = line.strip()
                    if not stripped:
                        continue
                    events += 1
                    # A later range meeting a symbol the head did not place cannot know its shard.
                    shard = placement.shard(stripped, new=start == 0)
                    if shard is None:
                        return None
                    chunk = pending[shard]
                    chunk.append(b"%d\t%b\n" % (line_no, stripped))
                    if len(chunk) >= _SPLIT_CHUNK_LINES:
                        _flush_chunks(outs, pending)
            _flush_chunks(outs, pending)
        finally:
            for out in outs:
                out.close()
    return _RangeSplit(events, line_no, placement.keys)


def _range_file(split_dir: Path, shard: int, job: int) -> Path:
    return split_dir / f"shard-{shard:03d}-{job:03d}.jsonl"


def _remove_range_files(split_dir: Path) -> None:
    for stale in split_dir.glob("shard-*.jsonl"):
        stale.unlink()


def _flush_chunks(outs: Sequence[BinaryIO], pending: list[list[bytes]]) -> None:
    # One write per shard and chunk: a write per line costs more than finding the line's shard.
    for out, chunk in zip(outs, pending, strict=True):
        if chunk:
            out.write(b"".join(chunk))
            chunk.clear()


class _JsonlPartition(StatefulSourcePartition[RawRecord, ResumeState]):
    def __init__(
        self,
        path: Path,
        shard: int,
        shards: int,
        batch_size: int,
        resume: ResumeState | None,
        progress: ProgressCallback | None,
    ) -> None:
        self._handle: BinaryIO = path.open("rb")
        self._total = path.stat().st_size
        self._shard = shard
        self._shards = shards
        self._batch_size = batch_size
        self._progress = progress
        # The position names the line, not the shard: records must not depend on how the file was split.
        self._label = "line"
        self._source = path.name
        offset, line_no = resume if resume is not None else (0, 0)
        self._handle.seek(offset)
        self._offset = offset
        self._line_no = line_no

    def next_batch(self) -> list[RawRecord]:
        batch: list[RawRecord] = []
        handle = self._handle
        shard, shards = self._shard, self._shards
        # Read a bounded number of lines per call so a sparse shard still yields control regularly.
        budget = self._batch_size * max(1, shards)
        while len(batch) < self._batch_size and budget > 0:
            line = handle.readline()
            if not line:
                if self._progress is not None:
                    self._progress(ReplayProgress(shard, self._total, self._total))
                if batch:
                    return batch
                raise StopIteration
            budget -= 1
            self._offset += len(line)
            self._line_no += 1
            stripped = line.strip()
            if not stripped:
                continue
            # The routing symbol (the parser's own), so each symbol's rows stay in one shard, in file order;
            # a single shard takes every row without looking.
            if shards == 1 or symbol_shard(routing_symbol(stripped), shards) == shard:
                batch.append((stripped, InputPosition(self._source, self._label, self._line_no)))
        if self._progress is not None:
            self._progress(ReplayProgress(shard, self._offset, self._total))
        return batch

    def snapshot(self) -> ResumeState:
        return (self._offset, self._line_no)

    def close(self) -> None:
        self._handle.close()


class _SplitPartition(StatefulSourcePartition[RawRecord, ResumeState]):
    """One shard's files written by :func:`split_shards`: every row is this shard's, with its line number.

    The resume offset counts bytes over the shard's files as if they were one.
    """

    def __init__(
        self,
        source: str,
        files: Sequence[tuple[Path, int]],
        shard: int,
        batch_size: int,
        resume: ResumeState | None,
        progress: ProgressCallback | None,
    ) -> None:
        self._source = source
        self._label = "line"
        self._shard = shard
        self._batch_size = batch_size
        self._progress = progress
        self._files = [file for file, _ in files]
        self._bases = [base for _, base in files]
        self._base = 0
        sizes = [file.stat().st_size for file in self._files]
        self._total = sum(sizes)
        offset, self._line_no = resume if resume is not None else (0, 0)
        self._offset = offset
        # The file holding ``offset`` (past the last one when everything was read), and where in it.
        self._next_file = 0
        for size in sizes:
            if offset < size:
                break
            offset -= size
            self._next_file += 1
        self._handle: BinaryIO | None = None
        if self._next_file < len(self._files):
            self._handle = self._open_next()
            self._handle.seek(offset)

    def _open_next(self) -> BinaryIO:
        handle = self._files[self._next_file].open("rb")
        self._base = self._bases[self._next_file]
        self._next_file += 1
        return handle

    def next_batch(self) -> list[RawRecord]:
        batch: list[RawRecord] = []
        source, label = self._source, self._label
        while len(batch) < self._batch_size and self._handle is not None:
            line = self._handle.readline()
            if not line:
                self._handle.close()
                self._handle = self._open_next() if self._next_file < len(self._files) else None
                continue
            self._offset += len(line)
            tab = line.index(b"\t")
            self._line_no = self._base + int(line[:tab])
            batch.append((line[tab + 1 : -1], InputPosition(source, label, self._line_no)))
        if self._progress is not None:
            self._progress(ReplayProgress(self._shard, self._offset, self._total))
        if not batch and self._handle is None:
            raise StopIteration
        return batch

    def snapshot(self) -> ResumeState:
        return (self._offset, self._line_no)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


class _ArrayPartition(StatefulSourcePartition[RawRecord, ResumeState]):
    def __init__(
        self,
        items: list[Any],
        source: str,
        shard: int,
        shards: int,
        batch_size: int,
        resume: ResumeState | None,
        progress: ProgressCallback | None,
    ) -> None:
        self._items = items
        self._source = source
        self._shard = shard
        self._shards = shards
        self._batch_size = batch_size
        self._progress = progress
        self._label = "item"
        self._index = resume[0] if resume is not None else 0

    def next_batch(self) -> list[RawRecord]:
        items, total = self._items, len(self._items)
        if self._index >= total:
            raise StopIteration
        batch: list[RawRecord] = []
        while self._index < total and len(batch) < self._batch_size:
            item = items[self._index]
            self._index += 1
            if self._shards == 1 or symbol_shard(routing_symbol(item), self._shards) == self._shard:
                batch.append((item, InputPosition(self._source, self._label, self._index)))
        if self._progress is not None:
            self._progress(ReplayProgress(self._shard, self._index, total))
        return batch

    def snapshot(self) -> ResumeState:
        return (self._index, 0)


class ReplayFileSource(FixedPartitionedSource[RawRecord, ResumeState]):
    """Reads a recorded signal file as ``(raw_row, InputPosition)`` items in ``shards`` partitions.

    ``raw_row`` is the undecoded JSON line (bytes) for JSONL, or the decoded element for a JSON array.
    With ``split_dir``, a JSONL file of several shards is read from per-shard files that
    :func:`split_shards` writes there (done once, before the run, by whoever runs the flow: concurrent
    workers must not split at the same time); without it every partition scans the whole file.
    """

    def __init__(
        self,
        path: Path,
        *,
        shards: int = 8,
        batch_size: int = REPLAY_BATCH_SIZE,
        progress: ProgressCallback | None = None,
        split_dir: Path | None = None,
        account: str = "paper",
    ) -> None:
        if shards < 1:
            msg = f"shards must be at least 1, got {shards}"
            raise ValueError(msg)
        if batch_size < 1:
            msg = f"batch_size must be at least 1, got {batch_size}"
            raise ValueError(msg)
        if not path.is_file():
            msg = f"signal file not found: {path}"
            raise FileNotFoundError(msg)
        self.path = path
        self.shards = shards
        self.batch_size = batch_size
        self.progress = progress
        self.split_dir = split_dir
        self.account = account

    def list_parts(self) -> list[str]:
        """Every shard is readable from every worker; bytewax assigns each to one."""
        return [f"shard-{i:03d}" for i in range(self.shards)]

    def build_part(
        self, step_id: str, for_part: str, resume_state: ResumeState | None
    ) -> StatefulSourcePartition[RawRecord, ResumeState]:
        """Open one shard, resuming after the last emitted batch when recovery state exists."""
        shard = int(for_part.removeprefix("shard-"))
        items = read_json_array(self.path)
        if items is not None:
            return _ArrayPartition(
                items, self.path.name, shard, self.shards, self.batch_size, resume_state, self.progress
            )
        if self.split_dir is not None and self.shards > 1:
            files = split_shard_files(self.path, self.shards, self.split_dir, shard, self.account)
            return _SplitPartition(self.path.name, files, shard, self.batch_size, resume_state, self.progress)
        return _JsonlPartition(self.path, shard, self.shards, self.batch_size, resume_state, self.progress)
