"""Hostile-input fuzzing: hypothesis tests with fixed budgets, shared with the atheris harnesses in fuzz/."""
