"""Jobs arriving in bursts, the teams in turn: the workload that provokes preemption
ping-pong (``scenarios/ping-pong.yaml``).

Every ``period`` from 0 up to the horizon one team floods the cluster: it submits jobs
until they ask for the workload level times the cluster's GPUs. The teams take turns in
the order the scenario lists them. Each job's task type, GPU count and run time are
drawn as for Poisson arrivals (by the task types' shares, GPU distributions and run-time
distributions), its submission uniformly in the first ``spread`` of its burst; all of it
is drawn from the run's seed, so each seed gives other jobs.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hybrid_policy.resources import GPU
from hybrid_policy.scenario.fields import ScenarioError
from hybrid_policy.scenario.jobs import Job, build_nodes, task_requests
from hybrid_policy.scenario.model import Scenario, TaskType


def burst_jobs(scenario: Scenario, level: str, seed: int) -> list[Job]:
    """The bursts of ``scenario`` at workload ``level``, reproducible by ``seed``."""
    bursts = scenario.bursts
    assert bursts is not None
    if level not in scenario.workloads:
        known = ", ".join(scenario.workloads)
        raise ScenarioError(
            scenario.source, "workloads", f"no workload level {level!r} (known: {known})"
        )
    capacity = sum(n.allocatable.get(GPU, 0) for n in build_nodes(scenario))
    if capacity <= 0:
        raise ScenarioError(
            scenario.source, "bursts", "a burst is sized on the cluster's GPUs; it has none"
        )
    wanted = scenario.workloads[level] * capacity
    teams = [n.name for n in scenario.namespaces]
    rng = np.random.default_rng([seed, 0x62757273])
    jobs: list[Job] = []
    k = 0
    while k * bursts.period_s < scenario.horizon_s:
        asked = 0
        while asked < wanted:
            submit = k * bursts.period_s + float(rng.uniform(0.0, bursts.spread_s))
            job = _draw(scenario.task_types, rng, submit, teams[k % len(teams)])
            jobs.append(job)
            asked += max(job.gpus, 1)
        k += 1
    ordered = sorted(jobs, key=lambda j: j.submit_s)
    return [dataclasses.replace(j, job_id=i) for i, j in enumerate(ordered)]


def _draw(types: tuple[TaskType, ...], rng: np.random.Generator, submit_s: float, team: str) -> Job:
    """One job of ``team`` submitted at ``submit_s`` (numbered once all are in order)."""
    task = types[int(rng.choice(len(types), p=_normalised([t.share for t in types])))]
    counts = list(task.gpus)
    gpus = int(counts[int(rng.choice(len(counts), p=_normalised(list(task.gpus.values()))))])
    runtime = float(np.exp(task.runtime.mu + task.runtime.sigma * rng.standard_normal()))
    return Job(
        job_id=0,
        submit_s=submit_s,
        runtime_s=max(runtime, 1.0),
        requests=task_requests(task, gpus),
        namespace=team,
        task_type=task.name,
        usage=task.usage,
    )


def _normalised(weights: list[float]) -> list[float]:
    """Probabilities from shares the loader let add up to 1 within its tolerance."""
    total = sum(weights)
    return [w / total for w in weights]
