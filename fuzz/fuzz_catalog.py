"""Coverage-guided fuzzing of the catalog loader with atheris: ``python fuzz/fuzz_catalog.py -runs=N``.

The input is a YAML or JSON document (the first byte picks the suffix) written to a temporary file and
loaded with ``load_catalog``. The invariant is ``check_catalog_outcome``: a ``Catalog`` or a
``CatalogError`` naming the entry and the field, never another exception (deep nesting, huge amounts and
alias bombs included); the harness caps the document size only. ``scripts/fuzz`` seeds the corpus with
the example catalogs.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

with atheris.instrument_imports(include=["torghut"]):
    from tests.fuzz.hostile import check_catalog_outcome
    from torghut.strategies.catalog import Catalog, load_catalog
    from torghut.strategies.config import RegistryConfig
    from torghut.strategies.registry import default_registry

REGISTRY = default_registry(RegistryConfig(entry_points=False))
WORKDIR = Path(tempfile.mkdtemp(prefix="fuzz_catalog_"))
SUFFIXES = (".yaml", ".yml", ".json")
MAX_DOCUMENT = 8192


def test_one_input(data: bytes) -> None:
    """Load one fuzzed catalog document and check the invariant."""
    if not data or len(data) > MAX_DOCUMENT:
        return
    path = WORKDIR / f"catalog{SUFFIXES[data[0] % 3]}"
    path.write_bytes(data[1:])
    try:
        outcome: Catalog | BaseException = load_catalog(path, REGISTRY)
    except Exception as exc:  # noqa: BLE001 - the invariant check reports any other exception
        outcome = exc
    check_catalog_outcome(outcome)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
