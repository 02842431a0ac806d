"""Scoring alike pods together gives each exactly the scores it gets alone: the feature
rows shared by pods of one feasibility key, the Q-network's call-free inference, and a
pass's evaluation of a class's heads (the game's pod classes)."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from builders import make_node, make_pod
from hybrid_policy.domain import Namespace, PendingPod
from hybrid_policy.dqn.checkpoint import default_checkpoint_path, load_checkpoint
from hybrid_policy.features import alike_features, pair_features
from hybrid_policy.framework.cycle import BatchCycle, ScoreTable
from hybrid_policy.framework.snapshot import ClusterSnapshot
from hybrid_policy.policies import build_policy

TASKS = st.sampled_from([None, "nlp", "image-classification", "speech"])
RUNTIMES = st.one_of(st.none(), st.floats(min_value=1.0, max_value=1e6))


def _snapshot(seed: int) -> ClusterSnapshot:
    rng = np.random.default_rng(seed)
    nodes = [make_node(f"n{i}", gpus=8, performance=float(rng.uniform(50, 100))) for i in range(12)]
    snap = ClusterSnapshot(nodes, [Namespace("team-a"), Namespace("team-b", 2.0)])
    for i in range(10):
        row = int(rng.integers(12))
        pod = make_pod(f"r{i}", gpus=int(rng.integers(1, 3)))
        if (snap.free[row] >= snap.request_vector(pod)).all():
            snap.assume(pod, row)
    snap.queue.pending_pods = 7
    return snap


def _alike(task: str | None, runtime: float | None, name: str, ns: str) -> PendingPod:
    pod = make_pod(name, gpus=2, namespace=ns)
    return dataclasses.replace(pod, task_type=task, expected_runtime_s=runtime)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 1000), own=st.lists(st.tuples(TASKS, RUNTIMES), min_size=2, max_size=5))
def test_alike_features_are_each_pods_own(
    seed: int, own: list[tuple[str | None, float | None]]
) -> None:
    snap = _snapshot(seed)
    pods = [_alike(t, r, f"p{i}", "team-a") for i, (t, r) in enumerate(own)]
    rows = np.flatnonzero((snap.free >= snap.request_vector(pods[0])).all(axis=1))
    first = pair_features(pods[0], snap, rows)
    for pod in pods[1:]:
        assert np.array_equal(alike_features(first, pod), pair_features(pod, snap, rows))


def test_inference_gives_the_forward_pass_values_bit_for_bit() -> None:
    network = load_checkpoint(default_checkpoint_path()).network.eval()
    x = torch.from_numpy(np.random.default_rng(0).random((90, network.feature_count), np.float32))
    with torch.inference_mode():
        assert torch.equal(network.infer(x), network(x))


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 1000), own=st.lists(st.tuples(TASKS, RUNTIMES), min_size=2, max_size=4))
def test_a_class_heads_evaluated_together_get_their_own_tables(
    seed: int, own: list[tuple[str | None, float | None]]
) -> None:
    profile = build_policy("hybrid", np.random.default_rng(0)).profile
    snap = _snapshot(seed)
    pods = [_alike(t, r, f"p{i}", "team-a" if i % 2 else "team-b") for i, (t, r) in enumerate(own)]
    together = BatchCycle(profile, snap, np.random.default_rng(0)).evaluate_alike(pods)
    for pod, table in zip(pods, together, strict=True):
        alone = BatchCycle(profile, snap, np.random.default_rng(0)).evaluate(pod)
        assert isinstance(table, ScoreTable) and isinstance(alone, ScoreTable)
        assert np.array_equal(table.candidates, alone.candidates)
        assert np.array_equal(table.scores, alone.scores)
