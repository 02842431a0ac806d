"""Objects that go away under the operator on the dev cluster: a pod deleted while it is
pending, and a node deleted with pods on it and pods waiting for it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hybrid_lab.devcluster.nodes import node_manifest
from hybrid_lab.devcluster.scenario import NodeSpec
from hybrid_lab.devcluster.testing import DevCluster
from hybrid_lab.devcluster.workload import training_pod, wait_for
from operator_helpers import (
    bound_node,
    events,
    free_port,
    instance_args,
    metric_value,
    running_operator,
)

pytestmark = pytest.mark.e2e

TAINT_KEY = "hybrid-scheduler.io/e2e-lifecycle"


@pytest.fixture
def own_nodes(dev_cluster: DevCluster) -> Iterator[list[str]]:
    """Two extra 8-GPU kwok nodes, tainted so that only this test's pods go there."""
    suffix = uuid.uuid4().hex[:6]
    names = [f"lifecycle-{suffix}-{i}" for i in range(2)]
    api = dev_cluster.admin
    try:
        yield names
    finally:
        # Pods bound to a deleted node would stay Running until the pod garbage collector
        # comes round; later tests count running pods per node, so they go now.
        for name in names:
            for pod in api.items("/api/v1/pods", fieldSelector=f"spec.nodeName={name}"):
                meta = pod["metadata"]
                path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
                api.call("DELETE", path, params={"gracePeriodSeconds": "0"}, allow=(404,))
            api.call("DELETE", f"/api/v1/nodes/{name}", allow=(404,))


def _add_node(api: Any, name: str) -> None:
    node = node_manifest(NodeSpec(name, gpus=8, cpu=64, memory_gib=512, performance=100))
    node["spec"]["taints"] = [{"key": TAINT_KEY, "value": "yes", "effect": "NoSchedule"}]
    api.create("/api/v1/nodes", node)
    wait_for(
        f"node {name} to be ready",
        lambda: (
            True
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in api.get(f"/api/v1/nodes/{name}").get("status", {}).get("conditions", [])
            )
            else None
        ),
        30,
    )


def _pod_for(api: Any, pods: str, name: str, node: str, scheduler: str) -> None:
    body = training_pod(
        name, gpus=8, cpu="4", memory="32Gi", runtime="600s", node=node, scheduler_name=scheduler
    )
    body["spec"]["tolerations"] = [{"key": TAINT_KEY, "operator": "Exists"}]
    api.create(pods, body)


def _gone(api: Any, path: str) -> bool | None:
    """True once ``path`` answers 404 (``wait_for`` keeps waiting on None)."""
    return True if api.call("GET", path, allow=(404,)).get("code") == 404 else None


def _failed_scheduling(api: Any, namespace: str, pod: str) -> list[dict[str, Any]]:
    return [e for e in events(api, namespace, pod) if e["reason"] == "FailedScheduling"]


def test_a_pending_pod_deleted_and_a_node_deleted_are_handled(
    dev_cluster: DevCluster, namespace: str, own_nodes: list[str], tmp_path: Path
) -> None:
    api = dev_cluster.admin
    pods = f"/api/v1/namespaces/{namespace}/pods"
    first, second = own_nodes
    scheduler = f"lifecycle-{uuid.uuid4().hex[:6]}"
    _add_node(api, first)
    log = tmp_path / "operator.log"
    port = free_port()
    pending_url = f"http://127.0.0.1:{port}/metrics"
    args = instance_args(scheduler, "--http-host", "127.0.0.1", "--http-port", str(port))

    def pending(count: int) -> bool | None:
        return metric_value(pending_url, "hybrid_scheduler_pending_pods") == count or None

    with running_operator(dev_cluster, log, *args):
        # The node's 8 GPUs go to the first pod; the second waits for them.
        _pod_for(api, pods, "holder", first, scheduler)
        assert bound_node(api, pods, "holder") == first
        _pod_for(api, pods, "waiting", first, scheduler)
        wait_for("waiting to be refused", lambda: _failed_scheduling(api, namespace, "waiting"), 30)
        wait_for("one pod in the operator's queue", lambda: pending(1), 30)

        # Deleted while pending: it leaves the queue, nothing is bound under its name.
        api.call("DELETE", f"{pods}/waiting", params={"gracePeriodSeconds": "0"})
        wait_for("waiting to be gone", lambda: _gone(api, f"{pods}/waiting"), 30)
        wait_for("the operator's queue to be empty", lambda: pending(0), 30)

        # A pod that can only go to the node, then the node is deleted under both pods.
        _pod_for(api, pods, "stranded", first, scheduler)
        wait_for(
            "stranded to be refused", lambda: _failed_scheduling(api, namespace, "stranded"), 30
        )
        api.call("DELETE", f"/api/v1/nodes/{first}")
        wait_for(f"{first} to be gone", lambda: _gone(api, f"/api/v1/nodes/{first}"), 30)
        # With the node gone, a pod for a new node of the same pool lands there.
        _pod_for(api, pods, "moved", second, scheduler)
        _add_node(api, second)
        assert bound_node(api, pods, "moved") == second
        # The pod pinned to the deleted node is now refused for its selector, not for GPUs:
        # the node left the operator's cache, and the pod is never bound.
        wait_for(
            "stranded to be refused for its node selector",
            lambda: [
                e
                for e in _failed_scheduling(api, namespace, "stranded")
                if "didn't match Pod's node affinity/selector" in e["message"]
            ],
            30,
        )
        assert not api.get(f"{pods}/stranded")["spec"].get("nodeName")

    text = log.read_text()
    assert "Traceback" not in text
    assert _gone(api, f"{pods}/waiting")
    # One attempt per pod at most, and the deleted pod was never bound.
    scheduled = [e for e in events(api, namespace, "waiting") if e["reason"] == "Scheduled"]
    assert scheduled == []
