"""The operator applies the take-back guard (``guard=takeback``): a team owed a pod its
preemption stopped takes nothing from the team that stopped it until a pod of the same
owner is bound again, and a preemptor bound to the room it took from a team is never
that team's victim; without the guard the cheapest is taken."""

import asyncio
from typing import Any

import pytest

from builders import k8s_node, k8s_pod, rfc3339
from fake_api import FakeApi
from hybrid_operator.k8s.preempt import PREEMPTIBLE
from hybrid_operator.preemption_takes import FORGET_OWNER_S, TakeMemory
from hybrid_operator.scheduler import Scheduler
from hybrid_operator.settings import OperatorSettings
from hybrid_policy.preemption.model import RunningPod

NOW = 1_000_000.0
RULES = "reasons=reclaim+priority,min_runtime_s=60,trigger_delay_s=0"
OPTED_IN = {PREEMPTIBLE: "true"}


def _pod(
    name: str,
    ns: str = "team-a",
    node: str | None = None,
    started_s: float | None = None,
    owner: str | None = None,
    priority: int = 0,
) -> dict[str, Any]:
    """A 4-GPU opted-in pod, waiting or running on ``node`` since ``started_s``."""
    status = {} if started_s is None else {"startTime": rfc3339(started_s)}
    phase = "Pending" if node is None else "Running"
    pod = k8s_pod(name, gpus=4, node=node, phase=phase, ns=ns, annotations=OPTED_IN, status=status)
    if owner is not None:
        pod["metadata"]["ownerReferences"] = [
            {"kind": "Job", "name": owner, "uid": f"uid-{owner}", "controller": True}
        ]
    pod["spec"]["priority"] = priority
    return pod


def _pass(scheduler: Scheduler, clock: list[float], seconds: float = 1.0) -> None:
    asyncio.run(scheduler.schedule_once())
    clock[0] += seconds


def _team_b_takes_n1(guard: str) -> tuple[Scheduler, FakeApi, list[float]]:
    """Three 4-GPU nodes: team-a's a1 (of Job job-a1) on n1 and a2 on n2, team-b's b0 on
    n3; team-b's b1 (priority 50) takes n1, the cheapest, and is bound there, running
    since 100 s before the clock. Since their start a1 ran 600 s, b0 1000 s, a2 3000 s."""
    clock = [NOW]
    api = FakeApi()
    settings = OperatorSettings(preemption=f"{RULES},guard={guard}")
    scheduler = Scheduler(settings, api, clock=lambda: clock[0])
    for node in ("n1", "n2", "n3"):
        scheduler.on_node(None, k8s_node(node, gpus=4))
    scheduler.on_pod(None, _pod("a1", node="n1", started_s=NOW - 600, owner="job-a1"))
    scheduler.on_pod(None, _pod("a2", node="n2", started_s=NOW - 3000))
    scheduler.on_pod(None, _pod("b0", ns="team-b", node="n3", started_s=NOW - 1000))
    scheduler.on_pod(None, _pod("b1", ns="team-b", priority=50))
    _pass(scheduler, clock)
    assert [key for call, key, _ in api.calls if call == "delete"] == ["team-a/a1"]
    scheduler.on_pod("DELETED", _pod("a1", node="n1", started_s=NOW - 600, owner="job-a1"))
    for _ in range(3):
        _pass(scheduler, clock)
    assert api.binds == [("team-b/b1", "n1")]
    clock[0] += 120
    bound = _pod("b1", ns="team-b", node="n1", started_s=clock[0] - 100, priority=50)
    scheduler.on_pod("MODIFIED", bound)
    return scheduler, api, clock


def _victim_of_urgent(scheduler: Scheduler, api: FakeApi, clock: list[float]) -> list[str]:
    """team-a's urgent pod (priority 100) arrives: whom it preempts."""
    before = len(api.calls)
    scheduler.on_pod(None, _pod("urgent", priority=100))
    _pass(scheduler, clock)
    return [key for call, key, _ in api.calls[before:] if call == "delete"]


@pytest.mark.parametrize(("guard", "victim"), [("none", "team-b/b1"), ("takeback", "team-a/a2")])
def test_a_team_owed_a_pod_takes_nothing_from_the_team_that_stopped_it(
    guard: str, victim: str
) -> None:
    scheduler, api, clock = _team_b_takes_n1(guard)
    # job-a1 has no pod bound again: team-a is owed by team-b. b1 took from team-a, and
    # b0, the next cheapest, is of the team that owes: with the guard team-a takes its
    # own a2.
    assert _victim_of_urgent(scheduler, api, clock) == [victim]


@pytest.mark.parametrize(("guard", "victim"), [("none", "team-b/b1"), ("takeback", "team-b/b0")])
def test_a_pod_that_took_from_a_team_is_never_its_victim(guard: str, victim: str) -> None:
    scheduler, api, clock = _team_b_takes_n1(guard)
    # job-a1's new pod is bound to n2 once a2 is gone: team-a is owed nothing any more.
    scheduler.on_pod("DELETED", _pod("a2", node="n2", started_s=NOW - 3000))
    scheduler.on_pod(None, _pod("a3", owner="job-a1"))
    _pass(scheduler, clock)
    assert api.binds[-1] == ("team-a/a3", "n2")
    running = _pod("a3", node="n2", started_s=clock[0] - 2000, owner="job-a1")
    scheduler.on_pod("MODIFIED", running)
    # b1 is still the cheapest victim (it ran 100 s), but it took from team-a; b0 (about
    # 1100 s) comes next, before team-a's own a3 (2000 s).
    assert _victim_of_urgent(scheduler, api, clock) == [victim]


def test_an_owner_waits_until_a_new_pod_of_it_runs_or_it_is_gone_ten_minutes() -> None:
    memory = TakeMemory()
    victim = RunningPod("team-a", "a1", "uid-a1", "n1", {}, 0.0)
    # job-a's a1 is taken; its a2 was running beside it and is not a new pod.
    memory.planned("team-b", [(victim, "job-a")], {"job-a": {"uid-a1", "uid-a2"}})
    memory.runs("uid-a2", "job-a")
    memory.runs("uid-a1", "job-a")
    assert memory.owed({"job-a"}, 0.0) == {"team-a": frozenset({"team-b"})}
    memory.runs("uid-a3", "job-a")
    assert memory.owed({"job-a"}, 1.0) == {}
    memory.planned("team-b", [(victim, "job-a")], {})
    assert memory.owed(set(), 100.0) == {"team-a": frozenset({"team-b"})}
    assert memory.owed(set(), 100.0 + FORGET_OWNER_S) == {"team-a": frozenset({"team-b"})}
    assert memory.owed(set(), 101.0 + FORGET_OWNER_S) == {}
