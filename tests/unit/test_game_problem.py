"""Which candidate nodes a class brings to the game: enough to hold its pods, within bounds."""

import numpy as np
import pytest

from builders import make_node, make_pod
from game_builders import contention
from hybrid_policy.game.problem import DEFAULT_TOP_K, MIN_CANDIDATES, candidates_needed


@pytest.mark.parametrize(
    ("fit", "demand", "expected"),
    [
        ([1, 1, 1, 1, 1, 1], 2, 4),  # few pods: the minimum
        ([1, 1, 1, 1, 1, 1], 5, 5),  # one more node per pod that does not fit yet
        ([2, 2, 2, 2, 2, 2], 9, 5),  # 2+2+2+2 = 8 < 9
        ([8, 8, 8], 30, 3),  # all there is
        ([], 3, 0),
    ],
)
def test_candidates_needed(fit: list[int], demand: int, expected: int) -> None:
    assert candidates_needed(np.array(fit, dtype=float), demand) == expected


def slots_per_class(pods_a: int, pods_b: int) -> dict[str, int]:
    nodes = [make_node(f"n{i}", gpus=2) for i in range(12)]
    batch = [make_pod(f"a{i}", gpus=1, namespace="a", created_at_s=i) for i in range(pods_a)]
    batch += [make_pod(f"b{i}", gpus=2, namespace="b", created_at_s=i) for i in range(pods_b)]
    problem, _ = contention(nodes, batch, {"a": 1.0, "b": 1.0})
    return {
        pod_class.namespace: int((problem.slot_class == c).sum())
        for c, pod_class in enumerate(problem.classes)
    }


def test_a_small_class_gets_the_minimum_and_a_large_one_enough_nodes_up_to_the_cap() -> None:
    # 2-GPU nodes: a holds two 1-GPU pods per node, b one 2-GPU pod per node.
    assert slots_per_class(3, 2) == {"a": MIN_CANDIDATES, "b": MIN_CANDIDATES}
    assert slots_per_class(12, 6) == {"a": 6, "b": 6}
    assert slots_per_class(40, 40) == {"a": DEFAULT_TOP_K, "b": DEFAULT_TOP_K}
