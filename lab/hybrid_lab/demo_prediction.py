"""What the simulator predicts for the demo's workload, to set beside what the demo measured.

The demo sends the first jobs of the seed-paper workload (Heavy, one seed), time-compressed,
through our operator and through kube-scheduler on the dev cluster. The simulator replays
exactly those jobs, at the same compression (run times rounded to whole seconds, as the
demo writes them into the pods), with our policy and with ``kube-default``, kube-scheduler's
scoring. Two predictions:

* **uniform speed**: every node at performance 100. kwok runs a pod for the time in its
  annotation whatever the node, so this is the like-for-like prediction of the demo.
* **performance-aware**: the scenario's node performance (50-100), as on a real cluster
  whose nodes differ in speed; a job then runs ``runtime * 100 / performance``.

The simulator schedules at every event without delay, while the operator decides in
passes every half second and the demo polls once a second; both are small next to jobs
that run for many seconds.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from hybrid_policy.policies import build_policy
from hybrid_policy.scenario.loader import load_scenario
from hybrid_policy.scenario.workload import Workload, prepare_workload
from hybrid_policy.sim.engine import Simulation

BASELINE = "kube-default"
#: Enough drain for any demo: the run stops when the last job is done.
DRAIN_FACTOR = 1000.0


@dataclass(frozen=True)
class Prediction:
    """Predicted mean completion times, in demo seconds (scenario seconds / time scale)."""

    ours_s: float
    baseline_s: float

    @property
    def ratio(self) -> float:
        """Ours over kube-scheduler's; below 1 means ours is faster."""
        return self.ours_s / self.baseline_s if self.baseline_s > 0 else math.nan


def demo_workload(
    count: int, seed: int, time_scale: float, uniform: bool, level: str = "heavy"
) -> Workload:
    """The demo's jobs as the simulator replays them (times in scenario seconds)."""
    full = prepare_workload(load_scenario("seed-paper"), level, seed)
    jobs = [
        # The demo writes whole compressed seconds into each pod's run-time annotation.
        dataclasses.replace(j, runtime_s=max(1, round(j.runtime_s / time_scale)) * time_scale)
        for j in full.jobs[:count]
    ]
    nodes = (
        [dataclasses.replace(n, performance=100.0) for n in full.nodes] if uniform else full.nodes
    )
    horizon = max((j.submit_s for j in jobs), default=0.0) or 1.0
    return dataclasses.replace(full, jobs=jobs, nodes=nodes, horizon_s=horizon)


def mean_jct_s(workload: Workload, policy: str, seed: int, time_scale: float) -> float:
    """Mean completion time of one policy over the workload, in demo seconds."""
    rng = np.random.default_rng(seed)
    result = Simulation(workload, build_policy(policy, rng), seed, DRAIN_FACTOR).run()
    done = ~np.isnan(result.end_s)
    return float(np.mean(result.end_s[done] - result.submit_s[done])) / time_scale


def predict(count: int, seed: int, time_scale: float, policy: str, uniform: bool) -> Prediction:
    """Our policy and kube-default over the demo's jobs."""
    workload = demo_workload(count, seed, time_scale, uniform)
    return Prediction(
        mean_jct_s(workload, policy, seed, time_scale),
        mean_jct_s(workload, BASELINE, seed, time_scale),
    )


def comparison(
    measured_ours_s: float, measured_theirs_s: float, rows: dict[str, Prediction]
) -> str:
    """Measured and predicted mean completion times and their ratios, as a table."""
    lines = [("", "ours (s)", "kube (s)", "ours/kube")]
    ratio = measured_ours_s / measured_theirs_s if measured_theirs_s > 0 else math.nan
    lines.append(
        (
            "measured on the dev cluster",
            f"{measured_ours_s:.1f}",
            f"{measured_theirs_s:.1f}",
            f"{ratio:.3f}",
        )
    )
    for label, p in rows.items():
        lines.append((label, f"{p.ours_s:.1f}", f"{p.baseline_s:.1f}", f"{p.ratio:.3f}"))
    widths = [max(len(row[i]) for row in lines) for i in range(4)]
    out = [
        row[0].ljust(widths[0])
        + "  "
        + "  ".join(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))
        for row in lines
    ]
    out.insert(1, "-" * len(out[0]))
    return "\n".join(out)
