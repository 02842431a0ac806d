import numpy as np
import pytest

from builders import make_node, make_pod
from hybrid_policy.features import (
    FEATURE_COUNT,
    FEATURE_GROUPS,
    FEATURE_NAMES,
    FEATURE_SCHEMA_VERSION,
    group_columns,
    pair_features,
)
from hybrid_policy.framework.snapshot import ClusterSnapshot


def _col(name: str) -> int:
    return FEATURE_NAMES.index(name)


def _snapshot() -> ClusterSnapshot:
    nodes = [
        make_node("fast", gpus=8, performance=100.0),
        make_node("slow", gpus=8, performance=50.0),
        make_node("small", gpus=4, performance=80.0),
    ]
    return ClusterSnapshot(nodes)


def test_schema_is_consistent() -> None:
    assert FEATURE_SCHEMA_VERSION >= 1
    assert len(set(FEATURE_NAMES)) == FEATURE_COUNT
    assert sorted(c for g in FEATURE_GROUPS for c in group_columns(g)) == list(range(FEATURE_COUNT))


def test_one_row_per_candidate_and_finite() -> None:
    snap = _snapshot()
    feats = pair_features(make_pod("p", gpus=2), snap, np.array([0, 2]))
    assert feats.shape == (2, FEATURE_COUNT)
    assert feats.dtype == np.float32
    assert np.isfinite(feats).all()


def test_requests_relative_to_node_and_free_capacity() -> None:
    snap = _snapshot()
    snap.assume(make_pod("running", gpus=4), 0)
    feats = pair_features(make_pod("p", gpus=2), snap, np.array([0, 1, 2]))
    np.testing.assert_allclose(feats[:, _col("req_gpu_over_node")], [0.25, 0.25, 0.5])
    np.testing.assert_allclose(feats[:, _col("free_gpu")], [0.5, 1.0, 1.0])
    np.testing.assert_allclose(feats[:, _col("free_gpu_after")], [0.25, 0.75, 0.5])
    np.testing.assert_allclose(feats[:, _col("node_gpus_all_free")], [0, 1, 1])
    np.testing.assert_allclose(feats[:, _col("leaves_partial_gpus")], [1, 1, 1])
    np.testing.assert_allclose(feats[:, _col("pods_running_frac")], [1 / 110, 0, 0], rtol=1e-6)


def test_fragmentation_when_a_pod_fills_a_node() -> None:
    snap = _snapshot()
    feats = pair_features(make_pod("p", gpus=4), snap, np.array([0, 2]))
    np.testing.assert_allclose(feats[:, _col("fills_node_gpus")], [0, 1])
    np.testing.assert_allclose(feats[:, _col("leaves_partial_gpus")], [1, 0])


def test_performance_features() -> None:
    snap = _snapshot()
    feats = pair_features(make_pod("p"), snap, np.array([1, 2]))
    np.testing.assert_allclose(feats[:, _col("performance")], [0.5, 0.8])
    np.testing.assert_allclose(feats[:, _col("performance_vs_best")], [0.625, 1.0])
    np.testing.assert_allclose(feats[:, _col("runtime_factor")], [1.0, 0.625])


def test_missing_metrics_are_flagged_not_nan() -> None:
    snap = _snapshot()
    snap.set_utilisation(0, {"nvidia.com/gpu": 0.5, "cpu": 0.2, "memory": 0.1}, age_s=150.0)
    feats = pair_features(make_pod("p"), snap, np.array([0, 1]))
    np.testing.assert_allclose(feats[:, _col("util_gpu")], [0.5, 0.0])
    np.testing.assert_allclose(feats[:, _col("metrics_missing")], [0, 1])
    np.testing.assert_allclose(feats[:, _col("metrics_staleness")], [0.5, 1.0])


def test_task_type_and_runtime_hints() -> None:
    from dataclasses import replace

    snap = _snapshot()
    pod = replace(make_pod("p"), task_type="nlp", expected_runtime_s=600.0)
    feats = pair_features(pod, snap, np.array([0]))
    assert feats[0, _col("task_nlp")] == 1.0
    assert feats[0, _col("task_other")] == 0.0
    assert feats[0, _col("runtime_known")] == 1.0
    assert feats[0, _col("log_runtime_min")] == pytest.approx(np.log1p(10.0) / 5.0)
    other = pair_features(make_pod("q"), snap, np.array([0]))
    assert other[0, _col("task_other")] == 1.0
    assert other[0, _col("runtime_known")] == 0.0


def test_global_context_repeats_on_every_row() -> None:
    snap = _snapshot()
    snap.assume(make_pod("running", gpus=4), 0)
    snap.queue.pending_pods = 3
    snap.queue.pending_demand = snap.request_vector(make_pod("q", gpus=10))
    feats = pair_features(make_pod("p"), snap, np.array([0, 1, 2]))
    cols = group_columns("global")
    assert (feats[:, cols] == feats[0, cols]).all()
    assert feats[0, _col("cluster_gpu_alloc")] == pytest.approx(4 / 20)
    assert feats[0, _col("queue_gpu_demand")] == pytest.approx(10 / 20)
    assert feats[0, _col("whole_free_gpu_nodes")] == pytest.approx(2 / 3)
    assert feats[0, _col("feasible_node_frac")] == pytest.approx(1.0)


def test_no_candidates_gives_an_empty_block() -> None:
    feats = pair_features(make_pod("p"), _snapshot(), np.array([], dtype=np.int64))
    assert feats.shape == (0, FEATURE_COUNT)
