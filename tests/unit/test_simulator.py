import dataclasses

import numpy as np
import pytest

from hybrid_lab.matrix import run_one
from hybrid_policy.game import GameArbitrator
from hybrid_policy.plugins.arbiters import SequentialArbitrator
from hybrid_policy.policies import build_policy, policy_names
from hybrid_policy.scenario.loader import load_scenario
from hybrid_policy.scenario.model import NodeGroup, Scenario
from hybrid_policy.scenario.workload import prepare_workload
from hybrid_policy.sim.engine import Simulation


def _scenario(path: object, **changes: object) -> Scenario:
    return dataclasses.replace(load_scenario(str(path)), **changes)  # type: ignore[arg-type]


def test_same_seed_same_result(tiny_scenario_path: object) -> None:
    workload = prepare_workload(_scenario(tiny_scenario_path), "heavy", 0)
    first = run_one(workload, "random")
    second = run_one(prepare_workload(_scenario(tiny_scenario_path), "heavy", 0), "random")
    assert first.jct_s == second.jct_s and first.utilization == second.utilization
    assert first.namespace_share == second.namespace_share
    assert (first.unfinished, first.wait_s) == (second.unfinished, second.wait_s)
    other = run_one(prepare_workload(_scenario(tiny_scenario_path), "heavy", 1), "random")
    assert other.jct_s != first.jct_s


def test_littles_law_on_a_long_stable_run(tiny_scenario_path: object) -> None:
    scenario = _scenario(tiny_scenario_path, horizon_hours=300.0)
    record = run_one(prepare_workload(scenario, "light", 2), "kube-default")
    assert record.jobs > 3000
    assert record.jobs_in_system_mean == pytest.approx(record.little_law_expected, rel=0.05)


def test_utilisation_equals_offered_load_below_saturation(tiny_scenario_path: object) -> None:
    equal = (NodeGroup(count=4, gpus=8, cpu=64, memory_gib=512, performance=(100.0, 100.0)),)
    scenario = _scenario(
        tiny_scenario_path, horizon_hours=200.0, nodes=equal, workloads={"mid": 0.6}
    )
    for policy in ("kube-default", "binpack"):
        record = run_one(prepare_workload(scenario, "mid", 4), policy)
        assert abs(record.utilization.gpu - record.offered_load) < 0.02, policy
        assert record.offered_load == pytest.approx(0.6, abs=0.05)


@pytest.mark.parametrize("policy", policy_names())
def test_mean_jct_is_at_least_the_fastest_node_bound(
    tiny_scenario_path: object, policy: str
) -> None:
    record = run_one(prepare_workload(_scenario(tiny_scenario_path), "heavy", 5), policy)
    assert record.completed == record.jobs
    assert record.jct_s.mean >= record.fastest_node_bound_jct_s
    assert record.utilization.gpu <= 1.0


def test_capacity_holds_after_every_pass(tiny_scenario_path: object) -> None:
    workload = prepare_workload(_scenario(tiny_scenario_path), "heavy", 6)
    for policy in ("kube-default", "srtf-oracle"):
        sim = Simulation(workload, build_policy(policy, np.random.default_rng(0)), 6)
        violations: list[float] = []

        def check(
            now_s: float, sim: Simulation = sim, violations: list[float] = violations
        ) -> None:
            snap = sim.snapshot
            if np.any(snap.requested > snap.allocatable + 1e-9):
                violations.append(now_s)

        sim.progress = check
        sim.run()
        assert violations == [], policy


def test_preempted_work_is_not_lost(tiny_scenario_path: object) -> None:
    workload = prepare_workload(_scenario(tiny_scenario_path), "heavy", 7)
    sim = Simulation(workload, build_policy("srtf-oracle", np.random.default_rng(0)), 7)
    result = sim.run()
    assert result.preemptions > 0
    done = ~np.isnan(result.end_s)
    assert done.all()
    # A job never finishes sooner than its run time on the fastest node allows.
    assert np.all(result.end_s - result.start_s >= result.fastest_runtime_s - 1e-6)
    assert np.allclose(sim.remaining_work_s, 0.0, atol=1e-6)


def test_seed_paper_scenario_matches_its_definition() -> None:
    scenario = load_scenario("seed-paper")
    workload = prepare_workload(scenario, "heavy", 0)
    assert len(workload.nodes) == 10
    assert all(n.allocatable["nvidia.com/gpu"] == 8 for n in workload.nodes)
    perf = [n.performance for n in workload.nodes]
    assert min(perf) >= 50 and max(perf) <= 100 and len(set(perf)) > 3
    assert scenario.horizon_hours == 100
    assert dict(scenario.workloads) == {"light": 0.55, "medium": 0.75, "heavy": 0.95}
    assert [(n.name, n.weight, n.job_share) for n in scenario.namespaces] == [
        ("team-a", 1, 0.4),
        ("team-b", 1, 0.3),
        ("team-c", 2, 0.2),
        ("team-d", 1, 0.1),
    ]
    runtimes = {
        t: np.array([j.runtime_s for j in workload.jobs if j.task_type == t]) / 60
        for t in ("image-classification", "nlp")
    }
    assert np.median(runtimes["image-classification"]) == pytest.approx(6, rel=0.05)
    assert runtimes["image-classification"].mean() == pytest.approx(8, rel=0.06)
    assert np.median(runtimes["nlp"]) == pytest.approx(8, rel=0.05)
    assert runtimes["nlp"].mean() == pytest.approx(11, rel=0.06)
    nlp8 = [j for j in workload.jobs if j.task_type == "nlp" and j.gpus == 8]
    assert (
        nlp8 and nlp8[0].requests["cpu"] == 32_000 and nlp8[0].requests["memory"] == 512 * 1024**3
    )
    record = run_one(dataclasses.replace(workload, jobs=workload.jobs[:200]), "kube-default")
    assert record.jobs == 200


def test_game_replays_are_exact(tiny_scenario_path: object) -> None:
    workload = prepare_workload(_scenario(tiny_scenario_path, horizon_hours=3.0), "heavy", 0)
    first, second = run_one(workload, "game"), run_one(workload, "game")
    assert first.jct_s == second.jct_s and first.utilization == second.utilization
    assert first.namespace_share == second.namespace_share
    assert (first.wait_s, first.jain_fairness) == (second.wait_s, second.jain_fairness)


def test_namespace_slowdowns_are_at_least_one_and_the_worst_is_their_maximum(
    tiny_scenario_path: object,
) -> None:
    record = run_one(prepare_workload(_scenario(tiny_scenario_path), "heavy", 7), "drf")
    by_namespace = record.slowdown_by_namespace
    assert set(by_namespace) == set(record.jct_by_namespace_s)
    assert all(value >= 1.0 for value in by_namespace.values())
    assert record.slowdown.worst_namespace == max(by_namespace.values())
    assert min(by_namespace.values()) <= record.slowdown.mean <= max(by_namespace.values())


class WallClockSpy(SequentialArbitrator):
    def __init__(self) -> None:
        self.wall_clock: list[bool] = []

    def use_wall_clock(self, enabled: bool) -> None:
        self.wall_clock.append(enabled)


def test_a_simulation_turns_every_arbitrators_wall_clock_off(tiny_scenario_path: object) -> None:
    workload = prepare_workload(_scenario(tiny_scenario_path), "light", 1)
    policy = build_policy("kube-default", np.random.default_rng(0))
    spy = policy.profile.arbitrator = WallClockSpy()
    Simulation(workload, policy, 1)
    assert spy.wall_clock == [False]
    game = build_policy("game", np.random.default_rng(0))
    Simulation(workload, game, 1)
    assert isinstance(game.profile.arbitrator, GameArbitrator)
    assert game.profile.arbitrator.settings.time_budget_s is None
