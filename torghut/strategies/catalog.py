"""Torghut's ``strategies.yaml``: load both catalog shapes into validated ``StrategyDefinition`` s.

Two shapes load unchanged (YAML or JSON; top level a list or ``{strategies: [...]}``):

- the **V3 shape** (``name``, ``description`` with an optional ``version=`` segment, ``enabled``,
  ``base_timeframe``, ``universe_type`` doubling as the plugin type, ``max_notional_per_trade``,
  ``max_position_pct_equity``): the strategy id is the name, the params are exactly torghut's four
  catalog keys, and the plugin is resolved in torghut's order (exact, alias, lowest version);
- the **newer shape** (``strategy_id``, ``strategy_type``, ``version``, ``params``, ``priority``,
  ``universe_symbols``/``symbols``...): the effective params are the four catalog keys overridden by the
  entry's ``params``, and a stated ``version`` is an exact pin.

The four catalog keys are rendered as torghut's ``strategies`` row holds them: the amounts as
``numeric(20,8)`` strings (``"500.00000000"``), ``universe_symbols`` a list or ``None``, so the parameter
hash is the one torghut's runtime computes. Definitions are sorted by strategy id; each one's params are
validated against the resolved plugin's parameter model.
"""

from __future__ import annotations

import hashlib
import json
import reprlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from torghut.contracts.frozen import freeze
from torghut.contracts.hashing import sha256_hex
from torghut.contracts.strategy import StrategyDefinition, StrategyId
from torghut.strategies.registry import StrategyRegistry, default_registry

_NUMERIC_20_8 = Decimal("0.00000001")
_NUMERIC_MAX_INTEGER_DIGITS = 12
_LEGACY_TYPES = frozenset(("", "static", "legacy_macd_rsi"))
_TSMOM_TYPES = frozenset(("intraday_tsmom", "intraday_tsmom_v1", "tsmom_intraday"))
_DEFAULT_VERSION = "1.0.0"
# A catalog is a few dozen entries a few levels deep; anything far larger is refused before it is
# validated, frozen or hashed (a YAML alias bomb expands to billions of values from a few hundred bytes).
_MAX_VALUES = 100_000
_MAX_DEPTH = 32
_MAX_ERRORS_PER_ENTRY = 20
_SHOW_CHARS = 200
_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 80
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = _REPR.maxfrozenset = 4


def _show(value: object) -> str:
    """Return a bounded ``repr`` of a value for an error message, however large the value is."""
    try:
        return _clip(_REPR.repr(value))
    except ValueError:  # an int past Python's int-to-str digit limit
        return f"<{type(value).__name__}>"


def _clip(text: str) -> str:
    return text if len(text) <= _SHOW_CHARS else text[:_SHOW_CHARS] + "..."


def strategy_type_from_universe_type(universe_type: str | None) -> str:
    """Torghut's ``definition_from_strategy`` mapping of ``universe_type`` to the plugin type."""
    raw = (universe_type or "").strip()
    if raw in _LEGACY_TYPES:
        return "legacy_macd_rsi"
    if raw in _TSMOM_TYPES:
        return "intraday_tsmom_v1"
    return raw


def universe_type_from_strategy_type(strategy_type: str) -> str:
    """Torghut's catalog mapping of ``strategy_type`` back to ``universe_type``."""
    if strategy_type in _LEGACY_TYPES:
        return "static"
    if strategy_type in _TSMOM_TYPES:
        return "intraday_tsmom_v1"
    return strategy_type


def version_from_description(description: str | None) -> str:
    """Torghut's version parse: the first comma-separated ``version=`` segment, else ``"1.0.0"``."""
    if description and "version=" in description:
        for segment in (s.strip() for s in description.split(",")):
            if segment.startswith("version="):
                return segment.split("=", 1)[1] or _DEFAULT_VERSION
    return _DEFAULT_VERSION


def parameter_hash(params: Mapping[str, Any]) -> str:
    """Torghut's parameter hash: sha256 of ``json.dumps(params, sort_keys, compact, default=str)``."""
    payload = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class StrategyConfig(BaseModel):
    """One catalog entry, as torghut's ``app/strategies/catalog.py`` accepts it (unknown keys rejected)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str | None = None
    description: str | None = None
    enabled: bool = True
    strategy_id: str | None = None
    strategy_type: str | None = None
    version: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    priority: int = 100
    base_timeframe: str = "1Min"
    universe_type: str = "static"
    universe_symbols: list[str] | None = Field(default=None, alias="symbols")
    max_position_pct_equity: Decimal | None = None
    max_notional_per_trade: Decimal | None = None

    @field_validator("universe_symbols", mode="before")
    @classmethod
    def _split_symbols(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [s.strip() for s in value.split(",") if s.strip()]
        return value

    @field_validator("version", "strategy_id", "name", mode="before")
    @classmethod
    def _number_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value

    @field_validator("max_position_pct_equity", "max_notional_per_trade")
    @classmethod
    def _as_numeric_20_8(cls, value: Decimal | None) -> Decimal | None:
        if value is None:
            return None
        if not value.is_finite():
            msg = "a finite number"
            raise ValueError(msg)
        too_large = "a number that fits numeric(20,8) (at most 12 integer digits)"
        # Checked before quantizing too: 8 places past 16 or more integer digits exceed the decimal context.
        if value.adjusted() >= _NUMERIC_MAX_INTEGER_DIGITS:
            raise ValueError(too_large)
        stored = value.quantize(_NUMERIC_20_8, rounding=ROUND_HALF_UP)
        if stored.adjusted() >= _NUMERIC_MAX_INTEGER_DIGITS:  # rounded up to 13 digits
            raise ValueError(too_large)
        return stored

    @model_validator(mode="after")
    def _normalise(self) -> StrategyConfig:
        if self.name is None:
            if self.strategy_id is None:
                msg = "a 'name' or a 'strategy_id'"
                raise ValueError(msg)
            self.name = self.strategy_id
        if self.universe_type == "static" and self.strategy_type:
            self.universe_type = universe_type_from_strategy_type(self.strategy_type)
        if self.strategy_type and self.version:
            if not self.description:
                self.description = f"{self.strategy_type} v{self.version}"
            else:
                self.description = f"{self.description} ({self.strategy_type}@{self.version})"
        return self

    def catalog_params(self) -> dict[str, Any]:
        """Torghut's four catalog keys, as the ``strategies`` row stores them."""
        return {
            "max_position_pct_equity": _text(self.max_position_pct_equity),
            "max_notional_per_trade": _text(self.max_notional_per_trade),
            "base_timeframe": self.base_timeframe,
            "universe_symbols": list(self.universe_symbols) if self.universe_symbols else None,
        }


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem or remark about a catalog entry (``entry`` is ``"catalog"`` for the file itself)."""

    level: Literal["error", "warning"]
    entry: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.entry}: {self.message}"


class CatalogError(ValueError):
    """The catalog cannot be used; the message lists every error with its entry and field."""

    def __init__(self, findings: Sequence[Finding]) -> None:
        self.findings = tuple(findings)
        super().__init__("invalid strategy catalog:\n" + "\n".join(f"  {f}" for f in self.findings))


@dataclass(frozen=True, slots=True)
class Catalog:
    """The validated catalog: definitions sorted by strategy id, and the sha256 of the file's bytes."""

    definitions: tuple[StrategyDefinition, ...]
    digest: str
    findings: tuple[Finding, ...] = ()

    def enabled(self) -> tuple[StrategyDefinition, ...]:
        """Return the enabled definitions, in strategy id order."""
        return tuple(d for d in self.definitions if d.enabled)


def _entry_label(index: int, raw: object) -> str:
    if isinstance(raw, Mapping):
        for key in ("name", "strategy_id"):
            if raw.get(key) is not None:
                return f"strategies[{index}] ({key}={_show(raw[key])})"
    return f"strategies[{index}]"


def _expectation(message: str) -> str:
    """A validation message as what was expected: ``Input should be a valid integer`` -> ``a valid integer``.

    >>> _expectation("Input should be a valid integer"), _expectation("Field required")
    ('a valid integer', 'a value')
    """
    message = message.removeprefix("Value error, ")
    if message == "Field required":
        return "a value"
    for lead in ("Input should be ", "Input should "):
        if message.startswith(lead):
            return message[len(lead) :]
    return message


def _describe_validation(exc: ValidationError, prefix: str = "") -> list[str]:
    # Every value is shown bounded: an entry's input can be arbitrarily large (an alias bomb).
    messages: list[str] = []
    errors = exc.errors(include_url=False)
    for err in errors[:_MAX_ERRORS_PER_ENTRY]:
        field = prefix + ".".join(str(part) for part in err["loc"]) or "<entry>"
        kind = err["type"]
        if kind == "missing":
            found = "nothing"
        elif kind == "extra_forbidden":
            found = f"unknown field with value {_show(err['input'])}"
        else:
            found = _show(err["input"])
        expected = _clip(_expectation(err["msg"]))
        if kind == "extra_forbidden":
            expected = "only the fields the model declares"
        messages.append(f"field {_show(field)}: expected {expected}, found {found}")
    if len(errors) > len(messages):
        messages[-1] += f" (and {len(errors) - len(messages)} more errors in this entry)"
    return messages


def _oversized(data: Any) -> str | None:
    """Say why ``data`` is too large or too deep to be a catalog, counting YAML aliases as expanded.

    Iterative and bounded: it stops after ``_MAX_VALUES`` values, so an alias bomb or a recursive alias
    costs no more than a large honest catalog.
    """
    count = 1
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, Mapping):
            children: Collection[Any] = value.values()
        elif isinstance(value, list | tuple | set | frozenset):
            children = value
        else:
            continue
        if depth > _MAX_DEPTH:
            return f"expected data nested at most {_MAX_DEPTH} levels deep, found it nested too deeply"
        count += len(children)
        if count > _MAX_VALUES:
            return f"expected at most {_MAX_VALUES} values (YAML aliases expanded), found more"
        stack.extend((child, depth + 1) for child in children)
    return None


def _entries(data: Any) -> tuple[list[Any] | None, list[Finding]]:
    if data is None:
        return [], [Finding("warning", "catalog", "the catalog is empty")]
    if isinstance(data, Mapping):
        if set(data) != {"strategies"}:
            found = _show(sorted(map(str, data)))
            msg = (
                f"expected a list of strategies or a mapping with the single key 'strategies', found {found}"
            )
            return None, [Finding("error", "catalog", msg)]
        data = data["strategies"] or []
    if not isinstance(data, list):
        msg = f"expected a list of strategies, found {type(data).__name__}"
        return None, [Finding("error", "catalog", msg)]
    return data, []


def build_definitions(
    data: Any, registry: StrategyRegistry
) -> tuple[tuple[StrategyDefinition, ...], tuple[Finding, ...]]:
    """Validate parsed catalog data; return the definitions and every finding (errors and warnings)."""
    problem = _oversized(data)
    if problem is not None:
        return (), (Finding("error", "catalog", problem),)
    entries, findings = _entries(data)
    if entries is None:
        return (), tuple(findings)
    definitions: list[StrategyDefinition] = []
    names: dict[str, str] = {}
    ids: dict[str, str] = {}
    for index, raw in enumerate(entries):
        label = _entry_label(index, raw)
        if not isinstance(raw, Mapping):
            msg = f"expected a mapping of strategy fields, found {type(raw).__name__} {_show(raw)}"
            findings.append(Finding("error", label, msg))
            continue
        try:
            cfg = StrategyConfig.model_validate(dict(raw))
        except ValidationError as exc:
            findings.extend(Finding("error", label, m) for m in _describe_validation(exc))
            continue
        name = cfg.name or ""  # StrategyConfig sets the name from the strategy id when it is absent
        strategy_id = cfg.strategy_id or name
        for seen, key, value in ((names, "name", name), (ids, "strategy_id", strategy_id)):
            if key == "name" and "name" not in raw and value in seen:
                continue  # a name taken from the strategy id: its duplicate is reported as the id's
            if value in seen:
                again = f"{_show(value)} again (first in {seen[value]})"
                msg = f"field {key!r}: expected a unique {key}, found {again}"
                findings.append(Finding("error", label, msg))
            seen.setdefault(value, label)
        definition = _definition(cfg, strategy_id, label, registry, findings)
        if definition is not None:
            definitions.append(definition)
    definitions.sort(key=lambda d: d.strategy_id)
    return tuple(definitions), tuple(findings)


def _definition(
    cfg: StrategyConfig, strategy_id: str, label: str, registry: StrategyRegistry, findings: list[Finding]
) -> StrategyDefinition | None:
    pinned = cfg.version is not None
    strategy_type = cfg.strategy_type or strategy_type_from_universe_type(cfg.universe_type)
    version = cfg.version if cfg.version is not None else version_from_description(cfg.description)
    resolution = registry.resolve(strategy_type, version, pinned=pinned)
    if resolution is None:
        field = "version" if pinned and registry.versions(strategy_type) else "strategy_type"
        if not cfg.strategy_type:
            field = "universe_type"
        installed = ", ".join(registry.keys()) or "none"
        found = _clip(f"{strategy_type}@{version}")
        msg = (
            f"field {field!r}: expected an installed strategy plugin, found {found}"
            f"{' (pinned)' if pinned else ''}; installed: {installed}"
        )
        findings.append(Finding("error", label, msg))
        return None
    plugin = resolution.info.plugin
    if not pinned and len(registry.versions(plugin.strategy_type)) > 1:
        via = resolution.via.replace("_", " ")
        msg = (
            f"{_clip(strategy_type)} is not pinned; resolved to {plugin.key} ({via}) "
            f"among {', '.join(registry.versions(plugin.strategy_type))} (set 'version' to pin one)"
        )
        findings.append(Finding("warning", label, msg))
    params = cfg.catalog_params()
    params.update(cfg.params)
    try:
        plugin.validate_params(params)
    except ValidationError as exc:
        for message in _describe_validation(exc, prefix="params."):
            findings.append(Finding("error", label, f"{message} (plugin {plugin.key})"))
        return None
    return StrategyDefinition(
        strategy_id=StrategyId(strategy_id),
        strategy_name=cfg.name or strategy_id,
        strategy_type=plugin.strategy_type,
        version=plugin.version,
        params=freeze(params),
        feature_requirements=plugin.required_features,
        enabled=cfg.enabled,
        priority=cfg.priority,
        base_timeframe=cfg.base_timeframe,
        universe_symbols=tuple(cfg.universe_symbols or ()),
        max_notional_per_trade=cfg.max_notional_per_trade,
        max_position_pct_equity=cfg.max_position_pct_equity,
        parameter_hash=parameter_hash(params),
        description=cfg.description,
    )


def _read(path: Path) -> tuple[bytes, Any]:
    raw = path.read_bytes()
    if path.suffix.lower() in (".yaml", ".yml"):
        return raw, yaml.safe_load(raw)
    return raw, json.loads(raw)


def _read_findings(path: Path) -> tuple[bytes, Any, list[Finding]]:
    try:
        raw, data = _read(path)
    except OSError as exc:
        return b"", None, [Finding("error", "catalog", f"cannot read {path}: {exc}")]
    except (yaml.YAMLError, ValueError) as exc:
        # PyYAML names a source read from bytes "<byte string>": name the file instead.
        found = str(exc).replace('"<byte string>"', f'"{path}"')
        msg = f"expected valid YAML or JSON in {path}, found: {_clip(found)}"
        return b"", None, [Finding("error", "catalog", msg)]
    except RecursionError:  # the parsers recurse once per level: "[" * 5000 exhausts the stack
        msg = f"expected data nested at most {_MAX_DEPTH} levels deep in {path}, found it nested too deeply"
        return b"", None, [Finding("error", "catalog", msg)]
    return raw, data, []


def parse_catalog(data: Any, registry: StrategyRegistry, *, digest: str) -> Catalog:
    """Validate already-parsed catalog data.

    Raises:
        CatalogError: any entry is invalid, duplicated or names a plugin that is not installed.
    """
    definitions, findings = build_definitions(data, registry)
    if any(f.level == "error" for f in findings):
        raise CatalogError([f for f in findings if f.level == "error"])
    return Catalog(definitions, digest, findings)


def load_catalog(path: str | Path, registry: StrategyRegistry | None = None) -> Catalog:
    """Load and validate a ``strategies.yaml`` (``.yaml``/``.yml``) or JSON catalog.

    ``digest`` is the sha256 of the file's bytes (torghut reloads only when it changes).

    Raises:
        CatalogError: the file cannot be read or parsed, or any entry is invalid.
    """
    path = Path(path)
    raw, data, findings = _read_findings(path)
    if findings:
        raise CatalogError(findings)
    return parse_catalog(data, registry or default_registry(), digest=sha256_hex(raw))


def validate_catalog(path: str | Path, registry: StrategyRegistry | None = None) -> list[Finding]:
    """Return every finding about the catalog at ``path`` (empty when it is clean); never raises for it."""
    path = Path(path)
    _, data, findings = _read_findings(path)
    if findings:
        return findings
    return list(build_definitions(data, registry or default_registry())[1])
