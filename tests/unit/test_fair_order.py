"""The fair order's two rules: weighted DRF, and oldest first among the namespaces at or
below the pass's water level (``order=capped``); the water level itself."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builders import make_node, make_pod
from hybrid_policy.domain import Namespace, PendingPod
from hybrid_policy.framework.snapshot import ClusterSnapshot
from hybrid_policy.reservation import BackfillMode, OrderRule, ReservationSettings
from hybrid_policy.reservation.order import fair_order, water_level
from reservation_cluster import Cluster

WEIGHTS = {"team-a": 1.0, "team-b": 2.0, "team-c": 1.0}


def _weight(namespace: str) -> float:
    return WEIGHTS[namespace]


def test_the_water_level_gives_out_the_whole_cluster_max_min_fairly() -> None:
    assert water_level({"team-a": 0.6, "team-c": 0.6}, _weight) == pytest.approx(0.5)
    # team-a asks less than its share (1/3): it gets its demand, team-b the rest over 2.
    assert water_level({"team-a": 0.2, "team-b": 0.9}, _weight) == pytest.approx(0.4)
    assert water_level({"team-a": 0.5, "team-b": 0.5}, _weight) == float("inf")


@given(st.dictionaries(st.sampled_from(sorted(WEIGHTS)), st.floats(0.0, 2.0), min_size=1))
def test_entitlements_at_the_level_sum_to_the_cluster(demand: dict[str, float]) -> None:
    level = water_level(demand, _weight)
    if sum(demand.values()) <= 1.0:
        assert level == float("inf")
        return
    given_out = [min(d, _weight(ns) * level) for ns, d in demand.items()]
    assert sum(given_out) == pytest.approx(1.0)


def _first_placed(cluster: Cluster, batch: list[PendingPod]) -> str:
    placed = [d.pod.name for d in cluster.schedule(batch, now_s=100.0).values() if d.placed]
    assert len(placed) == 1
    return placed[0]


@pytest.mark.parametrize(
    ("order", "slack", "first"),
    [
        (OrderRule.DRF, 0.0, "new"),  # team-b holds nothing: its turn
        (OrderRule.CAPPED, 0.0, "old"),  # team-a is at the level: arrival order
        (OrderRule.CAPPED, -0.05, "new"),  # ... but above a level lowered by 5 %
    ],
)
def test_inside_the_level_the_oldest_head_goes_first(
    order: OrderRule, slack: float, first: str
) -> None:
    cluster = Cluster(1, BackfillMode.EASY, order=order, level_slack=slack)
    cluster.run(make_pod("big", gpus=7, cpu=7, memory_gib=7), 0)
    # Demands: team-a 8/8, team-b 1/8: the level gives team-b its 1/8 and team-a 7/8.
    batch = [
        make_pod("old", gpus=1, cpu=1, memory_gib=1, created_at_s=0.0),
        make_pod("new", gpus=1, cpu=1, memory_gib=1, namespace="team-b", created_at_s=50.0),
    ]
    assert _first_placed(cluster, batch) == first


@pytest.mark.parametrize(
    ("order", "slack", "first"),
    [
        (OrderRule.DRF, 0.0, "b"),  # team-b and team-c hold nothing: the name breaks the tie
        (OrderRule.CAPPED, 0.0, "c"),  # team-a is above the level: the oldest of the others
        (OrderRule.CAPPED, 1.0, "a"),  # a level doubled takes team-a in: oldest of all
    ],
)
def test_a_namespace_above_the_level_waits_for_those_inside(
    order: OrderRule, slack: float, first: str
) -> None:
    cluster = Cluster(2, BackfillMode.EASY, order=order, level_slack=slack)
    cluster.run(make_pod("r0", gpus=8, cpu=8, memory_gib=8), 0)
    cluster.run(make_pod("r1", gpus=5, cpu=5, memory_gib=5), 1)
    # team-a holds 13/16 and asks for 3 more; team-b and team-c ask 3/16 each: the
    # level is (1 - 6/16) over team-a's weight, 10/16, below what team-a holds.
    batch = [
        make_pod("a", gpus=3, cpu=3, memory_gib=3, created_at_s=0.0),
        make_pod("c", gpus=3, cpu=3, memory_gib=3, namespace="team-c", created_at_s=20.0),
        make_pod("b", gpus=3, cpu=3, memory_gib=3, namespace="team-b", created_at_s=50.0),
    ]
    assert _first_placed(cluster, batch) == first


@settings(max_examples=60, deadline=None)
@given(
    pods=st.lists(
        st.tuples(st.sampled_from(sorted(WEIGHTS)), st.sampled_from([1, 2, 4, 8])),
        max_size=20,
    ),
    held=st.lists(st.integers(0, 8), min_size=3, max_size=3),
    slack=st.sampled_from([-0.5, 0.0, 0.25]),
)
def test_the_capped_order_keeps_every_unit_and_each_namespace_s_queue_order(
    pods: list[tuple[str, int]], held: list[int], slack: float
) -> None:
    snapshot = ClusterSnapshot(
        [make_node(f"n{i}") for i in range(3)], [Namespace(n, w) for n, w in WEIGHTS.items()]
    )
    for row, (ns, gpus) in enumerate(zip(WEIGHTS, held, strict=True)):
        if gpus:
            snapshot.assume(make_pod(f"run-{ns}", gpus=gpus, namespace=ns), row)
    batch = [
        (make_pod(f"p{i}", gpus=g, namespace=ns, created_at_s=float(i)),)
        for i, (ns, g) in enumerate(pods)
    ]
    config = ReservationSettings(order=OrderRule.CAPPED, level_slack=slack)
    order = [unit[0].name for unit in fair_order(batch, snapshot, 10.0, config)]
    assert sorted(order) == sorted(unit[0].name for unit in batch)
    for ns in WEIGHTS:
        mine = [unit[0].name for unit in batch if unit[0].namespace == ns]
        assert [name for name in order if name in mine] == mine


def test_the_level_is_worked_out_before_aged_units_are_placed() -> None:
    cluster = Cluster(
        1, BackfillMode.EASY, order=OrderRule.CAPPED, level_slack=0.0, max_wait_s=7200.0
    )
    cluster.run(make_pod("big", gpus=5, cpu=5, memory_gib=5), 0)
    # Demands: team-a 6/8, team-b 3/8 (its aged pod included once): the level gives
    # team-b its 3/8 and team-a 5/8, what it holds, so team-a is inside the level.
    batch = [
        make_pod("aged", gpus=2, cpu=2, memory_gib=2, namespace="team-b", created_at_s=0.0),
        make_pod("old", gpus=1, cpu=1, memory_gib=1, created_at_s=7000.0),
        make_pod("new", gpus=1, cpu=1, memory_gib=1, namespace="team-b", created_at_s=7500.0),
    ]
    decisions = cluster.schedule(batch, now_s=8000.0)
    assert sorted(name for name, d in decisions.items() if d.placed) == ["aged", "old"]


@pytest.mark.parametrize(
    ("order", "old_placed"), [(OrderRule.CAPPED, True), (OrderRule.DRF, False)]
)
def test_a_team_at_the_level_up_to_rounding_counts_as_inside(
    order: OrderRule, old_placed: bool
) -> None:
    cluster = Cluster(5, BackfillMode.EASY, order=order, level_slack=0.0)
    for node, gpus in enumerate([8, 8, 8, 4]):
        cluster.run(make_pod(f"r{node}", gpus=gpus, cpu=gpus, memory_gib=gpus), node)
    # team-a holds 28/40 and asks 4 more, team-b asks 12/40: the level is 1 - 12/40,
    # which rounds to 0.7 while team-a's 28/40 rounds to 0.7000000000000001.
    batch = [make_pod("old", gpus=4, cpu=4, memory_gib=4, created_at_s=0.0)] + [
        make_pod(f"b{i}", gpus=4, cpu=4, memory_gib=4, namespace="team-b", created_at_s=50.0 + i)
        for i in range(3)
    ]
    placed = {name for name, d in cluster.schedule(batch, now_s=100.0).items() if d.placed}
    assert len(placed) == 3
    assert ("old" in placed) is old_placed
