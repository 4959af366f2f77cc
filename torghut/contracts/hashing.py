"""Canonical JSON and sha256: the one encoding behind every hash and digest in the engine.

Canonical JSON is the encoding torghut itself hashes with: ``json.dumps(obj, sort_keys=True,
separators=(",", ":"))`` with ASCII escaping. Values JSON cannot hold are encoded as follows:
``Decimal`` as its string, ``datetime`` as ISO 8601, dataclasses as their fields, sets sorted, enums
by value; anything else as ``str(value)`` (torghut's ``default=str``).

>>> from decimal import Decimal
>>> canonical_json({"b": Decimal("1.50"), "a": (1, None)})
'{"a":[1,null],"b":"1.50"}'
>>> sha256_hex({"a": 1})[:12]
'015abd7f5cc5'
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Any


@cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: getattr(value, name) for name in _field_names(type(value))}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(value, key=canonical_json)
    return str(value)


def _json_default(value: Any) -> Any:
    return _default(value)


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=True, default=_json_default)


def canonical_json(value: Any) -> str:
    """Encode ``value`` as canonical JSON (sorted keys, compact, ASCII, decimals as strings)."""
    return _CANONICAL.encode(value)


def sha256_hex(value: Any) -> str:
    """Return the sha256 hex digest of ``value``'s canonical JSON (strings and bytes are hashed as is)."""
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, str):
        data = value.encode()
    else:
        data = canonical_json(value).encode()
    return hashlib.sha256(data).hexdigest()


def to_jsonable(value: Any) -> Any:
    """Convert contracts to plain JSON data (dicts, lists, str, numbers), as canonical JSON would."""
    result: Any = json.loads(canonical_json(value))
    return result


class StreamDigest:
    """An order-sensitive sha256 over a stream of records, one canonical JSON line each.

    >>> d = StreamDigest()
    >>> d.add_line('{"a":1}')
    >>> d.count, d.hexdigest()[:8]
    (1, 'e3464320')
    """

    __slots__ = ("_hash", "count")

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.count = 0

    def add_line(self, line: str) -> None:
        """Add one already-encoded canonical JSON line."""
        self._hash.update(line.encode())
        self._hash.update(b"\n")
        self.count += 1

    def add_lines(self, lines: Iterable[str]) -> None:
        """Add several lines in order."""
        for line in lines:
            self.add_line(line)

    def hexdigest(self) -> str:
        """Return the digest of the lines added so far."""
        return self._hash.hexdigest()
