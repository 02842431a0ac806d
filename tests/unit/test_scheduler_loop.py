import asyncio
import json
import threading
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from builders import k8s_node, k8s_pod
from fake_api import FakeApi
from hybrid_operator.decision_record import parse_record
from hybrid_operator.k8s.api import BindOutcome, BindResult
from hybrid_operator.scheduler import DECISION_ANNOTATION, Scheduler
from hybrid_operator.settings import OperatorSettings, SettingsError
from hybrid_policy.domain import PendingPod


def _scheduler(clock: list[float] | None = None) -> tuple[Scheduler, FakeApi]:
    api = FakeApi()
    t = clock if clock is not None else [1000.0]
    scheduler = Scheduler(
        OperatorSettings(initial_backoff_s=1.0, max_backoff_s=4.0), api, clock=lambda: t[0]
    )
    scheduler.on_node(None, k8s_node("n1"))
    scheduler.on_node(None, k8s_node("n2"))
    return scheduler, api


def test_pods_of_ours_are_bound_with_an_event_and_a_decision_record() -> None:
    scheduler, api = _scheduler()
    scheduler.on_pod(None, k8s_pod("a"))
    scheduler.on_pod(None, k8s_pod("other", scheduler="default-scheduler"))
    asyncio.run(scheduler.schedule_once())
    assert [key for key, _ in api.binds] == ["team-a/a"]
    (name, reason, message, warning) = api.events[0]
    assert (name, reason, warning) == ("a", "Scheduled", False)
    assert message.startswith("Successfully assigned team-a/a to n")
    record = api.annotations["team-a/a"][DECISION_ANNOTATION]
    assert record["policy"] == "kube-default"
    assert record["path"] == "sequential"
    assert record["node"] in {"n1", "n2"}
    assert len(record["runnersUp"]) == 1
    # explain reads back what the scheduler wrote, scheduler name included.
    parsed = parse_record(json.dumps(record))
    assert (parsed.node, parsed.scheduler) == (record["node"], "hybrid-scheduler")
    assert parsed.at == 1000.0


def test_a_placement_costs_a_binding_and_an_event_as_with_kube_scheduler() -> None:
    scheduler, api = _scheduler()
    for i in range(5):
        scheduler.on_pod(None, k8s_pod(f"p{i}"))
    asyncio.run(scheduler.schedule_once())
    assert len(api.binds) == 5
    assert [reason for _, reason, _, _ in api.events] == ["Scheduled"] * 5
    assert api.patches == 0  # the decision record came with the binding
    assert all(DECISION_ANNOTATION in api.annotations[f"team-a/p{i}"] for i in range(5))


def test_a_pod_is_never_bound_twice() -> None:
    scheduler, api = _scheduler()
    scheduler.on_pod(None, k8s_pod("a"))
    scheduler.on_pod("MODIFIED", k8s_pod("a"))  # duplicate event before the pass
    asyncio.run(scheduler.schedule_once())
    scheduler.on_pod("MODIFIED", k8s_pod("a"))  # the watch has not shown the binding yet
    asyncio.run(scheduler.schedule_once())
    node = api.binds[0][1]
    scheduler.on_pod("MODIFIED", k8s_pod("a", node=node))
    asyncio.run(scheduler.schedule_once())
    assert len(api.binds) == 1


def test_capacity_counts_assumed_pods_between_passes() -> None:
    scheduler, api = _scheduler()
    for i in range(3):
        scheduler.on_pod(None, k8s_pod(f"p{i}", gpus=8))
    asyncio.run(scheduler.schedule_once())
    assert len(api.binds) == 2
    assert api.unschedulable == ["team-a/p2"]
    failed = [e for e in api.events if e[1] == "FailedScheduling"]
    assert failed[0][2] == "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."
    assert failed[0][3] is True


def test_unschedulable_pods_back_off_then_retry_when_capacity_frees() -> None:
    clock = [1000.0]
    scheduler, api = _scheduler(clock)
    scheduler.on_pod(None, k8s_pod("big1", gpus=8, node="n1"))
    scheduler.on_pod(None, k8s_pod("big2", gpus=8, node="n2"))
    scheduler.on_pod(None, k8s_pod("waiting", gpus=4))
    asyncio.run(scheduler.schedule_once())
    assert api.binds == []
    finished = k8s_pod("big1", gpus=8, node="n1")
    finished["status"]["phase"] = "Succeeded"
    scheduler.on_pod("MODIFIED", finished)
    asyncio.run(scheduler.schedule_once())  # still backing off (1 s)
    assert api.binds == []
    clock[0] += 1.0
    asyncio.run(scheduler.schedule_once())
    assert api.binds == [("team-a/waiting", "n1")]


@pytest.mark.parametrize("outcome", [BindOutcome.CONFLICT, BindOutcome.GONE])
def test_conflicts_forget_the_reservation(outcome: BindOutcome) -> None:
    scheduler, api = _scheduler()
    api.outcomes["a"] = outcome
    scheduler.on_pod(None, k8s_pod("a", gpus=8))
    asyncio.run(scheduler.schedule_once())
    assert not scheduler.cache.is_placed("uid-a")
    assert "uid-a" not in scheduler.queue
    assert scheduler.counters.conflicts == 1


def test_a_conflict_holds_passes_until_a_listing_shows_where_the_pod_is() -> None:
    scheduler, api = _scheduler()
    api.outcomes["a"] = BindOutcome.CONFLICT  # bound elsewhere already: the cache is behind
    scheduler.on_pod(None, k8s_pod("a", gpus=8))
    asyncio.run(scheduler.schedule_once())
    assert scheduler.relisted.is_set()
    # A pod gone (404) says nothing about the room: no listing is needed for it.
    scheduler.reconciled(scheduler.cache.ticks())
    api.outcomes["b"] = BindOutcome.GONE
    scheduler.on_pod(None, k8s_pod("b", gpus=8))
    asyncio.run(scheduler.schedule_once())
    assert not scheduler.relisted.is_set()


def test_bind_errors_are_retried() -> None:
    clock = [1000.0]
    scheduler, api = _scheduler(clock)
    api.outcomes["a"] = BindOutcome.ERROR
    scheduler.on_pod(None, k8s_pod("a"))
    asyncio.run(scheduler.schedule_once())
    assert not scheduler.cache.is_placed("uid-a")
    del api.outcomes["a"]
    clock[0] += 1.0
    asyncio.run(scheduler.schedule_once())
    assert len(api.binds) == 2
    assert scheduler.cache.is_placed("uid-a")


def test_deleted_pending_pod_and_deleted_node() -> None:
    scheduler, api = _scheduler()
    scheduler.on_pod(None, k8s_pod("gone"))
    scheduler.on_pod("DELETED", k8s_pod("gone"))
    asyncio.run(scheduler.schedule_once())
    assert api.binds == []
    api.outcomes["slow"] = BindOutcome.BOUND
    scheduler.on_pod(None, k8s_pod("slow"))
    decisions = scheduler.decide()  # assumed, not yet bound
    node = decisions[0].node
    assert node is not None
    scheduler.on_node("DELETED", {"metadata": {"name": node}})
    assert "uid-slow" in scheduler.queue
    assert not scheduler.cache.is_placed("uid-slow")


def test_bad_annotations_become_events_not_crashes() -> None:
    scheduler, api = _scheduler()
    scheduler.on_namespace(
        None,
        {
            "metadata": {
                "name": "team-x",
                "uid": "ns-uid",
                "annotations": {"hybrid-scheduler.io/weight": "abc"},
            }
        },
    )
    bad = k8s_pod("p")
    bad["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "lots"
    scheduler.on_pod(None, bad)
    scheduler.on_pod(None, k8s_pod("q"))
    asyncio.run(scheduler.schedule_once())
    reasons = {(name, reason) for name, reason, _, _ in api.events}
    assert ("team-x", "InvalidField") in reasons
    assert ("p", "InvalidField") in reasons
    # requests that cannot be counted leave the pod out; the others are scheduled
    assert ("p", "Scheduled") not in reasons
    assert ("q", "Scheduled") in reasons


def test_settings_are_validated() -> None:
    with pytest.raises(SettingsError, match="policy: unknown policy 'fastest'"):
        OperatorSettings(policy="fastest").validate()
    with pytest.raises(
        SettingsError, match=r"batch_interval_s: must be a number >= 0.01 \(got 0\)"
    ):
        OperatorSettings(batch_interval_s=0).validate()


def test_metrics_count_attempts_latency_shares_and_fairness() -> None:
    from prometheus_client import generate_latest

    clock = [1795514400.0 + 30.0]
    scheduler, _ = _scheduler(clock)
    scheduler.on_namespace(
        None, {"metadata": {"name": "team-b", "annotations": {"hybrid-scheduler.io/weight": "2"}}}
    )
    first = k8s_pod("a", gpus=4)
    first["metadata"]["creationTimestamp"] = "2026-11-24T10:00:00Z"
    scheduler.on_pod(None, first)
    scheduler.on_pod(None, k8s_pod("b", gpus=4, ns="team-b"))
    scheduler.on_pod(None, k8s_pod("huge", gpus=16))
    asyncio.run(scheduler.schedule_once())
    text = generate_latest(scheduler.metrics.registry).decode()
    assert 'hybrid_scheduler_schedule_attempts_total{result="bound"} 2.0' in text
    assert 'hybrid_scheduler_schedule_attempts_total{result="unschedulable"} 1.0' in text
    assert "hybrid_scheduler_pending_to_bound_seconds_count 1.0" in text
    assert 'hybrid_scheduler_pending_to_bound_seconds_bucket{le="30.0"} 1.0' in text
    # team-a holds 4 of 16 GPUs with weight 1, team-b 4 of 16 with weight 2
    assert 'hybrid_scheduler_namespace_share{namespace="team-a"} 0.25' in text
    assert 'hybrid_scheduler_namespace_share{namespace="team-b"} 0.125' in text
    assert "hybrid_scheduler_jain_index 0.9" in text
    # after the pass: two bound, one parked (in-flight pods count until settled)
    assert "hybrid_scheduler_pending_pods 1.0" in text


def test_shadow_mode_records_our_choice_next_to_the_default_schedulers() -> None:
    from hybrid_operator.shadow import SHADOW_ANNOTATION

    api = FakeApi()
    scheduler = Scheduler(OperatorSettings(shadow_of="default-scheduler"), api)
    scheduler.on_node(None, k8s_node("n1"))
    scheduler.on_node(None, k8s_node("n2"))
    scheduler.on_pod(
        None, k8s_pod("busy", gpus=6, node="n1", phase="Running", scheduler="default-scheduler")
    )
    scheduler.on_pod("ADDED", k8s_pod("watched", gpus=1, scheduler="default-scheduler"))
    scheduler.on_pod(
        "MODIFIED", k8s_pod("watched", gpus=1, node="n1", scheduler="default-scheduler")
    )
    asyncio.run(scheduler.schedule_once())
    assert api.binds == []
    record = api.annotations["team-a/watched"][SHADOW_ANNOTATION]
    # kube-default spreads: the empty node, while the default scheduler chose n1 here
    assert (record["wouldBe"], record["actual"], record["agree"]) == ("n2", "n1", False)
    assert record["score"] > record["actualScore"]
    assert record["runnersUp"] == [{"node": "n1", "score": record["actualScore"]}]
    # the busy pod was already bound when first seen: nothing to compare
    assert "team-a/busy" not in api.annotations
    assert scheduler.shadow is not None
    assert (scheduler.shadow.agreed, scheduler.shadow.disagreed) == (0, 1)


def test_a_pod_that_keeps_failing_for_the_same_reason_gets_one_event() -> None:
    clock = [1000.0]
    scheduler, api = _scheduler(clock)
    scheduler.on_pod(None, k8s_pod("huge", gpus=16))
    for _ in range(5):
        asyncio.run(scheduler.schedule_once())
        clock[0] += 20.0
    failed = [e for e in api.events if e[1] == "FailedScheduling"]
    assert len(failed) == 1
    assert len(api.unschedulable) == 1
    scheduler.on_node(None, k8s_node("n3", gpus=4))  # the reason changes: 3 nodes now
    clock[0] += 20.0
    asyncio.run(scheduler.schedule_once())
    failed = [e for e in api.events if e[1] == "FailedScheduling"]
    assert [e[2] for e in failed][-1] == "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."


def test_a_pod_deleted_while_its_binding_is_in_flight_leaves_the_queue() -> None:
    scheduler, _ = _scheduler()
    scheduler.on_pod(None, k8s_pod("a"))
    decisions = scheduler.decide()
    scheduler.on_pod("DELETED", k8s_pod("a"))
    assert "uid-a" not in scheduler.queue
    assert decisions[0].pod.uid == "uid-a"


def test_learned_policies_see_the_queue() -> None:
    scheduler, _ = _scheduler()
    for i in range(3):
        scheduler.on_pod(None, k8s_pod(f"p{i}", gpus=2))
    seen: list[tuple[int, float]] = []
    profile = scheduler.policy.profile
    original = profile.schedule_batch

    def spy(pods: Any, snapshot: Any, rng: Any, explain: bool = True) -> Any:
        seen.append(
            (
                snapshot.queue.pending_pods,
                float(snapshot.queue.pending_demand[snapshot.index["nvidia.com/gpu"]]),
            )
        )
        return original(pods, snapshot, rng, explain)

    profile.schedule_batch = spy  # type: ignore[method-assign]
    scheduler.decide()
    assert seen == [(3, 6.0)]


class SlowFirstBind(FakeApi):
    """Binding ``slow`` takes a while; every other call is instant."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def bind(
        self,
        pod: PendingPod,
        node: str,
        annotations: Mapping[str, str] | None = None,
        still_wanted: Callable[[], bool] | None = None,
    ) -> BindResult:
        if pod.name == "slow":
            self.release.wait(timeout=10)
        return super().bind(pod, node, annotations, still_wanted)


def test_the_next_pass_decides_and_binds_while_a_binding_is_slow() -> None:
    api = SlowFirstBind()
    scheduler = Scheduler(OperatorSettings(batch_interval_s=0.02, leader_election=False), api)
    scheduler.on_node(None, k8s_node("n1"))

    async def scenario() -> list[tuple[str, str]]:
        stop = asyncio.Event()
        loop = asyncio.create_task(scheduler.run_forever(stop))
        scheduler.on_pod(None, k8s_pod("slow"))
        await asyncio.sleep(0.2)  # a pass has taken "slow" and is binding it
        scheduler.on_pod(None, k8s_pod("fast"))
        for _ in range(200):
            if api.binds:
                break
            await asyncio.sleep(0.01)
        bound_while_slow = list(api.binds)
        api.release.set()
        for _ in range(200):
            if len(api.binds) == 2:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await loop
        return bound_while_slow

    bound_while_slow = asyncio.run(scenario())
    assert [key for key, _ in bound_while_slow] == ["team-a/fast"]
    assert sorted(key for key, _ in api.binds) == ["team-a/fast", "team-a/slow"]


def test_a_queued_pod_whose_binding_is_on_its_way_is_left_to_that_binding(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scheduler, api = _scheduler()
    scheduler.on_pod(None, k8s_pod("a"))
    scheduler.on_pod(None, k8s_pod("b"))
    first = scheduler.decide()
    assert {d.pod.name for d in first if d.placed} == {"a", "b"}
    a = next(d for d in first if d.pod.name == "a")
    # Whatever put "a" back in the queue, its binding is still on its way: the next pass
    # must not decide it again (its room would move while the binding may land).
    scheduler.cache.forget(a.pod.uid)
    scheduler.queue.requeue(a.pod.uid)
    with caplog.at_level("WARNING", logger="hybrid_scheduler"):
        second = scheduler.decide()
    assert second == []
    assert "team-a/a was queued while its binding is on its way" in caplog.text
    asyncio.run(scheduler.settle_all(first))
    assert sorted(key for key, _ in api.binds) == ["team-a/a", "team-a/b"]
    assert scheduler.queue.is_in_flight(a.pod.uid) is False
    assert a.pod.uid not in scheduler.queue
