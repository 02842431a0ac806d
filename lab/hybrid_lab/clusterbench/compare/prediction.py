"""The simulator's prediction for the jobs of a round, next to what was measured.

The same jobs (scenario times) are replayed by the simulator on the cluster's own nodes,
every node at performance 100 (kwok runs a pod for its annotated time wherever it is
bound), under the policy that matches the scheduler: ``kube-default`` for
kube-scheduler, our operator's policy for hybrid. scheduler-plugins and Kueue have no
matching policy and get no prediction. Times are divided by the time scale, so they read
as the wall-clock seconds of the round.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hybrid_lab.clusterbench.compare.configs import SchedulerKind
from hybrid_lab.matrix import run_one
from hybrid_policy.domain import NodeInfo
from hybrid_policy.resources import CPU, GPU, MEMORY, PODS, QuantityError, parse_quantity
from hybrid_policy.scenario.jobs import Job
from hybrid_policy.scenario.model import Scenario
from hybrid_policy.scenario.workload import Workload

EQUAL_PERFORMANCE = 100.0


@dataclass(frozen=True)
class Prediction:
    """The simulator's figures for the round, in wall-clock seconds."""

    policy: str
    jct_mean_s: float
    jct_p95_s: float
    wait_mean_s: float
    wait_p95_s: float
    jain: float
    worst_team_slowdown: float
    partial_gang_gpu_s: float
    jobs_left: int


def matching_policy(kind: SchedulerKind, hybrid_policy: str) -> str | None:
    """The simulator policy that decides as ``kind`` does, if there is one."""
    if kind is SchedulerKind.KUBE_SCHEDULER:
        return "kube-default"
    if kind is SchedulerKind.HYBRID:
        return hybrid_policy
    return None


def node_infos(items: Sequence[Mapping[str, Any]]) -> list[NodeInfo]:
    """The cluster's kwok nodes as the simulator sees them, every one at performance 100."""
    nodes = []
    for item in items:
        allocatable = (item.get("status") or {}).get("allocatable") or {}
        amounts: dict[str, int] = {}
        for resource in (CPU, MEMORY, GPU, PODS):
            try:
                amounts[resource] = parse_quantity(resource, allocatable.get(resource, "0"))
            except QuantityError:
                amounts[resource] = 0
        nodes.append(
            NodeInfo(
                name=str(item["metadata"]["name"]),
                allocatable=amounts,
                capacity=dict(amounts),
                labels=dict(item["metadata"].get("labels") or {}),
                performance=EQUAL_PERFORMANCE,
                max_pods=amounts[PODS] or 110,
            )
        )
    return nodes


def capacity(nodes: Sequence[NodeInfo]) -> dict[str, int]:
    """The nodes' allocatable, summed per resource."""
    total: dict[str, int] = {}
    for node in nodes:
        for resource, amount in node.allocatable.items():
            total[resource] = total.get(resource, 0) + amount
    return total


def predict(
    scenario: Scenario,
    level: str,
    seed: int,
    jobs: Sequence[Job],
    nodes: Sequence[NodeInfo],
    policy: str,
    time_scale: float,
) -> Prediction:
    """Simulate ``policy`` on ``jobs`` and ``nodes``; its figures divided by ``time_scale``."""
    last = max((j.submit_s for j in jobs), default=0.0)
    work = sum(j.runtime_s * j.gpus for j in jobs) / max(capacity(nodes).get(GPU, 0), 1)
    horizon = last + work + max((j.runtime_s for j in jobs), default=0.0)
    workload = Workload(scenario, level, seed, list(nodes), list(jobs), horizon)
    summary = run_one(workload, policy)
    return Prediction(
        policy=policy,
        jct_mean_s=summary.jct_s.mean / time_scale,
        jct_p95_s=summary.jct_s.p95 / time_scale,
        wait_mean_s=summary.wait_s.mean / time_scale,
        wait_p95_s=summary.wait_s.p95 / time_scale,
        jain=summary.jain_fairness,
        worst_team_slowdown=summary.slowdown.worst_namespace,
        partial_gang_gpu_s=summary.idle_gang_gpu_hours * 3600.0 / time_scale,
        jobs_left=summary.jobs - summary.completed,
    )
