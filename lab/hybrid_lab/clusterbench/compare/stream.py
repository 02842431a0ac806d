"""One job stream, as every compared scheduler receives it: Jobs at scaled times.

The scenario's jobs (generated, or a trace's) keep their order, team and requests; their
arrival and run times are divided by the time scale, so ``--time-scale 60`` runs an hour
of the scenario in a minute. Each job becomes one ``batch/v1`` Job in its team's
namespace: one pod, or for a gang ``parallelism = completions = pods``, with a PodGroup
(``scheduling.x-k8s.io/v1alpha1``, ``minMember`` = its pods) where the scheduler reads
them. kwok runs every pod for the time in its ``hybrid-scheduler.io/sim-runtime``
annotation, the same on every node.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from hybrid_lab.devcluster.workload import training_pod
from hybrid_policy.resources import CPU, GPU, MEMORY
from hybrid_policy.scenario.jobs import Job
from hybrid_policy.scenario.model import Scenario

ROUND_LABEL = "hybrid-scheduler.io/compare-round"
"""Label on every Job and pod of a round (the watch selects on it)."""
JOB_LABEL = "hybrid-scheduler.io/compare-job"
"""Label naming the stream job a pod belongs to."""
POD_GROUP_LABEL = "scheduling.x-k8s.io/pod-group"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
WEIGHT_ANNOTATION = "hybrid-scheduler.io/weight"
JOB_PATH = "/apis/batch/v1/namespaces/{namespace}/jobs"
POD_GROUP_PATH = "/apis/scheduling.x-k8s.io/v1alpha1/namespaces/{namespace}/podgroups"


@dataclass(frozen=True)
class Team:
    """A weighted team: one namespace per round."""

    name: str
    weight: float


@dataclass(frozen=True)
class StreamJob:
    """One job of the stream, times already scaled to wall-clock seconds."""

    name: str
    team: str
    submit_s: float
    """When it is created, from the start of the round."""
    runtime_s: float
    """How long each of its pods runs once bound."""
    pods: int
    requests: Mapping[str, int]
    """Of each pod, in the policy core's units (CPU millicores, memory bytes, GPUs)."""
    task_type: str

    @property
    def gpus(self) -> int:
        """GPUs of all its pods together."""
        return self.requests.get(GPU, 0) * self.pods

    @property
    def is_gang(self) -> bool:
        """Whether it runs as several pods."""
        return self.pods > 1


@dataclass(frozen=True)
class Expression:
    """How one scheduler's users submit the stream."""

    scheduler_name: str
    """``spec.schedulerName`` of the pods."""
    pod_groups: bool
    """Gangs get a PodGroup and its label on their pods."""
    queue: str | None = None
    """Kueue: the LocalQueue every Job names (created suspended); None: no queue."""


def teams(scenario: Scenario) -> list[Team]:
    """The scenario's weighted namespaces."""
    return [Team(n.name, float(n.weight)) for n in scenario.namespaces]


def first_jobs(jobs: Sequence[Job], max_jobs: int | None) -> list[Job]:
    """The first ``max_jobs`` jobs to arrive (all if None), arrivals counted from the first."""
    chosen = sorted(jobs, key=lambda j: (j.submit_s, j.job_id))[:max_jobs]
    origin = chosen[0].submit_s if chosen else 0.0
    return [replace(job, submit_s=job.submit_s - origin) for job in chosen]


def scaled_stream(jobs: Sequence[Job], time_scale: float) -> list[StreamJob]:
    """``jobs`` with arrival and run times divided by ``time_scale``."""
    if time_scale <= 0:
        raise ValueError(f"time scale must be positive, got {time_scale!r}")
    return [
        StreamJob(
            name=f"job-{job.job_id:05d}",
            team=job.namespace,
            submit_s=job.submit_s / time_scale,
            runtime_s=job.runtime_s / time_scale,
            pods=job.members,
            requests=dict(job.requests),
            task_type=job.task_type,
        )
        for job in jobs
    ]


def namespace_name(round_name: str, team: str) -> str:
    """The namespace of ``team`` in one round (each round has its own)."""
    return f"cmp-{round_name}-{team}"


def namespace_manifest(round_name: str, team: Team) -> dict[str, Any]:
    """The team's namespace, with its weight as the operator reads it."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": namespace_name(round_name, team.name),
            "labels": {ROUND_LABEL: round_name},
            "annotations": {WEIGHT_ANNOTATION: f"{team.weight:g}"},
        },
    }


def runtime_annotation(seconds: float) -> str:
    """A Go duration kwok reads, to the millisecond (at least 1 ms)."""
    return f"{max(round(seconds * 1000), 1)}ms"


#: The Jobs' pod failure policy: ignore a pod's failure caused by a disruption (a
#: preempting scheduler marks its victims ``DisruptionTarget``).
PREEMPTION_TOLERANT: dict[str, Any] = {
    "rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]
}


def job_manifest(job: StreamJob, round_name: str, expression: Expression) -> dict[str, Any]:
    """The ``batch/v1`` Job of ``job`` in its team's namespace of ``round_name``."""
    pod = training_pod(
        job.name,
        gpus=job.requests.get(GPU, 0),
        cpu=f"{job.requests.get(CPU, 0)}m",
        memory=str(job.requests.get(MEMORY, 0)),
        runtime=runtime_annotation(job.runtime_s),
        task_type=job.task_type,
        scheduler_name=expression.scheduler_name,
    )
    labels = {ROUND_LABEL: round_name, JOB_LABEL: job.name}
    pod_labels = {**pod["metadata"]["labels"], **labels}
    if expression.pod_groups and job.is_gang:
        pod_labels[POD_GROUP_LABEL] = job.name
    job_labels = dict(labels)
    if expression.queue is not None:
        job_labels[QUEUE_LABEL] = expression.queue
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job.name,
            "namespace": namespace_name(round_name, job.team),
            "labels": job_labels,
        },
        "spec": {
            "parallelism": job.pods,
            "completions": job.pods,
            "backoffLimit": 0,
            # A pod taken back by a preempting scheduler (marked DisruptionTarget) is
            # recreated, not counted as the Job's failure, as Kubernetes documents for
            # Jobs under preemption; any other failure fails the Job.
            "podFailurePolicy": PREEMPTION_TOLERANT,
            "suspend": expression.queue is not None,
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": pod["metadata"]["annotations"],
                },
                "spec": pod["spec"],
            },
        },
    }


def pod_group_manifest(job: StreamJob, round_name: str) -> dict[str, Any]:
    """The PodGroup of a gang: all its pods or none, and what they request together."""
    total = {
        "nvidia.com/gpu": str(job.requests.get(GPU, 0) * job.pods),
        "cpu": f"{job.requests.get(CPU, 0) * job.pods}m",
        "memory": str(job.requests.get(MEMORY, 0) * job.pods),
    }
    return {
        "apiVersion": "scheduling.x-k8s.io/v1alpha1",
        "kind": "PodGroup",
        "metadata": {
            "name": job.name,
            "namespace": namespace_name(round_name, job.team),
            "labels": {ROUND_LABEL: round_name},
        },
        "spec": {"minMember": job.pods, "minResources": total},
    }


def manifests(job: StreamJob, round_name: str, expression: Expression) -> list[dict[str, Any]]:
    """What is created for ``job`` at its arrival, in order (its PodGroup first)."""
    first = [pod_group_manifest(job, round_name)] if expression.pod_groups and job.is_gang else []
    return [*first, job_manifest(job, round_name, expression)]
