"""Coverage-guided fuzzing of the catalog loader with atheris: ``python fuzz/fuzz_catalog.py -runs=N``.

The input is a YAML or JSON document (the first byte picks the suffix) written to a temporary file and
loaded with ``load_catalog``. The invariant is ``check_catalog_outcome``: a ``Catalog`` or a
``CatalogError`` naming the entry and the field, never another exception. Deep nesting, amounts of 1e20
or more, and alias bombs are known defects with their own tests (RecursionError, InvalidOperation, and an
unbounded message); the harness caps the document size and alias count and skips the first two.
``scripts/fuzz`` seeds the corpus with the example catalogs.
"""

from __future__ import annotations

import decimal
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
MAX_ALIASES = 16  # 2**16 references at most: an alias bomb (a known defect) needs more


def test_one_input(data: bytes) -> None:
    """Load one fuzzed catalog document and check the invariant."""
    if not data or len(data) > MAX_DOCUMENT or data.count(b"*") > MAX_ALIASES:
        return  # oversized, or enough aliases to build a bomb (a known defect)
    path = WORKDIR / f"catalog{SUFFIXES[data[0] % 3]}"
    path.write_bytes(data[1:])
    try:
        outcome: Catalog | BaseException = load_catalog(path, REGISTRY)
    except (RecursionError, decimal.InvalidOperation):
        return  # known defects, each with a strict-xfail test in tests/fuzz/test_catalog_hostile.py
    except Exception as exc:  # noqa: BLE001 - the invariant check reports any other exception
        outcome = exc
    check_catalog_outcome(outcome)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
