from typing import Any

from builders import k8s_node, k8s_pod
from hybrid_operator.cache import ClusterCache
from hybrid_operator.k8s.convert import Body, namespace, node_info, pending_pod
from hybrid_operator.k8s.views import PodView, pod_view
from hybrid_policy.domain import NodeInfo, PendingPod


def _node(name: str) -> NodeInfo:
    node, problems = node_info(k8s_node(name))
    assert node is not None, problems
    return node


def _view(body: Body) -> PodView:
    view, problems = pod_view(body)
    assert view is not None, problems
    return view


def _pod(*args: Any, **kwargs: Any) -> PodView:
    return _view(k8s_pod(*args, **kwargs))


def _pending(body: Body) -> PendingPod:
    pod, problems = pending_pod(body)
    assert pod is not None, problems
    return pod


def _gpus_on(cache: ClusterCache, node: str) -> float:
    snap = cache.snapshot()
    return float(snap.requested[snap.node_index[node], snap.index["nvidia.com/gpu"]])


def test_pods_of_every_scheduler_are_counted_and_terminal_pods_are_not() -> None:
    cache = ClusterCache()
    cache.upsert_node(_node("n1"))
    cache.upsert_pod(_pod("by-default", 2, node="n1", phase="Running"))
    cache.upsert_pod(_pod("finished", 4, node="n1", phase="Succeeded"))
    cache.upsert_pod(_pod("pending", 4))
    assert _gpus_on(cache, "n1") == 2.0


def test_an_assumed_pod_is_counted_once_when_its_binding_shows_up() -> None:
    cache = ClusterCache()
    cache.upsert_node(_node("n1"))
    body = k8s_pod("ours", 3, scheduler="hybrid-scheduler")
    pod = _pending(body)
    cache.assume(pod, "n1")
    assert cache.is_placed(pod.uid)
    assert _gpus_on(cache, "n1") == 3.0
    cache.upsert_pod(_pod("ours", 3, node="n1", phase="Pending", scheduler="hybrid-scheduler"))
    assert _gpus_on(cache, "n1") == 3.0
    assert pod.uid not in cache.assumed
    cache.upsert_pod(_pod("ours", 3, node="n1", phase="Succeeded", scheduler="hybrid-scheduler"))
    assert _gpus_on(cache, "n1") == 0.0
    assert not cache.is_placed(pod.uid)


def test_forget_and_node_deletion_release_assumptions() -> None:
    cache = ClusterCache()
    cache.upsert_node(_node("n1"))
    cache.upsert_node(_node("n2"))
    a = _pending(k8s_pod("a", 1))
    b = _pending(k8s_pod("b", 1))
    cache.assume(a, "n1")
    cache.assume(b, "n2")
    cache.forget(a.uid)
    cache.forget(a.uid)  # idempotent
    assert _gpus_on(cache, "n1") == 0.0
    assert [p.uid for p in cache.delete_node("n2")] == [b.uid]
    assert "n2" not in cache.snapshot().node_index


def test_pods_on_unknown_nodes_wait_for_the_node() -> None:
    cache = ClusterCache()
    cache.upsert_pod(_pod("early", 2, node="late-node", phase="Running"))
    assert len(cache.snapshot()) == 0
    cache.upsert_node(_node("late-node"))
    assert _gpus_on(cache, "late-node") == 2.0


def test_namespace_weights_reach_the_snapshot() -> None:
    cache = ClusterCache(default_weight=1.0)
    meta = {"name": "team-c", "annotations": {"hybrid-scheduler.io/weight": "2"}}
    good, _ = namespace({"metadata": meta})
    bad = {"name": "team-x", "annotations": {"hybrid-scheduler.io/weight": "-1"}}
    ns, problems = namespace({"metadata": bad}, cache.default_weight)
    assert good is not None and ns is not None
    cache.upsert_namespace(good)
    cache.upsert_namespace(ns)
    assert len(problems) == 1
    snap = cache.snapshot()
    assert snap.weight_of("team-c") == 2.0
    assert snap.weight_of("team-x") == 1.0


def test_a_listing_removes_what_was_deleted_during_a_watch_gap() -> None:
    ticks = [0.0]
    cache = ClusterCache(ticks=lambda: ticks[0])
    cache.upsert_node(_node("n1"))
    cache.upsert_node(_node("gone-node"))
    kept = _pod("kept", 1, node="n1", phase="Running")
    gone = _pod("gone", 2, node="n1", phase="Running")
    cache.upsert_pod(kept)
    cache.upsert_pod(gone)
    assumed = _pending(k8s_pod("assumed", 1))
    cache.assume(assumed, "gone-node")
    ticks[0] = 10.0  # the listing begins
    late = _pod("late", 1, node="n1", phase="Running")
    ticks[0] = 11.0
    cache.upsert_pod(late)  # its event came after the listing began: kept though not listed
    result = cache.reconcile({kept.uid}, {"n1"}, listed_at=10.0)
    assert result.pods == [gone.uid]
    assert result.nodes == ["gone-node"]
    assert [p.uid for p in result.lost] == [assumed.uid]
    assert set(cache.bound) == {kept.uid, late.uid}
    assert _gpus_on(cache, "n1") == 2.0
    assert "gone-node" not in cache.snapshot().node_index
