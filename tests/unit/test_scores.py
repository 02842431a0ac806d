import numpy as np

from builders import make_node, make_pod
from hybrid_policy.framework.snapshot import ClusterSnapshot
from hybrid_policy.plugins.scores import (
    BalancedAllocation,
    LeastAllocated,
    MostAllocated,
    TargetLoadPacking,
)
from hybrid_policy.resources import GPU


def _snapshot() -> ClusterSnapshot:
    snap = ClusterSnapshot(
        [make_node("a", cpu=10, memory_gib=100), make_node("b", cpu=10, memory_gib=100)]
    )
    snap.assume(make_pod("running", gpus=0, cpu=6, memory_gib=20), 0)
    return snap


def test_least_allocated_matches_kube_scheduler_arithmetic() -> None:
    snap = _snapshot()
    pod = make_pod("p", gpus=0, cpu=2, memory_gib=10)
    scores = LeastAllocated().score(pod, snap, np.array([0, 1]))
    # node a: cpu (10-8)*100/10 = 20, memory (100-30)*100/100 = 70 -> (20+70)//2 = 45
    # node b: cpu 80, memory 90 -> 85
    assert list(scores) == [45.0, 85.0]


def test_most_allocated_prefers_the_fuller_node() -> None:
    snap = _snapshot()
    pod = make_pod("p", gpus=0, cpu=2, memory_gib=10)
    scores = MostAllocated().score(pod, snap, np.array([0, 1]))
    assert list(scores) == [55.0, 15.0]


def test_balanced_allocation_is_one_minus_std_of_fractions() -> None:
    snap = _snapshot()
    pod = make_pod("p", gpus=0, cpu=2, memory_gib=10)
    scores = BalancedAllocation().score(pod, snap, np.array([0, 1]))
    # node a fractions 0.8, 0.3 -> std 0.25 -> 75; node b 0.2, 0.1 -> std 0.05 -> 95
    assert list(scores) == [75.0, 95.0]


def test_pods_without_requests_count_as_non_zero_defaults() -> None:
    snap = ClusterSnapshot([make_node("a", cpu=1, memory_gib=1)])
    empty = make_pod("p", gpus=0, cpu=0, memory_gib=0)
    score = LeastAllocated().score(empty, snap, np.array([0]))
    # 100m of 1000m -> 90; 200Mi of 1Gi -> floor(80.46) = 80; mean 85
    assert list(score) == [85.0]


def test_target_load_packing_curve_and_missing_metrics() -> None:
    snap = ClusterSnapshot([make_node(n, gpus=10) for n in "abcd"])
    gpu = snap.index[GPU]
    snap.utilisation[0, gpu] = 0.0  # predicted 10 %: rising side
    snap.utilisation[1, gpu] = 0.7  # predicted 80 %: exactly the target
    snap.utilisation[2, gpu] = 0.85  # predicted 95 %: falling side
    # node d has no metrics (NaN): minimum score, never an error
    tlp = TargetLoadPacking(targets_percent={GPU: 80.0})
    scores = tlp.score(make_pod("p", gpus=1), snap, np.array([0, 1, 2, 3]))
    assert np.allclose(scores, [(20 * 10 / 80) + 80, 100.0, 80 * 5 / 20, 0.0])
