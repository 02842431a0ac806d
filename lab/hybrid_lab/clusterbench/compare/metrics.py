"""The compared figures of one round, from what the watch recorded (no cluster needed).

Times are seconds from the round's origin (the moment its first Job was due).

* **JCT**: a Job's creation to the end of the last of the pods it needed to succeed;
  **wait**: its creation to the binding of the last of those pods. Over finished Jobs.
* **Jain's index**: per window, each team's GPU-seconds held over its weighted max-min
  entitlement (capped by what it asked: the GPUs of its Jobs created and not finished),
  Jain's index over the teams asking, averaged over windows; the simulator's definition
  (:func:`hybrid_policy.report.fairness.window_fairness`).
* **worst-team slowdown**: the highest of the teams' mean JCT over run time.
* **partial-gang GPU-seconds**: GPUs held by bound pods of a gang before all its pods were
  bound together (gangs on a gang-blind scheduler; a gang left short holds them to the end).
* **jobs left**: Jobs not finished when the round stopped (a deadlock, or the timeout).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from hybrid_lab.clusterbench.compare.jobwatch import PodSeen
from hybrid_lab.clusterbench.compare.stream import StreamJob, Team
from hybrid_policy.report.fairness import window_fairness


@dataclass(frozen=True)
class JobOutcome:
    """A Job's creation and its pods, times from the round's origin."""

    job: StreamJob
    created_s: float | None
    """When the API server acknowledged it; None: never created."""
    pods: tuple[PodSeen, ...]

    @property
    def needed(self) -> list[PodSeen]:
        """The pods that completed it (the first ``pods`` to succeed), if it finished."""
        done = sorted((p for p in self.pods if p.succeeded), key=lambda p: p.end_s or 0.0)
        return done[: self.job.pods] if len(done) >= self.job.pods else []

    @property
    def finished_s(self) -> float | None:
        """When its last needed pod ended; None while unfinished."""
        needed = self.needed
        return max(p.end_s or 0.0 for p in needed) if needed else None


@dataclass(frozen=True)
class RoundMetrics:
    """What one scheduler did with the stream."""

    jobs: int
    finished: int
    jobs_left: int
    jct_mean_s: float
    jct_p95_s: float
    wait_mean_s: float
    wait_p95_s: float
    jain: float
    worst_team_slowdown: float
    partial_gang_gpu_s: float
    pods_bound: int
    pods_per_s: float


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def _p95(values: Sequence[float]) -> float:
    return float(np.percentile(values, 95)) if values else math.nan


def partial_gang_gpu_s(outcome: JobOutcome, end_s: float) -> float:
    """GPU-seconds its bound pods held before all its pods were bound at once (to
    ``end_s`` if that never happened)."""
    if not outcome.job.is_gang:
        return 0.0
    steps: list[tuple[float, int]] = []
    for pod in outcome.pods:
        if pod.bound_s is not None:
            steps.append((pod.bound_s, 1))
            steps.append((min(pod.end_s if pod.end_s is not None else end_s, end_s), -1))
    steps.sort()
    held, bound, last = 0.0, 0, 0.0
    for at, change in steps:
        if 0 < bound < outcome.job.pods:
            held += bound * (at - last)
        bound, last = bound + change, at
        if bound >= outcome.job.pods:
            break  # whole at last: its pods finishing one by one is no partial placement
    return held * outcome.job.requests.get("nvidia.com/gpu", 0)


def _windows(
    outcomes: Sequence[JobOutcome], team_index: Mapping[str, int], end_s: float, window_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """GPU-seconds held and asked per (window, team)."""
    count = max(1, math.ceil(end_s / window_s))
    held = np.zeros((count, len(team_index)))
    asked = np.zeros((count, len(team_index)))

    def add(table: np.ndarray, team: int, start: float, stop: float, gpus: float) -> None:
        stop = min(stop, end_s)
        while start < stop:
            w = min(int(start // window_s), count - 1)
            edge = min(stop, (w + 1) * window_s) if w < count - 1 else stop
            table[w, team] += gpus * (edge - start)
            start = edge

    for o in outcomes:
        team = team_index[o.job.team]
        gpus = o.job.requests.get("nvidia.com/gpu", 0)
        if o.created_s is not None:
            finished = o.finished_s
            add(asked, team, o.created_s, end_s if finished is None else finished, o.job.gpus)
        for pod in o.pods:
            if pod.bound_s is not None:
                add(held, team, pod.bound_s, end_s if pod.end_s is None else pod.end_s, gpus)
    return held, asked


def round_metrics(
    outcomes: Sequence[JobOutcome],
    teams: Sequence[Team],
    capacity_gpus: int,
    end_s: float,
    window_s: float,
) -> RoundMetrics:
    """The figures of a round that stopped at ``end_s``."""
    jct: list[float] = []
    wait: list[float] = []
    slowdown_by_team: dict[str, list[float]] = {t.name: [] for t in teams}
    for o in outcomes:
        finished = o.finished_s
        if finished is None or o.created_s is None:
            continue
        jct.append(finished - o.created_s)
        wait.append(max(p.bound_s or 0.0 for p in o.needed) - o.created_s)
        slowdown_by_team[o.job.team].append(jct[-1] / max(o.job.runtime_s, 1e-9))
    index = {t.name: i for i, t in enumerate(teams)}
    held, asked = _windows(outcomes, index, end_s, window_s)
    weights = np.array([t.weight for t in teams], dtype=float)
    jain, _ = window_fairness(held, asked, weights, capacity_gpus * window_s)
    binds = sorted(p.bound_s for o in outcomes for p in o.pods if p.bound_s is not None)
    span = binds[-1] - binds[0] if len(binds) > 1 else 0.0
    return RoundMetrics(
        jobs=len(outcomes),
        finished=len(jct),
        jobs_left=len(outcomes) - len(jct),
        jct_mean_s=_mean(jct),
        jct_p95_s=_p95(jct),
        wait_mean_s=_mean(wait),
        wait_p95_s=_p95(wait),
        jain=jain,
        worst_team_slowdown=max(
            (_mean(v) for v in slowdown_by_team.values() if v), default=math.nan
        ),
        partial_gang_gpu_s=sum(partial_gang_gpu_s(o, end_s) for o in outcomes),
        pods_bound=len(binds),
        pods_per_s=(len(binds) - 1) / span if span > 0 else math.nan,
    )
