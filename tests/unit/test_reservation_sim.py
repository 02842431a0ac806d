"""Reservations through whole simulated runs: with exact predictions no pod that held a
reservation starts later than first predicted, and capacity always holds."""

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.cycle import Decision
from hybrid_policy.framework.snapshot import ClusterSnapshot
from hybrid_policy.plugins.scores import binpack_scorer
from hybrid_policy.policies import reserving_policy
from hybrid_policy.reservation import BackfillMode, ReservationSettings
from hybrid_policy.scenario.loader import load_scenario
from hybrid_policy.scenario.model import ProgressSpec, UserEstimateSpec
from hybrid_policy.scenario.workload import prepare_workload
from hybrid_policy.sim.engine import Simulation

EXACT = {
    "user_estimates": UserEstimateSpec(sigma=0.0, bias=1.0, coverage=1.0),
    "progress": ProgressSpec(interval_s=60.0, warmup_s=60.0, noise=0.0),
}


@pytest.mark.parametrize("mode", [BackfillMode.EASY, BackfillMode.CONSERVATIVE])
def test_with_exact_predictions_a_reserved_pod_starts_no_later_than_first_predicted(
    tiny_scenario_path: Path, mode: BackfillMode
) -> None:
    scenario = dataclasses.replace(load_scenario(str(tiny_scenario_path)), **EXACT)  # type: ignore[arg-type]
    workload = prepare_workload(scenario, "heavy", 4)
    # Durations at face value: an optimistic backfill factor may delay on purpose.
    settings = ReservationSettings(mode=mode, backfill_factor=1.0)
    policy = reserving_policy("exact", [(binpack_scorer(), 1.0)], settings)
    sim = Simulation(workload, policy, 4)
    first: dict[str, float] = {}
    overfull: list[float] = []
    schedule = sim.profile.schedule_batch

    def spy(
        pods: Sequence[PendingPod],
        snapshot: ClusterSnapshot,
        rng: np.random.Generator,
        explain: bool = True,
    ) -> list[Decision]:
        decisions = schedule(pods, snapshot, rng, explain)
        for d in decisions:
            if d.nomination is not None:
                first.setdefault(d.pod.uid, d.nomination.predicted_start_s)
        if np.any(snapshot.requested > snapshot.allocatable + 1e-9):
            overfull.append(snapshot.now_s)
        return decisions

    sim.profile.schedule_batch = spy  # type: ignore[method-assign]
    result = sim.run()
    assert len(first) > 20
    late = {
        uid: (result.start_s[sim.by_uid[uid]], predicted)
        for uid, predicted in first.items()
        if result.start_s[sim.by_uid[uid]] > predicted + 1e-6
    }
    assert late == {}
    assert overfull == []
