"""The peers' comparison end to end on a small stream: every scheduler runs the same Jobs
on the session cluster's nodes (peers started for this module), and a gang too wide for
the cluster is measured as each scheduler fails on it. The command's table, JSON and
figure come out of one short run. Speed is the benchmark's business, not this test's."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hybrid_lab.clusterbench.compare.configs import SchedulerKind
from hybrid_lab.clusterbench.compare.prediction import capacity, node_infos
from hybrid_lab.clusterbench.compare.rounds import RoundResult, RoundSetup, run_rounds
from hybrid_lab.clusterbench.compare.stream import StreamJob, Team
from hybrid_lab.clusterbench.schedulers import ClientLimits
from hybrid_lab.devcluster.errors import DevClusterError
from hybrid_lab.devcluster.testing import DevCluster, peers_running
from hybrid_policy.resources import CPU, GIB, GPU, MEMORY

pytestmark = pytest.mark.e2e
TEAMS = (Team("team-a", 1), Team("team-b", 2))
LIMITS = ClientLimits(qps=50, burst=100, batch_interval_s=0.5, batch_size=100)


@pytest.fixture(scope="module")
def peers(dev_cluster: DevCluster) -> Iterator[DevCluster]:
    try:
        with peers_running(dev_cluster) as running:
            yield running
    except DevClusterError as err:
        pytest.fail(f"peers: {err}", pytrace=False)


def job(name: str, team: str, submit_s: float, gpus: int, pods: int = 1) -> StreamJob:
    requests = {GPU: gpus, CPU: 1000, MEMORY: GIB}
    return StreamJob(name, team, submit_s, 3.0, pods, requests, "nlp")


def rounds(
    cluster: DevCluster, stream: list[StreamJob], kinds: list[SchedulerKind], tmp: Path, t: float
) -> list[RoundResult]:
    nodes = node_infos(cluster.admin.items("/api/v1/nodes", labelSelector="type=kwok"))
    setup = RoundSetup(stream, TEAMS, capacity(nodes), 5.0, t, LIMITS, "hybrid", tmp)
    return run_rounds(cluster.admin, cluster.settings, kinds, setup, print)


def test_every_scheduler_runs_the_same_small_stream_to_the_end(
    peers: DevCluster, tmp_path: Path
) -> None:
    stream = [
        job("job-00000", "team-a", 0.0, 4),
        job("job-00001", "team-b", 0.5, 2),
        job("job-00002", "team-b", 1.0, 8, pods=2),
        job("job-00003", "team-a", 1.5, 1),
    ]
    kinds = list(SchedulerKind)
    results = rounds(peers, stream, kinds, tmp_path, 120.0)
    assert [r.scheduler for r in results] == kinds
    for result in results:
        assert result.skipped is None and result.stopped is None, result
        metrics = result.metrics
        assert metrics is not None
        assert (metrics.finished, metrics.jobs_left, metrics.pods_bound) == (4, 0, 5)
        # Every Job ran its 3 s once bound; nothing can finish sooner.
        assert metrics.jct_mean_s >= 3.0
        assert 0.0 <= metrics.wait_mean_s < metrics.jct_mean_s
        # The scheduler was ready before the first Job: no wait for its start-up.
        assert metrics.wait_mean_s < 30.0
        assert 0.0 < metrics.jain <= 1.0
        assert result.usage is not None and result.usage.peak_rss_bytes > 0
        assert result.calls_per_pod["bindings"] == 1.0
        assert result.logs and all(Path(log).exists() for log in result.logs)
    # Nothing of any round is left on the nodes.
    assert (
        peers.admin.items("/api/v1/pods", labelSelector="hybrid-scheduler.io/compare-round") == []
    )


def test_a_gang_wider_than_the_cluster_is_measured_as_each_scheduler_fails_on_it(
    peers: DevCluster, tmp_path: Path
) -> None:
    nodes = node_infos(peers.admin.items("/api/v1/nodes", labelSelector="type=kwok"))
    too_wide = job("job-00000", "team-a", 0.0, 8, pods=len(nodes) + 1)
    kinds = [SchedulerKind.KUBE_SCHEDULER, SchedulerKind.SCHEDULER_PLUGINS]
    results = rounds(peers, [too_wide], kinds, tmp_path, 15.0)
    by_kind = {r.scheduler: r for r in results}
    # kube-scheduler binds the pods that fit, which hold their GPUs for nothing until the
    # last one is bound; kwok runs each pod on its own, so the last starts when the first
    # have ended and the Job finishes late instead of never.
    plain = by_kind[SchedulerKind.KUBE_SCHEDULER].metrics
    assert plain is not None and plain.pods_bound == len(nodes) + 1
    assert plain.partial_gang_gpu_s >= 8 * len(nodes) * 3.0
    assert plain.wait_mean_s >= 3.0
    # Coscheduling binds none of the group: the Job is left when the round times out.
    coscheduled = by_kind[SchedulerKind.SCHEDULER_PLUGINS]
    assert coscheduled.metrics is not None
    assert (coscheduled.metrics.pods_bound, coscheduled.metrics.partial_gang_gpu_s) == (0, 0.0)
    assert coscheduled.metrics.jobs_left == 1
    assert coscheduled.stopped is not None and "1 jobs left" in coscheduled.stopped


def test_the_command_prints_the_table_and_writes_json_and_figure(
    peers: DevCluster, tmp_path: Path
) -> None:
    out_json, figure = tmp_path / "compare.json", tmp_path / "compare.png"
    argv = ["cluster-bench", "--compare", "kube-scheduler,kueue", "--max-jobs", "3"]
    argv += ["--time-scale", "120", "--timeout", "120", "--seed", "10"]
    argv += ["--json", str(out_json), "--figure", str(figure), "--quiet"]
    out = subprocess.run(
        [sys.executable, "-m", "hybrid_operator.cli", *argv],
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    header = next(line for line in out.stdout.splitlines() if line.startswith("scheduler "))
    for column in ("JCT mean", "wait p95", "Jain", "gang GPU-s", "writes/pod", "RSS MiB"):
        assert column in header
    assert any(line.startswith("  sim: kube-default") for line in out.stdout.splitlines())
    data = json.loads(out_json.read_text())
    assert data["parameters"]["jobs"] == 3
    assert [r["scheduler"] for r in data["rounds"]] == ["kube-scheduler", "kueue"]
    for row in data["rounds"]:
        assert row["metrics"]["finished"] == 3, row
    assert data["rounds"][0]["prediction"]["policy"] == "kube-default"
    assert data["rounds"][1]["prediction"] is None
    assert figure.read_bytes().startswith(b"\x89PNG")
