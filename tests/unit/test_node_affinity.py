import numpy as np
import pytest

from builders import make_node, make_pod
from constraint_builders import req
from hybrid_policy.constraints import (
    NodeSelectorTerm,
    PlacementConstraints,
    WeightedNodeTerm,
)
from hybrid_policy.framework.cycle import BatchCycle, ScoreTable
from hybrid_policy.framework.snapshot import ClusterSnapshot
from hybrid_policy.framework.status import Code, Status
from hybrid_policy.policies import build_policy


def _cycle(nodes: list, policy: str = "kube-default") -> BatchCycle:  # type: ignore[type-arg]
    profile = build_policy(policy, np.random.default_rng(0)).profile
    return BatchCycle(profile, ClusterSnapshot(nodes), np.random.default_rng(0))


def _required(*terms: NodeSelectorTerm) -> PlacementConstraints:
    return PlacementConstraints(required_node_terms=terms)


def _fits(nodes: list, constraints: PlacementConstraints) -> list[str]:  # type: ignore[type-arg]
    cycle = _cycle(nodes)
    mask = cycle.feasible(make_pod("p", constraints=constraints))
    assert not isinstance(mask, Status), mask
    return [cycle.snapshot.nodes[i].name for i in np.flatnonzero(mask)]


NODES = [
    make_node("a100-big", labels={"gpu": "a100", "gpu-count": "8", "zone": "z1"}),
    make_node("a100-small", labels={"gpu": "a100", "gpu-count": "2", "zone": "z2"}),
    make_node("v100", labels={"gpu": "v100", "gpu-count": "4"}),
    make_node("odd", labels={"gpu-count": "eight"}),
    make_node("wide", labels={"gpu-count": "16"}),
]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        (req("gpu", "In", "a100", "h100"), ["a100-big", "a100-small"]),
        (req("gpu", "NotIn", "a100"), ["v100", "odd", "wide"]),  # also nodes lacking the key
        (req("zone", "Exists"), ["a100-big", "a100-small"]),
        (req("zone", "DoesNotExist"), ["v100", "odd", "wide"]),
        (req("gpu-count", "Gt", "3"), ["a100-big", "v100", "wide"]),  # "16" > "3" as integers
        (req("gpu-count", "Lt", "4"), ["a100-small"]),  # "eight" is no integer: no match
    ],
)
def test_each_operator_follows_kubernetes(expression: object, expected: list[str]) -> None:
    assert _fits(NODES, _required(NodeSelectorTerm((expression,)))) == expected  # type: ignore[arg-type]


def test_terms_are_ored_and_expressions_in_a_term_anded() -> None:
    both = NodeSelectorTerm((req("gpu", "In", "a100"), req("zone", "In", "z2")))
    other = NodeSelectorTerm((req("gpu", "In", "v100"),))
    assert _fits(NODES, _required(both)) == ["a100-small"]
    assert _fits(NODES, _required(both, other)) == ["a100-small", "v100"]


def test_match_fields_select_by_node_name() -> None:
    by_name = NodeSelectorTerm(fields=(req("metadata.name", "In", "v100", "odd"),))
    assert _fits(NODES, _required(by_name)) == ["v100", "odd"]
    not_named = NodeSelectorTerm(fields=(req("metadata.name", "NotIn", "v100"),))
    assert _fits(NODES, _required(not_named)) == ["a100-big", "a100-small", "odd", "wide"]


def test_an_empty_term_matches_no_node() -> None:
    status = _cycle(NODES).feasible(make_pod("p", constraints=_required(NodeSelectorTerm())))
    assert isinstance(status, Status)


def test_node_affinity_and_node_selector_both_apply() -> None:
    cycle = _cycle(NODES)
    pod = make_pod(
        "p",
        node_selector={"gpu": "a100"},
        constraints=_required(NodeSelectorTerm((req("gpu-count", "Gt", "4"),))),
    )
    mask = cycle.feasible(pod)
    assert not isinstance(mask, Status)
    assert list(np.flatnonzero(mask)) == [0]


def test_unmatched_required_affinity_says_so_in_kube_scheduler_words() -> None:
    nodes = [make_node("a", labels={"gpu": "v100"}), make_node("b"), make_node("c", gpus=0)]
    pod = make_pod("p", constraints=_required(NodeSelectorTerm((req("gpu", "In", "a100"),))))
    status = _cycle(nodes).feasible(pod)
    assert isinstance(status, Status)
    assert status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert status.message == (
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."
    )


def test_the_static_mask_cache_tells_affinities_apart() -> None:
    cycle = _cycle(NODES)
    a100 = make_pod("a", constraints=_required(NodeSelectorTerm((req("gpu", "In", "a100"),))))
    v100 = make_pod("v", constraints=_required(NodeSelectorTerm((req("gpu", "In", "v100"),))))
    first, second = cycle.feasible(a100), cycle.feasible(v100)
    assert not isinstance(first, Status) and not isinstance(second, Status)
    assert list(np.flatnonzero(first)) == [0, 1]
    assert list(np.flatnonzero(second)) == [2]


def _preferring(*weighted: tuple[int, NodeSelectorTerm]) -> PlacementConstraints:
    return PlacementConstraints(
        preferred_node_terms=tuple(WeightedNodeTerm(w, t) for w, t in weighted)
    )


def test_preferred_affinity_scores_the_sum_of_matching_weights_scaled_to_100() -> None:
    cycle = _cycle(NODES[:3])
    prefs = _preferring(
        (30, NodeSelectorTerm((req("gpu", "In", "a100"),))),
        (10, NodeSelectorTerm((req("zone", "In", "z1"),))),
    )
    plugin = next(p for p, _ in cycle.profile.scorers if p.name == "NodeAffinity")
    raw = plugin.score(make_pod("p", constraints=prefs), cycle.snapshot, np.arange(3))
    # sums 40, 30, 0 -> 100 * sum // 40
    assert raw.tolist() == [100.0, 75.0, 0.0]


def test_preferred_affinity_decides_between_equal_nodes() -> None:
    nodes = [make_node(f"n{i}", labels={"disk": "ssd" if i == 2 else "hdd"}) for i in range(4)]
    prefs = _preferring((50, NodeSelectorTerm((req("disk", "In", "ssd"),))))
    for policy in ("kube-default", "drf"):
        table = _cycle(nodes, policy).evaluate(make_pod("p", constraints=prefs))
        assert isinstance(table, ScoreTable)
        assert table.best(np.random.default_rng(0)) == 2, policy
        # weight 2, like kube-scheduler's NodeAffinity: 200 points above the others
        assert table.score_of(2) - table.score_of(0) == pytest.approx(200.0)
