"""Running a benchmark matrix: every (workload level, policy, seed), one record each.

The same jobs are replayed for every policy of a (level, seed), so differences between
policies are not differences between workloads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from tqdm import tqdm

from hybrid_policy.policies import ModelOptions, build_policy
from hybrid_policy.report.record import RunSummary
from hybrid_policy.report.summary import summarise
from hybrid_policy.scenario.model import Scenario
from hybrid_policy.scenario.workload import Workload, prepare_workload
from hybrid_policy.sim.engine import Simulation


def run_one(
    workload: Workload,
    policy: str,
    progress: Callable[[float], None] | None = None,
    model: ModelOptions | None = None,
) -> RunSummary:
    """Simulate ``policy`` on ``workload`` and summarise it (``model``: see build_policy)."""
    rng = np.random.default_rng([workload.seed, 0x706F6C])
    built = build_policy(policy, rng, model)
    sim = Simulation(workload, built, workload.seed, progress=progress)
    return summarise(sim.run())


def run_matrix(
    scenario: Scenario,
    levels: Sequence[str],
    policies: Sequence[str],
    seeds: Sequence[int],
    show_progress: bool = True,
    notes: list[str] | None = None,
    model: ModelOptions | None = None,
) -> list[RunSummary]:
    """All runs of the matrix, with a progress bar over runs (and over simulated time).

    ``model``: where ``dqn`` and ``hybrid`` load their scorer (default: the shipped one).
    """
    records: list[RunSummary] = []
    total = len(levels) * len(policies) * len(seeds)
    with tqdm(
        total=total, desc="simulating", unit="run", disable=not show_progress, leave=False
    ) as bar:
        for level in levels:
            for seed in seeds:
                workload = prepare_workload(scenario, level, seed)
                if notes is not None:
                    notes.extend(n for n in workload.notes if n not in notes)
                for policy in policies:
                    bar.set_postfix_str(f"{level} seed {seed} {policy}")
                    clock = show_progress and len(workload.jobs) > 50_000
                    records.append(_run_with_clock(workload, policy, clock, model))
                    bar.update()
    return records


def _run_with_clock(
    workload: Workload, policy: str, clock: bool, model: ModelOptions | None
) -> RunSummary:
    if not clock:
        return run_one(workload, policy, model=model)
    hours = round(workload.horizon_s / 3600.0)
    with tqdm(total=hours, desc=f"  {policy}", unit="sim-h", leave=False) as bar:

        def advance(now_s: float) -> None:
            done = min(round(now_s / 3600.0), hours)
            if done > bar.n:
                bar.update(done - bar.n)

        return run_one(workload, policy, advance, model)
