"""Gangs in the framework: a gang-aware profile places all of a gang's pods in one pass or
none; pod-by-pod profiles place what fits, as kube-scheduler does without a gang plugin."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builders import make_node, make_pod
from game_builders import game_cycle
from hybrid_policy.domain import Gang, Namespace, PendingPod
from hybrid_policy.framework.cycle import BatchCycle, Decision
from hybrid_policy.framework.snapshot import ClusterSnapshot
from hybrid_policy.game import build_problem
from hybrid_policy.game.fallback import greedy_allocation
from hybrid_policy.plugins.arbiters import place_best
from hybrid_policy.policies import build_policy, policy_names

GANG_AWARE = [
    name
    for name in policy_names()
    if build_policy(name, np.random.default_rng(0)).profile.gang_aware
]


def _arbitrator(policy: str) -> str:
    return type(build_policy(policy, np.random.default_rng(0)).profile.arbitrator).__name__


#: Gang-aware policies that serve namespaces in a fair order (reservations, the game).
RESERVING = [name for name in GANG_AWARE if _arbitrator(name) == "ReservingArbitrator"]
FAIR = [*RESERVING, *(name for name in GANG_AWARE if _arbitrator(name) == "GameArbitrator")]


def _cluster(nodes: int) -> ClusterSnapshot:
    return ClusterSnapshot([make_node(f"n{i}") for i in range(nodes)], [Namespace("team-a")])


def _gang(
    name: str, size: int, namespace: str = "team-a", min_member: int | None = None
) -> list[PendingPod]:
    gang = Gang(name, min_member if min_member is not None else size)
    return [
        make_pod(f"{name}-{i}", gpus=8, namespace=namespace, gang=gang, created_at_s=float(i))
        for i in range(size)
    ]


def _schedule(policy: str, pods: list[PendingPod], snapshot: ClusterSnapshot) -> list[Decision]:
    profile = build_policy(policy, np.random.default_rng(0)).profile
    return profile.schedule_batch(pods, snapshot, np.random.default_rng(0))


def test_the_gang_aware_policies_include_hybrid_and_the_gang_binpack() -> None:
    assert {"binpack-gang", "hybrid", "hybrid-reserve", "game"} <= set(GANG_AWARE)
    assert not {"kube-default", "binpack", "dqn"} & set(GANG_AWARE)


@pytest.mark.parametrize("policy", GANG_AWARE)
def test_a_gang_that_does_not_fit_whole_places_nothing(policy: str) -> None:
    snapshot = _cluster(2)
    decisions = _schedule(policy, _gang("llm", 3), snapshot)
    assert not any(d.placed for d in decisions)
    assert snapshot.placements == {}
    assert not snapshot.requested.any()
    for d in decisions:
        assert "gang team-a/llm: 2 of 3 pods would fit" in d.status.message, d.status.message


@pytest.mark.parametrize("policy", GANG_AWARE)
def test_a_gang_that_does_not_fit_leaves_its_nodes_to_the_pods_behind_it(policy: str) -> None:
    snapshot = _cluster(2)
    alone = make_pod("alone", gpus=8, namespace="team-a", created_at_s=10.0)
    decisions = _schedule(policy, [*_gang("llm", 3), alone], snapshot)
    assert len(decisions) == 4
    assert len({d.pod.uid for d in decisions}) == 4
    assert [d.pod.name for d in decisions if d.placed] == ["alone"]


def test_the_fair_policies_are_the_reserving_ones_and_the_game() -> None:
    assert {"hybrid-reserve", "fair-easy"} <= set(RESERVING)
    assert {"game", "hybrid", "hybrid-reserve", "fair-easy"} <= set(FAIR)
    assert not {"binpack-gang", "srtf-oracle"} & set(FAIR)


@pytest.mark.parametrize("policy", FAIR)
def test_a_served_teams_gang_does_not_jump_ahead_of_an_unserved_teams_pod(policy: str) -> None:
    # team-a already runs a whole node; its gang is first in the queue and would take the
    # three free nodes. In the fair order team-b (holding nothing) goes first, and the
    # gang, left two nodes, is placed whole or not at all: not at all.
    snapshot = ClusterSnapshot(
        [make_node(f"n{i}") for i in range(4)], [Namespace("team-a"), Namespace("team-b")]
    )
    snapshot.assume(make_pod("running", gpus=8, namespace="team-a"), 0)
    pod = make_pod("b", gpus=8, namespace="team-b", created_at_s=5.0)
    decisions = _schedule(policy, [*_gang("llm", 3), pod], snapshot)
    assert [d.pod.name for d in decisions if d.placed] == ["b"]
    assert snapshot.gang_members[("team-a", "llm")] == 0
    for d in decisions:
        if d.pod.gang is not None:
            assert "gang team-a/llm" in d.status.message, d.status.message


@pytest.mark.parametrize("policy", FAIR)
def test_a_gang_keeps_its_place_in_its_teams_queue(policy: str) -> None:
    # team-a's single pod was queued before its gang: it goes first, and the gang, left
    # one node of the two it needs, waits whole.
    snapshot = _cluster(2)
    single = make_pod("single", gpus=8, namespace="team-a", created_at_s=0.0)
    gang = [dataclasses.replace(p, created_at_s=1.0 + i) for i, p in enumerate(_gang("llm", 2))]
    decisions = _schedule(policy, [*gang, single], snapshot)
    assert [d.pod.name for d in decisions if d.placed] == ["single"]


@pytest.mark.parametrize("policy", RESERVING)
def test_an_aged_gang_goes_before_the_fair_order(policy: str) -> None:
    # As above, but the gang has waited past the ageing threshold: it goes first, whole.
    snapshot = ClusterSnapshot(
        [make_node(f"n{i}") for i in range(4)], [Namespace("team-a"), Namespace("team-b")]
    )
    snapshot.assume(make_pod("running", gpus=8, namespace="team-a"), 0)
    snapshot.now_s = 10 * 3600.0
    pod = make_pod("b", gpus=8, namespace="team-b", created_at_s=snapshot.now_s)
    decisions = _schedule(policy, [*_gang("llm", 3), pod], snapshot)
    assert sorted(d.pod.name for d in decisions if d.placed) == ["llm-0", "llm-1", "llm-2"]


@pytest.mark.parametrize("a_runs", [False, True])
def test_the_games_fallback_gives_a_team_its_whole_gang_or_none(a_runs: bool) -> None:
    # Three free nodes, a gang of three and one single pod: pod by pod, weighted DRF gives
    # team-a two of its gang's pods and team-b its pod. Unit by unit the gang is allocated
    # whole (team-a goes first) or not at all (team-b goes first, team-a already running).
    nodes = [make_node(f"n{i}") for i in range(4 if a_runs else 3)]
    cycle, arbitrator = game_cycle(nodes, {"team-a": 1.0, "team-b": 1.0})
    if a_runs:
        cycle.snapshot.assume(make_pod("running", gpus=8, namespace="team-a"), 3)
    pods = [*_gang("llm", 3), make_pod("b", gpus=8, namespace="team-b", created_at_s=5.0)]
    problem = build_problem(arbitrator.pod_classes(pods, cycle), cycle.snapshot, 100.0)
    assert problem.class_units == ((3,), (1,))
    amounts = problem.class_amounts(greedy_allocation(problem))
    assert list(amounts) == ([0.0, 1.0] if a_runs else [3.0, 0.0])


@pytest.mark.parametrize("policy", ["hybrid", "hybrid-reserve"])
def test_the_dqn_scores_a_gangs_placement_once(
    policy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A gang of three 4-GPU pods on two 8-GPU nodes: one score table serves the whole
    # gang (the game's scores its class before the game; the fair order scores its first
    # pod), and each pod goes to the best-scored node where it still fits.
    from hybrid_policy.dqn.scorer import DqnScore

    scored: list[str] = []
    score, alike = DqnScore.score, DqnScore.score_alike

    def spy(self: DqnScore, pod: PendingPod, snap: ClusterSnapshot, rows: np.ndarray) -> object:
        scored.append(pod.name)
        return score(self, pod, snap, rows)

    def spy_alike(
        self: DqnScore, pods: Sequence[PendingPod], snap: ClusterSnapshot, rows: np.ndarray
    ) -> object:
        scored.extend(p.name for p in pods)
        return alike(self, pods, snap, rows)

    monkeypatch.setattr(DqnScore, "score", spy)
    monkeypatch.setattr(DqnScore, "score_alike", spy_alike)
    gang = Gang("llm", 3)
    pods = [make_pod(f"llm-{i}", gpus=4, gang=gang, created_at_s=float(i)) for i in range(3)]
    decisions = _schedule(policy, pods, _cluster(2))
    assert all(d.placed for d in decisions)
    assert scored == ["llm-0"]
    nodes = [d.node for d in decisions]
    assert nodes[0] == nodes[1] != nodes[2]  # the best node while it has room, then the next


def test_pod_by_pod_placement_leaves_a_partial_gang() -> None:
    snapshot = _cluster(2)
    decisions = _schedule("binpack", _gang("llm", 3), snapshot)
    assert sum(d.placed for d in decisions) == 2


@pytest.mark.parametrize("policy", GANG_AWARE)
def test_a_gang_that_fits_is_placed_whole(policy: str) -> None:
    snapshot = _cluster(3)
    decisions = _schedule(policy, _gang("llm", 3), snapshot)
    assert all(d.placed for d in decisions)
    assert len({d.node for d in decisions}) == 3


def test_two_gangs_that_each_need_most_of_the_cluster_do_not_split_it() -> None:
    # Each wants 3 of the 4 nodes: pod by pod both may end half placed (a deadlock once
    # bound); all or nothing places one whole gang and nothing of the other.
    pods = [*_gang("a", 3), *_gang("b", 3, namespace="team-b")]
    pods = sorted(pods, key=lambda p: p.name[-1])  # interleaved arrivals
    snapshot = _cluster(4)
    decisions = _schedule("binpack-gang", pods, snapshot)
    placed = {d.pod.gang_key for d in decisions if d.placed}
    assert len(placed) == 1
    assert sum(d.placed for d in decisions) == 3
    pod_by_pod = _schedule("binpack", pods, _cluster(4))
    assert {d.pod.gang_key for d in pod_by_pod if d.placed} == {("team-a", "a"), ("team-b", "b")}


def test_late_members_of_a_running_gang_are_placed_alone() -> None:
    snapshot = _cluster(3)
    running = _gang("llm", 3, min_member=2)
    for row, pod in enumerate(running[:2]):
        snapshot.assume(pod, row)
    (late,) = _schedule("binpack-gang", [running[2]], snapshot)
    assert late.placed
    assert snapshot.gang_members[("team-a", "llm")] == 3


def test_forgetting_a_member_counts_it_out_of_its_gang() -> None:
    snapshot = _cluster(2)
    pods = _gang("llm", 2)
    for row, pod in enumerate(pods):
        snapshot.assume(pod, row)
    snapshot.forget(pods[0])
    assert snapshot.gang_members[("team-a", "llm")] == 1
    snapshot.clear_placements()
    assert snapshot.gang_members[("team-a", "llm")] == 0


gangs_strategy = st.lists(
    st.tuples(st.integers(1, 4), st.sampled_from([1, 2, 4, 8]), st.sampled_from(["a", "b"])),
    min_size=1,
    max_size=6,
)


@settings(max_examples=30, deadline=None)
@given(gangs=gangs_strategy, policy=st.sampled_from(GANG_AWARE), seed=st.integers(0, 3))
def test_no_gang_aware_policy_leaves_a_gang_partly_placed(
    gangs: list[tuple[int, int, str]], policy: str, seed: int
) -> None:
    snapshot = ClusterSnapshot(
        [make_node("n0"), make_node("n1", gpus=4), make_node("n2")],
        [Namespace("team-a"), Namespace("team-b", 2.0)],
    )
    pods = [
        make_pod(
            f"g{g}-{i}",
            gpus=width,
            namespace=f"team-{team}",
            gang=Gang(f"g{g}", size) if size > 1 else None,
            created_at_s=float(g),
        )
        for g, (size, width, team) in enumerate(gangs)
        for i in range(size)
    ]
    profile = build_policy(policy, np.random.default_rng(seed)).profile
    decisions = profile.schedule_batch(pods, snapshot, np.random.default_rng(seed))
    assert {d.pod.uid: d.node_row for d in decisions if d.placed} == snapshot.placements
    for key, placed in snapshot.gang_members.items():
        total = sum(1 for p in pods if p.gang_key == key)
        assert placed in (0, total), (key, placed, total)
    assert np.all(snapshot.requested <= snapshot.allocatable + 1e-9)


class _PodByPod:
    """An arbitrator that knows nothing of gangs."""

    name = "pod-by-pod"

    def use_wall_clock(self, enabled: bool) -> None:
        pass

    def arbitrate(self, batch: Sequence[PendingPod], cycle: BatchCycle) -> None:
        for pod in batch:
            place_best(pod, cycle)


def test_a_gang_aware_profile_takes_back_what_a_gang_blind_arbitrator_split() -> None:
    profile = dataclasses.replace(
        build_policy("binpack-gang", np.random.default_rng(0)).profile, arbitrator=_PodByPod()
    )
    snapshot = _cluster(2)
    decisions = profile.schedule_batch(_gang("llm", 3), snapshot, np.random.default_rng(0))
    assert not any(d.placed for d in decisions)
    assert snapshot.placements == {} and not snapshot.requested.any()
    # The two it had placed are told why they were taken back; the third keeps its reason.
    told = ["2 of 3 pods would fit" in d.status.message for d in decisions]
    assert told == [True, True, False]
