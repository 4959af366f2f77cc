"""One process of a multi-process replay: ``python -m torghut.dataflow.worker SPEC INDEX ADDRESSES``."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

from bytewax.recovery import RecoveryConfig
from bytewax.testing import cluster_main

from torghut.dataflow.build import FlowSpec, build_replay_flow
from torghut.dataflow.gc_tuning import tuned_gc
from torghut.dataflow.progress import ProgressFiles


def main(argv: list[str]) -> int:
    """Build the flow from the spec file and run this process's worker of the cluster."""
    spec_path, index, addresses = Path(argv[0]), int(argv[1]), argv[2].split(";")
    spec = FlowSpec.model_validate_json(spec_path.read_text(encoding="utf-8"))
    flow = build_replay_flow(spec, ProgressFiles(spec.parts_dir))
    with tuned_gc():
        if spec.recovery_dir is None:
            cluster_main(flow, addresses, index)
        else:
            cluster_main(
                flow,
                addresses,
                index,
                epoch_interval=timedelta(seconds=spec.snapshot_interval_s),
                recovery_config=RecoveryConfig(spec.recovery_dir),
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
