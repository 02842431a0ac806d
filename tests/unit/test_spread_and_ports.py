from dataclasses import replace

import numpy as np
import pytest

from builders import make_node, make_pod
from constraint_builders import app, spread, zoned_nodes
from hybrid_policy.constraints import (
    HOSTNAME_KEY,
    ZONE_KEY,
    HostPort,
    InclusionPolicy,
    PlacementConstraints,
    PortProtocol,
)
from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.cycle import BatchCycle
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


def _web(name: str, *constraints: object, **kwargs: object) -> PendingPod:
    given = PlacementConstraints(spread=constraints)  # type: ignore[arg-type]
    return make_pod(name, labels={"app": "web"}, constraints=given, **kwargs)  # type: ignore[arg-type]


def _place(cycle: BatchCycle, rows: list[int], namespace: str = "team-a") -> None:
    for i, row in enumerate(rows):
        cycle.commit(make_pod(f"placed-{row}-{i}", namespace=namespace, labels={"app": "web"}), row)


def test_skew_counts_the_pod_itself_against_the_emptiest_domain() -> None:
    cycle = _cycle(zoned_nodes("aabc"))
    _place(cycle, [0, 1, 2, 3])  # zone a: 2, b: 1, c: 1
    assert _names(cycle, _web("w", spread(app("web")))) == ["n2", "n3"]
    assert _names(cycle, _web("w", spread(app("web"), max_skew=2))) == ["n0", "n1", "n2", "n3"]
    # a pod its own selector does not select adds nothing to the skew
    other = make_pod("x", constraints=PlacementConstraints(spread=(spread(app("web")),)))
    assert _names(cycle, other) == ["n0", "n1", "n2", "n3"]


def test_only_pods_of_the_own_namespace_count() -> None:
    cycle = _cycle(zoned_nodes("ab"))
    _place(cycle, [0, 0], namespace="team-b")
    assert _names(cycle, _web("w", spread(app("web")))) == ["n0", "n1"]


@pytest.mark.parametrize("policy", ["kube-default", "binpack", "drf", "game"])
def test_a_batch_spreads_over_zones_counting_its_own_placements(policy: str) -> None:
    snap = ClusterSnapshot(zoned_nodes("aabbcc"))
    batch = [_web(f"w{i}", spread(app("web")), created_at_s=i, gpus=1) for i in range(6)]
    profile = build_policy(policy, np.random.default_rng(0)).profile
    decisions = profile.schedule_batch(batch, snap, np.random.default_rng(0))
    zones = sorted(snap.nodes[d.node_row].labels[ZONE_KEY] for d in decisions if d.placed)
    assert zones == ["a", "a", "b", "b", "c", "c"]


def test_nodes_lacking_the_key_are_no_candidates_and_the_message_says_why() -> None:
    cordoned = make_node("n1", labels={ZONE_KEY: "b"}, unschedulable=True)
    cycle = _cycle([*zoned_nodes("a"), cordoned, make_node("bare")])
    assert _names(cycle, _web("w", spread(app("web")))) == ["n0"]
    _place(cycle, [0])  # zone a: 1, zone b (cordoned, still a domain): 0
    status = cycle.feasible(_web("w", spread(app("web"))))
    assert isinstance(status, Status)
    assert status.message == (
        "0/3 nodes are available: "
        "1 node(s) didn't match pod topology spread constraints, "
        "1 node(s) didn't match pod topology spread constraints (missing required label), "
        "1 node(s) were unschedulable."
    )


def test_fewer_domains_than_min_domains_count_the_minimum_as_zero() -> None:
    cycle = _cycle(zoned_nodes("ab"))
    _place(cycle, [0, 1])
    assert _names(cycle, _web("w", spread(app("web")))) == ["n0", "n1"]
    status = cycle.feasible(_web("w", spread(app("web"), min_domains=3)))
    assert isinstance(status, Status)
    assert status.code is Code.UNSCHEDULABLE


def test_node_affinity_policy_decides_which_domains_count() -> None:
    pools = {"a": "x", "b": "x", "c": "y"}
    nodes = [make_node(f"n{z}", labels={ZONE_KEY: z, "pool": pools[z]}) for z in "abc"]
    cycle = _cycle(nodes)
    _place(cycle, [0, 1])  # a: 1, b: 1, c (pool y): 0
    honour = _web("w", spread(app("web")), node_selector={"pool": "x"})
    assert _names(cycle, honour) == ["na", "nb"]  # zone c is no domain for this pod
    ignoring = replace(spread(app("web")), node_affinity_policy=InclusionPolicy.IGNORE)
    status = cycle.feasible(_web("w", ignoring, node_selector={"pool": "x"}))
    assert isinstance(status, Status)  # zone c, empty, is the minimum


def test_schedule_anyway_prefers_the_emptier_domain() -> None:
    cycle = _cycle(zoned_nodes("abc"))
    _place(cycle, [0, 0, 1])
    pod = _web("w", spread(app("web"), hard=False))
    assert _names(cycle, pod) == ["n0", "n1", "n2"]
    plugin = next(p for p, _ in cycle.profile.scorers if p.name == "PodTopologySpread")
    scores = plugin.score(pod, cycle.snapshot, np.arange(3)).tolist()
    # counts 2, 1, 0 times log(3 + 2), rounded: 3, 2, 0 -> 100 * (3 + 0 - s) // 3
    assert scores == [0.0, 33.0, 100.0]
    table = cycle.evaluate(pod)
    assert not isinstance(table, Status)
    assert table.best(np.random.default_rng(0)) == 2


def test_schedule_anyway_per_host_counts_the_node_itself() -> None:
    cycle = _cycle(zoned_nodes("aa"))
    _place(cycle, [0])
    pod = _web("w", spread(app("web"), HOSTNAME_KEY, hard=False))
    plugin = next(p for p, _ in cycle.profile.scorers if p.name == "PodTopologySpread")
    assert plugin.score(pod, cycle.snapshot, np.arange(2)).tolist() == [0.0, 100.0]


def _ports(*ports: HostPort) -> PlacementConstraints:
    return PlacementConstraints(host_ports=ports)


TCP, UDP = PortProtocol.TCP, PortProtocol.UDP


@pytest.mark.parametrize(
    ("used", "wanted", "conflict"),
    [
        (HostPort(80), HostPort(80), True),
        (HostPort(80), HostPort(81), False),
        (HostPort(80, TCP), HostPort(80, UDP), False),
        (HostPort(80, TCP, "10.0.0.1"), HostPort(80, TCP), True),  # 0.0.0.0 takes every IP
        (HostPort(80, TCP), HostPort(80, TCP, "10.0.0.1"), True),
        (HostPort(80, TCP, "10.0.0.1"), HostPort(80, TCP, "10.0.0.2"), False),
        (HostPort(80, TCP, "10.0.0.1"), HostPort(80, TCP, "10.0.0.1"), True),
    ],
)
def test_host_ports_conflict_like_kube_scheduler(
    used: HostPort, wanted: HostPort, conflict: bool
) -> None:
    cycle = _cycle([make_node("a"), make_node("b")])
    cycle.commit(make_pod("placed", constraints=_ports(used)), 0)
    expected = ["b"] if conflict else ["a", "b"]
    assert _names(cycle, make_pod("p", constraints=_ports(wanted))) == expected


def test_a_batch_cannot_share_a_host_port_and_the_message_says_so() -> None:
    profile = build_policy("kube-default", np.random.default_rng(0)).profile
    batch = [
        make_pod(f"p{i}", constraints=_ports(HostPort(9000)), created_at_s=i) for i in range(3)
    ]
    snap = ClusterSnapshot([make_node("a"), make_node("b")])
    decisions = profile.schedule_batch(batch, snap, np.random.default_rng(0))
    assert sorted(d.node or "-" for d in decisions) == ["-", "a", "b"]
    refused = next(d for d in decisions if not d.placed)
    assert refused.status.message == (
        "0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports."
    )


def test_fit_count_counts_one_copy_per_node_with_the_port_free() -> None:
    cycle = _cycle([make_node("a"), make_node("b"), make_node("c")])
    cycle.commit(make_pod("placed", constraints=_ports(HostPort(9000))), 0)
    assert cycle.fit_count(make_pod("p", constraints=_ports(HostPort(9000)))) == 2
    assert cycle.fit_count(make_pod("q")) == 23  # 8 + 7 + 8 GPUs


def test_the_node_pod_limit_is_enforced_with_kube_scheduler_wording() -> None:
    cycle = _cycle([make_node("small", max_pods=2)])
    cycle.commit(make_pod("a", gpus=0), 0)
    cycle.commit(make_pod("b", gpus=0), 0)
    status = cycle.feasible(make_pod("c", gpus=0))
    assert isinstance(status, Status)
    assert status.message == "0/1 nodes are available: 1 Too many pods."
    assert cycle.fit_count(make_pod("d", gpus=0)) == 0
