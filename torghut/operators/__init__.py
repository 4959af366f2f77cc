"""One module per stage: thin bytewax wrappers over pure, unit-testable logic."""
