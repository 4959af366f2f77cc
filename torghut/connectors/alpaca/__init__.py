"""Alpaca brokerage: connection settings, error classification and the execution adapter."""

from torghut.connectors.alpaca.adapter import ADAPTER_NAME, AlpacaAdapter, OrderFirewallToken
from torghut.connectors.alpaca.config import AlpacaConfig, TradingMode
from torghut.connectors.alpaca.errors import (
    AlpacaError,
    BrokerFailure,
    OrderFirewallBoundaryViolation,
    classify,
    is_retryable,
    rejection_reason,
)

__all__ = [
    "ADAPTER_NAME",
    "AlpacaAdapter",
    "AlpacaConfig",
    "AlpacaError",
    "BrokerFailure",
    "OrderFirewallBoundaryViolation",
    "OrderFirewallToken",
    "TradingMode",
    "classify",
    "is_retryable",
    "rejection_reason",
]
