"""A utilisation signal standing in for Prometheus: scraped, delayed and noisy.

Each node's true usage (the sum over its pods of request x usage fraction) is recorded
whenever it changes. A query at time ``t`` sees the value scraped at the last scrape tick
before ``t - delay``, plus Gaussian noise; pods bound after that tick are added from their
requests, as the operator does for pods that metrics do not show yet (Trimaran's rule,
:class:`~hybrid_policy.framework.recent.RecentPlacements`).
"""

from __future__ import annotations

import bisect
import math

import numpy as np

from hybrid_policy.framework.recent import RecentPlacements
from hybrid_policy.framework.snapshot import ClusterSnapshot, FloatArray
from hybrid_policy.scenario.model import MetricsSpec


class UtilisationSignal:
    """Per-node usage history and delayed, noisy reads of it."""

    def __init__(
        self, snapshot: ClusterSnapshot, spec: MetricsSpec, rng: np.random.Generator
    ) -> None:
        self.spec = spec
        self.rng = rng
        n, r = snapshot.allocatable.shape
        self._times: list[list[float]] = [[0.0] for _ in range(n)]
        self._values: list[list[FloatArray]] = [[np.zeros(r)] for _ in range(n)]
        self._usage: FloatArray = np.zeros((n, r))
        self._recent = RecentPlacements()

    def change(
        self, now_s: float, node: int, delta_used: FloatArray, request: FloatArray | None
    ) -> None:
        """A pod started (positive delta) or ended (negative) on ``node``."""
        self._usage[node] += delta_used
        times, values = self._times[node], self._values[node]
        if times[-1] == now_s:
            values[-1] = self._usage[node].copy()
        else:
            times.append(now_s)
            values.append(self._usage[node].copy())
        if request is not None:
            self._recent.add(node, now_s, request)

    def refresh(self, snapshot: ClusterSnapshot, now_s: float) -> None:
        """Write what the metrics system would show at ``now_s`` into ``snapshot``."""
        spec = self.spec
        observed = (
            math.floor(max(now_s - spec.delay_s, 0.0) / spec.scrape_interval_s)
            * spec.scrape_interval_s
        )
        self._recent.forget_until(observed)
        alloc = snapshot.allocatable
        for node in range(alloc.shape[0]):
            times = self._times[node]
            idx = bisect.bisect_right(times, observed) - 1
            used = self._values[node][max(idx, 0)].copy()
            for request in self._recent.requests_after(node, observed):
                used += request
            with np.errstate(divide="ignore", invalid="ignore"):
                frac = np.where(alloc[node] > 0, used / alloc[node], 0.0)
            if spec.noise > 0:
                frac = frac + self.rng.normal(0.0, spec.noise, size=frac.shape)
            snapshot.utilisation[node] = np.clip(frac, 0.0, None)
            snapshot.utilisation_age_s[node] = now_s - observed
