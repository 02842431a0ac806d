"""A Binding whose answer was lost: the pod keeps its room and the same Binding is sent
again, until the pod is settled (bound, gone, refused for good) or the resend is called
off (node deleted, leadership lost), never leaving an assumption or a pod behind."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

import pytest
from prometheus_client import generate_latest

from builders import k8s_node, k8s_pod
from electors import SwitchedElector
from fake_api import FakeApi, Gate
from hybrid_operator.k8s.api import BindOutcome, BindResult
from hybrid_operator.k8s.calls import Listing
from hybrid_operator.k8s.views import ObjectKind
from hybrid_operator.scheduler import DECISION_ANNOTATION, Scheduler
from hybrid_operator.settings import OperatorSettings
from hybrid_policy.domain import PendingPod

#: Past the first back-off (1 s), short of the second (2 s).
PAST_BACK_OFF_S = 1.5


class LostReplyApi(FakeApi):
    """Every Binding commits as on the API server (a second one for a bound pod gets 409),
    but the answers to the first ``lost`` never come back: the client times out."""

    def __init__(self, lost: int = 1) -> None:
        super().__init__()
        self.lost = lost
        #: Node of each bound pod, by key, as the API server has it.
        self.committed: dict[str, str] = {}
        #: Every Binding sent: pod key, node, annotations.
        self.sent: list[tuple[str, str, dict[str, str]]] = []
        #: What the API server answers the next Bindings instead, in turn.
        self.refusals: list[BindResult] = []
        #: When set, a Binding waits on its way (sent, not answered) at this gate.
        self.gate: Gate | None = None

    def bind(
        self,
        pod: PendingPod,
        node: str,
        annotations: Mapping[str, str] | None = None,
        still_wanted: Callable[[], bool] | None = None,
    ) -> BindResult:
        if still_wanted is not None and not still_wanted():
            self.called_off.append((pod.key, node))
            return BindResult(BindOutcome.CANCELLED, "test")
        self.sent.append((pod.key, node, dict(annotations or {})))
        if self.gate is not None:
            self.gate.hold()
        if self.refusals:
            return self.refusals.pop(0)
        if pod.key in self.committed:
            where = self.committed[pod.key]
            return BindResult(BindOutcome.CONFLICT, f"409 already assigned to node {where}")
        result = super().bind(pod, node, annotations)
        self.committed[pod.key] = node
        if self.lost > 0:
            self.lost -= 1
            return BindResult(BindOutcome.ERROR, "ReadTimeoutError: read timed out", True)
        return result


def _scheduler(
    api: FakeApi, clock: list[float], elector: SwitchedElector | None = None
) -> Scheduler:
    settings = OperatorSettings(
        initial_backoff_s=1.0, max_backoff_s=4.0, leader_election=elector is not None
    )
    scheduler = Scheduler(settings, api, clock=lambda: clock[0], elector=elector)
    scheduler.on_node(None, k8s_node("n1", gpus=8))
    return scheduler


def _pass(scheduler: Scheduler, clock: list[float], after_s: float = 0.0) -> None:
    clock[0] += after_s
    asyncio.run(scheduler.schedule_once())


def _bound(name: str, node: str = "n1", gpus: int = 8) -> dict[str, object]:
    return k8s_pod(name, gpus=gpus, node=node, phase="Running")


def _lost_reply(api: LostReplyApi | None = None) -> tuple[Scheduler, LostReplyApi, list[float]]:
    """Pod "a" (all 8 GPUs of n1) decided, its Binding committed, its answer lost."""
    api = api or LostReplyApi()
    clock = [1000.0]
    scheduler = _scheduler(api, clock)
    scheduler.on_pod(None, k8s_pod("a", gpus=8))
    _pass(scheduler, clock)
    assert api.committed == {"team-a/a": "n1"}
    return scheduler, api, clock


def _nothing_left(scheduler: Scheduler) -> None:
    """No resend, no assumption, nothing in flight."""
    assert scheduler.binding.resends.book == {}
    assert scheduler.queue.resending_count == 0
    assert scheduler.queue.in_flight_count == 0
    assert not scheduler.cache.assumed


def _gauge(scheduler: Scheduler) -> float:
    return float(scheduler.metrics.pending._value.get())


def _scheduled(api: FakeApi) -> list[str]:
    return [name for name, reason, _, _ in api.events if reason == "Scheduled"]


def _bound_as_sent(api: LostReplyApi, index: int = 0) -> dict[str, object]:
    """Pod "a" as the API server has it once the ``index``-th Binding sent landed."""
    key, node, annotations = api.sent[index]
    return k8s_pod(key.split("/")[1], gpus=8, node=node, annotations=annotations)


def test_the_room_of_a_pod_whose_answer_was_lost_stays_held() -> None:
    scheduler, api, clock = _lost_reply()
    assert scheduler.cache.assumed_on("uid-a") == "n1"
    # "b" fits only where "a" may run now; the watch has not shown "a" bound yet.
    scheduler.on_pod(None, k8s_pod("b", gpus=8))
    _pass(scheduler, clock, 0.1)
    assert "team-a/b" not in api.committed
    assert api.unschedulable == ["team-a/b"]
    # The resend finds "a" bound (409): its room stays held until a listing shows where.
    _pass(scheduler, clock, PAST_BACK_OFF_S)
    assert [key for key, _, _ in api.sent] == ["team-a/a", "team-a/a"]
    assert "team-a/b" not in api.committed
    assert scheduler.cache.assumed_on("uid-a") == "n1"
    assert scheduler.relisted.is_set()
    listing = Listing(namespaces=[], nodes=[k8s_node("n1")], pods=[_bound("a"), k8s_pod("b", 8)])
    scheduler.reconcile(listing, scheduler.cache.ticks())
    assert scheduler.cache.bound["uid-a"].node == "n1"
    _nothing_left(scheduler)
    assert [p.name for p in scheduler.queue.pending()] == ["b"]


def test_the_next_attempt_is_the_same_binding_not_a_new_decision(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scheduler, api, clock = _lost_reply()
    scheduler.on_node(None, k8s_node("n2", gpus=8))  # another node it could now be given
    _pass(scheduler, clock, 0.5)  # within the back-off: nothing is sent
    assert len(api.sent) == 1
    with caplog.at_level(logging.INFO, logger="hybrid_scheduler"):
        _pass(scheduler, clock, PAST_BACK_OFF_S)
    first, second = api.sent
    assert second == first  # same pod, same node, same annotations (the same record)
    assert DECISION_ANNOTATION in second[2]
    assert "sending the binding of team-a/a to n1 again" in caplog.text
    assert scheduler.counters.resends == {BindOutcome.CONFLICT: 1}
    metrics = generate_latest(scheduler.metrics.registry).decode()
    assert 'hybrid_scheduler_binding_resends_total{result="conflict"} 1.0' in metrics


def test_a_resend_that_binds_settles_the_pod_with_its_event() -> None:
    api = LostReplyApi(lost=0)
    clock = [1000.0]
    scheduler = _scheduler(api, clock)
    scheduler.on_pod(None, k8s_pod("a", gpus=8))
    # The API server could not be reached at all: nothing was committed.
    api.refusals.append(BindResult(BindOutcome.ERROR, "MaxRetryError: refused", True))
    _pass(scheduler, clock)
    assert api.committed == {}
    assert scheduler.queue.resending_count == 1
    assert _gauge(scheduler) == 1.0
    _pass(scheduler, clock, PAST_BACK_OFF_S)
    assert api.sent[0] == api.sent[1]
    assert scheduler.counters.bound == 1
    assert [reason for _, reason, _, _ in api.events] == ["Scheduled"]
    assert scheduler.binding.resends.book == {}
    assert scheduler.cache.assumed_on("uid-a") == "n1"  # until the watch shows it bound
    assert _gauge(scheduler) == 0.0
    scheduler.on_pod("MODIFIED", _bound_as_sent(api, 1))  # the same record: told once
    _pass(scheduler, clock, 0.1)
    assert _scheduled(api) == ["a"]


def test_no_answer_again_keeps_waiting_with_a_longer_back_off() -> None:
    scheduler, api, clock = _lost_reply(LostReplyApi(lost=1))
    api.refusals.append(BindResult(BindOutcome.ERROR, "ReadTimeoutError", True))
    _pass(scheduler, clock, PAST_BACK_OFF_S)
    assert len(api.sent) == 2
    assert scheduler.cache.assumed_on("uid-a") == "n1"
    _pass(scheduler, clock, PAST_BACK_OFF_S)  # the second back-off is 2 s
    assert len(api.sent) == 2
    _pass(scheduler, clock, 1.0)
    assert len(api.sent) == 3
    assert api.sent[2] == api.sent[0]


def test_the_watch_showing_the_pod_bound_drops_the_resend() -> None:
    scheduler, api, clock = _lost_reply()
    scheduler.on_pod("MODIFIED", _bound("a"))
    assert scheduler.cache.bound["uid-a"].node == "n1"
    _nothing_left(scheduler)
    _pass(scheduler, clock, PAST_BACK_OFF_S)
    assert len(api.sent) == 1
    assert _gauge(scheduler) == 0.0


def test_a_deleted_pod_drops_its_resend() -> None:
    scheduler, api, clock = _lost_reply()
    scheduler.on_pod("DELETED", k8s_pod("a", gpus=8))
    _nothing_left(scheduler)
    assert scheduler.binding.landings.waiting == {}
    assert scheduler.queue.pending() == []
    _pass(scheduler, clock, PAST_BACK_OFF_S)
    assert len(api.sent) == 1
    assert _gauge(scheduler) == 0.0


def test_a_deleted_node_calls_the_resend_off_and_the_pod_is_decided_again() -> None:
    scheduler, api, clock = _lost_reply()
    scheduler.on_node("DELETED", k8s_node("n1"))
    _nothing_left(scheduler)
    assert [p.name for p in scheduler.queue.pending()] == ["a"]
    scheduler.on_node(None, k8s_node("n2", gpus=8))
    _pass(scheduler, clock, PAST_BACK_OFF_S)
    assert [(key, node) for key, node, _ in api.sent] == [("team-a/a", "n1"), ("team-a/a", "n2")]


def test_leadership_lost_calls_the_resend_off() -> None:
    api, clock, elector = LostReplyApi(), [1000.0], SwitchedElector()
    scheduler = _scheduler(api, clock, elector)
    scheduler.on_pod(None, k8s_pod("a", gpus=8))
    assert scheduler._leadership()
    _pass(scheduler, clock)
    assert scheduler.queue.resending_count == 1
    elector.lose()
    assert not scheduler._leadership()
    _nothing_left(scheduler)
    assert [p.name for p in scheduler.queue.pending()] == ["a"]
    assert _gauge(scheduler) == 1.0


def test_a_definite_refusal_of_the_resend_forgets_the_room_and_decides_again() -> None:
    scheduler, api, clock = _lost_reply()
    api.refusals.append(BindResult(BindOutcome.ERROR, "422 Unprocessable Entity"))
    _pass(scheduler, clock, PAST_BACK_OFF_S)
    assert len(api.sent) == 2
    _nothing_left(scheduler)
    assert [p.name for p in scheduler.queue.pending()] == ["a"]
    api.committed.clear()  # as the API server has it: the pod waits
    _pass(scheduler, clock, 2.5)  # past the second back-off: decided again
    assert len(api.sent) == 3
    assert api.sent[2][2] != api.sent[0][2]  # a new decision, with a record of its own


def test_a_resend_finding_the_pod_gone_forgets_it() -> None:
    scheduler, api, clock = _lost_reply()
    api.refusals.append(BindResult(BindOutcome.GONE, "404 Not Found"))
    _pass(scheduler, clock, PAST_BACK_OFF_S)
    _nothing_left(scheduler)
    assert scheduler.queue.pending() == []


def test_a_listing_keeps_the_resend_of_a_pod_still_pending_and_drops_a_gone_one() -> None:
    scheduler, api, clock = _lost_reply()
    listing = Listing(namespaces=[], nodes=[k8s_node("n1")], pods=[k8s_pod("a", gpus=8)])
    scheduler.reconcile(listing, scheduler.cache.ticks())
    assert scheduler.queue.resending_count == 1  # the Binding may still be on its way
    assert scheduler.cache.assumed_on("uid-a") == "n1"
    scheduler.reconcile(Listing(namespaces=[], nodes=[k8s_node("n1")], pods=[]), 1e18)
    _nothing_left(scheduler)
    assert scheduler.queue.pending() == []
    _pass(scheduler, clock, PAST_BACK_OFF_S)
    assert len(api.sent) == 1


def test_a_pass_that_raises_keeps_the_resend_for_later(monkeypatch: pytest.MonkeyPatch) -> None:
    scheduler, api, clock = _lost_reply()
    scheduler.on_pod(None, k8s_pod("b", gpus=1))

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("a bug in a plugin")

    monkeypatch.setattr(scheduler.policy.profile, "schedule_batch", broken)
    clock[0] += PAST_BACK_OFF_S
    with pytest.raises(RuntimeError):
        scheduler.decide()
    assert scheduler.queue.resending_count == 1
    assert scheduler.cache.assumed_on("uid-a") == "n1"
    monkeypatch.undo()
    _pass(scheduler, clock, 2.5)
    assert [key for key, _, _ in api.sent] == ["team-a/a", "team-a/a"]


def test_a_node_deleted_while_the_resend_is_on_its_way_calls_it_off() -> None:
    scheduler, api, clock = _lost_reply()
    clock[0] += PAST_BACK_OFF_S
    decisions = scheduler.decide()  # the resend is taken, its ticket issued
    assert [d.node for d in decisions] == ["n1"]
    scheduler.on_node("DELETED", k8s_node("n1"))
    asyncio.run(scheduler.settle_all(decisions))
    assert api.called_off == [("team-a/a", "n1")]
    _nothing_left(scheduler)
    assert [p.name for p in scheduler.queue.pending()] == ["a"]


def test_the_watch_showing_the_pod_bound_while_the_resend_is_on_its_way() -> None:
    scheduler, api, clock = _lost_reply()
    clock[0] += PAST_BACK_OFF_S
    decisions = scheduler.decide()
    scheduler.on_pod("MODIFIED", _bound("a"))
    asyncio.run(scheduler.settle_all(decisions))  # answered 409: bound by the first
    assert len(api.sent) == 2
    assert scheduler.cache.bound["uid-a"].node == "n1"
    _nothing_left(scheduler)
    assert scheduler.queue.pending() == []


async def _while_on_its_way(
    scheduler: Scheduler, api: LostReplyApi, meanwhile: Callable[[], None]
) -> None:
    """Decide and send; run ``meanwhile`` on the loop while the Binding is on its way."""
    api.gate = gate = Gate()
    settling = asyncio.create_task(scheduler.settle_all(scheduler.decide()))
    sent = await asyncio.to_thread(gate.waiting.wait, 5)
    if sent:
        meanwhile()
    gate.go.set()
    await settling
    assert sent, "no binding was sent"


@pytest.mark.parametrize("resent", [False, True], ids=["first", "resend"])
def test_a_pod_deleted_while_its_unanswered_binding_was_on_its_way_leaves_nothing(
    resent: bool,
) -> None:
    api, clock = LostReplyApi(lost=2), [1000.0]
    scheduler = _scheduler(api, clock)
    scheduler.on_pod(None, k8s_pod("a", gpus=8))
    if resent:
        _pass(scheduler, clock)
        clock[0] += PAST_BACK_OFF_S

    def delete() -> None:
        scheduler.on_pod("DELETED", k8s_pod("a", gpus=8))

    asyncio.run(_while_on_its_way(scheduler, api, delete))
    _nothing_left(scheduler)
    assert scheduler.queue.pending() == []
    assert scheduler.binding.landings.waiting == {}  # nothing kept for a pod that is gone


def test_a_node_deleted_while_an_unanswered_binding_was_on_its_way_decides_again() -> None:
    api, clock = LostReplyApi(), [1000.0]
    scheduler = _scheduler(api, clock)
    scheduler.on_pod(None, k8s_pod("a", gpus=8))
    asyncio.run(
        _while_on_its_way(scheduler, api, lambda: scheduler.on_node("DELETED", k8s_node("n1")))
    )
    _nothing_left(scheduler)
    assert [p.name for p in scheduler.queue.pending()] == ["a"]


def test_a_binding_whose_answer_was_lost_is_told_once_the_watch_shows_it_landed() -> None:
    scheduler, api, clock = _lost_reply()
    assert _scheduled(api) == []
    scheduler.on_pod("MODIFIED", _bound_as_sent(api))
    asyncio.run(scheduler.flush_reports())
    assert _scheduled(api) == ["a"]
    scheduler.on_pod("MODIFIED", _bound_as_sent(api))  # seen again: told once
    _pass(scheduler, clock, PAST_BACK_OFF_S)
    assert _scheduled(api) == ["a"]
    assert len(api.sent) == 1


def test_a_pod_bound_by_another_replica_to_the_same_node_is_not_told() -> None:
    scheduler, api, clock = _lost_reply()
    other = {DECISION_ANNOTATION: '{"instance": "replica-b"}'}
    scheduler.on_pod("MODIFIED", k8s_pod("a", gpus=8, node="n1", annotations=other))
    _pass(scheduler, clock, PAST_BACK_OFF_S)
    assert _scheduled(api) == []
    assert scheduler.binding.landings.waiting == {}


def test_the_watch_showing_the_landing_before_the_lost_answer_comes_back() -> None:
    api, clock = LostReplyApi(), [1000.0]
    scheduler = _scheduler(api, clock)
    scheduler.on_pod(None, k8s_pod("a", gpus=8))
    asyncio.run(
        _while_on_its_way(scheduler, api, lambda: scheduler.on_pod("MODIFIED", _bound_as_sent(api)))
    )
    asyncio.run(scheduler.flush_reports())
    assert _scheduled(api) == ["a"]


def test_a_replica_that_lost_leadership_still_tells_its_binding_that_landed() -> None:
    api, clock, elector = LostReplyApi(), [1000.0], SwitchedElector()
    settings = OperatorSettings(batch_interval_s=0.02, initial_backoff_s=1.0)
    scheduler = Scheduler(settings, api, clock=lambda: clock[0], elector=elector)
    scheduler.on_node(None, k8s_node("n1", gpus=8))
    scheduler.on_pod(None, k8s_pod("a", gpus=8))
    assert scheduler._leadership()
    _pass(scheduler, clock)
    elector.lose()  # another replica took over while the answer was lost

    async def scenario() -> None:
        stop = asyncio.Event()
        loop = asyncio.create_task(scheduler.run_forever(stop))
        await asyncio.sleep(0.05)
        scheduler.feed(ObjectKind.POD, "MODIFIED", _bound_as_sent(api))
        for _ in range(200):
            if api.events:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await loop

    asyncio.run(scenario())
    assert _scheduled(api) == ["a"]
    assert len(api.sent) == 1
