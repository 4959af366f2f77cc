"""Builds the bytewax flow from one configuration tree: the only place that wires steps."""
