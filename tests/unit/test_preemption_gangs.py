"""A waiting gang preempts as one preemptor: a node for every member or no plan at all,
the reclaim rule applied to all its GPUs at once, and in the simulator a gang started by
preemption whole."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pytest

from builders import make_node, make_pod
from hybrid_policy.domain import Gang, Namespace, PendingPod
from hybrid_policy.framework.snapshot import BoolArray, ClusterSnapshot
from hybrid_policy.policies import build_policy
from hybrid_policy.preemption.model import GangPlan, PreemptionReason, PreemptionRules, RunningPod
from hybrid_policy.preemption.options import parse_settings
from hybrid_policy.preemption.phase import PhasePlan, PreemptionSettings, plan_preemptions
from hybrid_policy.resources import GPU
from hybrid_policy.scenario.jobs import Job, build_nodes
from hybrid_policy.scenario.loader import load_scenario
from hybrid_policy.scenario.model import NodeGroup, PreemptionCostSpec
from hybrid_policy.scenario.workload import Workload
from hybrid_policy.sim.engine import Simulation

NOW = 10_000.0
SETTINGS = PreemptionSettings(rules=PreemptionRules(min_runtime_s=300, trigger_delay_s=60))
#: What runs on each node: (team, GPUs, seconds it ran, opted in).
Runs = dict[str, tuple[str, int, float, bool]]


def _cluster(runs: Runs) -> tuple[ClusterSnapshot, list[RunningPod]]:
    """One 8-GPU node per entry of ``runs``, each running the one pod it names."""
    teams = [Namespace("team-a"), Namespace("team-b"), Namespace("team-c")]
    snapshot = ClusterSnapshot([make_node(name) for name in runs], teams)
    running = []
    for row, (node, (team, gpus, ran_s, opted_in)) in enumerate(runs.items()):
        pod = make_pod(f"run-{node}", gpus=gpus, cpu=0, memory_gib=0, namespace=team)
        snapshot.assume(pod, row)
        running.append(
            RunningPod(team, pod.name, pod.uid, node, pod.requests, NOW - ran_s, opted_in=opted_in)
        )
    return snapshot, running


def _gang(members: int, team: str = "team-a") -> list[PendingPod]:
    gang = Gang("llm", members)
    return [
        make_pod(f"llm-{k}", gpus=8, cpu=0, memory_gib=0, namespace=team, gang=gang)
        for k in range(members)
    ]


def _phase(runs: Runs, waiting: Sequence[PendingPod]) -> list[PhasePlan]:
    snapshot, running = _cluster(runs)
    masks: dict[str, BoolArray] = {p.uid: np.ones(len(snapshot), dtype=bool) for p in waiting}
    since = {p.uid: NOW - 120 for p in waiting}
    return plan_preemptions(snapshot, waiting, masks, running, since, NOW, SETTINGS)


def _full(ran_s: Sequence[float], opted_in: Sequence[bool] = (True,) * 4) -> Runs:
    """team-b holds four nodes: its pods ran ``ran_s`` seconds."""
    return {
        f"n{i + 1}": ("team-b", 8, ran, ok)
        for i, (ran, ok) in enumerate(zip(ran_s, opted_in, strict=True))
    }


def test_a_gang_below_its_share_reclaims_two_nodes_in_one_plan() -> None:
    gang = _gang(2)
    (made,) = _phase(_full([5_000, 400, 600, 3_000]), gang)
    assert isinstance(made.plan, GangPlan) and made.plan.reason is PreemptionReason.RECLAIM
    # The two nodes whose pods lose least, once each, one member on each.
    assert sorted(v.node for v in made.victims) == ["n2", "n3"]
    assert sorted(row for _, row in made.binds) == [1, 2]
    assert [pod for pod, _ in made.binds] == gang
    assert made.plan.work_lost_s == pytest.approx((400 + 600) * 8)


def test_a_gang_that_would_get_only_one_node_gets_no_plan() -> None:
    # Only n2's pod may be a victim: one member would fit, the other nowhere.
    only_one = _full([5_000, 400, 600, 3_000], [False, True, False, False])
    assert _phase(only_one, _gang(2)) == []
    # With a second node to take, the same gang gets both.
    two = _full([5_000, 400, 600, 3_000], [False, True, True, False])
    (made,) = _phase(two, _gang(2))
    assert sorted(v.node for v in made.victims) == ["n2", "n3"]


def test_the_reclaim_rule_counts_all_the_gangs_gpus_at_once() -> None:
    # team-b holds 24 GPUs, team-c 8, team-a none: each is entitled to a third of 32.
    runs: Runs = {
        "n1": ("team-b", 8, 600, True),
        "n2": ("team-b", 8, 700, True),
        "n3": ("team-b", 8, 800, True),
        "n4": ("team-c", 8, 900, True),
    }
    # A pod alone of 8 GPUs may take one of team-b's nodes: 8 against 16 left.
    single = make_pod("solo", gpus=8, cpu=0, memory_gib=0, namespace="team-a")
    (made,) = _phase(runs, [single])
    assert [v.node for v in made.victims] == ["n1"]
    # A gang of two such pods would end with 16 GPUs against team-b's 8: refused, though
    # each of its pods alone would pass.
    assert _phase(runs, _gang(2)) == []


def test_a_gang_never_preempts_too_soon_or_when_one_member_says_never() -> None:
    runs = _full([5_000, 400, 600, 3_000])
    gang = _gang(2)
    snapshot, running = _cluster(runs)
    masks: dict[str, BoolArray] = {p.uid: np.ones(len(snapshot), dtype=bool) for p in gang}
    # The oldest member has waited long enough: the gang may go.
    since = {gang[0].uid: NOW - 120, gang[1].uid: NOW - 10}
    assert plan_preemptions(snapshot, gang, masks, running, since, NOW, SETTINGS)
    young = {p.uid: NOW - 10 for p in gang}
    assert plan_preemptions(snapshot, gang, masks, running, young, NOW, SETTINGS) == []
    never = frozenset({gang[1].uid})
    assert plan_preemptions(snapshot, gang, masks, running, since, NOW, SETTINGS, never=never) == []


def test_two_gangs_in_one_phase_never_count_the_same_room() -> None:
    snapshot, running = _cluster(_full([5_000, 400, 600, 3_000]))
    first = [dataclasses.replace(p, priority=10) for p in _gang(2)]
    second = [
        dataclasses.replace(p, name=f"b{p.name}", uid=f"b{p.uid}", gang=Gang("b", 2)) for p in first
    ]
    waiting = [*first, *second]
    masks: dict[str, BoolArray] = {p.uid: np.ones(len(snapshot), dtype=bool) for p in waiting}
    since = {p.uid: NOW - 120 for p in waiting}
    by_priority = dataclasses.replace(SETTINGS, reasons=frozenset({PreemptionReason.PRIORITY}))
    made = plan_preemptions(snapshot, waiting, masks, running, since, NOW, by_priority)
    # The first gang takes the two cheapest nodes, the second the other two.
    assert [sorted(row for _, row in m.binds) for m in made] == [[1, 2], [0, 3]]
    assert [sorted(v.node for v in m.victims) for m in made] == [["n2", "n3"], ["n1", "n4"]]


def _job(job_id: int, submit_s: float, runtime_s: float, namespace: str, members: int) -> Job:
    requests = {GPU: 8, "cpu": 8000, "memory": 2**34}
    return Job(job_id, submit_s, runtime_s, requests, namespace, "nlp", {GPU: 0.8}, members)


def test_the_simulator_starts_a_gang_by_preemption_whole(tiny_scenario_path: object) -> None:
    """team-a fills four nodes at 0 for an hour; team-b (weight 2) submits a gang of two
    whole-node pods at 600 s."""
    nodes = (NodeGroup(count=4, gpus=8, cpu=64, memory_gib=512, performance=(100.0, 100.0)),)
    cost = PreemptionCostSpec(opt_in=1.0, checkpoint_interval_s=300.0, restart_overhead_s=60.0)
    scenario = load_scenario(str(tiny_scenario_path))
    scenario = dataclasses.replace(scenario, nodes=nodes, preemption=cost)
    jobs = [_job(i, 0.0, 3600.0, "team-a", 1) for i in range(4)]
    jobs.append(_job(4, 600.0, 600.0, "team-b", 2))
    workload = Workload(scenario, "heavy", 0, build_nodes(scenario), jobs, 3600.0)
    policy = build_policy("fair-easy", np.random.default_rng(0))
    policy = dataclasses.replace(policy, preemption=parse_settings("on"))
    result = Simulation(workload, policy, 0).run()
    # The gang may trigger at 660 s and takes two of team-a's nodes in one plan: 16 GPUs
    # each then, at weights 1 and 2.
    assert result.start_s[4] == pytest.approx(660.0)
    assert result.end_s[4] == pytest.approx(1260.0)
    assert sorted(result.stops_per_job[:4]) == [0, 0, 1, 1] and result.stops_per_job[4] == 0
    assert result.preemptions == 2
    assert result.partial_gangs == 0 and result.deadlocked_gangs == 0
    assert result.idle_gang_gpu_s == 0.0
