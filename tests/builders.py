"""Builders for test nodes and pods, with sensible defaults."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from hybrid_operator.k8s.problems import Conversion
from hybrid_policy.constraints import NO_CONSTRAINTS, PlacementConstraints
from hybrid_policy.domain import Gang, NodeInfo, PendingPod, Taint, Toleration
from hybrid_policy.resources import CPU, GIB, GPU, MEMORY


def make_node(
    name: str,
    gpus: int = 8,
    cpu: int = 64,
    memory_gib: int = 512,
    *,
    labels: Mapping[str, str] | None = None,
    taints: tuple[Taint, ...] = (),
    ready: bool = True,
    unschedulable: bool = False,
    performance: float = 100.0,
    max_pods: int = 110,
) -> NodeInfo:
    return NodeInfo(
        name=name,
        allocatable={CPU: cpu * 1000, MEMORY: memory_gib * GIB, GPU: gpus},
        labels=dict(labels or {}),
        taints=taints,
        ready=ready,
        unschedulable=unschedulable,
        performance=performance,
        max_pods=max_pods,
    )


def make_pod(
    name: str,
    gpus: int = 1,
    cpu: int = 4,
    memory_gib: int = 16,
    *,
    namespace: str = "team-a",
    priority: int = 0,
    created_at_s: float = 0.0,
    tolerations: tuple[Toleration, ...] = (),
    node_selector: Mapping[str, str] | None = None,
    extra: Mapping[str, int] | None = None,
    labels: Mapping[str, str] | None = None,
    constraints: PlacementConstraints = NO_CONSTRAINTS,
    gang: Gang | None = None,
) -> PendingPod:
    requests = {CPU: cpu * 1000, MEMORY: memory_gib * GIB, GPU: gpus, **(extra or {})}
    return PendingPod(
        namespace=namespace,
        name=name,
        uid=f"uid-{namespace}-{name}",
        requests={k: v for k, v in requests.items() if v},
        created_at_s=created_at_s,
        priority=priority,
        tolerations=tolerations,
        node_selector=dict(node_selector or {}),
        labels=dict(labels or {}),
        constraints=constraints,
        gang=gang,
    )


def k8s_node(name: str, gpus: int = 8) -> dict[str, Any]:
    """A Ready node object as the API server returns it."""
    return {
        "metadata": {"name": name},
        "status": {
            "allocatable": {
                "cpu": "64",
                "memory": "512Gi",
                "nvidia.com/gpu": str(gpus),
                "pods": "110",
            },
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def k8s_pod(
    name: str,
    gpus: int = 1,
    node: str | None = None,
    phase: str = "Pending",
    scheduler: str = "hybrid-scheduler",
    ns: str = "team-a",
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    status: Mapping[str, Any] | None = None,
    owner: str | None = None,
) -> dict[str, Any]:
    """A pod object requesting ``gpus`` GPUs and one CPU, optionally bound to ``node``,
    with extra ``labels``, ``annotations``, ``status`` fields and a controller ``owner``."""
    spec: dict[str, Any] = {
        "schedulerName": scheduler,
        "containers": [{"resources": {"requests": {"nvidia.com/gpu": str(gpus), "cpu": "1"}}}],
    }
    if node:
        spec["nodeName"] = node
    meta: dict[str, Any] = {"name": name, "namespace": ns, "uid": f"uid-{name}"}
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    if owner:
        meta["ownerReferences"] = [{"kind": "Job", "name": owner, "controller": True}]
    return {"metadata": meta, "spec": spec, "status": {"phase": phase, **(status or {})}}


def rfc3339(at_s: float) -> str:
    """Seconds since the epoch as the API server writes times."""
    return datetime.fromtimestamp(at_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def finished_status(started_s: float, finished_s: float) -> dict[str, Any]:
    """``status`` fields of a pod that ran from ``started_s`` to ``finished_s``."""
    terminated = {"state": {"terminated": {"exitCode": 0, "finishedAt": rfc3339(finished_s)}}}
    return {"startTime": rfc3339(started_s), "containerStatuses": [terminated]}


T = TypeVar("T")


def usable(conversion: Conversion[T]) -> T:
    """The converted value of a well-formed test object (fails the test if refused)."""
    value, problems = conversion
    assert value is not None, problems
    return value


def scenario_doc() -> dict[str, Any]:
    """The smallest valid generated-scenario document: one node, one team, one task type,
    one level (tests add or break one field at a time)."""
    return {
        "name": "x",
        "horizon_hours": 1,
        "nodes": [{"count": 1, "gpus": 8, "cpu": 8, "memory_gib": 8}],
        "namespaces": [{"name": "a", "weight": 1, "job_share": 1}],
        "task_types": [
            {
                "name": "t",
                "share": 1,
                "gpus": {1: 1},
                "cpu_per_gpu": 1,
                "memory_gib_per_gpu": 1,
                "runtime_minutes": {"median": 1},
            }
        ],
        "workloads": {"heavy": 0.9},
    }
