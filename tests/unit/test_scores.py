import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from builders import make_node, make_pod
from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.snapshot import ClusterSnapshot, FloatArray, IntArray
from hybrid_policy.plugins.scores import (
    NON_ZERO_CPU_MILLICORES,
    NON_ZERO_MEMORY_BYTES,
    BalancedAllocation,
    LeastAllocated,
    MostAllocated,
    TargetLoadPacking,
    binpack_scorer,
)
from hybrid_policy.resources import CPU, GPU, MEMORY


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


def _numpy_weighted(
    pod: PendingPod, snap: ClusterSnapshot, rows: IntArray, weights: dict[str, float], free: bool
) -> FloatArray:
    """The resource-allocation score as numpy's array expression works it out."""
    cols = [snap.index[r] for r in weights if r in snap.index]
    w = np.array([weights[snap.resources[c]] for c in cols])
    need = snap.request_vector(pod)[cols].copy()
    for k, c in enumerate(cols):
        if need[k] == 0 and snap.resources[c] == CPU:
            need[k] = NON_ZERO_CPU_MILLICORES
        elif need[k] == 0 and snap.resources[c] == MEMORY:
            need[k] = NON_ZERO_MEMORY_BYTES
    requested = snap.requested[rows][:, cols] + need
    alloc = snap.allocatable[rows][:, cols]
    counted = alloc - requested if free else requested
    with np.errstate(divide="ignore", invalid="ignore"):
        per = np.where((alloc > 0) & (requested <= alloc), np.floor(counted * 100.0 / alloc), 0.0)
    out: FloatArray = np.floor(per @ w / w.sum())
    return out


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_compiled_allocation_scores_equal_the_array_expression(seed: int) -> None:
    rng = np.random.default_rng(seed)
    nodes = [
        make_node(
            f"n{i}",
            gpus=int(rng.choice([0, 4, 8])),
            cpu=int(rng.choice([1, 7, 64])),
            memory_gib=int(rng.choice([1, 96, 512])),
        )
        for i in range(12)
    ]
    snap = ClusterSnapshot(nodes)
    for j in range(int(rng.integers(0, 30))):  # some nodes overfull: those score 0
        snap.assume(
            make_pod(
                f"r{j}",
                gpus=int(rng.integers(0, 3)),
                cpu=int(rng.choice([0, 1, 3, 9])),
                memory_gib=int(rng.choice([0, 1, 20, 200])),
            ),
            int(rng.integers(12)),
        )
    pod = make_pod(
        "p",
        gpus=int(rng.integers(0, 9)),
        cpu=int(rng.choice([0, 1, 4, 33])),
        memory_gib=int(rng.choice([0, 2, 32, 300])),
    )
    rows = np.sort(rng.choice(12, size=int(rng.integers(0, 13)), replace=False))
    for scorer, free in (
        (LeastAllocated(), True),
        (MostAllocated(), False),
        (binpack_scorer(), False),
    ):
        got = scorer.score(pod, snap, rows)
        assert np.array_equal(got, _numpy_weighted(pod, snap, rows, dict(scorer.weights), free))
