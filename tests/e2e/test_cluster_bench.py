"""The cluster benchmark end to end at a small scale: both schedulers' rounds run on the
dev cluster, every pod is bound exactly once, and the output has every field. Speed is
the benchmark's business, not this test's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hybrid_lab.devcluster.testing import DevCluster

pytestmark = pytest.mark.e2e

BURST, RATE, DURATION = 60, 10, 3


def test_cluster_bench_runs_both_schedulers_and_binds_every_pod_once(
    dev_cluster: DevCluster, tmp_path: Path
) -> None:
    out_json = tmp_path / "bench.json"
    # CPU-only pods: the session cluster's GPUs are left to the other tests.
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "hybrid_operator.cli",
            "cluster-bench",
            "--burst",
            str(BURST),
            "--rate",
            str(RATE),
            "--duration",
            str(DURATION),
            "--gpus",
            "0",
            "--runtime",
            "1",
            "--timeout",
            "120",
            "--json",
            str(out_json),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=500,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(line.startswith("parameters: burst 60 pods") and "seed 0" in line for line in lines)
    header = next(line for line in lines if line.startswith("scheduler "))
    for field in ("burst pods/s", "steady p50 (s)", "p99 (s)", "calls/pod"):
        assert field in header
    assert any(line.startswith("kube-scheduler ") for line in lines)
    assert any(line.startswith("hybrid-scheduler (kube-default) ") for line in lines)
    data = json.loads(out_json.read_text())
    assert data["params"]["burst_pods"] == BURST
    assert data["params"]["steady_pods"] == RATE * DURATION
    assert data["environment"]["nodes"] >= 1
    labels = [r["label"] for r in data["results"]]
    assert labels == ["kube-scheduler", "hybrid-scheduler (kube-default)"]
    for result in data["results"]:
        assert result["error"] is None
        burst, steady = result["burst"], result["steady"]
        assert burst["bound"] == burst["pods"] == BURST
        assert steady["bound"] == steady["pods"] == RATE * DURATION
        # Bound exactly once: the node never changes, and the API server took one binding
        # per pod (a second attempt would be counted even if refused).
        assert burst["node_changes"] == steady["node_changes"] == 0
        assert burst["calls"]["bindings"] == BURST
        assert steady["calls"]["bindings"] == RATE * DURATION
        assert burst["pods_per_s"] > 0
        assert 0 <= steady["latency_p50_s"] <= steady["latency_p99_s"] <= steady["latency_max_s"]
