"""Synthetic market data: seeded sample ``ta_signals`` rows and the producer's indicator maths."""

from torghut.connectors.synthetic.generator import (
    DEFAULT_START,
    TA_SIGNAL_COLUMNS,
    generate_rows,
    symbol_names,
    write_sample_signals,
)
from torghut.connectors.synthetic.indicators import SignalIndicators

__all__ = [
    "DEFAULT_START",
    "TA_SIGNAL_COLUMNS",
    "SignalIndicators",
    "generate_rows",
    "symbol_names",
    "write_sample_signals",
]
