from builders import k8s_node, k8s_pod
from hybrid_operator.cache import ClusterCache
from hybrid_operator.k8s.convert import Body, pending_pod
from hybrid_policy.domain import PendingPod


def _pending(body: Body) -> PendingPod:
    pod, problems = pending_pod(body)
    assert pod is not None, problems
    return pod


def _gpus_on(cache: ClusterCache, node: str) -> float:
    snap = cache.snapshot()
    return float(snap.requested[snap.node_index[node], snap.index["nvidia.com/gpu"]])


def test_pods_of_every_scheduler_are_counted_and_terminal_pods_are_not() -> None:
    cache = ClusterCache()
    cache.upsert_node(k8s_node("n1"))
    cache.upsert_pod(k8s_pod("by-default", 2, node="n1", phase="Running"))
    cache.upsert_pod(k8s_pod("finished", 4, node="n1", phase="Succeeded"))
    cache.upsert_pod(k8s_pod("pending", 4))
    assert _gpus_on(cache, "n1") == 2.0


def test_an_assumed_pod_is_counted_once_when_its_binding_shows_up() -> None:
    cache = ClusterCache()
    cache.upsert_node(k8s_node("n1"))
    body = k8s_pod("ours", 3, scheduler="hybrid-scheduler")
    pod = _pending(body)
    cache.assume(pod, "n1")
    assert cache.is_placed(pod.uid)
    assert _gpus_on(cache, "n1") == 3.0
    cache.upsert_pod(k8s_pod("ours", 3, node="n1", phase="Pending", scheduler="hybrid-scheduler"))
    assert _gpus_on(cache, "n1") == 3.0
    assert pod.uid not in cache.assumed
    cache.upsert_pod(k8s_pod("ours", 3, node="n1", phase="Succeeded", scheduler="hybrid-scheduler"))
    assert _gpus_on(cache, "n1") == 0.0
    assert not cache.is_placed(pod.uid)


def test_forget_and_node_deletion_release_assumptions() -> None:
    cache = ClusterCache()
    cache.upsert_node(k8s_node("n1"))
    cache.upsert_node(k8s_node("n2"))
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
    cache.upsert_pod(k8s_pod("early", 2, node="late-node", phase="Running"))
    assert len(cache.snapshot()) == 0
    cache.upsert_node(k8s_node("late-node"))
    assert _gpus_on(cache, "late-node") == 2.0


def test_namespace_weights_reach_the_snapshot_and_bad_ones_are_reported() -> None:
    cache = ClusterCache(default_weight=1.0)
    assert (
        cache.upsert_namespace(
            {"metadata": {"name": "team-c", "annotations": {"hybrid-scheduler.io/weight": "2"}}}
        )
        == []
    )
    problems = cache.upsert_namespace(
        {"metadata": {"name": "team-x", "annotations": {"hybrid-scheduler.io/weight": "-1"}}}
    )
    assert len(problems) == 1
    snap = cache.snapshot()
    assert snap.weight_of("team-c") == 2.0
    assert snap.weight_of("team-x") == 1.0


def test_a_bound_pod_whose_requests_cannot_be_counted_holds_nothing() -> None:
    cache = ClusterCache()
    cache.upsert_node(k8s_node("n1"))
    cache.upsert_pod(k8s_pod("good", 2, node="n1", phase="Running"))
    crafted = k8s_pod("crafted", 2, node="n1", phase="Running")
    cache.upsert_pod(crafted)
    assert _gpus_on(cache, "n1") == 4.0
    crafted["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "1e400"
    cache.upsert_pod(crafted)  # the kubelet refuses such a pod: it is no longer counted
    assert _gpus_on(cache, "n1") == 2.0
    assert not cache.is_placed("uid-crafted")
