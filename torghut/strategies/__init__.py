"""The strategy plugin protocol, the registry, the catalog and the built-in strategies."""
