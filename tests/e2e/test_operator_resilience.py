"""The operator under stress on the dev cluster: killed in the middle of its work and
restarted, and namespaces with different weights contending for the same GPUs."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from hybrid_operator.devcluster.testing import (
    DevCluster,
    recreate_namespaces,
    training_pod,
    wait_for,
)
from operator_helpers import events, instance_args, operator_process, running_operator

pytestmark = pytest.mark.e2e


def _pods(api: Any, namespace: str) -> list[dict[str, Any]]:
    return list(api.items(f"/api/v1/namespaces/{namespace}/pods"))


def test_killed_mid_batch_and_restarted_every_pod_is_bound_once(
    dev_cluster: DevCluster, namespace: str, tmp_path: Path
) -> None:
    api = dev_cluster.admin
    name = "hybrid-scheduler-restart"
    args = instance_args(name, "--batch-size", "5")
    pods = f"/api/v1/namespaces/{namespace}/pods"
    for i in range(30):
        api.create(
            pods,
            training_pod(
                f"p-{i}", gpus=1, cpu="1", memory="1Gi", runtime="3s", scheduler_name=name
            ),
        )
    with operator_process(dev_cluster, tmp_path / "first.log", *args) as first:

        def some_bound() -> bool | None:
            bound = sum(1 for p in _pods(api, namespace) if p["spec"].get("nodeName"))
            return True if 0 < bound < 30 else None

        wait_for("a few bindings", some_bound, 30)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    with running_operator(dev_cluster, tmp_path / "second.log", *args):

        def all_succeeded() -> bool | None:
            return (
                True
                if all(p["status"].get("phase") == "Succeeded" for p in _pods(api, namespace))
                else None
            )

        wait_for("every pod to succeed", all_succeeded, 120)
    for i in range(30):
        scheduled = [e for e in events(api, namespace, f"p-{i}") if e["reason"] == "Scheduled"]
        assert len(scheduled) <= 1, f"p-{i} was reported bound {len(scheduled)} times"
    assert "Traceback" not in (tmp_path / "second.log").read_text()


def test_gpu_shares_under_contention_follow_the_weights(
    dev_cluster: DevCluster, tmp_path: Path
) -> None:
    api = dev_cluster.admin
    name = "hybrid-scheduler-drf"
    total = sum(
        int(n["status"]["allocatable"]["nvidia.com/gpu"])
        for n in api.items("/api/v1/nodes", labelSelector="type=kwok")
    )
    teams = {"e2e-light": 1.0, "e2e-heavy": 3.0}
    recreate_namespaces(api, teams)
    try:
        # Both teams ask for the whole cluster, one GPU per pod, for longer than the test.
        for team in teams:
            for i in range(total):
                api.create(
                    f"/api/v1/namespaces/{team}/pods",
                    training_pod(
                        f"g-{i}", gpus=1, cpu="1", memory="1Gi", runtime="300s", scheduler_name=name
                    ),
                )
        args = instance_args(name, "--policy", "drf")
        with running_operator(dev_cluster, tmp_path / "operator.log", *args):

            def held() -> dict[str, int] | None:
                counts = {
                    t: sum(1 for p in _pods(api, t) if p["spec"].get("nodeName")) for t in teams
                }
                return counts if sum(counts.values()) == total else None

            counts = wait_for("the cluster to fill up", held, 60)
        # Weighted dominant-resource fairness: 1 : 3 of the GPUs, to within one pod.
        assert abs(counts["e2e-light"] - total / 4) <= 1
        assert abs(counts["e2e-heavy"] - 3 * total / 4) <= 1
    finally:
        for team in teams:
            api.call("DELETE", f"/api/v1/namespaces/{team}", allow=(404,))
