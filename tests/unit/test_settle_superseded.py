"""A pod decided again while an earlier decision of it is still being told (its
FailedScheduling Event on its way): the earlier decision's end must leave the later one
alone. It once forgot the later placement's room and binding ticket, so that the pod was
bound while the cache counted its node free (an overcommit once the watch lagged), or its
binding was called off as if the pod were deleted (a stranded pod)."""

import asyncio
from typing import Any

import pytest

from builders import k8s_node, k8s_pod
from fake_api import FakeApi, Gate
from hybrid_operator.scheduler import Scheduler
from hybrid_operator.settings import OperatorSettings


class SlowFailureEvent(FakeApi):
    """A FailedScheduling Event waits (as for the rate limit) until the test lets it go."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = Gate()

    def event(
        self,
        involved: dict[str, str],
        reason: str,
        message: str,
        warning: bool = False,
        name: str | None = None,
    ) -> None:
        if reason == "FailedScheduling":
            self.gate.hold()
        super().event(involved, reason, message, warning)


def test_an_earlier_decision_ending_late_leaves_the_later_placement_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    api, clock = SlowFailureEvent(), [1000.0]
    scheduler = Scheduler(OperatorSettings(initial_backoff_s=1.0), api, clock=lambda: clock[0])
    scheduler.on_node(None, k8s_node("n1"))
    scheduler.on_pod(None, k8s_pod("running", gpus=8, node="n1", phase="Running"))
    scheduler.on_pod(None, k8s_pod("p"))
    uid = "uid-p"

    async def scenario() -> Any:
        first = scheduler.decide()
        assert [(d.pod.name, d.node) for d in first] == [("p", None)]
        telling = asyncio.create_task(scheduler.settle_all(first))
        await api.gate.reached()  # p is parked; its Event is on its way
        scheduler.on_pod(None, k8s_pod("running", gpus=8, node="n1", phase="Succeeded"))
        clock[0] += 2.0  # past p's back-off
        second = scheduler.decide()
        assert [(d.pod.name, d.node) for d in second] == [("p", "n1")]
        api.gate.go.set()
        await telling
        # The first decision is told; the second one's placement still stands.
        held = (
            scheduler.cache.assumed_on(uid),
            uid in scheduler.binding.tickets,
            scheduler.queue.is_in_flight(uid),
        )
        await scheduler.settle_all(second)
        return held

    with caplog.at_level("INFO", logger="hybrid_scheduler"):
        held = asyncio.run(scenario())
    assert held == ("n1", True, True)
    assert api.binds == [("team-a/p", "n1")]
    assert "called off" not in caplog.text
    assert scheduler.cache.assumed_on(uid) == "n1"  # until the watch shows it bound
    assert uid not in scheduler.queue
    # PodScheduled=False is not written once the pod was decided again (it was bound).
    assert api.unschedulable == []
    assert [e[1] for e in api.events] == ["FailedScheduling", "Scheduled"]
