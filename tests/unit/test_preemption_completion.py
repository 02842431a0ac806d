"""The reasons that buy completion time: room for a wide pod, shortest first, shorten
with the queue counted, defragmentation of an overdue reservation run by the phase, the
fairness test they share (and that what it allows cannot loop), what the simulator tells
the phase of its queue, and their ``--preemption`` keys."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builders import make_node, make_pod
from hybrid_policy.domain import Namespace, PendingPod
from hybrid_policy.framework.snapshot import ClusterSnapshot
from hybrid_policy.prediction.predictor import RuntimePredictor
from hybrid_policy.preemption.fairness import TeamShares, fair_to_take
from hybrid_policy.preemption.model import (
    PreemptionPlan,
    PreemptionReason,
    PreemptionRules,
    RunningPod,
)
from hybrid_policy.preemption.options import parse_settings
from hybrid_policy.preemption.phase import PreemptionSettings, plan_preemptions
from hybrid_policy.preemption.planner import NodeRoom, Preemptor, ShortenCosts, plan_shorten
from hybrid_policy.preemption.queue import (
    OverdueBook,
    QueueView,
    Reserved,
    WaitEstimate,
    work_ahead_table,
)
from hybrid_policy.preemption.shortest import ShortestCosts, plan_shortest, queue_wait
from hybrid_policy.preemption.wide import WideCosts, plan_wide
from hybrid_policy.reservation.arbiter import ReservingArbitrator
from hybrid_policy.reservation.model import Held
from hybrid_policy.resources import GPU
from hybrid_policy.sim.queue_view import QueueReader

RULES = PreemptionRules(min_runtime_s=300, max_preemptions=3, trigger_delay_s=60)
NOW = 10_000.0


def running(
    name: str, gpus: int, *, namespace: str = "team-b", node: str = "n1", ran_s: float = 1_000
) -> RunningPod:
    return RunningPod(
        namespace=namespace,
        name=name,
        uid=f"uid-{namespace}-{name}",
        node=node,
        requests={GPU: gpus},
        started_at_s=NOW - ran_s,
        opted_in=True,
        checkpoint_interval_s=300.0,
    )


def _room(name: str, free: int, *pods: RunningPod) -> NodeRoom:
    return NodeRoom(name, {GPU: free}, tuple(pods))


def _shares(used: dict[str, float], total: float = 16.0) -> TeamShares:
    return TeamShares(used, {}, total, frozenset(used))


def _left(times: dict[str, float]) -> ShortestCosts:
    return ShortestCosts(600.0, lambda p: times[p.name], ratio=4.0)


def test_shortest_takes_only_a_pod_predicted_to_run_ratio_times_longer() -> None:
    pod = make_pod("short", gpus=4, cpu=0, memory_gib=0, namespace="team-a")
    shares = _shares({"team-a": 0, "team-b": 16})
    room = _room("n1", 0, running("long", 4, ran_s=1_100), running("mid", 4, ran_s=1_900))
    # The preemptor runs 600 s: "long" (3,000 s left) may go, "mid" (1,800 s) may not,
    # although "mid" would lose less (100 s since its checkpoint against 200 s).
    plan = plan_shortest(
        Preemptor(pod, 120), [room], shares, RULES, NOW, _left({"long": 3_000, "mid": 1_800})
    )
    assert plan is not None and plan.reason is PreemptionReason.SHORTEST
    assert [v.name for v in plan.victims] == ["long"]
    none_long = _left({"long": 2_000, "mid": 1_800})
    assert plan_shortest(Preemptor(pod, 120), [room], shares, RULES, NOW, none_long) is None
    too_soon = plan_shortest(
        Preemptor(pod, 30), [room], shares, RULES, NOW, _left({"long": 3_000, "mid": 1_800})
    )
    assert too_soon is None


def test_shortest_with_a_known_wait_needs_the_wait_to_pay_for_the_delay() -> None:
    pod = make_pod("short", gpus=4, cpu=0, memory_gib=0, namespace="team-a")
    shares = _shares({"team-a": 0, "team-b": 16})
    room = _room("n1", 0, running("long", 4, ran_s=1_000))  # loses 100 s
    # The victim's delay: 600 run + 100 lost + 60 restart = 760 s.
    for wait, allowed in ((700.0, False), (800.0, True)):
        costs = ShortestCosts(600.0, lambda p: 5_000.0, 4.0, wait, 60.0, 1.0)
        plan = plan_shortest(Preemptor(pod, 120), [room], shares, RULES, NOW, costs)
        assert (plan is not None) is allowed


def test_shortest_with_a_loss_bound_takes_only_a_pod_that_checkpointed_lately() -> None:
    pod = make_pod("short", gpus=4, cpu=0, memory_gib=0, namespace="team-a")
    shares = _shares({"team-a": 0, "team-b": 16})
    room = _room("n1", 0, running("fresh", 4, ran_s=1_230), running("stale", 4, ran_s=1_080))
    # "stale" loses 180 s since its checkpoint, "fresh" 30 s; both have 5,000 s left.
    loose = ShortestCosts(600.0, lambda p: 5_000.0)
    plan = plan_shortest(Preemptor(pod, 120), [room], shares, RULES, NOW, loose)
    assert plan is not None and [v.name for v in plan.victims] == ["fresh"]
    bound = ShortestCosts(600.0, lambda p: 5_000.0, max_lost_s=60.0)
    only_stale = _room("n1", 0, running("stale", 4, ran_s=1_080))
    assert plan_shortest(Preemptor(pod, 120), [only_stale], shares, RULES, NOW, bound) is None
    plan = plan_shortest(Preemptor(pod, 120), [room], shares, RULES, NOW, bound)
    assert plan is not None and [v.name for v in plan.victims] == ["fresh"]


def test_wide_stops_only_narrower_pods_and_only_when_its_wait_exceeds_their_loss() -> None:
    pod = make_pod("wide", gpus=8, cpu=0, memory_gib=0, namespace="team-a")
    shares = _shares({"team-a": 0, "team-b": 16})
    narrow = _room("n1", 0, running("x", 4, ran_s=1_210), running("y", 4, ran_s=1_220))
    # The node frees in 1,000 s; the victims lose 10 + 20 s and restart 2 x 60 s.
    costs = WideCosts(lambda p: 1_000.0, wide_gpus=4, max_lost_s=30.0)
    plan = plan_wide(Preemptor(pod, 120), [narrow], shares, RULES, NOW, costs)
    assert plan is not None and plan.reason is PreemptionReason.WIDE
    assert {v.name for v in plan.victims} == {"x", "y"}
    soon = WideCosts(lambda p: 100.0, wide_gpus=4, max_lost_s=30.0)  # 100 s < 150 s lost
    assert plan_wide(Preemptor(pod, 120), [narrow], shares, RULES, NOW, soon) is None
    as_wide = _room("n1", 0, running("z", 8, ran_s=1_210))
    assert plan_wide(Preemptor(pod, 120), [as_wide], shares, RULES, NOW, costs) is None
    stale = _room("n1", 0, running("x", 4, ran_s=1_210), running("y", 4, ran_s=1_290))
    assert plan_wide(Preemptor(pod, 120), [stale], shares, RULES, NOW, costs) is None
    small = make_pod("small", gpus=2, cpu=0, memory_gib=0, namespace="team-a")
    one = _room("n1", 0, running("u", 1, ran_s=1_210), running("v", 1, ran_s=1_210))
    assert plan_wide(Preemptor(small, 120), [one], shares, RULES, NOW, costs) is None


def test_shortest_never_leaves_a_team_it_takes_from_below_the_preemptors() -> None:
    pod = make_pod("short", gpus=8, cpu=0, memory_gib=0, namespace="team-a")
    room = _room("n1", 0, running("long", 8))
    costs = ShortestCosts(600.0, lambda p: 5_000.0)
    rich_a = _shares({"team-a": 8, "team-b": 8})  # a would hold 16 to b's 0
    assert plan_shortest(Preemptor(pod, 120), [room], rich_a, RULES, NOW, costs) is None
    own = _room("n1", 0, running("mine", 8, namespace="team-a"))
    assert plan_shortest(Preemptor(pod, 120), [own], rich_a, RULES, NOW, costs) is not None


def test_the_queue_wait_adds_the_work_ahead_over_the_clusters_gpus() -> None:
    room = _room("n1", 0, running("a", 4), running("b", 4))
    left = {"a": 100.0, "b": 500.0}
    assert queue_wait([room], {GPU: 4}, lambda p: left[p.name], 0.0, 16.0) == 100.0
    assert queue_wait([room], {GPU: 4}, lambda p: left[p.name], 16 * 300.0, 16.0) == 400.0
    pods = [make_pod(n, gpus=g) for n, g in (("x", 2), ("y", 4), ("z", 1))]
    table = work_ahead_table(pods, lambda p: 10.0 * p.requests[GPU])
    assert [table[p.uid] for p in pods] == [0.0, 20.0, 60.0]


def test_shorten_with_the_queue_counted_fires_where_running_ends_alone_do_not() -> None:
    pod = make_pod("short", gpus=8, cpu=0, memory_gib=0, namespace="team-a")
    shares = _shares({"team-a": 0, "team-b": 16})
    room = _room("n1", 0, running("long", 8, ran_s=1_000))  # ends in 700 s
    alone = ShortenCosts(600.0, lambda p: 700.0)
    assert plan_shorten(Preemptor(pod, 120), [room], shares, RULES, NOW, alone) is None
    wait = queue_wait([room], pod.requests, lambda p: 700.0, 16 * 600.0, 16.0)  # 1,300 s
    queued = ShortenCosts(600.0, lambda p: 700.0, wait_s=wait)
    plan = plan_shorten(Preemptor(pod, 120), [room], shares, RULES, NOW, queued)
    assert plan is not None and [v.name for v in plan.victims] == ["long"]


def test_the_overdue_book_keeps_the_first_predicted_start_until_the_pod_starts() -> None:
    book = OverdueBook()
    assert book.update({"p": ("n1", 1_000.0)}, 900.0) == {"p": Reserved("n1", 0.0)}
    assert book.update({"p": ("n2", 1_500.0)}, 1_600.0) == {"p": Reserved("n2", 600.0)}
    assert book.update({}, 1_700.0) == {}
    assert book.update({"p": ("n1", 2_000.0)}, 2_100.0) == {"p": Reserved("n1", 100.0)}


def _full_cluster() -> tuple[ClusterSnapshot, list[RunningPod], PendingPod]:
    """Two 8-GPU nodes, each running two 4-GPU pods of team-b; team-a's 8-GPU pod waits."""
    nodes = [make_node("n1"), make_node("n2")]
    snapshot = ClusterSnapshot(nodes, [Namespace("team-a"), Namespace("team-b")])
    pods = []
    for row, node in enumerate(("n1", "n2")):
        for k in range(2):
            name = f"{node}-{k}"
            snapshot.assume(make_pod(name, gpus=4, cpu=0, memory_gib=0, namespace="team-b"), row)
            pods.append(running(name, 4, node=node, ran_s=1_000 + 100 * k + 500 * row))
    wide = make_pod("wide", gpus=8, cpu=0, memory_gib=0, namespace="team-a", created_at_s=0.0)
    return snapshot, pods, wide


@pytest.mark.parametrize(("overdue_s", "planned"), [(500.0, False), (700.0, True)])
def test_the_phase_clears_the_node_of_a_reservation_overdue_past_the_threshold(
    overdue_s: float, planned: bool
) -> None:
    snapshot, pods, wide = _full_cluster()
    mask = {wide.uid: np.ones(2, dtype=bool)}
    settings = PreemptionSettings(RULES, frozenset({PreemptionReason.DEFRAGMENT}))
    queue = QueueView(reserved={wide.uid: Reserved("n2", overdue_s)})
    plans = plan_preemptions(snapshot, [wide], mask, pods, {}, NOW, settings, queue=queue)
    if not planned:
        assert plans == []
        return
    [made] = plans
    assert made.binds == ((wide, 1),)
    plan = made.plan
    assert isinstance(plan, PreemptionPlan)
    assert plan.node == "n2"  # its node, not the cheaper n1
    assert plan.reason is PreemptionReason.DEFRAGMENT
    assert {v.name for v in plan.victims} == {"n2-0", "n2-1"}
    assert plan_preemptions(snapshot, [wide], mask, pods, {}, NOW, settings) == []


@st.composite
def takes(draw: st.DrawFn) -> tuple[TeamShares, str, float, dict[str, float]]:
    used = {t: float(draw(st.integers(0, 16))) for t in "abcd"}
    weights = {t: float(draw(st.integers(1, 4))) for t in "abcd"}
    shares = TeamShares(used, weights, float(max(sum(used.values()), 1)), frozenset("abcd"))
    team = draw(st.sampled_from("abcd"))
    victims = draw(st.sets(st.sampled_from("abcd").filter(lambda t: t != team), min_size=1))
    taken = {v: float(draw(st.integers(1, max(int(used[v]), 1)))) for v in victims}
    return shares, team, float(draw(st.integers(1, 16))), taken


@settings(max_examples=400, deadline=None)
@given(takes())
def test_a_take_from_another_team_raises_the_sorted_shares_and_cannot_be_answered(
    case: tuple[TeamShares, str, float, dict[str, float]],
) -> None:
    shares, team, gpus, taken = case
    if not fair_to_take(shares, team, gpus, taken):
        return
    after = shares.after({team: gpus, **{t: -g for t, g in taken.items()}})
    assert sorted(after.share(t) for t in "abcd") > sorted(shares.share(t) for t in "abcd")
    for victim in taken:
        for back in range(1, 17):
            assert not fair_to_take(after, victim, float(back), {team: float(back)})


def test_the_preemption_keys_for_the_completion_reasons() -> None:
    settings_ = parse_settings(
        "reasons=shortest+defragment,shortest_ratio=3,wait=queue,max_lost_s=30"
    )
    assert settings_.reasons == {PreemptionReason.SHORTEST, PreemptionReason.DEFRAGMENT}
    assert settings_.shortest_ratio == 3.0 and settings_.wait is WaitEstimate.QUEUE
    assert settings_.max_lost_s == 30.0
    with pytest.raises(ValueError, match="wait='soon'"):
        parse_settings("wait=soon")
    with pytest.raises(ValueError, match="shortest_ratio='x'"):
        parse_settings("shortest_ratio=x")


def test_the_simulator_tells_the_phase_the_work_ahead_and_how_overdue_reservations_are() -> None:
    predictor = RuntimePredictor(priors={"nlp": 600.0})
    arbitrator = ReservingArbitrator(predictor)
    arbitrator.book["uid-team-a-wide"] = Held("uid-team-a-wide", "n2", 1_000.0, 900.0)
    queue = [
        make_pod(n, gpus=g, namespace="team-a", created_at_s=t)
        for n, g, t in (("wide", 8, 0.0), ("small", 2, 10.0))
    ]
    queue = [dataclasses.replace(p, task_type="nlp") for p in queue]
    reader = QueueReader()
    first = reader.view(arbitrator, lambda: queue, predictor, 50.0, 950.0)
    assert first.reserved == {"uid-team-a-wide": Reserved("n2", 0.0)}
    assert first.work_ahead is not None
    # At mean performance 50 each pod runs 1,200 s: 8 GPUs of it are ahead of "small".
    assert first.work_ahead(queue[1]) == pytest.approx(8 * 1_200.0)
    assert first.work_ahead(queue[0]) == 0.0
    arbitrator.book["uid-team-a-wide"].predicted_start_s = 2_000.0  # pushed back
    later = reader.view(arbitrator, lambda: queue, predictor, 50.0, 1_800.0)
    assert later.reserved == {"uid-team-a-wide": Reserved("n2", 800.0)}
    assert reader.view(arbitrator, lambda: queue, None, 50.0, 1_800.0).work_ahead is None
