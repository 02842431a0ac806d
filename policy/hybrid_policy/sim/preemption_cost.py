"""What a preemption costs a simulated job: which jobs opted in, the work lost since the
last checkpoint, the restart overhead, and the tally the results report."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from hybrid_policy.scenario.model import PreemptionCostSpec


class PreemptionCosts:
    """Per job: whether it may be preempted and how often it was; in all: the GPU-seconds
    of work lost. The opt-in draw depends only on the seed and the job's index."""

    def __init__(self, spec: PreemptionCostSpec, jobs: int, seed: int) -> None:
        self.spec = spec
        rng = np.random.default_rng([seed, 0x707265])
        self.opted_in: npt.NDArray[np.bool_] = rng.random(jobs) < spec.opt_in
        #: Times each job was stopped by the scheduler (preempted, or moved elsewhere).
        self.count: npt.NDArray[np.int64] = np.zeros(jobs, dtype=np.int64)
        #: Work thrown away, in GPU-seconds of wall time.
        self.lost_gpu_s = 0.0

    def lost_s(self, ran_s: float) -> float:
        """Wall seconds of a run of ``ran_s`` that a stop now throws away."""
        interval = self.spec.checkpoint_interval_s
        if interval is None:
            return ran_s
        if interval <= 0:
            return 0.0
        return ran_s % interval

    def charge(self, job: int, ran_s: float, gpus: float) -> tuple[float, float]:
        """Record a stop of ``job`` after ``ran_s``: (wall seconds of work kept, extra
        work to add for the restart, in seconds at performance 100)."""
        lost = self.lost_s(ran_s)
        self.count[job] += 1
        self.lost_gpu_s += lost * gpus
        return ran_s - lost, self.spec.restart_overhead_s
