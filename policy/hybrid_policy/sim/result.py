"""The raw outcome of one simulation run, before it is summarised into metrics."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from hybrid_policy.framework.snapshot import FloatArray
from hybrid_policy.sim.takes import TakeTally


@dataclass
class RunResult:
    """Per-job times and the integrals of one run (times in seconds)."""

    policy: str
    scenario: str
    level: str
    seed: int
    horizon_s: float
    namespaces: list[str]
    namespace_weights: list[float]
    task_types: list[str]
    resources: tuple[str, ...]
    capacity: FloatArray
    #: Per job: submission, first start, completion (NaN if it never finished).
    submit_s: FloatArray
    start_s: FloatArray
    end_s: FloatArray
    runtime_s: FloatArray
    fastest_runtime_s: FloatArray
    gpus: FloatArray
    namespace_of: npt.NDArray[np.int64]
    task_type_of: npt.NDArray[np.int64]
    allocated_integral: FloatArray
    in_system_integral: float
    window_s: float
    window_allocated: FloatArray
    window_demand: FloatArray
    offered_load: dict[str, float]
    decision_seconds: float
    #: Pods handed to the profile, over all passes (a pod waiting through many passes
    #: counts once per pass).
    pods_decided: int
    #: Placements made (for preemptive policies, re-placements on another node count).
    pods_placed: int
    passes: int
    events: int
    preemptions: int
    wall_seconds: float
    end_time_s: float
    #: Per kind (``duration``, ``remaining``) and prediction source: count, mean absolute
    #: error (s), median relative error, median ratio. Empty for policies that predict
    #: nothing.
    prediction_errors: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    #: Per job: how many pods it runs as (more than one: a gang).
    members: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    #: GPU-seconds held idle by bound pods of gangs that were not running yet (pod-by-pod
    #: placement of a gang; zero under a gang-aware policy).
    idle_gang_gpu_s: float = 0.0
    #: Gangs partly bound when the run ended, and those of them deadlocked: their missing
    #: pods fit nowhere even on the capacity no partly bound gang holds, so they never
    #: start (they count in ``never_finished``; JCT covers completed jobs only).
    partial_gangs: int = 0
    deadlocked_gangs: int = 0
    #: Times each job was stopped by the scheduler (preempted, or moved elsewhere).
    stops_per_job: npt.NDArray[np.int64] = field(
        default_factory=lambda: np.zeros(0, dtype=np.int64)
    )
    #: Work thrown away by those stops, GPU-seconds of wall time.
    lost_gpu_s: float = 0.0
    #: The preemption phase's takes per ordered pair of teams, and the ping-pong among
    #: them (:mod:`.takes`).
    takes: TakeTally = field(default_factory=TakeTally)
