import numpy as np
import pytest

from builders import make_node, make_pod
from constraint_builders import app, term, zoned_nodes
from hybrid_policy.constraints import (
    HOSTNAME_KEY,
    ZONE_KEY,
    PlacementConstraints,
    PodAffinityTerm,
    PodSelector,
    WeightedPodAffinityTerm,
)
from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.cycle import BatchCycle, ScoreTable
from hybrid_policy.framework.snapshot import ClusterSnapshot
from hybrid_policy.framework.status import Code, Status
from hybrid_policy.policies import build_policy


def _cycle(nodes: list, policy: str = "kube-default") -> BatchCycle:  # type: ignore[type-arg]
    profile = build_policy(policy, np.random.default_rng(0)).profile
    return BatchCycle(profile, ClusterSnapshot(nodes), np.random.default_rng(0))


def _names(cycle: BatchCycle, pod: PendingPod) -> list[str]:
    mask = cycle.feasible(pod)
    assert not isinstance(mask, Status), mask
    return [cycle.snapshot.nodes[i].name for i in np.flatnonzero(mask)]


def _status(cycle: BatchCycle, pod: PendingPod) -> Status:
    status = cycle.feasible(pod)
    assert isinstance(status, Status), status
    return status


def _anti(selector_app: str, key: str = HOSTNAME_KEY) -> PlacementConstraints:
    return PlacementConstraints(required_anti_affinity=(term(app(selector_app), key),))


def _affinity(selector_app: str, key: str = ZONE_KEY) -> PlacementConstraints:
    return PlacementConstraints(required_affinity=(term(app(selector_app), key),))


def test_anti_affinity_per_host_keeps_matching_pods_apart() -> None:
    cycle = _cycle(zoned_nodes("aab"))
    cycle.commit(make_pod("web-0", labels={"app": "web"}), 0)
    pod = make_pod("web-1", labels={"app": "web"}, constraints=_anti("web"))
    assert _names(cycle, pod) == ["n1", "n2"]


def test_anti_affinity_per_zone_keeps_the_whole_zone_clear() -> None:
    nodes = [*zoned_nodes("aab"), make_node("unzoned")]
    cycle = _cycle(nodes)
    cycle.commit(make_pod("web-0", labels={"app": "web"}), 1)
    pod = make_pod("web-1", labels={"app": "web"}, constraints=_anti("web", ZONE_KEY))
    # a node without the topology key is in no domain, so nothing there conflicts
    assert _names(cycle, pod) == ["n2", "unzoned"]


def test_anti_affinity_counts_only_the_terms_namespaces() -> None:
    cycle = _cycle(zoned_nodes("ab"))
    cycle.commit(make_pod("web-0", namespace="team-b", labels={"app": "web"}), 0)
    own_namespace = make_pod("w", labels={"app": "web"}, constraints=_anti("web"))
    assert _names(cycle, own_namespace) == ["n0", "n1"]
    every = PodAffinityTerm(PodSelector(app("web"), None), HOSTNAME_KEY)
    anywhere = PlacementConstraints(required_anti_affinity=(every,))
    assert _names(cycle, make_pod("x", constraints=anywhere)) == ["n1"]


def test_placed_pods_anti_affinity_is_respected_by_pods_without_constraints() -> None:
    cycle = _cycle(zoned_nodes("aab"))
    cycle.commit(make_pod("loner", constraints=_anti("db", ZONE_KEY)), 0)
    db = make_pod("db-0", labels={"app": "db"})
    assert _names(cycle, db) == ["n2"]
    assert _names(cycle, make_pod("web-0", labels={"app": "web"})) == ["n0", "n1", "n2"]
    other_team = make_pod("db-1", namespace="team-b", labels={"app": "db"})
    assert _names(cycle, other_team) == ["n0", "n1", "n2"]


def test_symmetry_wording_when_only_existing_anti_affinity_blocks() -> None:
    cycle = _cycle(zoned_nodes("abc"))
    for row in range(3):
        cycle.commit(make_pod(f"guard-{row}", constraints=_anti("db")), row)
    status = _status(cycle, make_pod("db-0", labels={"app": "db"}))
    assert status.code is Code.UNSCHEDULABLE
    assert status.message == (
        "0/3 nodes are available: 3 node(s) didn't satisfy existing pods anti-affinity rules."
    )


def test_affinity_needs_a_matching_pod_in_the_same_domain() -> None:
    nodes = [*zoned_nodes("aabb"), make_node("unzoned")]
    cycle = _cycle(nodes)
    cycle.commit(make_pod("cache", labels={"app": "cache"}), 3)
    pod = make_pod("client", constraints=_affinity("cache"))
    assert _names(cycle, pod) == ["n2", "n3"]


def test_first_pod_of_a_self_affine_group_may_go_anywhere_with_the_key() -> None:
    nodes = [*zoned_nodes("ab"), make_node("unzoned")]
    cycle = _cycle(nodes)
    first = make_pod("w-0", labels={"app": "web"}, constraints=_affinity("web"))
    assert _names(cycle, first) == ["n0", "n1"]
    cycle.commit(first, 1)
    second = make_pod("w-1", labels={"app": "web"}, constraints=_affinity("web"))
    assert _names(cycle, second) == ["n1"]


def test_affinity_without_any_matching_pod_fails_in_kube_scheduler_words() -> None:
    cycle = _cycle(zoned_nodes("abc"))
    status = _status(cycle, make_pod("client", constraints=_affinity("cache")))
    assert status.message == "0/3 nodes are available: 3 node(s) didn't match pod affinity rules."


def test_a_pod_that_fit_nowhere_is_reconsidered_once_its_affinity_can_be_met() -> None:
    cycle = _cycle(zoned_nodes("ab"))
    _status(cycle, make_pod("client-0", constraints=_affinity("cache")))
    cycle.commit(make_pod("cache", labels={"app": "cache"}), 1)
    assert _names(cycle, make_pod("client-1", constraints=_affinity("cache"))) == ["n1"]


def test_pods_of_one_signature_with_other_labels_are_not_refused_together() -> None:
    cycle = _cycle(zoned_nodes("a"))
    cycle.expect([make_pod("guard", constraints=_anti("db"))])
    cycle.commit(make_pod("guard", constraints=_anti("db")), 0)
    _status(cycle, make_pod("db", labels={"app": "db"}))
    assert _names(cycle, make_pod("web", labels={"app": "web"})) == ["n0"]


@pytest.mark.parametrize("policy", ["kube-default", "drf", "binpack", "game"])
def test_a_batch_respects_anti_affinity_among_its_own_pods(policy: str) -> None:
    nodes = zoned_nodes("abc")
    profile = build_policy(policy, np.random.default_rng(0)).profile
    batch = [
        make_pod(f"web-{i}", labels={"app": "web"}, constraints=_anti("web"), created_at_s=i)
        for i in range(4)
    ]
    decisions = profile.schedule_batch(batch, ClusterSnapshot(nodes), np.random.default_rng(0))
    placed = sorted(d.node for d in decisions if d.node is not None)
    assert placed == ["n0", "n1", "n2"]
    (refused,) = [d for d in decisions if d.node is None]
    assert refused.status.message == (
        "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."
    )


def test_a_batch_with_affinity_follows_its_first_pod() -> None:
    profile = build_policy("kube-default", np.random.default_rng(0)).profile
    batch = [
        make_pod(f"w-{i}", labels={"app": "w"}, constraints=_affinity("w"), created_at_s=i)
        for i in range(4)
    ]
    snap = ClusterSnapshot(zoned_nodes("aabb"))
    decisions = profile.schedule_batch(batch, snap, np.random.default_rng(0))
    zones = {snap.nodes[d.node_row].labels[ZONE_KEY] for d in decisions}
    assert all(d.placed for d in decisions)
    assert len(zones) == 1


def _prefer(weight: int, selected: str, anti: bool = False) -> PlacementConstraints:
    terms = (WeightedPodAffinityTerm(weight, term(app(selected), ZONE_KEY)),)
    if anti:
        return PlacementConstraints(preferred_anti_affinity=terms)
    return PlacementConstraints(preferred_affinity=terms)


def _scores(cycle: BatchCycle, pod: PendingPod) -> list[float]:
    plugin = next(p for p, _ in cycle.profile.scorers if p.name == "InterPodAffinity")
    scores = plugin.score(pod, cycle.snapshot, np.arange(len(cycle.snapshot)))
    return [float(x) for x in scores]


def test_preferred_affinity_and_anti_affinity_score_domains() -> None:
    cycle = _cycle(zoned_nodes("abc"))
    cycle.commit(make_pod("cache-0", labels={"app": "cache"}), 0)
    cycle.commit(make_pod("cache-1", labels={"app": "cache"}), 0)
    cycle.commit(make_pod("cache-2", labels={"app": "cache"}), 1)
    assert _scores(cycle, make_pod("near", constraints=_prefer(10, "cache"))) == [100, 50, 0]
    assert _scores(cycle, make_pod("far", constraints=_prefer(10, "cache", True))) == [0, 50, 100]
    table = cycle.evaluate(make_pod("near", constraints=_prefer(10, "cache")))
    assert isinstance(table, ScoreTable)
    assert table.best(np.random.default_rng(0)) == 0


def test_placed_pods_preferences_attract_the_pods_they_select() -> None:
    cycle = _cycle(zoned_nodes("abc"))
    cycle.commit(make_pod("fan", constraints=_prefer(40, "web")), 2)
    assert _scores(cycle, make_pod("web", labels={"app": "web"})) == [0, 0, 100]
    assert _scores(cycle, make_pod("db", labels={"app": "db"})) == [0, 0, 0]


def test_the_game_settles_contended_passes_within_anti_affinity() -> None:
    every = PodAffinityTerm(PodSelector(app("web"), None), HOSTNAME_KEY)
    anti = PlacementConstraints(required_anti_affinity=(every,))
    batch = [
        make_pod(f"{ns}-{i}", gpus=6, namespace=ns, labels={"app": "web"}, constraints=anti)
        for ns in ("team-a", "team-b")
        for i in range(3)
    ]
    profile = build_policy("game", np.random.default_rng(0)).profile
    decisions = profile.schedule_batch(
        batch, ClusterSnapshot(zoned_nodes("abc")), np.random.default_rng(0)
    )
    placed = sorted(d.node for d in decisions if d.node is not None)
    assert placed == ["n0", "n1", "n2"]
    assert {d.path for d in decisions} != {"uncontended"}


def test_the_game_groups_pods_by_labels_once_anti_affinity_is_about() -> None:
    from hybrid_policy.game.arbiter import GameArbitrator

    cycle = _cycle(zoned_nodes("ab"), "game")
    guard = make_pod("guard", constraints=_anti("db"))
    others = [make_pod("db", labels={"app": "db"}), make_pod("web", labels={"app": "web"})]
    cycle.expect([guard, *others])
    assert len(GameArbitrator().pod_classes(others, cycle)) == 2
