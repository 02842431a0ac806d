"""Reservation and backfill: the sticky rule, what backfill may use, EASY against
conservative, and the ageing rule; predictions here are exact (user estimates)."""

import dataclasses

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from builders import make_pod
from hybrid_policy.domain import Gang, PendingPod
from hybrid_policy.framework.cycle import Decision
from hybrid_policy.framework.plugins import ScorePlugin
from hybrid_policy.framework.snapshot import ClusterSnapshot, FloatArray, IntArray
from hybrid_policy.plugins.scores import binpack_scorer
from hybrid_policy.prediction import PredictionSource
from hybrid_policy.reservation import BackfillMode, ReservationSettings
from reservation_cluster import Cluster


def _pod(name: str, gpus: int, run_s: float, ns: str = "team-a", at: float = 0.0) -> PendingPod:
    pod = make_pod(name, gpus=gpus, cpu=gpus, memory_gib=gpus, namespace=ns, created_at_s=at)
    return dataclasses.replace(pod, expected_runtime_s=run_s)


def test_the_pod_whose_turn_it_is_reserves_the_node_where_it_starts_earliest() -> None:
    cluster = Cluster(2, BackfillMode.EASY)
    cluster.run(_pod("a", 8, 2000.0), 0)
    cluster.run(_pod("b", 8, 1000.0), 1)
    wide = cluster.schedule([_pod("wide", 8, 600.0)], now_s=0.0)["wide"]
    assert not wide.placed and wide.nomination is not None
    assert (wide.nomination.node, wide.nomination.predicted_start_s) == ("n1", 1000.0)
    assert wide.nomination.source is PredictionSource.USER_ESTIMATE
    assert wide.nomination.queue_position == 0


def test_a_reservation_sticks_unless_another_node_starts_it_clearly_earlier() -> None:
    cluster = Cluster(2, BackfillMode.EASY, switch_margin_s=60.0)
    cluster.run(_pod("a", 8, 1000.0), 0)
    b = _pod("b", 8, 2000.0)
    cluster.run(b, 1)
    wide = _pod("wide", 8, 600.0)
    assert cluster.schedule([wide], 0.0)["wide"].nomination.node == "n0"  # type: ignore[union-attr]
    # b now reports progress that puts its end at 990 s: earlier, but within the margin.
    cluster.predictor.progress(b.uid, 100.0 / 990.0, 100.0)
    kept = cluster.schedule([wide], 100.0)["wide"].nomination
    assert kept is not None and (kept.node, kept.predicted_start_s) == ("n0", 1000.0)
    # ... then progress that puts it at 500 s: an earlier start has appeared.
    cluster.predictor.progress(b.uid, 1.0, 200.0)
    cluster.predictor.running[b.uid].progress_ee = 200.0**2
    cluster.predictor.running[b.uid].progress_ef = 200.0 * 200.0 / 500.0
    moved = cluster.schedule([wide], 200.0)["wide"].nomination
    assert moved is not None and (moved.node, moved.predicted_start_s) == ("n1", 500.0)


def _half_full(mode: BackfillMode, scorer: ScorePlugin | None = None) -> Cluster:
    """n0: 4 GPUs free, the other 4 busy until 1000 s; n1: full until 5000 s."""
    cluster = Cluster(2, mode, scorer)
    cluster.run(_pod("a", 4, 1000.0), 0)
    cluster.run(_pod("b", 8, 5000.0), 1)
    return cluster


def test_easy_backfill_uses_the_reserved_node_only_before_the_reserved_start() -> None:
    cluster = _half_full(BackfillMode.EASY)
    batch = [_pod("wide", 8, 600.0, at=0.0), _pod("long", 4, 2000.0, at=1.0)]
    batch.append(_pod("short", 4, 900.0, at=2.0))
    decisions = cluster.schedule(batch, 0.0)
    assert decisions["wide"].nomination is not None
    assert decisions["wide"].nomination.node == "n0"
    assert not decisions["long"].placed  # would still run at 1000 s, when wide starts
    assert decisions["short"].node == "n0"  # done by 900 s


def test_an_optimistic_backfill_factor_lets_longer_pods_use_the_reserved_node() -> None:
    cluster = _half_full(BackfillMode.EASY)
    cluster.policy.profile.arbitrator.settings = ReservationSettings(backfill_factor=0.5)  # type: ignore[attr-defined]
    batch = [_pod("wide", 8, 600.0, at=0.0), _pod("long", 4, 2000.0, at=1.0)]
    decisions = cluster.schedule(batch, 0.0)
    assert decisions["wide"].nomination is not None
    assert decisions["long"].node == "n0"  # counted as 1000 s: ends at the reserved start


def test_without_backfill_the_reserved_node_is_closed_to_every_other_pod() -> None:
    cluster = _half_full(BackfillMode.RESERVE)
    batch = [_pod("wide", 8, 600.0, at=0.0), _pod("short", 4, 900.0, at=2.0)]
    decisions = cluster.schedule(batch, 0.0)
    assert decisions["wide"].nomination is not None
    assert not decisions["short"].placed


def test_backfill_may_share_the_reserved_node_where_both_fit() -> None:
    cluster = Cluster(1, BackfillMode.EASY)
    cluster.run(_pod("a", 4, 1000.0), 0)
    batch = [_pod("wide", 6, 600.0, at=0.0), _pod("small", 2, 5000.0, at=1.0)]
    decisions = cluster.schedule(batch, 0.0)
    assert decisions["wide"].nomination is not None
    assert decisions["small"].placed  # 2 + 6 GPUs fit at 1000 s


def _two_wide(mode: BackfillMode) -> dict[str, Decision]:
    """Two wide pods wait; n0 frees at 1000 s, n1 has 4 GPUs free and the rest at 2000 s,
    n2 is full until 3000 s; a long 4-GPU pod fits now only on n1."""
    cluster = Cluster(3, mode)
    cluster.run(_pod("a", 8, 1000.0, "team-c"), 0)
    cluster.run(_pod("b", 4, 2000.0, "team-c"), 1)
    cluster.run(_pod("c", 8, 3000.0, "team-c"), 2)
    batch = [
        _pod("wide-1", 8, 2000.0, "team-a", at=0.0),
        _pod("wide-2", 8, 2000.0, "team-b", at=1.0),
        _pod("long", 4, 5000.0, "team-c", at=2.0),
    ]
    return cluster.schedule(batch, 0.0)


def test_easy_holds_one_reservation_and_conservative_one_per_waiting_pod() -> None:
    easy = _two_wide(BackfillMode.EASY)
    held = [d for d in easy.values() if d.nomination is not None]
    assert [d.pod.name for d in held] == ["wide-1"]
    assert easy["long"].node == "n1"  # delays no reservation EASY holds
    conservative = _two_wide(BackfillMode.CONSERVATIVE)
    nominations = {
        name: (d.nomination.node, d.nomination.predicted_start_s, d.nomination.queue_position)
        for name, d in conservative.items()
        if d.nomination is not None
    }
    # The long pod would delay wide-2: it waits, with a reservation of its own.
    assert nominations == {
        "wide-1": ("n0", 1000.0, 0),
        "wide-2": ("n1", 2000.0, 1),
        "long": ("n0", 3000.0, 2),
    }


def test_conservative_reservations_are_bounded() -> None:
    cluster = Cluster(1, BackfillMode.CONSERVATIVE, max_reservations=2)
    cluster.run(_pod("a", 8, 1000.0), 0)
    batch = [_pod(f"w{i}", 8, 600.0, at=float(i)) for i in range(4)]
    decisions = cluster.schedule(batch, 0.0)
    starts = [d.nomination.predicted_start_s for d in decisions.values() if d.nomination]
    assert starts == [1000.0, 1600.0]


def test_an_aged_pod_goes_before_the_fair_order() -> None:
    def first_placed(now_s: float) -> str:
        cluster = Cluster(1, BackfillMode.EASY, max_wait_s=3600.0)
        cluster.run(_pod("big", 7, 9000.0, "team-a"), 0)  # team-a holds most of the cluster
        batch = [_pod("old", 1, 60.0, "team-a", at=0.0), _pod("new", 1, 60.0, "team-b", at=50.0)]
        placed = [d.pod.name for d in cluster.schedule(batch, now_s).values() if d.placed]
        assert len(placed) == 1
        return placed[0]

    assert first_placed(now_s=3000.0) == "new"  # team-b holds nothing: its turn
    assert first_placed(now_s=3600.0) == "old"  # waited an hour: it goes first


def test_an_aged_pod_that_fits_nowhere_takes_the_reservation() -> None:
    cluster = Cluster(1, BackfillMode.EASY, max_wait_s=3600.0)
    cluster.run(_pod("big", 8, 1000.0, "team-a"), 0)
    batch = [_pod("old", 8, 60.0, "team-a", at=0.0), _pod("new", 8, 60.0, "team-b", at=3000.0)]
    decisions = cluster.schedule(batch, now_s=3600.0)
    assert decisions["old"].nomination is not None
    assert decisions["new"].nomination is None


RUNNING = st.lists(
    st.tuples(st.sampled_from([1, 2, 4]), st.floats(10.0, 5000.0)), min_size=1, max_size=4
)


@settings(max_examples=60, deadline=None)
@given(
    mode=st.sampled_from([BackfillMode.EASY, BackfillMode.CONSERVATIVE]),
    running=st.lists(RUNNING, min_size=3, max_size=3),
    wide_s=st.floats(10.0, 5000.0),
    pending=st.lists(
        st.tuples(st.sampled_from([1, 2, 4, 8]), st.floats(10.0, 8000.0)), max_size=12
    ),
)
# Found by the search: a reservation ahead ends where this one starts, up to rounding.
@example(
    mode=BackfillMode.CONSERVATIVE,
    running=[[(1, 11.0), (1, 93.0), (2, 93.0), (2, 93.0)], [(4, 93.0)], [(1, 10.0), (4, 10.0)]],
    wide_s=83.0,
    pending=[(2, 11.0), (4, 10.0), (1, 82.46146076929767), (4, 10.0)],
)
def test_backfill_never_delays_a_reserved_start_under_exact_predictions(
    mode: BackfillMode,
    running: list[list[tuple[int, float]]],
    wide_s: float,
    pending: list[tuple[int, float]],
) -> None:
    cluster = Cluster(3, mode)
    ends: dict[str, float] = {}
    for node, pods in enumerate(running):
        busy = 0
        for i, (gpus, run_s) in enumerate(pods):
            if busy + gpus <= 8:
                pod = _pod(f"r{node}-{i}", gpus, run_s, "team-c")
                cluster.run(pod, node)
                ends[pod.name] = run_s
                busy += gpus
    batch = [_pod("wide", 8, wide_s, "team-a", at=-1.0)]
    batch += [_pod(f"p{i}", g, s, "team-b", at=float(i)) for i, (g, s) in enumerate(pending)]
    decisions = cluster.schedule(batch, now_s=0.0)
    ends.update(
        {d.pod.name: float(d.pod.expected_runtime_s or 0.0) for d in decisions.values() if d.placed}
    )
    held = [d for d in decisions.values() if d.nomination is not None]
    assert decisions["wide"].nomination is not None
    snapshot = cluster.snapshot
    for d in held:
        nomination = d.nomination
        assert nomination is not None
        start = nomination.predicted_start_s
        row = nomination.node_row
        # What is on the node at the reserved start, by the exact run times...
        used = np.zeros(len(snapshot.resources))
        for name, p in _pods_on(cluster, row).items():
            if ends[name] > start + 1e-6:  # ends equal to the start up to rounding leave room
                used += snapshot.request_vector(p)
        # ... and the reservations ahead of this one that are under way then.
        for other in held:
            o = other.nomination
            assert o is not None
            ahead = o.queue_position < nomination.queue_position and o.node_row == row
            run_s = float(other.pod.expected_runtime_s or 0.0)
            # (as above, an end equal to the start up to rounding leaves room)
            if ahead and o.predicted_start_s <= start < o.predicted_start_s + run_s - 1e-6:
                used += snapshot.request_vector(other.pod)
        room = snapshot.allocatable[row] - used - snapshot.request_vector(d.pod)
        assert np.all(room >= -1e-9), (d.pod.name, start, room)


def _pods_on(cluster: Cluster, row: int) -> dict[str, PendingPod]:
    return {
        run.pod.name: run.pod for run in cluster.predictor.running.values() if run.node == f"n{row}"
    }


def _gang(name: str, size: int, run_s: float, ns: str = "team-a") -> list[PendingPod]:
    gang = Gang(name, size)
    return [dataclasses.replace(_pod(f"{name}-{i}", 8, run_s, ns), gang=gang) for i in range(size)]


def test_a_gang_that_fits_nowhere_whole_reserves_the_nodes_that_free_first() -> None:
    cluster = Cluster(3, BackfillMode.EASY)
    for row, end in enumerate((3000.0, 1000.0, 2000.0)):
        cluster.run(_pod(f"r{row}", 8, end, "team-c"), row)
    decisions = cluster.schedule(_gang("llm", 2, 600.0), now_s=0.0)
    nominations = [decisions[f"llm-{i}"].nomination for i in range(2)]
    assert not any(decisions[f"llm-{i}"].placed for i in range(2))
    assert all(n is not None for n in nominations)
    # The two nodes that free first, held from the later of their ends.
    assert sorted(n.node for n in nominations if n) == ["n1", "n2"]
    assert {n.predicted_start_s for n in nominations if n} == {2000.0}
    assert "n1, n2 reserved, predicted start in 2000 s" in decisions["llm-0"].status.message


def test_pods_backfill_around_a_gang_reservation_only_where_they_end_before_it() -> None:
    cluster = Cluster(3, BackfillMode.EASY)
    cluster.run(_pod("r0", 8, 3000.0, "team-c"), 0)
    cluster.run(_pod("r1", 4, 1000.0, "team-c"), 1)
    cluster.run(_pod("r2", 8, 2000.0, "team-c"), 2)
    batch = [*_gang("llm", 2, 600.0), _pod("long", 4, 5000.0, "team-b", at=1.0)]
    batch.append(_pod("short", 4, 900.0, "team-b", at=2.0))
    decisions = cluster.schedule(batch, now_s=0.0)
    assert decisions["llm-0"].nomination is not None
    assert not decisions["long"].placed  # n1 is held from 2000 s
    assert decisions["short"].node == "n1"  # done by 900 s


def test_a_gang_reservation_sticks_and_the_gang_starts_whole_on_its_nodes() -> None:
    cluster = Cluster(3, BackfillMode.EASY)
    running = [
        _pod(f"r{row}", 8, end, "team-c") for row, end in enumerate((3000.0, 1000.0, 2000.0))
    ]
    for row, pod in enumerate(running):
        cluster.run(pod, row)
    gang = _gang("llm", 2, 600.0)
    first = cluster.schedule(gang, now_s=0.0)
    assert sorted(first[p.name].nomination.node for p in gang) == ["n1", "n2"]  # type: ignore[union-attr]
    # n1's pod ends: one node free, not two; the reservation stays where it was.
    cluster.snapshot.forget(running[1])
    cluster.predictor.finished(running[1].uid, 1000.0)
    again = cluster.schedule(gang, now_s=1000.0)
    assert not any(d.placed for d in again.values())
    assert sorted(again[p.name].nomination.node for p in gang) == ["n1", "n2"]  # type: ignore[union-attr]
    # A single pod that would run past 2000 s may not take n1 meanwhile.
    late = cluster.schedule([*gang, _pod("late", 8, 5000.0, "team-b", at=5.0)], now_s=1000.0)
    assert not late["late"].placed
    cluster.snapshot.forget(running[2])
    cluster.predictor.finished(running[2].uid, 2000.0)
    start = cluster.schedule(gang, now_s=2000.0)
    assert sorted(str(start[p.name].node) for p in gang) == ["n1", "n2"]
    assert cluster.policy.profile.arbitrator.gang_book == {}  # type: ignore[attr-defined]


class _CountingBinpack:
    """The binpack scorer, noting every pod it scores."""

    def __init__(self) -> None:
        self.inner = binpack_scorer()
        self.name = self.inner.name
        self.scored: list[str] = []

    def score(self, pod: PendingPod, snapshot: ClusterSnapshot, candidates: IntArray) -> FloatArray:
        self.scored.append(pod.name)
        return self.inner.score(pod, snapshot, candidates)

    def normalize(self, scores: FloatArray) -> FloatArray:
        return self.inner.normalize(scores)


def test_a_pod_that_may_use_none_of_its_nodes_is_not_scored() -> None:
    # "long" fits only on n0, which the reservation holds from 1000 s: backfill refuses
    # it, so scoring its nodes (a forward pass of the network, for the learned scores)
    # would be wasted. "short" may use n0 and is scored; the decisions are unchanged.
    counting = _CountingBinpack()
    cluster = _half_full(BackfillMode.EASY, counting)
    batch = [_pod("wide", 8, 600.0, at=0.0), _pod("long", 4, 2000.0, at=1.0)]
    batch.append(_pod("short", 4, 900.0, at=2.0))
    decisions = cluster.schedule(batch, 0.0)
    assert decisions["wide"].nomination is not None and decisions["wide"].nomination.node == "n0"
    assert not decisions["long"].placed and decisions["short"].node == "n0"
    assert counting.scored == ["short"]
