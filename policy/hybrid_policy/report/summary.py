"""Schedule-quality metrics of one run, as a :class:`~hybrid_policy.report.record.RunSummary`.

Definitions follow docs/benchmarks.md: JCT is completion minus submission over jobs that
completed; wait is first start minus submission; utilisation is the time-average of
allocated over allocatable in [0, horizon]; throughput counts completions in the horizon;
``unfinished`` counts jobs not done at the horizon, ``never_finished`` those still not done
when the drain stopped.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hybrid_policy.report.fairness import window_fairness
from hybrid_policy.report.record import (
    CompletionTimes,
    RunSummary,
    Slowdowns,
    Utilisation,
    WaitTimes,
)
from hybrid_policy.resources import CPU, GPU, MEMORY
from hybrid_policy.sim.result import RunResult


def _pct(values: np.ndarray[Any, np.dtype[np.float64]], q: float) -> float:
    return float(np.percentile(values, q)) if values.size else float("nan")


def summarise(run: RunResult) -> RunSummary:
    """The benchmark record of ``run``."""
    done = ~np.isnan(run.end_s)
    jct = (run.end_s - run.submit_s)[done]
    started = ~np.isnan(run.start_s)
    wait = (run.start_s - run.submit_s)[started]
    horizon = run.horizon_s
    index = {name: i for i, name in enumerate(run.resources)}
    utilisation = {
        label: float(run.allocated_integral[index[key]] / (run.capacity[index[key]] * horizon))
        if run.capacity[index[key]] > 0 and horizon > 0
        else 0.0
        for label, key in (("gpu", GPU), ("cpu", CPU), ("memory", MEMORY))
    }
    completed_in_horizon = int((run.end_s <= horizon).sum())
    gpu_capacity = float(run.capacity[index[GPU]])
    jain, shares = window_fairness(
        run.window_allocated,
        run.window_demand,
        np.asarray(run.namespace_weights),
        gpu_capacity * run.window_s,
    )
    mean_jct = float(jct.mean()) if jct.size else float("nan")
    slowdown = (run.end_s - run.submit_s) / run.fastest_runtime_s
    slowdown_by_namespace = {
        ns: float(slowdown[mine].mean())
        for i, ns in enumerate(run.namespaces)
        if (mine := done & (run.namespace_of == i)).any()
    }
    arrival_rate = len(run.submit_s) / horizon if horizon > 0 else 0.0
    return RunSummary(
        policy=run.policy,
        scenario=run.scenario,
        seed=run.seed,
        workload=run.level,
        jobs=len(run.submit_s),
        offered_load=run.offered_load["gpu"],
        offered_load_by_resource=run.offered_load,
        utilization=Utilisation(**utilisation),
        jct_s=CompletionTimes(
            mean=mean_jct, p50=_pct(jct, 50), p95=_pct(jct, 95), p99=_pct(jct, 99)
        ),
        jct_by_task_type_s={
            t: float(jct_t.mean())
            if (jct_t := (run.end_s - run.submit_s)[done & (run.task_type_of == i)]).size
            else float("nan")
            for i, t in enumerate(run.task_types)
        },
        jct_by_namespace_s={
            ns: float(jct_n.mean())
            if (jct_n := (run.end_s - run.submit_s)[done & (run.namespace_of == i)]).size
            else float("nan")
            for i, ns in enumerate(run.namespaces)
        },
        wait_s=WaitTimes(
            mean=float(wait.mean()) if wait.size else float("nan"), p95=_pct(wait, 95)
        ),
        slowdown=Slowdowns(
            mean=float(slowdown[done].mean()) if done.any() else float("nan"),
            worst_namespace=max(slowdown_by_namespace.values(), default=float("nan")),
        ),
        slowdown_by_namespace=slowdown_by_namespace,
        fastest_node_bound_jct_s=float(run.fastest_runtime_s.mean())
        if run.fastest_runtime_s.size
        else 0.0,
        throughput_jobs_per_h=completed_in_horizon / (horizon / 3600.0) if horizon > 0 else 0.0,
        completed=int(done.sum()),
        unfinished=len(run.submit_s) - completed_in_horizon,
        never_finished=int((~done).sum()),
        jain_fairness=jain,
        namespace_share={
            ns: (None if np.isnan(s) else float(s))
            for ns, s in zip(run.namespaces, shares, strict=True)
        },
        jobs_in_system_mean=run.in_system_integral / horizon if horizon > 0 else 0.0,
        little_law_expected=arrival_rate * mean_jct,
        decision_ms_per_pod=1000.0 * run.decision_seconds / max(run.pods_placed, 1),
        decision_ms_per_pass=1000.0 * run.decision_seconds / max(run.passes, 1),
        scheduling_passes=run.passes,
        preemptions=run.preemptions,
        events=run.events,
        events_per_s=run.events / run.wall_seconds if run.wall_seconds > 0 else 0.0,
        wall_s=run.wall_seconds,
        end_time_s=run.end_time_s,
        prediction_error=run.prediction_errors,
        gang_jobs=int((run.members > 1).sum()),
        idle_gang_gpu_hours=run.idle_gang_gpu_s / 3600.0,
        partial_gangs=run.partial_gangs,
        deadlocked_gangs=run.deadlocked_gangs,
        preemptions_per_job=float(run.stops_per_job.mean()) if run.stops_per_job.size else 0.0,
        most_preemptions=int(run.stops_per_job.max()) if run.stops_per_job.size else 0,
        preemption_counts={
            str(k): int(n) for k, n in enumerate(np.bincount(run.stops_per_job)) if n
        },
        lost_gpu_hours=run.lost_gpu_s / 3600.0,
        preemptions_by_pair=dict(run.takes.by_pair),
        back_and_forth=run.takes.back_and_forth,
        shortest_back_and_forth_s=run.takes.shortest_gap_s,
        team_reversals=run.takes.reversals,
        team_reversals_at_once=run.takes.reversals_at_once,
    )
