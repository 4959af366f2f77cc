"""An immutable, picklable mapping for use inside frozen contracts.

``frozen=True`` on a dataclass is shallow, so contracts hold :class:`FrozenMap` instead of ``dict``
wherever a mapping fans out to several consumers (strategies, sinks, hashes).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NoReturn, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class FrozenMap(dict[K, V]):
    """A ``dict`` that refuses mutation; JSON encoders and ``pickle`` treat it as a plain dict.

    >>> m = FrozenMap({"a": 1})
    >>> m["a"]
    1
    >>> m["b"] = 2
    Traceback (most recent call last):
    ...
    TypeError: FrozenMap is immutable
    """

    __slots__ = ()

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        msg = "FrozenMap is immutable"
        raise TypeError(msg)

    __setitem__ = _refuse
    __delitem__ = _refuse
    clear = _refuse
    pop = _refuse
    popitem = _refuse
    setdefault = _refuse
    update = _refuse
    __ior__ = _refuse

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted((str(k), repr(v)) for k, v in self.items())))

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenMap, (dict(self),))

    def __repr__(self) -> str:
        return f"FrozenMap({dict.__repr__(self)})"


EMPTY: FrozenMap[Any, Any] = FrozenMap()


# Values returned as they are, decided by exact type: the common case skips the ABC checks below.
_ATOMS = frozenset((str, int, float, bool, type(None), Decimal, datetime, date, FrozenMap))


def freeze_kwargs(inputs: dict[str, Any]) -> FrozenMap[str, Any]:
    """``freeze(inputs)`` for a fresh dict the caller gives away (keyword arguments): no copy of atoms.

    >>> freeze_kwargs({"qty": 1, "codes": ["a"]})
    FrozenMap({'qty': 1, 'codes': ('a',)})
    """
    for value in inputs.values():
        if type(value) not in _ATOMS:
            frozen: FrozenMap[str, Any] = freeze(inputs)
            return frozen
    return FrozenMap(inputs)


def freeze(value: Any) -> Any:  # noqa: PLR0911 - exact-type fast paths first
    """Return a deeply immutable copy of JSON-like data (dicts become FrozenMap, lists tuples).

    >>> freeze({"a": [1, {"b": 2}]})
    FrozenMap({'a': (1, FrozenMap({'b': 2}))})
    """
    kind = type(value)
    if kind in _ATOMS:
        return value
    if kind is dict:
        return FrozenMap({k: v if type(v) in _ATOMS else freeze(v) for k, v in value.items()})
    if kind is list or kind is tuple:
        return tuple([v if type(v) in _ATOMS else freeze(v) for v in value])
    if isinstance(value, FrozenMap):
        return value
    if isinstance(value, Mapping):
        return FrozenMap({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value
