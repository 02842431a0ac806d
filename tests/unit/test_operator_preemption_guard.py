"""The operator applies the take-back guard (``guard=takeback``, the default): a team owed
a pod its preemption stopped takes nothing from the team that stopped it until a pod of
the same owner is bound again, and a preemptor bound to the room it took from a team is
never that team's victim; without the guard the cheapest is taken. A new leader (another
replica, or the same one restarted) knows both: the teams a preemptor took from are on
the pod, written by its Binding, and the owners owed are in the ledger's ConfigMap."""

import asyncio
from typing import Any

import pytest

from builders import k8s_node, k8s_pod, rfc3339
from fake_api import FakeApi
from hybrid_operator.k8s.preempt import PREEMPTIBLE, TOOK_FROM_ANNOTATION
from hybrid_operator.preemption_ledger import OWED_KEY, encode_owed, parse_owed
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


def _team_b_takes_n1(guard: str | None) -> tuple[Scheduler, FakeApi, list[float]]:
    """Three 4-GPU nodes: team-a's a1 (of Job job-a1) on n1 and a2 on n2, team-b's b0 on
    n3; team-b's b1 (priority 50) takes n1, the cheapest, and is bound there, running
    since 100 s before the clock. Since their start a1 ran 600 s, b0 1000 s, a2 3000 s."""
    clock = [NOW]
    api = FakeApi()
    rules = RULES if guard is None else f"{RULES},guard={guard}"
    settings = OperatorSettings(preemption=rules)
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
    scheduler.on_pod("MODIFIED", _b1_bound(api, clock[0]))
    return scheduler, api, clock


def _b1_bound(api: FakeApi, now_s: float) -> dict[str, Any]:
    """b1 as the API server shows it once bound to n1, running since 100 s before
    ``now_s``, with the annotations its Binding wrote."""
    bound = _pod("b1", ns="team-b", node="n1", started_s=now_s - 100, priority=50)
    written = api.annotations.get("team-b/b1", {})
    bound["metadata"]["annotations"].update(
        {k: v for k, v in written.items() if isinstance(v, str)}
    )
    return bound


def _victim_of_urgent(scheduler: Scheduler, api: FakeApi, clock: list[float]) -> list[str]:
    """team-a's urgent pod (priority 100) arrives: whom it preempts."""
    before = len(api.calls)
    scheduler.on_pod(None, _pod("urgent", priority=100))
    _pass(scheduler, clock)
    return [key for call, key, _ in api.calls[before:] if call == "delete"]


@pytest.mark.parametrize(
    ("guard", "victim"), [("none", "team-b/b1"), ("takeback", "team-a/a2"), (None, "team-a/a2")]
)
def test_a_team_owed_a_pod_takes_nothing_from_the_team_that_stopped_it(
    guard: str | None, victim: str
) -> None:
    scheduler, api, clock = _team_b_takes_n1(guard)
    # job-a1 has no pod bound again: team-a is owed by team-b. b1 took from team-a, and
    # b0, the next cheapest, is of the team that owes: with the guard team-a takes its
    # own a2.
    assert _victim_of_urgent(scheduler, api, clock) == [victim]


@pytest.mark.parametrize(
    ("guard", "victim"), [("none", "team-b/b1"), ("takeback", "team-b/b0"), (None, "team-b/b0")]
)
def test_a_pod_that_took_from_a_team_is_never_its_victim(guard: str | None, victim: str) -> None:
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
    holding = {"job-a": {"uid-a2"}}
    assert memory.owed({"job-a"}, holding, 0.0) == {"team-a": frozenset({"team-b"})}
    memory.runs("uid-a3", "job-a")
    assert memory.owed({"job-a"}, holding, 1.0) == {}
    memory.planned("team-b", [(victim, "job-a")], {})
    assert memory.owed(set(), {}, 100.0) == {"team-a": frozenset({"team-b"})}
    assert memory.owed(set(), {}, 100.0 + FORGET_OWNER_S) == {"team-a": frozenset({"team-b"})}
    assert memory.owed(set(), {}, 101.0 + FORGET_OWNER_S) == {}


def test_an_owner_read_from_the_ledger_that_runs_again_is_owed_nothing() -> None:
    # What a former leader wrote: job-a was taken from while a2 ran beside a1.
    memory = TakeMemory()
    victim = RunningPod("team-a", "a1", "uid-a1", "n1", {}, 0.0)
    memory.planned("team-b", [(victim, "job-a")], {"job-a": {"uid-a1", "uid-a2"}})
    read, problems = parse_owed({OWED_KEY: encode_owed(memory.waiting)})
    assert problems == []
    new_leader = TakeMemory(waiting=read)
    # a2 still runs: job-a still waits.
    holding = {"job-a": {"uid-a2"}}
    assert new_leader.owed({"job-a"}, holding, 0.0) == {"team-a": frozenset({"team-b"})}
    # a3, a new pod of job-a, was bound before the new leader listed: nothing is owed.
    holding = {"job-a": {"uid-a2", "uid-a3"}}
    assert new_leader.owed({"job-a"}, holding, 1.0) == {}
    assert new_leader.waiting == {}


def _new_leader(api: FakeApi, clock: list[float], b1: dict[str, Any]) -> Scheduler:
    """Another replica that lists the cluster as _team_b_takes_n1 left it, with b1 as
    given, and plans in its own first term."""
    scheduler = Scheduler(OperatorSettings(preemption=RULES), api, clock=lambda: clock[0])
    for node in ("n1", "n2", "n3"):
        scheduler.on_node(None, k8s_node(node, gpus=4))
    scheduler.on_pod(None, _pod("a2", node="n2", started_s=NOW - 3000))
    scheduler.on_pod(None, _pod("b0", ns="team-b", node="n3", started_s=NOW - 1000))
    scheduler.on_pod(None, b1)
    return scheduler


def test_a_new_leader_knows_who_took_from_whom() -> None:
    _, api, clock = _team_b_takes_n1(None)
    assert api.annotations["team-b/b1"][TOOK_FROM_ANNOTATION] == "team-a"
    b1 = _b1_bound(api, clock[0])
    # job-a1 has no pod bound again: the new leader reads that team-a is owed by team-b.
    assert _victim_of_urgent(_new_leader(api, clock, b1), api, clock) == ["team-a/a2"]


def test_a_new_leader_never_makes_a_preemptor_the_victim_of_the_team_it_took_from() -> None:
    _, api, clock = _team_b_takes_n1(None)
    b1 = _b1_bound(api, clock[0])
    # team-a is owed nothing (the ledger lost that), but b1's annotation stands.
    api.config_maps.clear()
    assert _victim_of_urgent(_new_leader(api, clock, b1), api, clock) == ["team-b/b0"]
    # Without the annotation the new leader would take b1, the cheapest.
    _, api, clock = _team_b_takes_n1(None)
    api.config_maps.clear()
    plain = _pod("b1", ns="team-b", node="n1", started_s=clock[0] - 100, priority=50)
    assert _victim_of_urgent(_new_leader(api, clock, plain), api, clock) == ["team-b/b1"]
