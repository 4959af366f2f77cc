"""``FeatureView``: a strategy's read-only window onto one feature vector's declared values."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any


class UndeclaredFeatureError(LookupError):
    """A plugin read a feature it did not list in ``required_features``.

    It deliberately is not a ``KeyError``, so a plugin's ``except KeyError`` cannot swallow it.
    """

    def __init__(self, feature: str, declared: frozenset[str]) -> None:
        self.feature = feature
        super().__init__(
            f"undeclared feature {feature!r} (declared: {', '.join(sorted(declared)) or 'none'})"
        )


class FeatureView(Mapping[str, Any]):
    """The declared subset of ``FeatureVectorV3.values``, built per strategy per event.

    Construction only stores three references, so it is cheap. Reading a declared feature that the vector
    lacks returns ``None`` through :meth:`get` and :meth:`decimal` (a ``KeyError`` through ``[]``); reading
    an undeclared one raises :class:`UndeclaredFeatureError`.

    >>> from decimal import Decimal
    >>> view = FeatureView({"price": Decimal("10.5"), "rsi14": Decimal(40)}, ("price",))
    >>> view.decimal("price")
    Decimal('10.5')
    >>> view.get("rsi14")
    Traceback (most recent call last):
    ...
    torghut.strategies.view.UndeclaredFeatureError: undeclared feature 'rsi14' (declared: price)
    """

    __slots__ = ("_declared", "_names", "_values")

    def __init__(
        self, values: Mapping[str, Any], names: tuple[str, ...], declared: frozenset[str] | None = None
    ) -> None:
        self._values = values
        self._names = names
        self._declared = frozenset(names) if declared is None else declared

    def _check(self, name: str) -> None:
        if name not in self._declared:
            raise UndeclaredFeatureError(name, self._declared)

    def __getitem__(self, name: str) -> Any:
        self._check(name)
        return self._values[name]

    def get(self, name: str, default: Any = None) -> Any:
        """Return the feature's value, or ``default`` when the vector does not carry it."""
        self._check(name)
        return self._values.get(name, default)

    def decimal(self, name: str) -> Decimal | None:
        """Return the feature as a ``Decimal``, or ``None`` when missing or not numeric (torghut's rule)."""
        if name not in self._declared:
            raise UndeclaredFeatureError(name, self._declared)
        value = self._values.get(name)
        if value is None or type(value) is Decimal:  # the normalizer's values: the hot path
            return value
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float | str):
            try:
                return Decimal(str(value))
            except ArithmeticError:
                return None
        return None

    def __contains__(self, name: object) -> bool:
        return name in self._declared and name in self._values

    def __iter__(self) -> Iterator[str]:
        return (name for name in self._names if name in self._values)

    def __len__(self) -> int:
        return sum(1 for name in self._names if name in self._values)

    def __repr__(self) -> str:
        return f"FeatureView({ {name: self._values.get(name) for name in self._names}!r})"
