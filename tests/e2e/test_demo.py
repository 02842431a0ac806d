"""The demo end to end on the dev cluster: both rounds run and the table compares them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hybrid_lab.devcluster.testing import DevCluster

pytestmark = pytest.mark.e2e


def test_demo_runs_both_rounds_side_by_side(dev_cluster: DevCluster) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "hybrid_operator.cli",
            "demo",
            "--jobs",
            "8",
            "--time-scale",
            "120",
            "--timeout",
            "120",
        ],
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("workload: 8 jobs")
    assert any(
        line.startswith("hybrid-scheduler (binpack)") and "done   8" in line for line in lines
    )
    assert any(line.startswith("kube-scheduler") and "done   8" in line for line in lines)
    completed = next(line for line in lines if line.startswith("jobs completed"))
    assert completed.split()[-2:] == ["8/8", "8/8"]
    # The simulator's prediction for the same jobs, beside the measured ratio.
    measured = next(line for line in lines if line.startswith("measured on the dev cluster"))
    ours, theirs, ratio = (float(x) for x in measured.split()[-3:])
    # The times are printed to 0.1 s, the ratio from the unrounded times.
    assert abs(ratio - ours / theirs) <= ratio * (0.05 / ours + 0.05 / theirs) + 5e-4
    assert any(line.startswith("predicted, uniform node speed") for line in lines)
    assert any(line.startswith("predicted, node performance 50-100") for line in lines)
