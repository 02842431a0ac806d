"""Time integrals the metrics need, accumulated as the simulation advances.

Allocation (resources requested by running pods), jobs in system, and per-namespace GPU
allocation and demand in fixed windows (for fair-share figures), all integrated over
[0, horizon] only: work done while draining after the horizon does not count.
"""

from __future__ import annotations

import math

import numpy as np

from hybrid_policy.framework.snapshot import FloatArray


class Accounting:
    """Piecewise-constant integrals over [0, horizon]."""

    def __init__(self, resources: int, namespaces: int, horizon_s: float, window_s: float) -> None:
        self.horizon_s = horizon_s
        self.window_s = window_s
        self.now_s = 0.0
        self.allocated: FloatArray = np.zeros(resources)
        self.allocated_integral: FloatArray = np.zeros(resources)
        self.in_system = 0
        self.in_system_integral = 0.0
        windows = max(1, math.ceil(horizon_s / window_s)) if horizon_s > 0 else 1
        self.running_gpus: FloatArray = np.zeros(namespaces)
        self.demand_gpus: FloatArray = np.zeros(namespaces)
        #: GPU-seconds allocated to each namespace in each window (windows x namespaces).
        self.window_allocated: FloatArray = np.zeros((windows, namespaces))
        #: GPU-seconds each namespace could have used (running or waiting) per window.
        self.window_demand: FloatArray = np.zeros((windows, namespaces))

    def advance(self, now_s: float) -> None:
        """Integrate the current state from the last call up to ``now_s``."""
        start, end = self.now_s, min(now_s, self.horizon_s)
        self.now_s = max(self.now_s, now_s)
        if end <= start:
            return
        dt = end - start
        self.allocated_integral += self.allocated * dt
        self.in_system_integral += self.in_system * dt
        t = start
        while t < end:
            w = min(int(t // self.window_s), self.window_allocated.shape[0] - 1)
            stop = min(end, (w + 1) * self.window_s)
            span = stop - t
            self.window_allocated[w] += self.running_gpus * span
            self.window_demand[w] += self.demand_gpus * span
            t = stop

    def arrive(self, namespace: int, gpus: float) -> None:
        """A job entered the system."""
        self.in_system += 1
        self.demand_gpus[namespace] += gpus

    def start(self, namespace: int, gpus: float, request: FloatArray) -> None:
        """A job's pod started running."""
        self.running_gpus[namespace] += gpus
        self.allocated += request

    def stop(self, namespace: int, gpus: float, request: FloatArray) -> None:
        """A job's pod stopped (finished or preempted)."""
        self.running_gpus[namespace] -= gpus
        self.allocated -= request

    def leave(self, namespace: int, gpus: float) -> None:
        """A job finished and left the system."""
        self.in_system -= 1
        self.demand_gpus[namespace] -= gpus
