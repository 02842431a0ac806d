"""Running a benchmark matrix: every (workload level, policy, seed), one record each.

The same jobs are replayed for every policy of a (level, seed), so differences between
policies are not differences between workloads. A run may restrict the run-time
predictor of the policies that have one to some of its sources (the ablation by source),
or change the reservation settings of the reserving policies (the tuning of
docs/benchmarks.md); their records are then named ``policy[sources]`` or
``policy[key=value,...]``, e.g. ``hybrid-reserve[history]``,
``fair-easy[max_wait_s=none]``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
from tqdm import tqdm

from hybrid_policy.policies import ModelOptions, Policy, build_policy, override_reservation
from hybrid_policy.prediction.model import PredictionSource, describe_sources
from hybrid_policy.preemption.options import parse_settings
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
    sources: frozenset[PredictionSource] | None = None,
    reservation: str | None = None,
    preemption: str | None = None,
) -> RunSummary:
    """Simulate ``policy`` on ``workload`` and summarise it (``model``: see build_policy;
    ``sources``: what its run-time predictor may use, None for all; ``reservation``:
    ``key=value`` changes to its reservation settings, if it reserves)."""
    rng = np.random.default_rng([workload.seed, 0x706F6C])
    built = build_policy(policy, rng, model)
    name = policy
    if sources is not None and restrict_sources(built, sources):
        name += f"[{describe_sources(sources)}]"
    if reservation:
        changed = override_reservation(built, reservation)
        if changed is not None:
            built = changed
            name += f"[{','.join(p.strip() for p in reservation.split(',') if p.strip())}]"
    if preemption:
        built = dataclasses.replace(built, preemption=parse_settings(preemption))
        name += "[preempt]" if preemption.strip() == "on" else f"[preempt:{preemption.strip()}]"
    sim = Simulation(workload, built, workload.seed, progress=progress)
    summary = summarise(sim.run())
    return summary if name == policy else dataclasses.replace(summary, policy=name)


def restrict_sources(policy: Policy, sources: frozenset[PredictionSource]) -> bool:
    """Let ``policy``'s run-time predictor use only ``sources``; False when it has none."""
    if policy.predictor is None:
        return False
    settings = policy.predictor.settings
    policy.predictor.settings = dataclasses.replace(settings, sources=sources)
    return True


def run_matrix(
    scenario: Scenario,
    levels: Sequence[str],
    policies: Sequence[str],
    seeds: Sequence[int],
    show_progress: bool = True,
    notes: list[str] | None = None,
    model: ModelOptions | None = None,
    sources: frozenset[PredictionSource] | None = None,
    reservation: str | None = None,
    preemption: str | None = None,
) -> list[RunSummary]:
    """All runs of the matrix, with a progress bar over runs (and over simulated time).

    ``model``: where ``dqn`` and ``hybrid`` load their scorer (default: the shipped one);
    ``sources``: the run-time prediction sources the predicting policies may use (all);
    ``reservation``: changes to the reserving policies' settings (none);
    ``preemption``: the preemption every policy adds after its passes (none).
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
                    records.append(
                        _run_with_clock(
                            workload, policy, clock, model, sources, reservation, preemption
                        )
                    )
                    bar.update()
    return records


def _run_with_clock(
    workload: Workload,
    policy: str,
    clock: bool,
    model: ModelOptions | None,
    sources: frozenset[PredictionSource] | None,
    reservation: str | None = None,
    preemption: str | None = None,
) -> RunSummary:
    if not clock:
        return run_one(
            workload,
            policy,
            model=model,
            sources=sources,
            reservation=reservation,
            preemption=preemption,
        )
    hours = round(workload.horizon_s / 3600.0)
    with tqdm(total=hours, desc=f"  {policy}", unit="sim-h", leave=False) as bar:

        def advance(now_s: float) -> None:
            done = min(round(now_s / 3600.0), hours)
            if done > bar.n:
                bar.update(done - bar.n)

        return run_one(workload, policy, advance, model, sources, reservation, preemption)
