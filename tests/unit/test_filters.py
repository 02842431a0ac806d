import numpy as np
import pytest

from builders import make_node, make_pod
from hybrid_policy.domain import Taint, TaintEffect, Toleration
from hybrid_policy.framework.cycle import BatchCycle, ScoreTable
from hybrid_policy.framework.snapshot import ClusterSnapshot
from hybrid_policy.framework.status import Code, Status
from hybrid_policy.policies import build_policy


def _cycle(nodes: list, policy: str = "kube-default") -> BatchCycle:  # type: ignore[type-arg]
    profile = build_policy(policy, np.random.default_rng(0)).profile
    return BatchCycle(profile, ClusterSnapshot(nodes), np.random.default_rng(0))


def _feasible(cycle: BatchCycle, pod: object) -> list[str]:
    mask = cycle.feasible(pod)  # type: ignore[arg-type]
    assert not isinstance(mask, Status), mask
    return [cycle.snapshot.nodes[i].name for i in np.flatnonzero(mask)]


def test_gpu_fit_counts_reservations_in_the_same_batch() -> None:
    cycle = _cycle([make_node("a", gpus=4), make_node("b", gpus=8)])
    pod = make_pod("p", gpus=6)
    assert _feasible(cycle, pod) == ["b"]
    cycle.commit(pod, 1)
    second = make_pod("q", gpus=3)
    assert _feasible(cycle, second) == ["a"]


def test_the_fit_count_follows_every_placement_and_its_undoing() -> None:
    cycle = _cycle([make_node("a", gpus=8), make_node("b", gpus=8)])
    pod = make_pod("p", gpus=4)
    assert cycle.fit_count(pod) == 4
    mark = cycle.mark()
    cycle.commit(make_pod("q", gpus=4), 0)
    assert cycle.fit_count(pod) == 3
    cycle.rollback(mark)
    assert cycle.fit_count(pod) == 4
    cycle.snapshot.assume(make_pod("r", gpus=8), 1)  # placed outside the cycle
    assert cycle.fit_count(pod) == 2


def test_cpu_memory_and_pod_slots_are_checked() -> None:
    cycle = _cycle([make_node("small", cpu=2), make_node("full", max_pods=0), make_node("ok")])
    assert _feasible(cycle, make_pod("p", cpu=4)) == ["ok"]


def test_taints_repel_unless_tolerated() -> None:
    taint = Taint("dedicated", "infer", TaintEffect.NO_SCHEDULE)
    soft = Taint("spot", "", TaintEffect.PREFER_NO_SCHEDULE)
    cycle = _cycle([make_node("tainted", taints=(taint,)), make_node("soft", taints=(soft,))])
    assert _feasible(cycle, make_pod("p")) == ["soft"]
    tolerant = make_pod("q", tolerations=(Toleration("dedicated", "Equal", "infer"),))
    assert _feasible(cycle, tolerant) == ["tainted", "soft"]
    exists = make_pod("r", tolerations=(Toleration(operator="Exists"),))
    assert _feasible(cycle, exists) == ["tainted", "soft"]
    wrong_value = make_pod("s", tolerations=(Toleration("dedicated", "Equal", "train"),))
    assert _feasible(cycle, wrong_value) == ["soft"]


def test_node_selector_unschedulable_and_not_ready() -> None:
    nodes = [
        make_node("a100", labels={"gpu": "a100"}),
        make_node("cordoned", labels={"gpu": "a100"}, unschedulable=True),
        make_node("down", labels={"gpu": "a100"}, ready=False),
        make_node("v100", labels={"gpu": "v100"}),
    ]
    cycle = _cycle(nodes)
    assert _feasible(cycle, make_pod("p", node_selector={"gpu": "a100"})) == ["a100"]
    assert _feasible(cycle, make_pod("q")) == ["a100", "v100"]


def test_failed_scheduling_message_in_kube_scheduler_style() -> None:
    nodes = [make_node(f"n{i}", gpus=2) for i in range(4)] + [
        make_node("t", taints=(Taint("dedicated", "x"),)),
        make_node("c", unschedulable=True),
    ]
    status = _cycle(nodes).feasible(make_pod("big", gpus=4))
    assert isinstance(status, Status)
    assert status.code is Code.UNSCHEDULABLE
    assert status.message == (
        "0/6 nodes are available: 4 Insufficient nvidia.com/gpu, "
        "1 node(s) had untolerated taint {dedicated: x}, 1 node(s) were unschedulable."
    )


def test_selector_mismatch_everywhere_is_unresolvable() -> None:
    status = _cycle([make_node("a"), make_node("b")]).feasible(
        make_pod("p", node_selector={"zone": "x"})
    )
    assert isinstance(status, Status)
    assert status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert "2 node(s) didn't match Pod's node affinity/selector" in status.message


def test_unknown_extended_resource_is_refused_with_its_name() -> None:
    status = _cycle([make_node("a")]).feasible(make_pod("p", extra={"example.com/fpga": 1}))
    assert isinstance(status, Status)
    assert status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert "Insufficient example.com/fpga" in status.message


def test_evaluate_returns_only_feasible_nodes() -> None:
    cycle = _cycle([make_node("a", gpus=1), make_node("b", gpus=8)])
    table = cycle.evaluate(make_pod("p", gpus=2))
    assert isinstance(table, ScoreTable)
    assert list(table.candidates) == [1]


@pytest.mark.parametrize(
    "policy", ["kube-default", "binpack", "load-aware", "drf", "random", "srtf-oracle"]
)
def test_every_policy_uses_the_hard_filters(policy: str) -> None:
    cycle = _cycle([make_node("a", gpus=1), make_node("b", gpus=8, ready=False)], policy)
    status = cycle.feasible(make_pod("p", gpus=2))
    assert isinstance(status, Status)
