import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builders import make_node, make_pod
from hybrid_policy.domain import Namespace
from hybrid_policy.framework.cycle import RUNNERS_UP, BatchCycle, ScoreTable
from hybrid_policy.framework.queue import SchedulingQueue
from hybrid_policy.framework.snapshot import ClusterSnapshot
from hybrid_policy.plugins.ordering import PrioritySort
from hybrid_policy.policies import build_policy, policy_names

pods_strategy = st.lists(
    st.tuples(
        st.sampled_from([0, 1, 2, 4, 8]),
        st.integers(0, 40),
        st.integers(0, 300),
        st.sampled_from(["team-a", "team-b", "team-c"]),
        st.integers(-1, 1),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=40, deadline=None)
@given(pods=pods_strategy, policy=st.sampled_from(policy_names()), seed=st.integers(0, 5))
def test_no_policy_ever_exceeds_node_capacity(
    pods: list[tuple[int, int, int, str, int]], policy: str, seed: int
) -> None:
    nodes = [
        make_node("a", gpus=8),
        make_node("b", gpus=4, cpu=32, memory_gib=256),
        make_node("c", gpus=8),
    ]
    snapshot = ClusterSnapshot(nodes, [Namespace("team-c", 2.0)])
    batch = [
        make_pod(f"p{i}", gpus=g, cpu=c, memory_gib=m, namespace=ns, priority=prio, created_at_s=i)
        for i, (g, c, m, ns, prio) in enumerate(pods)
    ]
    decisions = build_policy(policy, np.random.default_rng(seed)).profile.schedule_batch(
        batch, snapshot, np.random.default_rng(seed)
    )
    assert len(decisions) == len(batch)
    assert sorted(d.pod.uid for d in decisions) == sorted(p.uid for p in batch)
    assert np.all(snapshot.requested <= snapshot.allocatable + 1e-9)
    placed = {d.pod.uid: d.node_row for d in decisions if d.placed}
    assert placed == snapshot.placements
    for d in decisions:
        if not d.placed:
            assert not d.status.ok and d.status.message


def test_queue_sort_is_priority_then_fifo() -> None:
    key = PrioritySort().sort_key
    pods = [
        make_pod("late-high", priority=10, created_at_s=5),
        make_pod("early-low", priority=0, created_at_s=1),
        make_pod("early-high", priority=10, created_at_s=2),
    ]
    assert [p.name for p in sorted(pods, key=key)] == ["early-high", "late-high", "early-low"]


def test_kube_default_spreads_and_binpack_packs() -> None:
    pods = [make_pod(f"p{i}", gpus=1, created_at_s=i) for i in range(2)]
    for policy, expect_same in (("kube-default", False), ("binpack", True)):
        snap = ClusterSnapshot([make_node("a"), make_node("b")])
        decisions = build_policy(policy, np.random.default_rng(0)).profile.schedule_batch(
            pods, snap, np.random.default_rng(0)
        )
        assert (decisions[0].node == decisions[1].node) is expect_same, policy


def test_drf_serves_the_namespace_furthest_below_its_share() -> None:
    snap = ClusterSnapshot([make_node("a", gpus=2)], [Namespace("team-a"), Namespace("team-b")])
    snap.assume(make_pod("already", gpus=1, namespace="team-a"), 0)
    batch = [
        make_pod("a1", gpus=1, namespace="team-a", created_at_s=0),
        make_pod("b1", gpus=1, namespace="team-b", created_at_s=5),
    ]
    drf = build_policy("drf", np.random.default_rng(0)).profile.schedule_batch(
        batch, snap, np.random.default_rng(0)
    )
    assert {d.pod.name: d.placed for d in drf} == {"a1": False, "b1": True}
    snap2 = ClusterSnapshot([make_node("a", gpus=2)])
    snap2.assume(make_pod("already", gpus=1, namespace="team-a"), 0)
    fifo = build_policy("kube-default", np.random.default_rng(0)).profile.schedule_batch(
        batch, snap2, np.random.default_rng(0)
    )
    assert {d.pod.name: d.placed for d in fifo} == {"a1": True, "b1": False}


def test_decision_explains_score_and_runners_up() -> None:
    snap = ClusterSnapshot([make_node(n) for n in "abcde"])
    (decision,) = build_policy("kube-default", np.random.default_rng(0)).profile.schedule_batch(
        [make_pod("p")], snap, np.random.default_rng(0)
    )
    assert decision.placed and decision.score is not None
    assert len(decision.runners_up) == 3
    assert decision.node not in {name for name, _ in decision.runners_up}
    assert decision.path == "sequential"


def test_unreserve_is_idempotent() -> None:
    snap = ClusterSnapshot([make_node("a")])
    profile = build_policy("kube-default", np.random.default_rng(0)).profile
    (decision,) = profile.schedule_batch([make_pod("p", gpus=3)], snap, np.random.default_rng(0))
    profile.unreserve(decision, snap)
    profile.unreserve(decision, snap)
    assert snap.requested.sum() == 0 and snap.pod_count[0] == 0


def test_assuming_a_pod_twice_is_refused() -> None:
    snap = ClusterSnapshot([make_node("a"), make_node("b")])
    pod = make_pod("p")
    snap.assume(pod, 0)
    with pytest.raises(ValueError, match="already counted"):
        snap.assume(pod, 1)


def test_queue_dedupes_parks_and_backs_off() -> None:
    queue = SchedulingQueue(initial_backoff_s=1.0, max_backoff_s=4.0)
    pod = make_pod("p")
    assert queue.add(pod) and not queue.add(pod)
    assert queue.pop_batch(0.0, PrioritySort().sort_key) == [pod]
    assert not queue.add(pod)  # in flight still counts
    queue.park(pod.uid, 0.0)
    assert queue.pop_batch(0.0, PrioritySort().sort_key) == []
    queue.move_all_to_active()
    assert queue.pop_batch(0.5, PrioritySort().sort_key) == []  # backing off for 1 s
    assert queue.pop_batch(1.0, PrioritySort().sort_key) == [pod]
    for attempt in range(5):
        queue.park(pod.uid, 10.0 * attempt)
        queue.move_all_to_active()
        assert queue.next_ready_s() == 10.0 * attempt + min(2.0**attempt * 1.0 * 2, 4.0)
        queue.pop_batch(1e9, PrioritySort().sort_key)
    queue.done(pod.uid)
    assert len(queue) == 0


def test_the_queue_context_counts_waiting_pods_and_sums_their_requests() -> None:
    snap = ClusterSnapshot([make_node("n1")])
    snap.set_queue([make_pod("a", gpus=2), make_pod("b", gpus=4)])
    assert snap.queue.pending_pods == 2
    assert snap.queue.pending_demand is not None
    assert snap.queue.pending_demand[snap.index["nvidia.com/gpu"]] == 6.0


def test_a_failed_attempt_backs_off_in_the_active_queue_and_a_verdict_parks() -> None:
    queue = SchedulingQueue(initial_backoff_s=1.0, max_backoff_s=8.0)
    for name in ("error", "verdict"):
        queue.add(make_pod(name))
    popped = queue.pop_batch(0.0, PrioritySort().sort_key)
    assert queue.in_flight_count == 2
    queue.back_off(popped[0].uid, 0.0)
    queue.park(popped[1].uid, 0.0)
    assert queue.in_flight_count == 0
    assert queue.pop_batch(0.5, PrioritySort().sort_key) == []  # still backing off
    # After the back-off the failed attempt is tried again with no cluster change; the
    # pod that fit nowhere waits for one.
    assert [p.name for p in queue.pop_batch(1.0, PrioritySort().sort_key)] == [popped[0].name]


def test_a_pod_waiting_to_resend_is_taken_by_no_batch_until_its_back_off_ends() -> None:
    queue = SchedulingQueue(initial_backoff_s=1.0, max_backoff_s=8.0)
    sort = PrioritySort().sort_key
    pod = make_pod("unanswered")
    queue.add(pod)
    queue.pop_batch(0.0, sort)
    queue.wait_to_resend(pod.uid, 0.0)
    assert pod.uid in queue and not queue.add(pod)
    assert (queue.in_flight_count, queue.resending_count, len(queue)) == (0, 1, 0)
    # No batch, no take of queued pods, no count of waiting pods sees it.
    queue.move_all_to_active()
    assert queue.pop_batch(5.0, sort) == [] and queue.take([pod.uid]) == []
    assert queue.pending() == []
    assert queue.take_resends(0.5) == []  # backing off for 1 s
    assert queue.take_resends(1.0) == [pod]
    assert queue.is_in_flight(pod.uid)
    queue.wait_to_resend(pod.uid, 1.0)
    assert queue.take_resends(2.5) == []  # the back-off doubled
    assert queue.decide_again(pod.uid) and not queue.decide_again(pod.uid)
    assert queue.pop_batch(3.0, sort) == [pod]
    queue.wait_to_resend(pod.uid, 3.0)
    assert queue.remove(pod.uid) == pod
    assert pod.uid not in queue


def _table(scores: list[float]) -> ScoreTable:
    candidates = np.array([10, 11, 12, 13, 14, 15][: len(scores)], dtype=np.int64)
    return ScoreTable(make_pod("p"), candidates, np.array(scores))


def test_runners_up_follow_the_chosen_node_highest_first_ties_in_candidate_order() -> None:
    table = _table([70.0, 90.0, 70.0, 70.0, 10.0, 70.0])
    assert table.runners_up(11, 3) == ((10, 70.0), (12, 70.0), (13, 70.0))
    # A node placed below the top (the arbitrator chose it): the top ones come first.
    assert table.runners_up(14, 3) == ((11, 90.0), (10, 70.0), (12, 70.0))
    assert table.runners_up(11, 1) == ((10, 70.0),)
    assert _table([40.0, 60.0]).runners_up(11, 3) == ((10, 40.0),)


def test_decision_names_its_runners_up_from_the_score_table() -> None:
    snap = ClusterSnapshot([make_node(n, gpus=8 - i) for i, n in enumerate("abcde")])
    profile = build_policy("binpack", np.random.default_rng(0)).profile
    pod = make_pod("p")
    table = BatchCycle(profile, snap, np.random.default_rng(0)).evaluate(pod)
    assert isinstance(table, ScoreTable)
    (decision,) = profile.schedule_batch([pod], snap, np.random.default_rng(0))
    rows = table.runners_up(decision.node_row, RUNNERS_UP)
    assert decision.runners_up == tuple((snap.nodes[r].name, s) for r, s in rows)


def test_a_cluster_change_while_a_pod_is_decided_is_not_lost() -> None:
    queue = SchedulingQueue(initial_backoff_s=1.0, max_backoff_s=8.0)
    queue.add(make_pod("late"))
    queue.add(make_pod("quiet"))
    sort = PrioritySort().sort_key
    late, quiet = sorted(queue.pop_batch(0.0, sort), key=lambda p: p.name)
    queue.park(quiet.uid, 0.0)  # verdict before any change: parked
    queue.move_all_to_active()  # a pod finished while "late" was still being decided
    queue.park(late.uid, 0.0)  # its verdict came from the cluster before that change
    # "quiet" was woken by the change; "late" was never parked, so it cannot miss it.
    assert sorted(p.name for p in queue.pop_batch(1.0, sort)) == ["late", "quiet"]


def test_a_parked_pod_is_tried_again_after_the_longest_wait_without_a_change() -> None:
    queue = SchedulingQueue(initial_backoff_s=1.0, max_backoff_s=8.0, max_parked_s=60.0)
    queue.add(make_pod("p"))
    (pod,) = queue.pop_batch(0.0, PrioritySort().sort_key)
    queue.park(pod.uid, 0.0)
    assert queue.flush_parked(59.0) == 0
    assert queue.pop_batch(59.0, PrioritySort().sort_key) == []
    assert queue.flush_parked(60.0) == 1
    assert [p.name for p in queue.pop_batch(60.0, PrioritySort().sort_key)] == ["p"]


def test_fair_speed_takes_a_fast_empty_node_over_packing_a_slow_one() -> None:
    def place(policy: str) -> str | None:
        snap = ClusterSnapshot([make_node("slow", performance=50), make_node("fast")])
        snap.assume(make_pod("already", gpus=4), 0)  # half of the slow node is taken
        (decision,) = build_policy(policy, np.random.default_rng(0)).profile.schedule_batch(
            [make_pod("p", gpus=1)], snap, np.random.default_rng(0)
        )
        return decision.node

    assert place("fair-order") == "slow"  # packing alone fills the slow node
    assert place("fair-speed") == "fast"
