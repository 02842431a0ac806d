"""Preemption's core: who may be a victim, the cheapest minimal set, the reclaim rule
(and that it cannot loop, for a pod alone or a gang), and the plans for reclaim, priority
and defragmentation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builders import make_pod
from hybrid_policy.domain import Gang
from hybrid_policy.preemption.fairness import TeamShares, reclaim_allowed
from hybrid_policy.preemption.gang_planner import GangMember, GangPreemptor, plan_gang_reclaim
from hybrid_policy.preemption.model import PreemptionReason, PreemptionRules, RunningPod
from hybrid_policy.preemption.planner import (
    NodeRoom,
    Preemptor,
    ShortenCosts,
    free_after,
    plan_defragment,
    plan_priority,
    plan_reclaim,
    plan_shorten,
)
from hybrid_policy.preemption.victims import (
    VictimUnit,
    may_be_victim,
    minimal_units,
    units_on,
)
from hybrid_policy.resources import GPU

RULES = PreemptionRules(min_runtime_s=300, max_preemptions=3, trigger_delay_s=60)
NOW = 10_000.0


def running(
    name: str,
    gpus: int,
    *,
    ran_s: float = 1_000.0,
    namespace: str = "team-b",
    node: str = "n1",
    opted_in: bool = True,
    preemptions: int = 0,
    priority: int = 0,
    checkpoint_s: float | None = None,
    gang: tuple[str, str] | None = None,
) -> RunningPod:
    return RunningPod(
        namespace=namespace,
        name=name,
        uid=f"uid-{namespace}-{name}",
        node=node,
        requests={GPU: gpus},
        started_at_s=NOW - ran_s,
        priority=priority,
        opted_in=opted_in,
        preemptions=preemptions,
        checkpoint_interval_s=checkpoint_s,
        gang=gang,
    )


def test_only_opted_in_pods_that_ran_long_enough_and_were_not_preempted_too_often() -> None:
    assert may_be_victim(running("a", 1), NOW, RULES)
    assert not may_be_victim(running("a", 1, opted_in=False), NOW, RULES)
    assert not may_be_victim(running("a", 1, ran_s=299), NOW, RULES)
    assert not may_be_victim(running("a", 1, preemptions=3), NOW, RULES)


def test_work_lost_is_what_ran_since_the_last_checkpoint() -> None:
    assert running("a", 1, ran_s=700, checkpoint_s=300).work_lost_s(NOW) == pytest.approx(100)
    assert running("a", 1, ran_s=700).work_lost_s(NOW) == pytest.approx(700)


def test_the_cheapest_units_are_taken_then_any_that_can_be_spared_is() -> None:
    small = VictimUnit((running("small", 1, ran_s=10),))  # 10 GPU-s lost
    wide = VictimUnit((running("wide", 4, ran_s=4),))  # 16 GPU-s lost
    old = VictimUnit((running("old", 4, ran_s=5_000),))
    chosen = minimal_units("n1", [old, wide, small], {GPU: 4}, NOW)
    # small is taken first, then wide; small alone is not enough and wide alone is: small
    # is spared. The costly old pod is never touched.
    assert chosen == (wide,)
    assert minimal_units("n1", [small], {GPU: 4}, NOW) is None
    assert minimal_units("n1", [small], {}, NOW) == ()


def test_a_gang_is_one_unit_across_nodes_and_only_if_every_member_may_go() -> None:
    key = ("team-b", "llm")
    here = running("w0", 4, node="n1", gang=key)
    there = running("w1", 4, node="n2", gang=key)
    eligible = {here.uid: True, there.uid: True}
    (unit,) = units_on("n1", [here, there], {key: [here, there]}, eligible)
    assert unit.pods == (here, there)
    assert unit.freed_on("n1")[GPU] == 4 and unit.gpus() == 8
    assert units_on("n1", [here], {key: [here, there]}, {here.uid: True}) == []


def _shares(used: dict[str, float], weights: dict[str, float] | None = None) -> TeamShares:
    return TeamShares(used, weights or {}, 16.0, frozenset(used))


def test_a_team_below_its_entitlement_takes_back_only_what_keeps_it_at_or_below() -> None:
    shares = _shares({"team-a": 2, "team-b": 14})  # entitled 8 each
    assert reclaim_allowed(shares, "team-a", 4, {"team-b": 4})  # 6 against 10
    assert reclaim_allowed(shares, "team-a", 6, {"team-b": 6})  # 8 against 8
    assert not reclaim_allowed(shares, "team-a", 8, {"team-b": 8})  # 10 against 6
    assert not reclaim_allowed(shares, "team-b", 4, {"team-a": 4})  # b is above its share
    balanced = _shares({"team-a": 8, "team-b": 8})
    assert not reclaim_allowed(balanced, "team-a", 1, {"team-b": 1})


def test_weights_set_the_entitlement() -> None:
    shares = _shares({"team-a": 9, "team-b": 7}, {"team-a": 3, "team-b": 1})  # a owed 12
    assert reclaim_allowed(shares, "team-a", 2, {"team-b": 2})  # a 11/48, b 5/16
    assert not reclaim_allowed(shares, "team-b", 1, {"team-a": 1})


teams = st.sampled_from(["a", "b", "c", "d"])


@st.composite
def reclaims(draw: st.DrawFn) -> tuple[TeamShares, str, float, dict[str, float]]:
    used = {t: float(draw(st.integers(0, 16))) for t in "abcd"}
    weights = {t: float(draw(st.integers(1, 4))) for t in "abcd"}
    shares = TeamShares(used, weights, float(max(sum(used.values()), 1)), frozenset("abcd"))
    team = draw(teams)
    victims = draw(st.sets(teams.filter(lambda t: t != team), min_size=1, max_size=3))
    taken = {v: float(draw(st.integers(1, max(int(used[v]), 1)))) for v in victims}
    gpus = float(draw(st.integers(1, 16)))
    return shares, team, gpus, taken


@settings(max_examples=400, deadline=None)
@given(reclaims())
def test_an_allowed_reclaim_raises_the_sorted_shares_and_cannot_be_answered(
    case: tuple[TeamShares, str, float, dict[str, float]],
) -> None:
    shares, team, gpus, taken = case
    if not reclaim_allowed(shares, team, gpus, taken):
        return
    after = shares.after({team: gpus, **{t: -g for t, g in taken.items()}})
    before_sorted = sorted(shares.share(t) for t in "abcd")
    after_sorted = sorted(after.share(t) for t in "abcd")
    assert after_sorted > before_sorted  # leximin strictly up: no cycle without arrivals
    for victim in taken:
        for back in range(1, 17):
            assert not reclaim_allowed(after, victim, float(back), {team: float(back)})


@st.composite
def gang_reclaims(draw: st.DrawFn) -> tuple[TeamShares, GangPreemptor, dict[str, NodeRoom]]:
    """Three to six 8-GPU nodes, mostly full, running pods of random teams (team a, the
    gang's, seldom); a waiting gang of team a (weight 2-4): 2-3 pods of 2, 4 or 8 GPUs."""
    rooms: dict[str, NodeRoom] = {}
    used = dict.fromkeys("abcd", 0.0)
    for n in range(draw(st.integers(3, 6))):
        pods: list[RunningPod] = []
        free = 8
        while free > draw(st.sampled_from([0, 0, 0, 2, 4])):
            gpus = draw(st.sampled_from([g for g in (2, 4, 8) if g <= free]))
            team = draw(st.sampled_from("abbbcccdd"))
            ran = float(draw(st.integers(0, 2_000)))
            pods.append(running(f"p{n}-{len(pods)}", gpus, ran_s=ran, namespace=team, node=f"n{n}"))
            used[team] += gpus
            free -= gpus
        rooms[f"n{n}"] = NodeRoom(f"n{n}", {GPU: free}, tuple(pods))
    weights = {t: float(draw(st.integers(1, 3))) for t in "abcd"}
    weights["a"] = float(draw(st.integers(2, 4)))
    shares = TeamShares(used, weights, 8.0 * len(rooms), frozenset("abcd"))
    size, gang = draw(st.sampled_from([2, 4, 8])), Gang("g", draw(st.integers(2, 3)))
    members = tuple(
        GangMember(
            make_pod(f"g-{k}", gpus=size, cpu=0, memory_gib=0, namespace="a", gang=gang),
            tuple(rooms),
        )
        for k in range(gang.min_member)
    )
    return shares, GangPreemptor(("a", "g"), members, waiting_s=120.0), rooms


@settings(max_examples=300, deadline=None)
@given(gang_reclaims())
def test_a_gangs_reclaim_raises_the_sorted_shares_and_places_every_member(
    case: tuple[TeamShares, GangPreemptor, dict[str, NodeRoom]],
) -> None:
    shares, gang, rooms = case
    plan = plan_gang_reclaim(gang, rooms, shares, RULES, NOW)
    if plan is None:
        return
    team, gpus = gang.namespace, gang.gpus()
    taken: dict[str, float] = {}
    for victim in plan.victims:
        taken[victim.namespace] = taken.get(victim.namespace, 0.0) + victim.requests[GPU]
    after = shares.after({team: gpus, **{t: -g for t, g in taken.items()}})
    assert sorted(after.share(t) for t in "abcd") > sorted(shares.share(t) for t in "abcd")
    for victim_team in taken:  # no team it took from may take back at once, alone or as a gang
        for back in range(1, 33):
            assert not reclaim_allowed(after, victim_team, float(back), {team: float(back)})
    # All or nothing: every member has a node, with room once the victims are gone.
    assert [uid for uid, _ in plan.placements] == [m.pod.uid for m in gang.members]
    room = {name: r.free[GPU] for name, r in rooms.items()}
    for victim in plan.victims:
        room[victim.node] += victim.requests[GPU]
    for _, node in plan.placements:
        room[node] -= gang.members[0].pod.requests[GPU]
    assert min(room.values()) >= 0


def _room(name: str, free: int, *pods: RunningPod) -> NodeRoom:
    return NodeRoom(name, {GPU: free}, tuple(pods))


def test_reclaim_picks_the_node_that_loses_least_and_never_takes_from_its_own_team() -> None:
    shares = _shares({"team-a": 0, "team-b": 16})
    pod = make_pod("w", gpus=4, cpu=0, memory_gib=0, namespace="team-a")
    n1 = _room("n1", 0, running("old", 4, ran_s=5_000, node="n1"))
    n2 = _room("n2", 0, running("young", 4, ran_s=400, node="n2"))
    plan = plan_reclaim(Preemptor(pod, waiting_s=120), [n1, n2], shares, RULES, NOW)
    assert plan is not None and plan.node == "n2" and plan.reason is PreemptionReason.RECLAIM
    assert [v.name for v in plan.victims] == ["young"]
    own = _room("n1", 0, running("mine", 4, namespace="team-a", node="n1"))
    assert plan_reclaim(Preemptor(pod, 120), [own], shares, RULES, NOW) is None
    assert plan_reclaim(Preemptor(pod, 30), [n1, n2], shares, RULES, NOW) is None  # too soon


def test_priority_preempts_only_lower_priority_and_never_with_policy_never() -> None:
    pod = make_pod("urgent", gpus=4, cpu=0, memory_gib=0, namespace="team-a", priority=100)
    room = _room("n1", 0, running("low", 4, priority=0), running("high", 4, priority=200))
    plan = plan_priority(Preemptor(pod, 120), [room], RULES, NOW)
    assert plan is not None and [v.name for v in plan.victims] == ["low"]
    assert plan_priority(Preemptor(pod, 120, never=True), [room], RULES, NOW) is None


def test_defragmentation_waits_for_the_overdue_threshold() -> None:
    pod = make_pod("wide", gpus=8, cpu=0, memory_gib=0, namespace="team-a")
    room = _room("n1", 4, running("x", 2, ran_s=600), running("y", 2, ran_s=900))
    assert plan_defragment(Preemptor(pod, 3_000), room, 500, RULES, NOW) is None
    plan = plan_defragment(Preemptor(pod, 3_000), room, 700, RULES, NOW)
    assert plan is not None and {v.name for v in plan.victims} == {"x", "y"}


def _costs(duration_s: float, margin: float = 1.0, left_s: float = 3_600.0) -> ShortenCosts:
    return ShortenCosts(duration_s, lambda pod: left_s, restart_s=60.0, margin=margin)


def test_shorten_stops_a_long_pod_when_the_wait_saved_exceeds_the_delay_caused() -> None:
    shares = _shares({"team-a": 0, "team-b": 16})
    pod = make_pod("short", gpus=8, cpu=0, memory_gib=0, namespace="team-a")
    room = _room("n1", 0, running("long", 8, ran_s=1_000, checkpoint_s=300, namespace="team-b"))
    # Waits 3,600 s; the victim is delayed 600 run + 100 lost + 60 restart = 760 s.
    plan = plan_shorten(Preemptor(pod, 120), [room], shares, RULES, NOW, _costs(600))
    assert plan is not None and plan.reason is PreemptionReason.SHORTEN
    assert [v.name for v in plan.victims] == ["long"]
    assert plan_shorten(Preemptor(pod, 120), [room], shares, RULES, NOW, _costs(600, 5)) is None
    assert plan_shorten(Preemptor(pod, 120), [room], shares, RULES, NOW, _costs(4_000)) is None


def test_shorten_never_takes_from_a_team_left_poorer_than_the_preemptors() -> None:
    pod = make_pod("short", gpus=8, cpu=0, memory_gib=0, namespace="team-a")
    room = _room("n1", 0, running("long", 8, ran_s=1_000, checkpoint_s=300, namespace="team-b"))
    rich_a = _shares({"team-a": 8, "team-b": 8}, {"team-a": 1, "team-b": 1})
    # team-a would hold 16 GPUs to team-b's 0: refused.
    assert plan_shorten(Preemptor(pod, 120), [room], rich_a, RULES, NOW, _costs(600)) is None
    own = _room("n1", 0, running("mine", 8, ran_s=1_000, checkpoint_s=300, namespace="team-a"))
    assert plan_shorten(Preemptor(pod, 120), [own], rich_a, RULES, NOW, _costs(600)) is not None


def test_the_wait_is_when_enough_running_pods_are_predicted_to_end() -> None:
    room = _room("n1", 2, running("a", 2), running("b", 4), running("c", 2))
    left = {"a": 100.0, "b": 500.0, "c": 300.0}
    assert free_after(room, {GPU: 4}, lambda p: left[p.name]) == 100.0
    assert free_after(room, {GPU: 6}, lambda p: left[p.name]) == 300.0
    assert free_after(room, {GPU: 12}, lambda p: left[p.name]) == float("inf")
    assert free_after(room, {GPU: 2}, lambda p: left[p.name]) == 0.0
