"""Codecs and digests for replay outputs: canonical lines, canonical order, one sha256 per stream.

Every output record is encoded as one canonical JSON line (:func:`torghut.contracts.hashing.record_json`:
sorted keys, compact, decimals as strings) with a sort key that orders it canonically: by event time,
symbol, sequence and a stream-specific id. The merge orders all workers' part files by that key, drops
exact repeats (at-least-once output after a crash) and digests the ordered lines. The digest therefore
depends only on the records, not on the number of processes, the batch size or where a crash happened.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from torghut.connectors.part_files import part_paths
from torghut.contracts.features import FeatureVectorV3
from torghut.contracts.hashing import StreamDigest, canonical_json, record_json
from torghut.contracts.signal import DeadLetter, InputPosition


def _ts(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def event_key(event_ts: datetime | None, symbol: str | None, seq: int | None, *rest: object) -> str:
    """Return the canonical sort key ``event_ts|symbol|seq|rest...`` (UTC ISO times sort correctly)."""
    tail = "|".join(str(r) for r in rest)
    return f"{_ts(event_ts)}|{symbol or ''}|{seq or 0:020d}|{tail}"


def position_key(position: InputPosition | None) -> str:
    """Return a sort key that orders records by their place in the input."""
    if position is None:
        return ""
    return f"{position.source}|{position.offset:015d}|{position.partition}"


def encode_feature(fv: FeatureVectorV3) -> tuple[str, str]:
    """Encode a feature vector with its normalization hash."""
    record = {f.name: getattr(fv, f.name) for f in dataclasses.fields(fv)}
    record["normalization_hash"] = fv.normalization_hash()
    return event_key(fv.event_ts, fv.symbol, fv.seq), canonical_json(record)


def encode_dead_letter(letter: DeadLetter) -> tuple[str, str]:
    """Encode a dead letter, ordered by its input position."""
    return f"{position_key(letter.position)}|{letter.stage}", record_json(letter)


def encode_event_record(record: Any) -> tuple[str, str]:
    """Encode any record with ``event_ts``/``symbol`` (and optionally ``seq`` and an id) canonically."""
    ident = (
        getattr(record, "strategy_id", None)
        or getattr(record, "client_order_id", None)
        or getattr(record, "decision_hash", None)
        or ""
    )
    key = event_key(
        getattr(record, "event_ts", None), getattr(record, "symbol", None), getattr(record, "seq", 0), ident
    )
    return key, record_json(record)


@dataclass(frozen=True, slots=True)
class StreamSummary:
    """The merged result of one output stream."""

    stream: str
    count: int
    sha256: str
    repeats_dropped: int


def _part_pairs(parts: Iterable[Path]) -> list[tuple[bytes, bytes]]:
    # ``(key, line)`` of every complete line, as bytes: UTF-8 bytes sort as their text does.
    pairs: list[tuple[bytes, bytes]] = []
    for part in parts:
        lines = part.read_bytes().split(b"\n")
        lines.pop()  # after the last newline: empty, or a line torn by a crash (recovery re-emits it)
        for raw in lines:
            key, sep, line = raw.partition(b"\t")
            if sep:
                pairs.append((key, line))
    return pairs


def merge_stream(parts_dir: Path, stream: str, out_path: Path) -> StreamSummary:
    """Merge ``stream``'s part files into ``out_path`` in canonical order and digest the result."""
    pairs = _part_pairs(part_paths(parts_dir, stream))
    pairs.sort()
    lines: list[bytes] = []
    previous = None
    for pair in pairs:
        if pair != previous:  # an exact repeat (at-least-once output after a crash) is kept once
            lines.append(pair[1])
            previous = pair
    body = b"\n".join(lines) + b"\n" if lines else b""
    out_path.write_bytes(body)
    digest = StreamDigest()
    digest.add_text(body, len(lines))
    return StreamSummary(stream, digest.count, digest.hexdigest(), len(pairs) - len(lines))


def digest_file(path: Path) -> StreamSummary:
    """Digest an already merged output file (one canonical line per record)."""
    digest = StreamDigest()
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            digest.add_line(line.rstrip("\n"))
    return StreamSummary(path.stem, digest.count, digest.hexdigest(), 0)


def differing_field(left: str, right: str) -> str | None:
    """The path of the first field where two JSON records differ (``a.b[2]``), or None if either is no JSON.

    Fields are compared in the left record's order; a field only one side has is a difference too.

    >>> differing_field('{"a":1,"b":{"c":[1,2]}}', '{"a":1,"b":{"c":[1,3]}}')
    'b.c[1]'
    >>> differing_field('{"a":1}', '{"a":1,"z":2}'), differing_field("{", "{}")
    ('z', None)
    """
    try:
        a, b = orjson.loads(left), orjson.loads(right)
    except orjson.JSONDecodeError:
        return None
    return _first_path(a, b, "")


def _first_path(a: Any, b: Any, at: str) -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            path = f"{at}.{key}" if at else str(key)
            found = path if key not in a or key not in b else _first_path(a[key], b[key], path)
            if found is not None:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        for index, (x, y) in enumerate(zip(a, b, strict=False)):
            found = _first_path(x, y, f"{at}[{index}]")
            if found is not None:
                return found
        return None if len(a) == len(b) else f"{at}[{min(len(a), len(b))}]"
    return None if a == b and type(a) is type(b) else (at or "(the record)")


def first_difference(left: Path, right: Path) -> tuple[int, str, str] | None:
    """Return ``(line_number, left_line, right_line)`` of the first differing record, or ``None``."""
    with left.open(encoding="utf-8") as a, right.open(encoding="utf-8") as b:
        number = 0
        while True:
            number += 1
            la, lb = a.readline(), b.readline()
            if la != lb:
                return number, la.rstrip("\n"), lb.rstrip("\n")
            if not la:
                return None
