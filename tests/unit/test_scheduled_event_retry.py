"""A ``Scheduled`` Event whose post failed (the replica frozen mid-call, an answer lost)
is posted again under the same name, so that every bound pod is told exactly once."""

from __future__ import annotations

import asyncio

import pytest

from builders import k8s_node, k8s_pod
from fake_api import FakeApi
from hybrid_operator import reporting
from hybrid_operator.reporting import scheduled_event_name
from hybrid_operator.scheduler import Scheduler
from hybrid_operator.settings import OperatorSettings
from hybrid_policy.domain import PendingPod


class LostEventApi(FakeApi):
    """The first ``lost`` posts of a Scheduled Event time out: with ``landed`` the API
    server created the Event anyway (only the answer was lost), without it nothing came."""

    def __init__(self, lost: int, landed: bool) -> None:
        super().__init__()
        self.lost = lost
        self.landed = landed
        #: The name each Scheduled post carried, in turn.
        self.names: list[str | None] = []

    def event(
        self,
        involved: dict[str, str],
        reason: str,
        message: str,
        warning: bool = False,
        name: str | None = None,
    ) -> None:
        if reason == "Scheduled":
            self.names.append(name)
            if self.lost > 0:
                self.lost -= 1
                if self.landed:
                    super().event(involved, reason, message, warning, name)
                raise TimeoutError("Read timed out. (read timeout=0)")
        super().event(involved, reason, message, warning, name)


def _bind_one(api: FakeApi) -> None:
    scheduler = Scheduler(OperatorSettings(policy="binpack"), api, clock=lambda: 1000.0)
    scheduler.on_node(None, k8s_node("n1"))
    scheduler.on_pod(None, k8s_pod("a", gpus=8))
    asyncio.run(scheduler.schedule_once())
    asyncio.run(scheduler.flush_reports())


@pytest.fixture(autouse=True)
def _no_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reporting, "SCHEDULED_RETRY_S", (0.0, 0.0))


@pytest.mark.parametrize("landed", [True, False], ids=["answer-lost", "never-arrived"])
def test_a_failed_post_is_tried_again_under_the_same_name_and_told_once(landed: bool) -> None:
    api = LostEventApi(lost=2, landed=landed)
    _bind_one(api)
    assert api.binds == [("team-a/a", "n1")]
    assert [e[:2] for e in api.events if e[1] == "Scheduled"] == [("a", "Scheduled")]
    assert len(api.names) == 3
    assert len(set(api.names)) == 1 and api.names[0] is not None


def test_three_failures_give_up_without_stopping_scheduling() -> None:
    api = LostEventApi(lost=5, landed=False)
    _bind_one(api)
    assert api.binds == [("team-a/a", "n1")]
    assert len(api.names) == 3
    assert not [e for e in api.events if e[1] == "Scheduled"]


def test_the_name_is_the_pods_own_and_a_valid_object_name() -> None:
    def pod(name: str, uid: str) -> PendingPod:
        return PendingPod(namespace="ns", name=name, uid=uid, requests={}, created_at_s=0.0)

    long = "x" * 199 + "-" + "y" * 53
    names = [
        scheduled_event_name(pod("a", "uid-1")),
        scheduled_event_name(pod("a", "uid-2")),
        scheduled_event_name(pod(long, "uid-1")),
    ]
    assert names[0] == scheduled_event_name(pod("a", "uid-1"))
    assert len(set(names)) == 3
    assert all(len(n) <= 253 for n in names)
    assert not names[2].split(".scheduled.")[0].endswith(("-", "."))
