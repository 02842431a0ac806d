"""Trimaran's rule, once for both drivers: pods placed after a sample count by request."""

import numpy as np
import pytest

from builders import k8s_node, k8s_pod, make_node, make_pod, usable
from hybrid_operator.cache import ClusterCache, Placement
from hybrid_operator.k8s.convert import node_info
from hybrid_operator.k8s.views import pod_view
from hybrid_operator.utilisation import UtilisationCollector, apply_utilisation
from hybrid_policy.framework.recent import RecentPlacements
from hybrid_policy.framework.snapshot import ClusterSnapshot
from hybrid_policy.resources import GPU
from hybrid_policy.scenario.model import MetricsSpec
from hybrid_policy.sim.signal import UtilisationSignal


def _request(gpus: float) -> np.ndarray:
    return np.array([0.0, 0.0, gpus])


def test_only_pods_placed_after_the_sample_count_on_their_own_node() -> None:
    recent = RecentPlacements()
    recent.add(0, 10.0, _request(1))
    recent.add(1, 12.0, _request(2))
    recent.add(0, 15.0, _request(4))
    assert [r[2] for r in recent.requests_after(0, 9.0)] == [1.0, 4.0]
    assert [r[2] for r in recent.requests_after(0, 10.0)] == [4.0]  # measured with it
    assert [r[2] for r in recent.requests_after(1, 9.0)] == [2.0]
    assert recent.requests_after(2, 0.0) == []
    recent.forget_until(12.0)
    assert len(recent) == 1
    assert [r[2] for r in recent.requests_after(0, 0.0)] == [4.0]
    assert recent.requests_after(1, 0.0) == []


class OneSample:
    """Prometheus answering one GPU sample per node, each measured at its own time."""

    def __init__(self, samples: dict[str, tuple[float, float]]) -> None:
        self.samples = samples

    def custom_query(self, query: str, params: object = None) -> object:
        if query != "gpu":
            return []
        return [
            {"metric": {"node": node}, "value": [at, str(value)]}
            for node, (value, at) in self.samples.items()
        ]


def _operator(
    samples: dict[str, tuple[float, float]], pods: list[tuple[str, str, int, float]], now: float
) -> tuple[ClusterSnapshot, ClusterCache, UtilisationCollector]:
    clock = [0.0]
    cache = ClusterCache(clock=lambda: clock[0])
    for node in samples:
        cache.upsert_node(usable(node_info(k8s_node(node))))
    for name, node, gpus, placed_at in pods:
        clock[0] = placed_at
        cache.upsert_pod(usable(pod_view(k8s_pod(name, gpus, node=node, phase="Running"))))
    collector = UtilisationCollector(OneSample(samples), {"gpu": "gpu"}, clock=lambda: now)
    collector.refresh()
    return cache.snapshot(now), cache, collector


def test_the_operator_counts_each_node_from_its_own_sample_time() -> None:
    # n1 was measured at 990, n2 at 998; both get a pod at 995, n2 another at 999.
    samples = {"n1": (0.5, 990.0), "n2": (0.5, 998.0)}
    pods = [("p1", "n1", 2, 995.0), ("p2", "n2", 2, 995.0), ("p3", "n2", 4, 999.0)]
    snapshot, cache, collector = _operator(samples, pods, 1000.0)
    apply_utilisation(snapshot, collector, cache, 1000.0)
    gpu = snapshot.index[GPU]
    rows = snapshot.node_index
    assert snapshot.utilisation[rows["n1"], gpu] == 0.5 + 2 / 8
    assert snapshot.utilisation[rows["n2"], gpu] == 0.5 + 4 / 8


def test_the_operator_reads_the_cache_once_per_pass_not_once_per_node(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    samples = {f"n{i}": (0.1, 990.0 + i) for i in range(5)}
    pods = [(f"p{i}", f"n{i}", 1, 995.0) for i in range(5)]
    snapshot, cache, collector = _operator(samples, pods, 1000.0)
    calls: list[float] = []
    scan = cache.placed_since

    def counted_scan(since_s: float) -> list[Placement]:
        calls.append(since_s)
        return scan(since_s)

    monkeypatch.setattr(cache, "placed_since", counted_scan)
    apply_utilisation(snapshot, collector, cache, 1000.0)
    assert calls == [990.0]  # from the oldest sample on


def test_simulator_and_operator_count_a_new_pod_alike() -> None:
    """A pod placed after the sample the pass sees: both drivers add its request."""
    pod = make_pod("p", gpus=4)
    snap = ClusterSnapshot([make_node("n1", gpus=8)])
    spec = MetricsSpec(scrape_interval_s=15, delay_s=30, noise=0.0)
    signal = UtilisationSignal(snap, spec, np.random.default_rng(0))
    signal.change(100.0, 0, snap.request_vector(pod) * 0.5, snap.request_vector(pod))
    signal.refresh(snap, 110.0)  # sees the scrape of t=75, before the pod
    simulated = snap.utilisation[0].copy()

    snapshot, cache, collector = _operator({"n1": (0.0, 75.0)}, [("p", "n1", 4, 100.0)], now=110.0)
    apply_utilisation(snapshot, collector, cache, 110.0)
    gpu = snapshot.index[GPU]
    assert simulated[snap.index[GPU]] == snapshot.utilisation[0, gpu] == 0.5
