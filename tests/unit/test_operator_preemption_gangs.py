"""The operator preempts for a waiting gang as one preemptor: one hold for all its
members, each victim taken once (its Job counted once), every member nominated and bound
in the same pass once all the victims are gone, the whole hold ended when a member goes,
a call fails, a node goes, the victims outstay the timeout or leadership is lost; and
``preemptionPolicy: Never`` keeps a pod, or a gang with such a member, from preempting."""

import asyncio
from typing import Any

import pytest

from builders import k8s_node, k8s_pod, rfc3339
from electors import SwitchedElector
from fake_api import FakeApi
from hybrid_operator.k8s.api import BindOutcome
from hybrid_operator.k8s.preempt import PREEMPTIBLE, DeleteOutcome
from hybrid_operator.k8s.views import ObjectKind
from hybrid_operator.leader import LeaderElector
from hybrid_operator.preemption import HOLD_MARGIN_S, PER_TEAM, RETRY_AFTER_S
from hybrid_operator.scheduler import Scheduler
from hybrid_operator.settings import OperatorSettings

NOW = 1_000_000.0
RULES = "min_runtime_s=60,trigger_delay_s=0"
GROUP_LABEL = "scheduling.x-k8s.io/pod-group"
NODES = ("n1", "n2", "n3", "n4")
TEAM_A = ("a1", "a2", "a3", "a4")


def _running(name: str, node: str, **spec: Any) -> dict[str, Any]:
    """A pod of team-a's Job ``train`` that opted in, holding all 4 GPUs of ``node``,
    running for 10 minutes."""
    status = {"startTime": rfc3339(NOW - 600)}
    pod = k8s_pod(
        name, gpus=4, node=node, phase="Running", status=status, annotations={PREEMPTIBLE: "true"}
    )
    job = {"kind": "Job", "name": "train", "uid": "job-train", "controller": True}
    pod["metadata"]["ownerReferences"] = [job]
    pod["spec"].update(spec)
    return pod


def _member(name: str, never: bool = False) -> dict[str, Any]:
    """A 4-GPU member of team-b's PodGroup ``llama``."""
    pod = k8s_pod(name, gpus=4, ns="team-b", labels={GROUP_LABEL: "llama"})
    if never:
        pod["spec"]["preemptionPolicy"] = "Never"
    return pod


def _cluster(
    never: tuple[str, ...] = (), elector: LeaderElector | None = None
) -> tuple[Scheduler, FakeApi, list[float]]:
    """Four 4-GPU nodes, all held by team-a; team-b's gang of two 4-GPU pods waits."""
    clock = [NOW]
    api = FakeApi()
    settings = OperatorSettings(policy="binpack-gang", preemption=RULES, batch_interval_s=0.05)
    scheduler = Scheduler(settings, api, clock=lambda: clock[0], elector=elector)
    for node, name in zip(NODES, TEAM_A, strict=True):
        scheduler.on_node(None, k8s_node(node, gpus=4))
        scheduler.on_pod(None, _running(name, node))
    meta = {"name": "llama", "namespace": "team-b", "uid": "pg-llama"}
    group = {"metadata": meta, "spec": {"minMember": 2}}
    scheduler.on_event(ObjectKind.POD_GROUP, None, group)
    for name in ("b0", "b1"):
        scheduler.on_pod(None, _member(name, name in never))
    return scheduler, api, clock


def _pass(scheduler: Scheduler, clock: list[float], seconds: float = 1.0) -> None:
    asyncio.run(scheduler.schedule_once())
    clock[0] += seconds


async def _loop_for(scheduler: Scheduler, seconds: float) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, stop.set)
    await scheduler.run_forever(stop)


def _events(api: FakeApi, name: str, reason: str) -> list[str]:
    return [message for pod, r, message, _ in api.events if pod == name and r == reason]


def _victims(api: FakeApi) -> list[str]:
    return [key for call, key, _ in api.calls if call == "delete"]


def _delete_victim(scheduler: Scheduler, key: str) -> None:
    name = key.split("/")[1]
    scheduler.on_pod("DELETED", _running(name, NODES[TEAM_A.index(name)]))


def test_a_gang_is_held_whole_and_bound_in_one_pass_once_every_victim_is_gone() -> None:
    scheduler, api, clock = _cluster()
    _pass(scheduler, clock)
    victims = _victims(api)
    assert len(victims) == 2 and len(set(victims)) == 2  # each victim deleted once
    assert [c for c, _, _ in api.calls] == ["condition", "delete"] * 2 + ["nominate"] * 2
    nominated = dict(api.nominations)
    assert sorted(nominated) == ["team-b/b0", "team-b/b1"]
    nodes = {NODES[TEAM_A.index(v.split("/")[1])] for v in victims}
    assert set(nominated.values()) == nodes  # each member on a victim's node
    holds = scheduler.preemption.holds if scheduler.preemption else {}
    assert sorted(holds) == ["uid-b0", "uid-b1"] and len({id(h) for h in holds.values()}) == 1
    assert sorted(scheduler.cache.held) == ["uid-b0", "uid-b1"]
    assert scheduler.preemption
    assert scheduler.preemption.ledger.counts() == {"job-train": 1}  # one Job
    for name in ("b0", "b1"):
        [told] = _events(api, name, "Preempting")
        assert told.startswith(f"gang team-b/llama: preempting {', '.join(victims)} on ")
    for victim in victims:
        [told] = _events(api, victim.split("/")[1], "Preempted")
        assert told.startswith("preempted by gang team-b/llama on ")
    _delete_victim(scheduler, victims[0])
    for _ in range(3):
        _pass(scheduler, clock)
    assert api.binds == []  # never a member while a victim is still there
    _delete_victim(scheduler, victims[1])
    _pass(scheduler, clock)  # one pass binds both
    assert sorted(api.binds) == sorted(nominated.items())
    for _ in range(2):
        _pass(scheduler, clock)
    assert len(api.binds) == 2 and not scheduler.cache.held


def test_a_member_whose_binding_fails_joins_the_next_passes_until_the_gang_is_whole() -> None:
    scheduler, api, clock = _cluster()
    _pass(scheduler, clock)
    nominated = dict(api.nominations)
    api.outcomes["b1"] = BindOutcome.ERROR
    for victim in _victims(api):
        _delete_victim(scheduler, victim)
    _pass(scheduler, clock)
    assert sorted(api.binds) == sorted(nominated.items())  # b1's binding failed
    del api.outcomes["b1"]
    b0 = _member("b0")
    b0["spec"]["nodeName"] = nominated["team-b/b0"]
    scheduler.on_pod("MODIFIED", b0)  # the watch shows b0 bound
    for _ in range(3):
        _pass(scheduler, clock, 30)  # past the back-off
    b1 = [node for key, node in api.binds if key == "team-b/b1"]
    assert b1 == [nominated["team-b/b1"]] * 2  # tried again on its node, and bound
    assert [key for key, _ in api.binds].count("team-b/b0") == 1  # never bound twice


def test_a_member_deleted_during_the_hold_ends_it_for_the_whole_gang() -> None:
    scheduler, api, clock = _cluster()
    _pass(scheduler, clock)
    scheduler.on_pod("DELETED", _member("b1"))
    assert not scheduler.cache.held and "uid-b0" in scheduler.queue
    for victim in _victims(api):
        _delete_victim(scheduler, victim)
    _pass(scheduler, clock)
    [told] = [m for m in _events(api, "b0", "FailedScheduling") if "preemption" in m]
    assert told.startswith("gang team-b/llama: preemption on ")
    assert "failed: team-b/b1 was deleted; waiting, to be planned again" in told
    assert api.nominations[-1] == ("team-b/b0", None)  # its nomination is cleared
    assert api.binds == []


@pytest.mark.parametrize("ending", ["node", "timeout", "leadership"])
def test_a_node_gone_the_timeout_or_lost_leadership_ends_the_hold_for_every_member(
    ending: str,
) -> None:
    elector = SwitchedElector()
    scheduler, api, clock = _cluster(elector=elector)
    _pass(scheduler, clock)
    phase = scheduler.preemption
    assert phase is not None and sorted(scheduler.cache.held) == ["uid-b0", "uid-b1"]
    [gone] = [node for key, node in api.nominations if key == "team-b/b1" and node]
    if ending == "node":
        scheduler.on_node("DELETED", k8s_node(gone, gpus=4))
        expected = f"failed: node {gone} went away"
    elif ending == "timeout":
        _pass(scheduler, clock, 30 + HOLD_MARGIN_S + 1)  # the default grace period, and more
        expected = "failed: its victims were still on "
    else:
        asyncio.run(_loop_for(scheduler, 0.1))  # the loop sees this replica leading
        elector.leading = False
        expected = "failed: this replica is no longer the leader"
    if ending != "leadership":
        _pass(scheduler, clock)
        told = [m for name in ("b0", "b1") for m in _events(api, name, "FailedScheduling")]
    else:
        asyncio.run(_loop_for(scheduler, 0.1))  # it sees leadership lost: every hold ends
        told = [m for _, m in phase.to_tell]
    told = [m for m in told if m.startswith("gang team-b/llama: preemption on ")]
    assert len(told) == 2 and all(expected in m for m in told), told
    assert not scheduler.cache.held and not phase.holds
    assert "uid-b0" in scheduler.queue and "uid-b1" in scheduler.queue
    assert sorted(phase.not_before) == ["uid-b0", "uid-b1"]
    assert api.binds == []


@pytest.mark.parametrize("outcome", [DeleteOutcome.FORBIDDEN, DeleteOutcome.PRECONDITION])
def test_a_victim_that_cannot_be_deleted_ends_the_hold_for_every_member(
    outcome: DeleteOutcome,
) -> None:
    scheduler, api, clock = _cluster()
    for name in TEAM_A:
        api.delete_outcomes[name] = outcome
    _pass(scheduler, clock)
    assert [c for c, _, _ in api.calls] == ["condition", "delete"]  # no nomination
    [victim] = _victims(api)
    for name in ("b0", "b1"):
        [told] = _events(api, name, "FailedScheduling")
        assert told.startswith("gang team-b/llama: preemption on ")
        assert f"failed: could not delete {victim}: {outcome}" in told
        assert f"uid-{name}" in scheduler.queue
    assert not scheduler.cache.held
    for _ in range(3):
        _pass(scheduler, clock)
    assert len(api.calls) == 2  # neither member plans again before RETRY_AFTER_S
    clock[0] += RETRY_AFTER_S
    _pass(scheduler, clock)
    assert [c for c, _, _ in api.calls[2:]] == ["condition", "delete"]
    assert api.binds == []


def test_a_gang_counts_once_among_its_teams_candidates_and_is_barred_whole() -> None:
    scheduler, _api, clock = _cluster()
    for i in range(PER_TEAM - 1):
        scheduler.on_pod(None, k8s_pod(f"s{i}", gpus=4, ns="team-b"))
    phase = scheduler.preemption
    assert phase is not None
    picked = sorted(p.name for p in phase.candidates([], clock[0]))
    assert picked == sorted(["b0", "b1", *(f"s{i}" for i in range(PER_TEAM - 1))])
    phase.not_before["uid-b1"] = clock[0] + 1
    picked = sorted(p.name for p in phase.candidates([], clock[0]))
    assert picked == [f"s{i}" for i in range(PER_TEAM - 1)]


@pytest.mark.parametrize(
    ("never", "preempts"),
    [((), True), (("b1",), False), (("b0", "b1"), False)],
)
def test_a_gang_with_a_member_that_never_preempts_makes_no_plan(
    never: tuple[str, ...], preempts: bool
) -> None:
    scheduler, api, clock = _cluster(never)
    for _ in range(3):
        _pass(scheduler, clock, 30)
    assert bool(api.calls) is preempts


@pytest.mark.parametrize(
    ("policy", "preempts"), [(None, True), ("PreemptLowerPriority", True), ("Never", False)]
)
def test_a_pod_alone_preempts_unless_its_preemption_policy_is_never(
    policy: str | None, preempts: bool
) -> None:
    clock = [NOW]
    api = FakeApi()
    scheduler = Scheduler(OperatorSettings(preemption=RULES), api, clock=lambda: clock[0])
    for node, name in zip(NODES[:2], TEAM_A[:2], strict=True):
        scheduler.on_node(None, k8s_node(node, gpus=4))
        # A victim's own preemptionPolicy does not keep it from being preempted.
        scheduler.on_pod(None, _running(name, node, preemptionPolicy="Never"))
    pod = k8s_pod("b1", gpus=4, ns="team-b")
    if policy is not None:
        pod["spec"]["preemptionPolicy"] = policy
    scheduler.on_pod(None, pod)
    for _ in range(3):
        _pass(scheduler, clock, 30)
    assert bool(api.calls) is preempts
    if not preempts:
        assert _events(api, "b1", "FailedScheduling")


def test_an_unknown_preemption_policy_is_told_and_preempts_nobody() -> None:
    clock = [NOW]
    api = FakeApi()
    scheduler = Scheduler(OperatorSettings(preemption=RULES), api, clock=lambda: clock[0])
    scheduler.on_node(None, k8s_node("n1", gpus=4))
    scheduler.on_pod(None, _running("a1", "n1"))
    pod = k8s_pod("b1", gpus=4, ns="team-b")
    pod["spec"]["preemptionPolicy"] = "Sometimes"
    scheduler.on_pod(None, pod)
    _pass(scheduler, clock, 30)
    assert api.calls == []
    warnings = [m for name, _, m, warning in api.events if warning and name == "b1"]
    expected = "spec.preemptionPolicy='Sometimes': not Never or PreemptLowerPriority"
    assert any(m.startswith(expected) for m in warnings), warnings
