"""The scheduling loop under faults: nothing stranded, nothing bound where it must not be."""

import asyncio
import inspect
from collections.abc import Callable, Mapping
from typing import cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from urllib3.exceptions import MaxRetryError

from builders import k8s_node, k8s_pod
from crafted_objects import Json, crafted_namespaces, crafted_nodes, crafted_pods
from electors import SwitchedElector
from fake_api import FakeApi, Gate
from hybrid_operator.binding_cycle import BindTicket
from hybrid_operator.handlers import build_registry
from hybrid_operator.k8s.api import BindResult
from hybrid_operator.k8s.calls import Listing
from hybrid_operator.k8s.views import ObjectKind
from hybrid_operator.scheduler import Scheduler
from hybrid_operator.settings import OperatorSettings
from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.cycle import Decision


def _scheduler(api: FakeApi, clock: list[float]) -> Scheduler:
    settings = OperatorSettings(initial_backoff_s=1.0, max_backoff_s=4.0, leader_election=False)
    scheduler = Scheduler(settings, api, clock=lambda: clock[0])
    scheduler.on_node(None, k8s_node("n1"))
    return scheduler


def _pending_gauge(scheduler: Scheduler) -> float:
    return float(scheduler.metrics.pending._value.get())


class BrokenApi(FakeApi):
    """The API server is gone: every binding raises what urllib3 raises then."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True

    def bind(
        self,
        pod: PendingPod,
        node: str,
        annotations: Mapping[str, str] | None = None,
        still_wanted: Callable[[], bool] | None = None,
    ) -> BindResult:
        if self.down:
            raise MaxRetryError(None, "/binding", "connection refused")  # type: ignore[arg-type]
        return super().bind(pod, node, annotations, still_wanted)


def test_a_binding_that_raises_anything_keeps_the_pods_room_and_is_sent_again() -> None:
    api, clock = BrokenApi(), [1000.0]
    scheduler = _scheduler(api, clock)
    scheduler.on_pod(None, k8s_pod("p", gpus=8))
    asyncio.run(scheduler.schedule_once())
    assert scheduler.queue.in_flight_count == 0
    assert scheduler.queue.pending() == []  # not decided again: its binding is sent again
    assert scheduler.cache.assumed_on("uid-p") == "n1"  # it may have been bound: room kept
    assert _pending_gauge(scheduler) == 1.0
    api.down = False
    clock[0] += 5.0  # past the back-off
    asyncio.run(scheduler.schedule_once())
    assert api.binds == [("team-a/p", "n1")]
    assert _pending_gauge(scheduler) == 0.0


def test_a_pass_that_raises_returns_its_pods_to_the_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    api, clock = FakeApi(), [1000.0]
    scheduler = _scheduler(api, clock)
    scheduler.on_pod(None, k8s_pod("a"))
    scheduler.on_pod(None, k8s_pod("b"))

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("a bug in a plugin")

    monkeypatch.setattr(scheduler.policy.profile, "schedule_batch", broken)
    with pytest.raises(RuntimeError):
        scheduler.decide()
    assert scheduler.queue.in_flight_count == 0
    assert sorted(p.name for p in scheduler.queue.pending()) == ["a", "b"]
    assert not scheduler.cache.assumed
    assert _pending_gauge(scheduler) == 2.0
    monkeypatch.undo()
    clock[0] += 5.0
    asyncio.run(scheduler.schedule_once())
    assert sorted(key for key, _ in api.binds) == ["team-a/a", "team-a/b"]


class GatedApi(FakeApi):
    """A binding waits (as for the rate limit) until the test lets it go."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = Gate()

    def bind(
        self,
        pod: PendingPod,
        node: str,
        annotations: Mapping[str, str] | None = None,
        still_wanted: Callable[[], bool] | None = None,
    ) -> BindResult:
        self.gate.hold()
        return super().bind(pod, node, annotations, still_wanted)


async def _while_binding(
    scheduler: Scheduler, api: GatedApi, meanwhile: Callable[[], None]
) -> None:
    """Decide, start binding, run ``meanwhile`` on the loop while the call waits."""
    decisions = scheduler.decide()
    settling = asyncio.create_task(scheduler.settle_all(decisions))
    await api.gate.reached()
    meanwhile()
    api.gate.go.set()
    await settling


def test_a_node_deleted_while_its_binding_waits_gets_nothing_and_the_pod_goes_elsewhere() -> None:
    api, clock = GatedApi(), [1000.0]
    scheduler = _scheduler(api, clock)
    scheduler.on_pod(None, k8s_pod("p", gpus=8))
    asyncio.run(
        _while_binding(scheduler, api, lambda: scheduler.on_node("DELETED", k8s_node("n1")))
    )
    assert api.binds == []
    assert api.called_off == [("team-a/p", "n1")]
    assert [p.name for p in scheduler.queue.pending()] == ["p"]
    scheduler.on_node(None, k8s_node("n2"))
    asyncio.run(scheduler.schedule_once())
    assert api.binds == [("team-a/p", "n2")]


def test_a_node_deletion_calls_its_bindings_off_before_the_loop_applies_it() -> None:
    api, clock = GatedApi(), [1000.0]
    scheduler = _scheduler(api, clock)
    scheduler.on_pod(None, k8s_pod("p", gpus=8))

    def deleted() -> None:
        scheduler.feed(ObjectKind.NODE, "DELETED", k8s_node("n1"))  # into the inbox

    asyncio.run(_while_binding(scheduler, api, deleted))
    assert api.binds == []
    assert api.called_off == [("team-a/p", "n1")]
    assert "n1" in scheduler.cache.nodes  # the loop has not applied the deletion yet
    assert scheduler.drain() == 1
    assert "n1" not in scheduler.cache.nodes
    assert [p.name for p in scheduler.queue.pending()] == ["p"]


def test_a_pod_deleted_while_its_binding_waits_is_not_bound_and_not_requeued() -> None:
    api, clock = GatedApi(), [1000.0]
    scheduler = _scheduler(api, clock)
    body = k8s_pod("p")
    scheduler.on_pod(None, body)
    asyncio.run(_while_binding(scheduler, api, lambda: scheduler.on_pod("DELETED", body)))
    assert api.binds == []
    assert "p" not in [p.name for p in scheduler.queue.pending()]
    assert scheduler.queue.in_flight_count == 0
    assert not scheduler.cache.assumed


def test_leadership_lost_while_a_binding_waits_calls_it_off() -> None:
    api, elector = GatedApi(), SwitchedElector()
    settings = OperatorSettings(initial_backoff_s=1.0, max_backoff_s=4.0)
    scheduler = Scheduler(settings, api, clock=lambda: 1000.0, elector=elector)
    scheduler.on_node(None, k8s_node("n1"))
    scheduler.on_pod(None, k8s_pod("p"))
    assert scheduler._leadership()

    asyncio.run(_while_binding(scheduler, api, elector.lose))
    assert api.binds == []
    assert [p.name for p in scheduler.queue.pending()] == ["p"]
    assert not scheduler._leadership()  # the loop's next turn sees it
    # A new term: a placement decided in the old one is never sent, even once leading again.
    elector.win()
    assert scheduler._leadership()
    assert scheduler.leader_term() == 2
    stale = BindTicket(cast(Decision, None), term=1)
    assert not scheduler.binding.still_wanted(stale)
    assert scheduler.binding.still_wanted(BindTicket(cast(Decision, None), term=2))


def test_a_listing_drops_pods_and_nodes_deleted_while_the_watch_was_down() -> None:
    api, clock = FakeApi(), [1000.0]
    scheduler = _scheduler(api, clock)
    scheduler.on_node(None, k8s_node("n2"))
    running = k8s_pod("running", gpus=8, node="n2", phase="Running")
    scheduler.on_pod(None, running)
    scheduler.on_pod(None, k8s_pod("queued", gpus=16))  # fits nowhere: waits in the queue
    asyncio.run(scheduler.schedule_once())
    assert [p.name for p in scheduler.queue.pending()] == ["queued"]
    listed_at = scheduler.cache.ticks()
    # While the watch was down: "queued" and node n2 (with its pod) were deleted.
    scheduler.reconcile(Listing(namespaces=[], nodes=[k8s_node("n1")], pods=[]), listed_at)
    assert scheduler.queue.pending() == []
    assert _pending_gauge(scheduler) == 0.0
    assert set(scheduler.cache.nodes) == {"n1"}
    assert not scheduler.cache.bound
    assert "n2" not in scheduler.cache.snapshot().node_index


def test_a_listing_older_than_an_event_does_not_undo_the_event() -> None:
    api, clock = FakeApi(), [1000.0]
    scheduler = _scheduler(api, clock)
    pending = k8s_pod("p")
    listed_at = scheduler.cache.ticks()
    scheduler.on_pod(None, {**pending, "spec": {**pending["spec"], "nodeName": "n1"}})
    # The listing began before the binding's event and still shows the pod pending.
    scheduler.reconcile(Listing(namespaces=[], nodes=[k8s_node("n1")], pods=[pending]), listed_at)
    assert scheduler.queue.pending() == []
    assert scheduler.cache.is_placed(pending["metadata"]["uid"])


def test_watch_handlers_run_on_the_event_loop_and_only_feed_it() -> None:
    scheduler = _scheduler(FakeApi(), [1000.0])
    handlers = build_registry(scheduler)._watching.get_all_handlers()
    assert len(handlers) == 5  # pods, nodes, namespaces, PodGroups, Jobs
    assert all(inspect.iscoroutinefunction(h.fn) for h in handlers)
    scheduler.feed(ObjectKind.POD, "ADDED", k8s_pod("fed"))
    assert scheduler.queue.pending() == []  # nothing changes until the loop drains
    assert scheduler.drain() == 1
    assert [p.name for p in scheduler.queue.pending()] == ["fed"]


def test_a_bound_pod_whose_requests_cannot_be_counted_holds_nothing() -> None:
    api, clock = FakeApi(), [1000.0]
    scheduler = _scheduler(api, clock)
    good = k8s_pod("good", 2, node="n1", phase="Running")
    crafted = k8s_pod("crafted", 2, node="n1", phase="Running")
    scheduler.on_pod(None, good)
    scheduler.on_pod(None, crafted)
    assert len(scheduler.cache.bound) == 2
    crafted["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "1e400"
    scheduler.on_pod("MODIFIED", crafted)  # the kubelet refuses such a pod: it holds nothing
    assert set(scheduler.cache.bound) == {good["metadata"]["uid"]}
    assert [ref["name"] for ref, _ in scheduler.reports] == ["crafted"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pods=st.lists(crafted_pods, min_size=1, max_size=3),
    node=crafted_nodes,
    ns=crafted_namespaces,
)
def test_crafted_objects_never_stop_scheduling_for_anyone(
    pods: list[Json], node: Json, ns: Json
) -> None:
    api, clock = FakeApi(), [1000.0]
    scheduler = _scheduler(api, clock)
    for i, body in enumerate(pods):
        if isinstance(body, dict):
            meta = body.get("metadata")
            if isinstance(meta, dict) and isinstance(meta.get("uid"), str):
                meta["uid"] = f"{meta['uid']}-{i}"
            scheduler.on_pod(None, body)
    for kind, body in ((ObjectKind.NODE, node), (ObjectKind.NAMESPACE, ns)):
        if isinstance(body, dict):
            scheduler.on_event(kind, None, body)
    scheduler.on_pod(None, k8s_pod("good", gpus=1))
    asyncio.run(scheduler.schedule_once())
    assert scheduler.counters.bad_events == 0
    assert [k for k, _ in api.binds if k == "team-a/good"] == ["team-a/good"]


def test_a_pod_of_ours_that_cannot_be_read_is_told_why() -> None:
    api, clock = FakeApi(), [1000.0]
    scheduler = _scheduler(api, clock)
    crafted = k8s_pod("crafted", 1)
    crafted["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "1e400"
    scheduler.on_pod(None, crafted)
    asyncio.run(scheduler.schedule_once())
    failed = [(n, m) for n, reason, m, _ in api.events if reason == "FailedScheduling"]
    assert len(failed) == 1
    assert failed[0][0] == "crafted"
    assert "spec.containers[0].resources.requests.cpu" in failed[0][1]
    assert api.unschedulable == ["team-a/crafted"]
    assert _pending_gauge(scheduler) == 1.0  # still pending, as the API server says


async def _passes(scheduler: Scheduler, seconds: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run_forever(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await task


def test_passes_wait_while_the_cache_may_have_missed_events() -> None:
    api = FakeApi()
    settings = OperatorSettings(batch_interval_s=0.02, leader_election=False)
    scheduler = Scheduler(settings, api)
    scheduler.on_node(None, k8s_node("n1"))
    scheduler.on_pod(None, k8s_pod("p"))
    scheduler.feed(ObjectKind.NODE, None, k8s_node("n1"))  # the watch's first listing
    assert not scheduler.relisted.is_set()
    scheduler.feed(ObjectKind.NODE, "MODIFIED", k8s_node("n1"))
    scheduler.feed(ObjectKind.NODE, None, k8s_node("n1"))  # listed again after a gap
    assert scheduler.relisted.is_set()
    asyncio.run(_passes(scheduler, 0.2))
    assert api.binds == []
    scheduler.relisted.clear()  # a listing reconciled the cache
    asyncio.run(_passes(scheduler, 0.2))
    assert api.binds == [("team-a/p", "n1")]


def test_a_binding_that_cannot_reach_the_api_server_holds_passes_for_a_listing() -> None:
    api, clock = BrokenApi(), [1000.0]
    scheduler = _scheduler(api, clock)
    scheduler.on_pod(None, k8s_pod("p"))
    asyncio.run(scheduler.schedule_once())
    assert scheduler.relisted.is_set()
