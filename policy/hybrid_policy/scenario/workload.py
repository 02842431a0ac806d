"""A workload ready to replay: nodes, jobs and horizon for one (scenario, level, seed).

Generated scenarios draw Poisson arrivals for the level, or the teams' bursts in turn
(``bursts``); trace scenarios load the trace (converting Philly on the fly), size the
cluster for the stated load if asked, and take the arrival window as the horizon.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from hybrid_policy.domain import NodeInfo
from hybrid_policy.resources import CPU, GPU, MEMORY, format_amount
from hybrid_policy.scenario.bursts import burst_jobs
from hybrid_policy.scenario.fields import ScenarioError
from hybrid_policy.scenario.jobs import Job, build_nodes, generate_jobs, task_requests
from hybrid_policy.scenario.model import Scenario, TraceSpec, WideJobs
from hybrid_policy.scenario.traces import (
    CanonicalRow,
    convert_philly,
    jobs_from_rows,
    nodes_for_load,
    read_canonical,
)


@dataclass(frozen=True)
class Workload:
    """Everything one simulation run replays."""

    scenario: Scenario
    level: str
    seed: int
    nodes: list[NodeInfo]
    jobs: list[Job]
    horizon_s: float
    notes: list[str] = field(default_factory=list)


@lru_cache(maxsize=8)
def _trace_rows(spec: TraceSpec) -> tuple[tuple[CanonicalRow, ...], str]:
    path = Path(spec.path)
    if spec.format == "philly":
        keep_wide = spec.wide_jobs is WideJobs.GANG
        rows, report = convert_philly(path, spec.start, spec.end, keep_wide=keep_wide)
        note = f"philly: {report.summary()}"
    else:
        rows = read_canonical(path)
        note = f"trace {path}: {len(rows)} jobs"
    if spec.max_jobs is not None:
        rows = sorted(rows, key=lambda r: r.submit_time_s)[: spec.max_jobs]
    return tuple(rows), note


def with_trace_path(scenario: Scenario, path: str) -> Scenario:
    """The scenario with its trace file replaced (the ``--trace`` option)."""
    trace = scenario.trace or TraceSpec(path=path)
    return dataclasses.replace(scenario, trace=dataclasses.replace(trace, path=path))


def prepare_workload(scenario: Scenario, level: str, seed: int) -> Workload:
    """Nodes and jobs for one run; a job that no node could ever hold is refused."""
    if scenario.trace is None:
        nodes = build_nodes(scenario)
        check_task_types_fit(scenario, nodes)
        if scenario.bursts is not None:
            jobs = burst_jobs(scenario, level, seed)
        else:
            jobs = generate_jobs(scenario, level, seed)
        return Workload(scenario, level, seed, nodes, jobs, scenario.horizon_s)
    rows, note = _trace_rows(scenario.trace)
    return _replay(scenario, level, seed, rows, [note])


def _replay(
    scenario: Scenario, level: str, seed: int, rows: Sequence[CanonicalRow], notes: list[str]
) -> Workload:
    trace = scenario.trace
    assert trace is not None
    if trace.target_load is not None:
        group = scenario.nodes[0]
        perf = (group.performance[0] + group.performance[1]) / 2.0
        count = nodes_for_load(rows, group.gpus, trace.target_load, perf)
        sized = dataclasses.replace(group, count=count)
        scenario = dataclasses.replace(scenario, nodes=(sized, *scenario.nodes[1:]))
        notes.append(
            f"cluster sized to {count} nodes x {group.gpus} GPUs for offered load "
            f"{trace.target_load:g}"
        )
    jobs = jobs_from_rows(rows, scenario)
    horizon = scenario.horizon_s or max(j.submit_s for j in jobs)
    jobs = [j for j in jobs if j.submit_s <= horizon]
    nodes = build_nodes(scenario)
    check_trace_jobs_fit(trace.path, jobs, nodes)
    return Workload(scenario, level, seed, nodes, jobs, horizon, notes)


def _fits_somewhere(requests: Mapping[str, int], nodes: Sequence[NodeInfo]) -> bool:
    wanted = {r: v for r, v in requests.items() if v > 0}
    return any(all(node.allocatable.get(r, 0) >= v for r, v in wanted.items()) for node in nodes)


def _describe(requests: Mapping[str, int]) -> str:
    return ", ".join(
        f"{format_amount(r, requests.get(r, 0))} {label}"
        for r, label in ((GPU, "GPUs"), (CPU, "CPU"), (MEMORY, "memory"))
    )


def _largest(nodes: Sequence[NodeInfo]) -> str:
    most = {r: max(n.allocatable.get(r, 0) for n in nodes) for r in (GPU, CPU, MEMORY)}
    return f"no node has room for it (at most {_describe(most)} per node)"


def check_task_types_fit(scenario: Scenario, nodes: Sequence[NodeInfo]) -> None:
    """Refuse a task type with a GPU count whose jobs fit on no node: they would wait
    forever, and the run would report nothing about them but "unfinished"."""
    for i, task in enumerate(scenario.task_types):
        for gpus, probability in task.gpus.items():
            requests = task_requests(task, gpus)
            if probability > 0 and not _fits_somewhere(requests, nodes):
                raise ScenarioError(
                    scenario.source,
                    f"task_types[{i}].gpus.{gpus}",
                    f"a job of {_describe(requests)}: {_largest(nodes)}",
                )


def check_trace_jobs_fit(source: str, jobs: Sequence[Job], nodes: Sequence[NodeInfo]) -> None:
    """Refuse a trace with jobs that fit on no node, naming the first and the count."""
    stuck = [job for job in jobs if not _fits_somewhere(job.requests, nodes)]
    if stuck:
        first = stuck[0]
        raise ScenarioError(
            source,
            f"job {first.job_id} (submitted at {first.submit_s:g} s)",
            f"{_describe(first.requests)}: {_largest(nodes)}; "
            f"{len(stuck)} of {len(jobs)} jobs are that large",
        )


#: Windows with fewer jobs than this are not worth an episode.
MIN_WINDOW_JOBS = 500


def trace_windows(scenario: Scenario, seed: int, days: float) -> list[Workload]:
    """A trace scenario's jobs cut by submit time into consecutive windows of ``days``.

    Each window is replayed on its own, starting at 0, on a cluster sized for the
    scenario's target load over that window (as the evaluation window is), so that busy
    and quiet weeks are equally loaded. Windows with fewer than :data:`MIN_WINDOW_JOBS`
    jobs, and a last window shorter than half the others, are left out. Training uses them
    as the episodes of a long trace.
    """
    if scenario.trace is None:
        raise ScenarioError(scenario.source, "trace", "windows need a trace scenario")
    if days <= 0:
        raise ScenarioError("--trace-window-days", "", "must be > 0", days)
    rows, note = _trace_rows(scenario.trace)
    first = min(r.submit_time_s for r in rows)
    width_s = days * 86_400.0
    last = max(r.submit_time_s for r in rows)
    by_window: dict[int, list[CanonicalRow]] = {}
    for row in rows:
        by_window.setdefault(int((row.submit_time_s - first) // width_s), []).append(row)
    if last - first - max(by_window) * width_s < width_s / 2:
        del by_window[max(by_window)]
    return [
        _replay(
            scenario,
            f"trace-w{k}",
            seed,
            window,
            [note, f"window {k}: days {k * days:g}-{(k + 1) * days:g} of the trace"],
        )
        for k, window in sorted(by_window.items())
        if len(window) >= MIN_WINDOW_JOBS
    ]
