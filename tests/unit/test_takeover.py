"""A replica's view when its watches lag or reorder: a term begins with a listing, watch
events older than what the cache applied (events that lagged behind a listing) are left
out, so a new leader never places a pod in room that the former leader gave away; and a
pod that ends before its binding is seen frees its room for the waiting pods."""

from __future__ import annotations

import asyncio
from typing import Any

from builders import k8s_node, k8s_pod
from electors import SwitchedElector
from fake_api import FakeApi
from hybrid_operator.k8s.calls import Listing
from hybrid_operator.scheduler import Scheduler
from hybrid_operator.settings import OperatorSettings
from loop_runner import run_with_listings


def _versioned(body: dict[str, Any], version: int) -> dict[str, Any]:
    return {**body, "metadata": {**body["metadata"], "resourceVersion": str(version)}}


def test_a_new_leader_lists_before_its_first_pass_and_keeps_the_former_leaders_room() -> None:
    api, elector = FakeApi(), SwitchedElector(leading=False)
    settings = OperatorSettings(batch_interval_s=0.02)
    scheduler = Scheduler(settings, api, clock=lambda: 1000.0, elector=elector)
    node = k8s_node("n1", gpus=8)
    scheduler.on_node(None, node)
    # The former leader bound "a" (all 8 GPUs); this replica's watch has shown only its
    # creation so far. "b" waits for the same GPUs.
    scheduler.on_pod(None, _versioned(k8s_pod("a", gpus=8), 10))
    scheduler.on_pod(None, _versioned(k8s_pod("b", gpus=8), 11))
    bound_a = _versioned(k8s_pod("a", gpus=8, node="n1", phase="Running"), 12)
    listing = Listing(
        namespaces=[], nodes=[node], pods=[bound_a, _versioned(k8s_pod("b", gpus=8), 11)]
    )
    elector.leading = True
    listed = run_with_listings(scheduler, 0.3, listing)
    assert listed, "no listing at the start of the term"
    assert api.binds == []  # neither "a" again nor "b" where "a" runs
    assert scheduler.cache.bound["uid-a"].node == "n1"
    assert [p.name for p in scheduler.queue.pending()] == ["b"]


def test_a_pass_waits_for_a_listing_begun_after_the_suspicion() -> None:
    scheduler = Scheduler(OperatorSettings(leader_election=False), FakeApi(), clock=lambda: 1.0)
    before = scheduler.cache.ticks()
    scheduler.suspect("the pod watch listed again")
    scheduler.reconciled(before)  # a listing begun before: it may lack what was missed
    assert scheduler.relisted.is_set()
    scheduler.reconciled(scheduler.cache.ticks())
    assert not scheduler.relisted.is_set()


def test_an_event_older_than_the_listing_does_not_undo_it() -> None:
    api = FakeApi()
    scheduler = Scheduler(OperatorSettings(leader_election=False), api, clock=lambda: 1000.0)
    scheduler.on_node(None, k8s_node("n1"))
    bound = _versioned(k8s_pod("a", gpus=8, node="n1", phase="Running"), 12)
    scheduler.reconcile(Listing(namespaces=[], nodes=[], pods=[bound]), scheduler.cache.ticks())
    # The watch delivers the pod's creation late, after the listing that showed it bound.
    scheduler.on_pod("ADDED", _versioned(k8s_pod("a", gpus=8), 10))
    assert scheduler.cache.bound["uid-a"].node == "n1"
    assert scheduler.queue.pending() == []
    assert scheduler.counters.stale_events == 1
    # A newer event still applies: the pod ends and its room is free.
    scheduler.on_pod("MODIFIED", _versioned(k8s_pod("a", gpus=8, node="n1", phase="Succeeded"), 13))
    assert "uid-a" not in scheduler.cache.bound


def test_a_stale_event_of_a_deleted_pod_does_not_bring_it_back_until_a_listing() -> None:
    scheduler = Scheduler(OperatorSettings(leader_election=False), FakeApi(), clock=lambda: 1.0)
    scheduler.on_node(None, k8s_node("n1"))
    running = k8s_pod("a", gpus=8, node="n1", phase="Running")
    scheduler.on_pod("DELETED", _versioned(running, 20))
    scheduler.on_pod("MODIFIED", _versioned(running, 15))
    assert "uid-a" not in scheduler.cache.bound
    assert scheduler.counters.stale_events == 1
    # A listing without the pod forgets its version (nothing can lag behind it now).
    scheduler.reconcile(Listing(namespaces=[], nodes=[], pods=[]), scheduler.cache.ticks())
    assert "uid-a" not in {key for _, key in scheduler.cache.versions}


def test_a_pod_that_ends_before_its_binding_is_seen_wakes_the_waiting_pods() -> None:
    api, clock = FakeApi(), [1000.0]
    settings = OperatorSettings(leader_election=False, initial_backoff_s=1.0, max_parked_s=300)
    scheduler = Scheduler(settings, api, clock=lambda: clock[0])
    scheduler.on_node(None, k8s_node("n1", gpus=8))
    scheduler.on_pod(None, _versioned(k8s_pod("a", gpus=8), 10))
    scheduler.on_pod(None, _versioned(k8s_pod("b", gpus=8), 11))
    asyncio.run(scheduler.schedule_once())  # "a" bound (assumed), "b" parked: no room
    assert [pod for pod, _ in api.binds] == ["team-a/a"]
    # The watch shows "a" finished before it shows "a" bound.
    scheduler.on_pod("MODIFIED", _versioned(k8s_pod("a", gpus=8, node="n1", phase="Succeeded"), 13))
    clock[0] += 2.0  # past the back-off, long before "b" would be tried again unasked
    asyncio.run(scheduler.schedule_once())
    assert [pod for pod, _ in api.binds] == ["team-a/a", "team-a/b"]
    # The binding's own event, late and older, changes nothing.
    scheduler.on_pod("MODIFIED", _versioned(k8s_pod("a", gpus=8, node="n1", phase="Running"), 12))
    assert "uid-a" not in scheduler.cache.bound


def test_an_older_event_applied_while_a_listing_was_on_its_way_does_not_hide_it() -> None:
    scheduler = Scheduler(OperatorSettings(leader_election=False), FakeApi(), clock=lambda: 1.0)
    scheduler.on_node(None, k8s_node("n1"))
    listed_at = scheduler.cache.ticks()
    # While the listing is on its way, a late event (a status change before the binding)
    # reaches the handler: it was seen after the listing began, but it is older.
    scheduler.on_pod("MODIFIED", _versioned(k8s_pod("a", gpus=8), 90))
    bound = _versioned(k8s_pod("a", gpus=8, node="n1", phase="Running"), 105)
    scheduler.reconcile(Listing(namespaces=[], nodes=[k8s_node("n1")], pods=[bound]), listed_at)
    assert scheduler.cache.bound["uid-a"].node == "n1"
    assert scheduler.queue.pending() == []
    # An event newer than the listing, applied while it was on its way, still wins.
    listed_at = scheduler.cache.ticks()
    done = _versioned(k8s_pod("a", gpus=8, node="n1", phase="Succeeded"), 120)
    scheduler.on_pod("MODIFIED", done)
    scheduler.reconcile(Listing(namespaces=[], nodes=[k8s_node("n1")], pods=[bound]), listed_at)
    assert "uid-a" not in scheduler.cache.bound
