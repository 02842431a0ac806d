"""Objects ``up`` creates through the API server: kwok nodes and RBAC bindings.

Nodes are plain ``v1.Node`` objects with the scenario's capacity, the performance label
and kwok's annotation, without taints, so pods need no tolerations. kwok then marks them
Ready and keeps their leases.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hybrid_lab.devcluster.apiserver import ApiServer
from hybrid_lab.devcluster.errors import StartupError
from hybrid_lab.devcluster.scenario import NodeSpec

PERFORMANCE_LABEL = "hybrid-scheduler.io/performance"
NODE_TYPE_LABEL = "type"
NODE_TYPE = "kwok"
KWOK_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
PODS_PER_NODE = 110
CREATE_THREADS = 8
RBAC_BINDINGS = (
    ("hybrid-scheduler-dev-viewers", "view", "hybrid-scheduler:viewers"),
    ("hybrid-scheduler-dev-developers", "edit", "hybrid-scheduler:developers"),
)


def node_manifest(node: NodeSpec) -> dict[str, Any]:
    """The Node object for one simulated node."""
    capacity = {
        "cpu": str(node.cpu),
        "memory": f"{node.memory_gib}Gi",
        "pods": str(PODS_PER_NODE),
        "nvidia.com/gpu": str(node.gpus),
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node.name,
            "labels": {
                NODE_TYPE_LABEL: NODE_TYPE,
                PERFORMANCE_LABEL: str(node.performance),
                "kubernetes.io/hostname": node.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
            },
            "annotations": {
                KWOK_ANNOTATION[0]: KWOK_ANNOTATION[1],
                "node.alpha.kubernetes.io/ttl": "0",
            },
        },
        "spec": {},
        "status": {"capacity": capacity, "allocatable": dict(capacity)},
    }


def create_nodes(
    api: ApiServer, nodes: Sequence[NodeSpec], progress: Callable[[int], object]
) -> None:
    """Create every node (an existing node of the same name is left as it is)."""

    def create(node: NodeSpec) -> None:
        api.create("/api/v1/nodes", node_manifest(node), exist_ok=True)
        progress(1)

    with ThreadPoolExecutor(max_workers=CREATE_THREADS) as pool:
        for _ in pool.map(create, nodes):
            pass


def ready_node_names(api: ApiServer) -> set[str]:
    """Names of our kwok nodes whose Ready condition is True."""
    items = api.items("/api/v1/nodes", labelSelector=f"{NODE_TYPE_LABEL}={NODE_TYPE}")
    ready = set()
    for item in items:
        conditions = item.get("status", {}).get("conditions") or []
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            ready.add(item["metadata"]["name"])
    return ready


def wait_nodes_ready(
    api: ApiServer,
    nodes: Sequence[NodeSpec],
    timeout_seconds: float,
    progress: Callable[[int], object],
) -> None:
    """Wait until kwok has marked every node Ready."""
    wanted = {node.name for node in nodes}
    seen = 0
    deadline = time.monotonic() + timeout_seconds
    while True:
        ready = len(wanted & ready_node_names(api))
        progress(ready - seen)
        seen = ready
        if ready == len(wanted):
            return
        if time.monotonic() > deadline:
            raise StartupError(
                f"only {ready} of {len(wanted)} nodes became Ready within "
                f"{timeout_seconds:.0f} s; see the kwok log"
            )
        time.sleep(0.5)


def bind_test_identities(api: ApiServer) -> None:
    """Bind the non-admin groups to the built-in ``view`` and ``edit`` roles."""
    for name, role, group in RBAC_BINDINGS:
        body: dict[str, Any] = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": role,
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}],
        }
        api.create("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", body, exist_ok=True)


def wait_default_service_account(api: ApiServer, timeout_seconds: float) -> None:
    """Wait for the controller manager to create ``default/default`` (pods need it)."""
    deadline = time.monotonic() + timeout_seconds
    path = "/api/v1/namespaces/default/serviceaccounts/default"
    while True:
        if api.call("GET", path, allow=(404,)).get("kind") == "ServiceAccount":
            return
        if time.monotonic() > deadline:
            raise StartupError(
                "the controller manager did not create the default service "
                "account in time; see its log"
            )
        time.sleep(0.5)
