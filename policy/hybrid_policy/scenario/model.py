"""What a scenario says: node groups, namespaces, task types, workload levels, a trace.

See docs/scenarios.md for the YAML schema. Times are in seconds unless a field name says
otherwise; the run time of a job is its run time on a node of performance 100.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from hybrid_policy.resources import CPU, GPU, MEMORY


@dataclass(frozen=True)
class NodeGroup:
    """``count`` identical nodes; performance drawn uniformly from ``performance``."""

    count: int
    gpus: int
    cpu: float
    memory_gib: float
    performance: tuple[float, float] = (100.0, 100.0)
    max_pods: int = 110
    labels: Mapping[str, str] = field(default_factory=dict)
    name_prefix: str = "node"


@dataclass(frozen=True)
class NamespaceSpec:
    """A team: its fair-share weight and the share of jobs it submits."""

    name: str
    weight: float
    job_share: float


@dataclass(frozen=True)
class RuntimeDistribution:
    """Log-normal run time at performance 100, given by its median and mean (minutes)."""

    median_minutes: float
    mean_minutes: float

    @property
    def mu(self) -> float:
        """Mean of the underlying normal."""
        return math.log(self.median_minutes * 60.0)

    @property
    def sigma(self) -> float:
        """Standard deviation of the underlying normal: ``mean = median * exp(sigma^2/2)``."""
        return math.sqrt(2.0 * math.log(self.mean_minutes / self.median_minutes))


#: Fraction of each requested resource a running pod actually uses, when not given.
DEFAULT_USAGE: Mapping[str, float] = {GPU: 0.8, CPU: 0.5, MEMORY: 0.6}


@dataclass(frozen=True)
class TaskType:
    """A kind of training job: its GPU count distribution, per-GPU CPU/memory, run time."""

    name: str
    share: float
    gpus: Mapping[int, float]
    cpu_per_gpu: float
    memory_gib_per_gpu: float
    runtime: RuntimeDistribution
    usage: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_USAGE))

    @property
    def mean_gpus(self) -> float:
        """Expected GPUs per job."""
        return sum(g * p for g, p in self.gpus.items())


class WideJobs(StrEnum):
    """What a trace replay does with jobs wider than any node."""

    #: Leave them out (the converter reports how many, and their GPU-time).
    DROP = "drop"
    #: Keep each as a gang of whole-node pods.
    GANG = "gang"


@dataclass(frozen=True)
class TraceSpec:
    """Replay jobs from a file instead of generating them."""

    path: str
    format: str = "canonical"
    #: Philly only: keep jobs submitted in [start, end) (ISO dates or datetimes).
    start: str | None = None
    end: str | None = None
    #: Size the cluster (the first node group's count) for this offered GPU load.
    target_load: float | None = None
    #: Keep at most this many jobs (the earliest), for quick runs.
    max_jobs: int | None = None
    #: Jobs wider than any node: left out, or kept as gangs of whole-node pods.
    wide_jobs: WideJobs = WideJobs.DROP


@dataclass(frozen=True)
class MetricsSpec:
    """The simulated metrics pipeline that stands in for Prometheus."""

    scrape_interval_s: float = 15.0
    delay_s: float = 30.0
    #: Standard deviation of additive noise on each utilisation fraction.
    noise: float = 0.02


@dataclass(frozen=True)
class UserEstimateSpec:
    """Run-time estimates users put on their pods: the true run time times
    ``bias * exp(sigma * Z)``, Z standard normal, on a ``coverage`` fraction of jobs."""

    sigma: float = 0.5
    bias: float = 1.0
    coverage: float = 1.0


@dataclass(frozen=True)
class PreemptionCostSpec:
    """What taking a running job back costs in this scenario. A share ``opt_in`` of the
    jobs (drawn per job and seed) may be preempted at all; a preempted job loses the work
    since its last checkpoint (every ``checkpoint_interval_s`` of run time; None: it never
    checkpoints and loses everything; 0: it loses nothing, free preemption) and pays
    ``restart_overhead_s`` of extra work (seconds on a node of performance 100) each time
    it starts again. The default is free preemption with every job opted in."""

    opt_in: float = 1.0
    checkpoint_interval_s: float | None = 0.0
    restart_overhead_s: float = 0.0


@dataclass(frozen=True)
class GangSpec:
    """Distributed jobs in a generated workload: a ``share`` of the jobs run as gangs of
    whole-node pods (``gpus_per_pod`` GPUs each, CPU and memory per GPU from the job's
    task type), of a size drawn from ``members`` (pod count to probability)."""

    share: float
    members: Mapping[int, float]
    gpus_per_pod: int = 8

    @property
    def mean_members(self) -> float:
        """Expected pods per gang."""
        return sum(m * p for m, p in self.members.items())


@dataclass(frozen=True)
class BurstSpec:
    """Arrivals in bursts instead of Poisson arrivals: every ``period_s``, from 0 up to
    the horizon, one team (the namespaces in the order the scenario lists them, in turn)
    submits jobs drawn from the task types until they ask for the workload level times
    the cluster's GPUs, their submissions spread uniformly over ``spread_s``."""

    period_s: float
    spread_s: float = 0.0


@dataclass(frozen=True)
class ProgressSpec:
    """Progress reports of running pods (fraction of work done), as a training job's
    step counter gives them: every ``interval_s`` once a pod has run ``warmup_s``, with
    additive Gaussian noise of standard deviation ``noise`` (clipped to [0, 1])."""

    #: 0: pods report no progress.
    interval_s: float = 60.0
    warmup_s: float = 60.0
    noise: float = 0.05


@dataclass(frozen=True)
class Scenario:
    """Everything needed to replay one experiment."""

    name: str
    seed: int
    horizon_hours: float
    nodes: tuple[NodeGroup, ...]
    namespaces: tuple[NamespaceSpec, ...]
    task_types: tuple[TaskType, ...]
    workloads: Mapping[str, float]
    trace: TraceSpec | None = None
    metrics: MetricsSpec = field(default_factory=MetricsSpec)
    #: None: pods carry no run-time estimate.
    user_estimates: UserEstimateSpec | None = None
    progress: ProgressSpec = field(default_factory=ProgressSpec)
    #: None: every job is a single pod.
    gangs: GangSpec | None = None
    #: What a preemption costs, and which jobs may be preempted.
    preemption: PreemptionCostSpec = field(default_factory=PreemptionCostSpec)
    #: None: Poisson arrivals at the workload level's rate.
    bursts: BurstSpec | None = None
    #: 0 runs a scheduling pass on every event; otherwise every this many seconds.
    schedule_interval_s: float = 0.0
    #: Largest batch one pass takes from the queue (0: no limit).
    batch_size: int = 0
    #: Where the scenario came from (file path or ``builtin:NAME``), for messages.
    source: str = ""

    @property
    def horizon_s(self) -> float:
        """Length of the arrival window in seconds."""
        return self.horizon_hours * 3600.0

    @property
    def total_gpus(self) -> int:
        """GPUs in the whole cluster."""
        return sum(g.count * g.gpus for g in self.nodes)

    def task_type(self, name: str) -> TaskType | None:
        """The task type called ``name``, if the scenario defines it."""
        return next((t for t in self.task_types if t.name == name), None)
