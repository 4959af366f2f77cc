"""Frozen, typed data contracts and the canonical hashing every hash in the engine uses."""

from torghut.contracts.account import AccountEvent, AccountSnapshot, AccountView, Fill
from torghut.contracts.features import (
    FEATURE_SCHEMA_VERSION_V3,
    REQUIRED_FEATURES_V3,
    VALUE_FIELD_SET_V3,
    VALUE_FIELDS_V3,
    FeatureVectorV3,
    normalization_hash,
)
from torghut.contracts.frozen import FrozenMap, freeze
from torghut.contracts.hashing import StreamDigest, canonical_json, json_safe, sha256_hex, to_jsonable
from torghut.contracts.portfolio import LosingIntent, OrderIntent, PortfolioIntent, SymbolIntent
from torghut.contracts.signal import (
    DeadLetter,
    InputPosition,
    SignalEnvelope,
    SymbolProgress,
    SymbolWatermark,
)
from torghut.contracts.strategy import (
    Direction,
    StrategyDefinition,
    StrategyError,
    StrategyId,
    StrategyIntent,
)

__all__ = [
    "FEATURE_SCHEMA_VERSION_V3",
    "REQUIRED_FEATURES_V3",
    "VALUE_FIELDS_V3",
    "VALUE_FIELD_SET_V3",
    "AccountEvent",
    "AccountSnapshot",
    "AccountView",
    "DeadLetter",
    "Direction",
    "FeatureVectorV3",
    "Fill",
    "FrozenMap",
    "InputPosition",
    "LosingIntent",
    "OrderIntent",
    "PortfolioIntent",
    "SignalEnvelope",
    "StrategyDefinition",
    "StrategyError",
    "StrategyId",
    "StrategyIntent",
    "StreamDigest",
    "SymbolIntent",
    "SymbolProgress",
    "SymbolWatermark",
    "canonical_json",
    "freeze",
    "json_safe",
    "normalization_hash",
    "sha256_hex",
    "to_jsonable",
]
