"""One definition of a namespace's share, read the same by decisions, metrics and DRF."""

import numpy as np
import pytest

from builders import make_node, make_pod
from hybrid_operator.observability import OperatorMetrics
from hybrid_policy.domain import Namespace
from hybrid_policy.framework.cycle import BatchCycle, ScoreTable
from hybrid_policy.framework.shares import (
    dominant_share_of,
    namespace_share,
    namespace_shares,
    weighted_dominant_share,
)
from hybrid_policy.framework.snapshot import ClusterSnapshot
from hybrid_policy.game.problem import PodClass, build_problem
from hybrid_policy.policies import build_policy


def _snapshot() -> ClusterSnapshot:
    nodes = [make_node("a", gpus=8), make_node("b", gpus=8), make_node("off", unschedulable=True)]
    snap = ClusterSnapshot(nodes, [Namespace("team-a"), Namespace("team-b", weight=2.0)])
    snap.assume(make_pod("a1", gpus=4, namespace="team-a"), 0)
    snap.assume(make_pod("b1", gpus=2, cpu=48, namespace="team-b"), 1)
    return snap


def test_namespace_share_is_the_weighted_gpu_share_of_schedulable_nodes() -> None:
    snap = _snapshot()
    assert namespace_share(snap, "team-a") == 4 / 16
    assert namespace_share(snap, "team-b") == 2 / 16 / 2.0
    assert namespace_share(snap, "team-c") == 0.0
    assert namespace_shares(snap) == {"team-a": 0.25, "team-b": 0.0625}


def test_no_schedulable_gpus_gives_no_shares() -> None:
    snap = ClusterSnapshot([make_node("a", gpus=8, ready=False)])
    snap.assume(make_pod("a1", gpus=4), 0)
    assert namespace_share(snap, "team-a") == 0.0
    assert namespace_shares(snap) == {}


def test_decisions_and_the_operator_gauge_report_the_same_share() -> None:
    snap = _snapshot()
    policy = build_policy("kube-default", np.random.default_rng(0))
    (decision,) = policy.profile.schedule_batch(
        [make_pod("b2", gpus=2, namespace="team-b")], snap, np.random.default_rng(0)
    )
    metrics = OperatorMetrics()
    metrics.observe_shares(snap)
    gauge = metrics.registry.get_sample_value(
        "hybrid_scheduler_namespace_share", {"namespace": "team-b"}
    )
    assert decision.namespace_share == gauge == namespace_share(snap, "team-b") == 4 / 16 / 2.0


def test_drf_and_the_game_count_in_dominant_shares() -> None:
    snap = _snapshot()
    # team-b holds 2 of 16 GPUs but 48 of 128 schedulable cores: CPU dominates.
    assert dominant_share_of(snap, snap.namespace_allocated["team-b"]) == 48 / 128
    assert weighted_dominant_share(snap, "team-b") == 48 / 128 / 2.0
    assert weighted_dominant_share(snap, "team-c") == 0.0
    profile = build_policy("kube-default", np.random.default_rng(0)).profile
    cycle = BatchCycle(profile, snap, np.random.default_rng(0))
    classes = []
    for pod in (make_pod("a2", namespace="team-a"), make_pod("b2", namespace="team-b")):
        table = cycle.evaluate(pod)
        assert isinstance(table, ScoreTable)
        classes.append(PodClass(pod.namespace, (pod,), table))
    problem = build_problem(classes, snap, 100.0)
    assert problem.held_share.tolist() == pytest.approx([4 / 16, 48 / 128])
