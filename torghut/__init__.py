"""torghut strategy engine: a deterministic multi-strategy trading decision engine on bytewax."""

__version__ = "0.1.0"
