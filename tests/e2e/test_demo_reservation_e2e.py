"""The demo's reservation round end to end: under ``hybrid-reserve`` the wide pod reserves
a node, gets its ``Reserved`` Event and starts no later than predicted plus one pass, and
it waits longer under kube-scheduler."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hybrid_lab.devcluster.testing import DevCluster

pytestmark = pytest.mark.e2e
#: Small times: one node empties 3-6 s after the fill, the others after 16 s; the small
#: pods run long enough that hybrid-reserve does not backfill them on the reserved node.
ARGS = ["--busy", "16", "--drain", "6", "--stream", "12", "--small-runtime", "12"]


def _table_row(lines: list[str], name: str) -> tuple[float, float]:
    row = next(line for line in lines if line.startswith(name))
    ours, theirs = row.split()[-2:]
    return float(ours), float(theirs)


def test_the_reservation_round_shows_the_reservation_and_both_schedulers(
    dev_cluster: DevCluster,
) -> None:
    command = [sys.executable, "-m", "hybrid_operator.cli", "demo", "--round", "reservation"]
    out = subprocess.run(
        [*command, *ARGS, "--timeout", "60"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    reserved = next(line for line in lines if line.startswith("reserved: "))
    node = reserved.split()[1]
    assert node.startswith("node-"), reserved
    assert f"status.nominatedNodeName {node}" in reserved
    assert any(line.startswith(f"waiting for {node}: predicted start in ") for line in lines)
    bound = next(line for line in lines if line.startswith("bound: demo-team-a/wide on "))
    assert bound.startswith(f"bound: demo-team-a/wide on {node} at "), bound
    assert "started no later than predicted plus one pass: yes " in out.stdout
    ours, theirs = _table_row(lines, "wide pod's wait (s)")
    assert theirs > ours > 0
    completed = next(line for line in lines if line.startswith("pods completed"))
    assert completed.split()[-2:] == ["13/13", "13/13"]
