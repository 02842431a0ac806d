"""Builders for contention problems: a real cycle, the game profile's scorers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hybrid_policy.domain import Namespace, NodeInfo, PendingPod
from hybrid_policy.framework.cycle import BatchCycle, Decision
from hybrid_policy.framework.snapshot import ClusterSnapshot
from hybrid_policy.game import ContentionProblem, GameArbitrator, GameSettings, build_problem
from hybrid_policy.policies import build_policy


def game_cycle(
    nodes: Sequence[NodeInfo],
    weights: dict[str, float],
    settings: GameSettings | None = None,
) -> tuple[BatchCycle, GameArbitrator]:
    policy = build_policy("game", np.random.default_rng(0))
    # No wall-clock budget unless a test asks for one: properties must not depend on how
    # busy the machine is (a cold compile can take longer than the operator's budget).
    arbitrator = GameArbitrator(settings or GameSettings(time_budget_s=None))
    policy.profile.arbitrator = arbitrator
    snapshot = ClusterSnapshot(nodes, [Namespace(n, w) for n, w in weights.items()])
    return BatchCycle(policy.profile, snapshot, np.random.default_rng(0), explain=False), arbitrator


def contention(
    nodes: Sequence[NodeInfo],
    pods: Sequence[PendingPod],
    weights: dict[str, float],
    settings: GameSettings | None = None,
) -> tuple[ContentionProblem, GameArbitrator]:
    cycle, arbitrator = game_cycle(nodes, weights, settings)
    classes = arbitrator.pod_classes(pods, cycle)
    return build_problem(classes, cycle.snapshot, 100.0), arbitrator


def arbitrate(
    nodes: Sequence[NodeInfo],
    pods: Sequence[PendingPod],
    weights: dict[str, float],
    settings: GameSettings | None = None,
) -> tuple[list[Decision], BatchCycle, GameArbitrator]:
    cycle, arbitrator = game_cycle(nodes, weights, settings)
    arbitrator.arbitrate(pods, cycle)
    return cycle.decisions, cycle, arbitrator


def placed_pods(decisions: Sequence[Decision], namespace: str) -> int:
    return sum(1 for d in decisions if d.placed and d.pod.namespace == namespace)
