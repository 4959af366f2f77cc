"""Canonical JSON and sha256: the one encoding behind every hash and digest in the engine.

Canonical JSON is the encoding torghut itself hashes with: ``json.dumps(obj, sort_keys=True,
separators=(",", ":"))`` with ASCII escaping. Values JSON cannot hold are encoded as follows:
``Decimal`` as its string, ``datetime`` as ISO 8601, dataclasses as their fields, sets sorted, enums
by value; anything else as ``str(value)`` (torghut's ``default=str``).

Canonical JSON keeps what JSON strictly cannot hold (``NaN``, lone surrogates, integers of any size);
:func:`json_safe` turns such data into plain JSON that every JSON codec (orjson included) round-trips.

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
import math
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Any

import orjson

from torghut.contracts.frozen import FrozenMap

_MAX_SAFE_DEPTH = 64
_INT_MIN = -(2**63)  # orjson's range: signed and unsigned 64-bit integers
_INT_MAX = 2**64 - 1
_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


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


_RECORD_OPTIONS = orjson.OPT_SORT_KEYS


def record_json(value: Any) -> str:
    """Encode an output record as one canonical JSON line, fast: the replay's part-file encoding.

    Mappings with sorted keys, dataclasses as their fields in declaration order, compact, UTF-8, with
    canonical JSON's rules for values JSON cannot hold (decimals as strings, times in ISO 8601). orjson
    writes it; what orjson cannot (integers past 64 bits, lone surrogates) falls back to
    :func:`canonical_json`, so the same record always has the same line. Records carry no non-finite
    floats (dead letters' raw input is :func:`json_safe`), which orjson would write as ``null``.

    >>> from decimal import Decimal
    >>> record_json({"b": Decimal("1.50"), "a": (1, None), "z": "é"})
    '{"a":[1,null],"b":"1.50","z":"é"}'
    """
    try:
        return orjson.dumps(value, default=_default, option=_RECORD_OPTIONS).decode()
    except orjson.JSONEncodeError:
        return canonical_json(value)


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


def _safe_text(text: str) -> str:
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: keep them visible as ``\udXXX`` escapes
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _safe_key(key: Any) -> str:
    # The key text json.dumps would write, so the canonical encoding of safe data is unchanged.
    if isinstance(key, str):
        return _safe_text(key)
    if key is None or isinstance(key, bool | int | float):
        return canonical_json(key)  # null, true, 12, 1.5, NaN
    return _safe_text(str(key))


def json_safe(value: Any) -> Any:
    r"""Return ``value`` as plain JSON data that both :func:`canonical_json` and orjson encode and decode.

    Non-finite floats become ``"NaN"``, ``"Infinity"`` or ``"-Infinity"``, integers outside 64 bits their
    decimal text, lone surrogates ``\udXXX`` escapes and bytes UTF-8 text (``\xNN`` for invalid bytes);
    everything else becomes what canonical JSON encodes it as (decimals and times as text, dataclasses as
    their fields), in frozen containers: mappings as ``FrozenMap`` with text keys, sequences and sets as
    tuples. Containers nested more than 64 levels deep (orjson writes at most 254) are kept as their
    canonical JSON text. Other safe data keeps its canonical JSON. Used for dead letters' raw input, so
    only records that fail pay for it.

    >>> json_safe({"price": float("nan"), "seq": 10**20, "sym": "\ud800", 1: (b"\xff",)})
    FrozenMap({'price': 'NaN', 'seq': '100000000000000000000', 'sym': '\\ud800', '1': ('\\xff',)})
    """
    return _safe(value, 0)


def _safe(value: Any, depth: int) -> Any:
    if isinstance(value, Mapping | list | tuple):
        return _safe_container(value, depth)
    if value is None or isinstance(value, str | int | float):  # str and int enums included, as in json
        return _safe_atom(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return _safe_text(bytes(value).decode("utf-8", "backslashreplace"))
    return _safe(_default(value), depth)


def _safe_atom(value: str | int | float | None) -> Any:
    if value is None or type(value) is bool:
        return value
    if isinstance(value, str):
        return _safe_text(value if type(value) is str else str.__str__(value))
    if isinstance(value, int):
        number = int(value)
        return number if _INT_MIN <= number <= _INT_MAX else str(number)
    real = float(value)
    return real if math.isfinite(real) else _NON_FINITE.get(real, "NaN")


def _safe_container(value: Mapping[Any, Any] | list[Any] | tuple[Any, ...], depth: int) -> Any:
    if depth >= _MAX_SAFE_DEPTH:
        return canonical_json(value)  # ASCII text: NaN, big ints and surrogates are safe inside it
    if isinstance(value, Mapping):
        mapping: dict[str, Any] = {}
        for key, item in value.items():
            mapping[_safe_key(key)] = _safe(item, depth + 1)
        return FrozenMap(mapping)
    return tuple([_safe(item, depth + 1) for item in value])


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

    def add_text(self, body: bytes, lines: int) -> None:
        """Add ``lines`` lines at once: ``body`` is their UTF-8 text, each line ending with a newline."""
        self._hash.update(body)
        self.count += lines

    def add_lines(self, lines: Iterable[str]) -> None:
        """Add several lines in order."""
        for line in lines:
            self.add_line(line)

    def hexdigest(self) -> str:
        """Return the digest of the lines added so far."""
        return self._hash.hexdigest()
