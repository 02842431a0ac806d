"""End to end: a wide pod behind a stream of small pods gets a reservation with
``--policy hybrid-reserve``: ``status.nominatedNodeName``, one ``Reserved`` Event, and its
node no later than the predicted start plus one pass."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from hybrid_lab.demo_reservation import estimated_pod, fill_nodes, predicted_start_s, wait_running
from hybrid_lab.devcluster.testing import DevCluster
from hybrid_lab.devcluster.workload import fresh_namespace, wait_for
from hybrid_operator.k8s.convert import PERFORMANCE_LABEL
from operator_helpers import decision, events, instance_args, running_operator

pytestmark = pytest.mark.e2e
SCHEDULER = "hybrid-scheduler-reserve"
#: The operator's pass interval (operator_helpers runs it with --batch-interval 0.5).
PASS_S = 0.5
#: Kubernetes writes times in whole seconds: a start time read back is up to 1 s early.
WHOLE_SECONDS = 1.0
#: Run times (s) of the four 2-GPU pods on the node that drains first; the other nodes
#: stay full for BUSY_S.
DRAINING_S = (6, 8, 10, 12)
BUSY_S = 40
STREAM = 16


@contextmanager
def _namespaces(dev_cluster: DevCluster, *teams: str) -> Iterator[list[str]]:
    suffix = f"{time.time_ns() % 10**8}"
    with ExitStack() as stack:
        yield [
            stack.enter_context(fresh_namespace(dev_cluster.admin, f"e2e-{team}-{suffix}"))
            for team in teams
        ]


def _explain(dev_cluster: DevCluster, key: str) -> subprocess.Popen[str]:
    """``hybrid-scheduler explain`` started in the background."""
    kubeconfig = str(dev_cluster.settings.kubeconfig)
    command = [sys.executable, "-m", "hybrid_operator.cli", "explain", key]
    return subprocess.Popen(
        [*command, "--kubeconfig", kubeconfig],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_wide_pod_behind_a_stream_of_small_pods_gets_its_reservation(
    dev_cluster: DevCluster, tmp_path: Path
) -> None:
    api = dev_cluster.admin
    nodes = api.items("/api/v1/nodes")
    performance = {
        n["metadata"]["name"]: float(n["metadata"]["labels"][PERFORMANCE_LABEL]) for n in nodes
    }
    draining = sorted(performance)[-1]
    args = instance_args(SCHEDULER, "--policy", "hybrid-reserve", "--no-leader-election")
    with (
        _namespaces(dev_cluster, "fill", "wide", "stream") as (fill, wide_ns, stream),
        running_operator(dev_cluster, tmp_path / "operator.log", *args) as log,
    ):
        # Four 2-GPU pods pinned on every node; the last node drains first.
        names = fill_nodes(api, fill, performance, DRAINING_S, BUSY_S, SCHEDULER)
        wait_running(api, fill, names, 30)
        wide = f"/api/v1/namespaces/{wide_ns}/pods/wide"
        api.create(f"/api/v1/namespaces/{wide_ns}/pods", estimated_pod("wide", 8, 5, 5, SCHEDULER))
        nominated = wait_for(
            "the wide pod's nominated node",
            lambda: api.get(wide)["status"].get("nominatedNodeName"),
            10,
        )
        explaining = _explain(dev_cluster, f"{wide_ns}/wide")
        for i in range(STREAM):  # small pods of another team keep coming while it drains
            api.create(
                f"/api/v1/namespaces/{stream}/pods",
                estimated_pod(f"small-{i}", 2, 30, 30, SCHEDULER),
            )
            time.sleep(0.5)
        out, err = explaining.communicate(timeout=60)
        node = wait_for("the wide pod's binding", lambda: api.get(wide)["spec"].get("nodeName"), 30)
        record = decision(api, f"/api/v1/namespaces/{wide_ns}/pods", "wide")
        wait_for(
            "the nominated node to be cleared",
            lambda: True if not api.get(wide)["status"].get("nominatedNodeName") else None,
            10,
        )
        reserved = [e for e in events(api, wide_ns, "wide") if e["reason"] == "Reserved"]
    assert "Traceback" not in log.read_text()
    assert explaining.returncode == 0, err
    assert f"pending:         node {nominated} is reserved for it" in out
    assert f"queue position:  1st in {wide_ns}'s queue" in out
    assert nominated == node == draining
    assert len(reserved) == 1 and reserved[0]["type"] == "Normal"
    assert reserved[0]["message"].startswith(f"waiting for {node}: predicted start in ")
    assert record["at"] <= predicted_start_s(reserved[0]) + WHOLE_SECONDS * 2 + PASS_S
