"""Jobs to replay, and the cluster they run on, generated from a scenario.

A job is one training pod, or a gang of identical pods: when it is submitted, what each
pod requests, how long it runs on a node of performance 100, and how much of its request
it really uses. Arrivals are Poisson
at the rate that makes the offered GPU load equal the workload level.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hybrid_policy.domain import NodeInfo
from hybrid_policy.resources import CPU, GIB, GPU, MEMORY, PODS
from hybrid_policy.scenario.fields import ScenarioError
from hybrid_policy.scenario.model import GangSpec, Scenario, TaskType

PERFORMANCE_LABEL = "hybrid-scheduler.io/performance"


@dataclass(frozen=True, slots=True)
class Job:
    """One training job: ``members`` pods of the same ``requests`` (more than one: a gang,
    placed all at once, running at the pace of its slowest node)."""

    job_id: int
    submit_s: float
    runtime_s: float
    requests: Mapping[str, int]
    namespace: str
    task_type: str
    usage: Mapping[str, float]
    members: int = 1

    @property
    def gpus(self) -> int:
        """GPUs requested by all the job's pods together."""
        return self.requests.get(GPU, 0) * self.members

    @property
    def is_gang(self) -> bool:
        """Whether the job runs as several pods."""
        return self.members > 1


def build_nodes(scenario: Scenario) -> list[NodeInfo]:
    """The scenario's nodes; performance ratings drawn with the scenario seed."""
    rng = np.random.default_rng([scenario.seed, 0x6E6F6465])
    nodes: list[NodeInfo] = []
    for group in scenario.nodes:
        for _ in range(group.count):
            perf = (
                float(round(rng.uniform(*group.performance)))
                if group.performance[0] != group.performance[1]
                else group.performance[0]
            )
            name = f"{group.name_prefix}-{len(nodes):03d}"
            allocatable = {
                CPU: int(group.cpu * 1000),
                MEMORY: int(group.memory_gib * GIB),
                GPU: group.gpus,
            }
            labels = {**group.labels, PERFORMANCE_LABEL: f"{perf:g}"}
            nodes.append(
                NodeInfo(
                    name=name,
                    allocatable={k: v for k, v in allocatable.items() if v}
                    | {PODS: group.max_pods},
                    capacity=allocatable,
                    labels=labels,
                    performance=perf,
                    max_pods=group.max_pods,
                )
            )
    return nodes


def mean_performance(nodes: Sequence[NodeInfo]) -> float:
    """GPU-weighted mean node performance (plain mean when there are no GPUs)."""
    gpus = np.array([n.allocatable.get(GPU, 0) for n in nodes], dtype=float)
    perf = np.array([n.performance for n in nodes])
    if gpus.sum() > 0:
        return float((gpus * perf).sum() / gpus.sum())
    return float(perf.mean())


def task_requests(task: TaskType, gpus: int) -> dict[str, int]:
    """Requests of a job of ``task`` with ``gpus`` GPUs."""
    per = max(gpus, 1)
    return {
        GPU: gpus,
        CPU: round(task.cpu_per_gpu * per * 1000),
        MEMORY: round(task.memory_gib_per_gpu * per * GIB),
    }


def _mean_job_gpus(task: TaskType, gangs: GangSpec | None) -> float:
    """Expected GPUs of a job of ``task``, all its pods together."""
    if gangs is None:
        return task.mean_gpus
    wide = gangs.mean_members * gangs.gpus_per_pod
    return (1.0 - gangs.share) * task.mean_gpus + gangs.share * wide


def arrival_rate_per_s(scenario: Scenario, level: str, nodes: Sequence[NodeInfo]) -> float:
    """Poisson rate giving offered GPU load ``scenario.workloads[level]``."""
    load = scenario.workloads[level]
    perf = mean_performance(nodes)
    gangs = scenario.gangs
    work_per_job = sum(
        t.share * _mean_job_gpus(t, gangs) * t.runtime.mean_minutes * 60.0 * 100.0 / perf
        for t in scenario.task_types
    )
    capacity = sum(n.allocatable.get(GPU, 0) for n in nodes)
    if work_per_job <= 0 or capacity <= 0:
        raise ScenarioError(
            scenario.source,
            "workloads",
            "offered load is defined on GPUs; no GPU demand or capacity",
        )
    return load * capacity / work_per_job


def generate_jobs(scenario: Scenario, level: str, seed: int) -> list[Job]:
    """Poisson arrivals over the horizon for workload ``level``, reproducible by ``seed``."""
    if level not in scenario.workloads:
        known = ", ".join(scenario.workloads)
        raise ScenarioError(
            scenario.source, "workloads", f"no workload level {level!r} (known: {known})"
        )
    nodes = build_nodes(scenario)
    rate = arrival_rate_per_s(scenario, level, nodes)
    rng = np.random.default_rng([seed, 0x6A6F6273])
    expected = rate * scenario.horizon_s
    count = int(rng.poisson(expected))
    submits = np.sort(rng.uniform(0.0, scenario.horizon_s, size=count))
    types = scenario.task_types
    type_idx = rng.choice(len(types), size=count, p=[t.share for t in types])
    ns_names = [n.name for n in scenario.namespaces]
    ns_idx = rng.choice(len(ns_names), size=count, p=[n.job_share for n in scenario.namespaces])
    normals = rng.standard_normal(count)
    gpu_draws = rng.random(count)
    members = _gang_members(scenario.gangs, count, seed)
    jobs: list[Job] = []
    cumulative = [(np.array(list(t.gpus)), np.cumsum(list(t.gpus.values()))) for t in types]
    for i in range(count):
        task = types[type_idx[i]]
        counts, cdf = cumulative[type_idx[i]]
        gpus = int(
            counts[
                min(
                    int(np.searchsorted(cdf, gpu_draws[i] * cdf[-1], side="right")), len(counts) - 1
                )
            ]
        )
        runtime = float(np.exp(task.runtime.mu + task.runtime.sigma * normals[i]))
        size = int(members[i])
        if size > 1:
            assert scenario.gangs is not None
            gpus = scenario.gangs.gpus_per_pod
        jobs.append(
            Job(
                job_id=i,
                submit_s=float(submits[i]),
                runtime_s=max(runtime, 1.0),
                requests=task_requests(task, gpus),
                namespace=ns_names[ns_idx[i]],
                task_type=task.name,
                usage=task.usage,
                members=size,
            )
        )
    return jobs


def _gang_members(gangs: GangSpec | None, count: int, seed: int) -> npt.NDArray[np.int64]:
    """Pods of each of ``count`` jobs (1: a single pod), drawn from a stream of its own so
    that a scenario without gangs draws exactly what it did before gangs existed."""
    if gangs is None:
        return np.ones(count, dtype=np.int64)
    rng = np.random.default_rng([seed, 0x67616E67])
    sizes = np.array(list(gangs.members), dtype=np.int64)
    probabilities = np.array(list(gangs.members.values()))
    drawn = rng.choice(sizes, size=count, p=probabilities / probabilities.sum())
    is_gang = rng.random(count) < gangs.share
    return np.where(is_gang, drawn, 1).astype(np.int64)
