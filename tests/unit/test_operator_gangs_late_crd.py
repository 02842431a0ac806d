"""A PodGroup CRD installed after the operator started: the reconciling listing notices it
once, the operator's own PodGroup watch then feeds the loop, and a cut watch is listed
again (the loop then reconciles, as for any watch that re-lists)."""

import asyncio
import gc
import logging
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import kubernetes.watch
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from builders import k8s_node, k8s_pod
from fake_api import FakeApi
from hybrid_operator import handlers
from hybrid_operator.k8s.calls import Listing
from hybrid_operator.k8s.fields import Body
from hybrid_operator.k8s.pod_group_watch import Emit, PodGroupWatch, WatchCutError
from hybrid_operator.k8s.views import ObjectKind
from hybrid_operator.scheduler import Scheduler
from hybrid_operator.settings import OperatorSettings

APPEARED = "the PodGroup CRD is installed now: watching PodGroups"


def _scheduler() -> tuple[Scheduler, FakeApi]:
    api = FakeApi()
    scheduler = Scheduler(OperatorSettings(policy="binpack-gang"), api, clock=lambda: 1000.0)
    return scheduler, api


def _listing(pod_groups: list[Body] | None) -> Listing:
    return Listing([], [k8s_node("n0")], [], pod_groups)


def pod_group(name: str, min_member: int = 2) -> dict[str, Any]:
    meta = {"name": name, "namespace": "team-a", "uid": f"pg-{name}"}
    return {"metadata": meta, "spec": {"minMember": min_member}}


def test_a_crd_installed_after_start_is_noticed_once(caplog: pytest.LogCaptureFixture) -> None:
    scheduler, _ = _scheduler()
    with caplog.at_level(logging.INFO, "hybrid_scheduler"):
        scheduler.reconcile(_listing(None), scheduler.cache.ticks())
        assert not scheduler.pod_groups_appeared.is_set()
        scheduler.reconcile(_listing([]), scheduler.cache.ticks())
        assert scheduler.pod_groups_appeared.is_set()
        scheduler.reconcile(_listing([pod_group("llm")]), scheduler.cache.ticks())
    said = [r.getMessage() for r in caplog.records]
    assert said.count(APPEARED) == 1


def test_a_crd_served_at_start_is_left_to_kopf() -> None:
    scheduler, _ = _scheduler()
    served: list[list[Body] | None] = [[], None, []]  # at start, removed, installed again
    for pod_groups in served:
        scheduler.reconcile(_listing(pod_groups), scheduler.cache.ticks())
    assert not scheduler.pod_groups_appeared.is_set()


class ScriptedWatch(PodGroupWatch):
    """A PodGroup watch whose listings and streams follow a script, not the API server."""

    def __init__(self, emit: Emit, listings: list[list[Body]], streams: list[Any]) -> None:
        super().__init__(client.ApiClient(), emit, timeout_s=1.0, first_retry_s=0.05)
        self.listings, self.streams = listings, streams
        self.calls: list[str] = []

    def list(self, deliver: Emit) -> str:
        self.calls.append("list")
        for body in self.listings.pop(0):
            deliver(None, body)
        return "1"

    def stream(self, version: str, deliver: Emit) -> str:
        self.calls.append(f"stream@{version}")
        if not self.streams:
            self._stopped.wait(5.0)  # an idle watch, until stopped
            return version
        step = self.streams.pop(0)
        if isinstance(step, Exception):
            raise step
        for kind, body in step:
            deliver(kind, body)
        return str(int(version) + 1)


def _run_watch(watch: PodGroupWatch, scheduler: Scheduler, seconds: float) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(seconds, stop.set)
        await asyncio.wait_for(watch.run(stop), timeout=seconds + 3.0)

    asyncio.run(main())
    scheduler.drain()


def test_the_own_watch_feeds_podgroups_and_lists_again_after_a_cut() -> None:
    scheduler, _ = _scheduler()
    scheduler.on_node(None, k8s_node("n0"))
    scheduler.on_pod(None, k8s_pod("w0", labels={"scheduling.x-k8s.io/pod-group": "b"}))

    def emit(kind: str | None, body: Body) -> None:
        scheduler.feed(ObjectKind.POD_GROUP, kind, body)

    streams: list[Any] = [[("ADDED", pod_group("b", 1))], WatchCutError("410 Gone")]
    watch = ScriptedWatch(emit, [[pod_group("a")], [pod_group("a"), pod_group("b", 1)]], streams)
    _run_watch(watch, scheduler, 1.5)
    assert watch.calls[:4] == ["list", "stream@1", "stream@2", "list"]
    assert set(scheduler.gangs.groups) == {("team-a", "a"), ("team-a", "b")}
    assert scheduler.gang_feed.held == {}  # w0's PodGroup came by the watch: it is queued
    assert scheduler.relisted.is_set()  # listed after streaming: the loop reconciles


def test_the_late_watch_starts_only_once_the_crd_appears(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scheduler, _ = _scheduler()
    started: list[Emit] = []

    class Recorded(ScriptedWatch):
        def __init__(self, api_client: client.ApiClient, emit: Emit, timeout_s: float) -> None:
            super().__init__(emit, [[pod_group("late", 1)]], [])
            started.append(emit)

    monkeypatch.setattr(handlers, "PodGroupWatch", Recorded)

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(
            handlers.watch_late_pod_groups(scheduler, client.ApiClient(), stop)
        )
        await asyncio.sleep(0.2)
        assert started == []
        scheduler.reconcile(_listing(None), scheduler.cache.ticks())
        scheduler.reconcile(_listing([]), scheduler.cache.ticks())
        await asyncio.sleep(0.2)
        stop.set()
        await asyncio.wait_for(task, timeout=3.0)

    asyncio.run(main())
    scheduler.drain()
    assert len(started) == 1
    assert set(scheduler.gangs.groups) == {("team-a", "late")}


class FakeStream:
    """kubernetes' Watch, streaming a fixed list of events."""

    events: ClassVar[list[dict[str, Any]]] = []

    def __init__(self) -> None:
        self.resource_version: str | None = None

    def stream(self, *args: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
        self.resource_version = kwargs["resource_version"]
        for event in self.events:
            self.resource_version = str(int(self.resource_version) + 1)
            yield event

    def stop(self) -> None:
        pass


def test_a_stream_delivers_changes_skips_bookmarks_and_is_cut_by_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kubernetes.watch, "Watch", FakeStream)
    seen: list[tuple[str | None, Body]] = []
    watch = PodGroupWatch(client.ApiClient(), lambda *_: None, timeout_s=1.0)
    FakeStream.events = [
        {"type": "ADDED", "raw_object": pod_group("a")},
        {"type": "BOOKMARK", "raw_object": {"metadata": {"resourceVersion": "9"}}},
        {"type": "DELETED", "raw_object": pod_group("a")},
    ]
    assert watch.stream("5", lambda kind, body: seen.append((kind, body))) == "8"
    assert [kind for kind, _ in seen] == ["ADDED", "DELETED"]
    FakeStream.events = [{"type": "ERROR", "raw_object": {"code": 410, "reason": "Expired"}}]
    with pytest.raises(WatchCutError, match="410"):
        watch.stream("8", lambda kind, body: seen.append((kind, body)))
    assert len(seen) == 2


class FailingAfterStop(PodGroupWatch):
    """A watch whose listing is still on its way when the operator stops, and then fails
    (the CRD was removed, the API server went away)."""

    def __init__(self) -> None:
        super().__init__(client.ApiClient(), lambda *_: None, timeout_s=1.0)

    def list(self, deliver: Emit) -> str:
        self._stopped.wait(5.0)
        time.sleep(0.05)  # the call returns after the watch has stopped waiting for it
        raise ApiException(status=404, reason="Not Found")


def test_a_call_still_running_at_shutdown_leaves_no_error_for_the_loop_to_report() -> None:
    reported: list[dict[str, Any]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _, context: reported.append(context))
        stop = asyncio.Event()
        loop.call_later(0.1, stop.set)
        await asyncio.wait_for(FailingAfterStop().run(stop), timeout=3.0)
        await asyncio.sleep(0.3)  # the call ends with its error meanwhile
        gc.collect()  # an unretrieved error is reported when its future is collected

    asyncio.run(main())
    assert reported == []
