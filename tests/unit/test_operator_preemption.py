"""The operator preempts: the calls of a plan in kube-scheduler's order, the preemptor
bound once its victims are gone, failures that leave it waiting with a reason, and the
opt-in that only well-formed marks of our own pods give."""

import asyncio
from typing import Any

import pytest

from builders import k8s_node, k8s_pod, rfc3339
from fake_api import FakeApi
from hybrid_operator.k8s.preempt import (
    CHECKPOINT_ANNOTATION,
    PREEMPTIBLE,
    TOOK_FROM_ANNOTATION,
    DeleteOutcome,
    pod_marks,
)
from hybrid_operator.k8s.problems import Problem
from hybrid_operator.preemption import HOLD_MARGIN_S, RETRY_AFTER_S
from hybrid_operator.scheduler import Scheduler
from hybrid_operator.settings import OperatorSettings, SettingsError

NOW = 1_000_000.0
RULES = "min_runtime_s=60,trigger_delay_s=0"
OPTED_IN = {PREEMPTIBLE: "true"}


def _running(name: str, node: str, scheduler: str = "hybrid-scheduler", **kw: Any) -> Any:
    """A team-a pod holding all 4 GPUs of ``node``, running for 10 minutes."""
    status = {"startTime": rfc3339(NOW - 600)}
    return k8s_pod(
        name, gpus=4, node=node, phase="Running", scheduler=scheduler, status=status, **kw
    )


def _cluster(
    preemption: str = RULES, annotations: dict[str, str] | None = OPTED_IN, **kw: Any
) -> tuple[Scheduler, FakeApi, list[float]]:
    """Two 4-GPU nodes, both held by team-a; team-b's 4-GPU pod waits."""
    clock = [NOW]
    api = FakeApi()
    settings = OperatorSettings(preemption=preemption, **kw)
    scheduler = Scheduler(settings, api, clock=lambda: clock[0])
    for node in ("n1", "n2"):
        scheduler.on_node(None, k8s_node(node, gpus=4))
    scheduler.on_pod(None, _running("a1", "n1", annotations=annotations))
    scheduler.on_pod(None, _running("a2", "n2", annotations=annotations))
    scheduler.on_pod(None, k8s_pod("b1", gpus=4, ns="team-b"))
    return scheduler, api, clock


def _pass(scheduler: Scheduler, clock: list[float], seconds: float = 1.0) -> None:
    asyncio.run(scheduler.schedule_once())
    clock[0] += seconds


def _events(api: FakeApi, name: str, reason: str) -> list[str]:
    return [message for pod, r, message, _ in api.events if pod == name and r == reason]


def test_a_plan_marks_deletes_with_the_uid_then_nominates_and_binds_after_the_victim() -> None:
    scheduler, api, clock = _cluster()
    _pass(scheduler, clock)
    assert [(c, key) for c, key, _ in api.calls] == [
        ("condition", "team-a/a1"),
        ("delete", "team-a/a1"),
        ("nominate", "team-b/b1"),
    ]
    assert api.calls[1][2] == "uid-a1"  # the UID precondition
    assert api.calls[2][2] == "n1"
    assert api.binds == []  # not while the victim is still there
    expected = "preempted by team-b/b1 on n1: team-a holds 1.00 of an entitled 0.50"
    assert _events(api, "a1", "Preempted") == [expected]
    assert _events(api, "b1", "Preempting")[0].startswith("preempting team-a/a1 on n1 (reclaim")
    assert not _events(api, "b1", "FailedScheduling")
    _pass(scheduler, clock)
    assert api.binds == []
    assert scheduler.binding.latest == {}  # the held preemptor's decisions are not kept
    scheduler.on_pod("DELETED", _running("a1", "n1", annotations=OPTED_IN))
    for _ in range(3):
        _pass(scheduler, clock)
    assert api.binds == [("team-b/b1", "n1")]
    assert api.annotations["team-b/b1"]["hybrid-scheduler.io/decision"]["path"] == "preemption"
    victims = scheduler.metrics.registry.get_sample_value(
        "hybrid_scheduler_preemption_victims_total"
    )
    assert victims == 1
    bound = k8s_pod("b1", gpus=4, ns="team-b", node="n1", status={"nominatedNodeName": "n1"})
    scheduler.on_pod("MODIFIED", bound)
    for _ in range(2):
        _pass(scheduler, clock)
    assert api.nominations == [("team-b/b1", "n1"), ("team-b/b1", None)]  # cleared once


def test_a_failing_preemption_plan_leaves_the_pass_settled(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    scheduler, api, clock = _cluster()
    scheduler.on_pod(None, k8s_pod("c1", gpus=0, ns="team-c"))

    def broken(*_: Any) -> int:
        raise RuntimeError("a bug")

    assert scheduler.preemption is not None
    monkeypatch.setattr(scheduler.preemption, "plan", broken)
    with caplog.at_level("ERROR", logger="hybrid_scheduler"):
        _pass(scheduler, clock)
    assert "planning preemptions failed" in caplog.text
    assert [key for key, _ in api.binds] == ["team-c/c1"]  # bound all the same
    assert _events(api, "b1", "FailedScheduling")  # and its waiting pod told
    assert scheduler.queue.in_flight_count == 0


@pytest.mark.parametrize("policy", ["binpack", "fair-easy", "hybrid-reserve"])
def test_every_policy_binds_the_preemptor_once_on_the_victims_node(policy: str) -> None:
    scheduler, api, clock = _cluster(policy=policy)
    _pass(scheduler, clock)
    [(_, victim, _)] = [c for c in api.calls if c[0] == "delete"]
    node = "n1" if victim == "team-a/a1" else "n2"
    scheduler.on_pod("DELETED", _running(victim.split("/")[1], node, annotations=OPTED_IN))
    for _ in range(3):
        _pass(scheduler, clock)
    assert api.binds == [("team-b/b1", node)]


def test_no_other_pod_takes_the_room_while_the_calls_are_on_their_way() -> None:
    scheduler, _api, clock = _cluster()
    asyncio.run(scheduler.read_ledger())  # what a pass does first
    scheduler.decide()  # planned; the calls go with the pass's settling
    # The victim is gone before the preemption's calls came back, and a pod arrives.
    scheduler.on_pod("DELETED", _running("a1", "n1", annotations=OPTED_IN))
    scheduler.on_pod(None, k8s_pod("c1", gpus=4, ns="team-c"))
    clock[0] += 1
    [c1] = [d for d in scheduler.decide() if d.pod.name == "c1"]
    assert c1.node is None  # n1's room is held for team-b/b1


@pytest.mark.parametrize(
    "outcome",
    [DeleteOutcome.FORBIDDEN, DeleteOutcome.GONE, DeleteOutcome.PRECONDITION, DeleteOutcome.ERROR],
)
def test_a_victim_that_cannot_be_deleted_leaves_the_preemptor_waiting_with_the_reason(
    outcome: DeleteOutcome,
) -> None:
    scheduler, api, clock = _cluster()
    api.delete_outcomes["a1"] = outcome
    _pass(scheduler, clock)
    assert [c for c, _, _ in api.calls] == ["condition", "delete"]  # no nomination
    [message] = _events(api, "b1", "FailedScheduling")
    assert f"could not delete team-a/a1: {outcome}" in message
    assert "preemption on n1 failed" in message
    assert "uid-b1" in scheduler.queue and not scheduler.cache.held
    for _ in range(3):
        _pass(scheduler, clock)
    assert len(api.calls) == 2  # no new plan before RETRY_AFTER_S
    assert api.binds == []
    clock[0] += RETRY_AFTER_S
    _pass(scheduler, clock)
    assert [c for c, _, _ in api.calls[2:]] == ["condition", "delete"]  # planned again
    assert api.binds == []


def test_a_victim_still_there_after_the_timeout_ends_the_hold() -> None:
    scheduler, api, clock = _cluster()
    _pass(scheduler, clock)
    _pass(scheduler, clock, 30 + HOLD_MARGIN_S + 1)  # the default grace period, and more
    _pass(scheduler, clock)
    told = _events(api, "b1", "FailedScheduling")
    assert any("its victims were still on n1 after 150 s" in m for m in told), told
    assert api.nominations[-1] == ("team-b/b1", None)  # the nomination is cleared
    assert not scheduler.cache.held and api.binds == []


def test_preemption_off_deletes_nothing() -> None:
    scheduler, api, clock = _cluster(preemption="off", preemption_all_pods=True)
    for _ in range(3):
        _pass(scheduler, clock, 120)
    assert api.calls == []
    assert _events(api, "b1", "FailedScheduling")


def test_pods_of_other_schedulers_are_never_victims() -> None:
    clock = [NOW]
    api = FakeApi()
    settings = OperatorSettings(preemption=RULES, preemption_all_pods=True)
    scheduler = Scheduler(settings, api, clock=lambda: clock[0])
    labelled = {"metadata": {"name": "team-a", "labels": {PREEMPTIBLE: "true"}}}
    scheduler.on_namespace(None, labelled)
    for node in ("n1", "n2"):
        scheduler.on_node(None, k8s_node(node, gpus=4))
        other = _running(f"a-{node}", node, "default-scheduler", annotations=OPTED_IN)
        scheduler.on_pod(None, other)
    scheduler.on_pod(None, k8s_pod("b1", gpus=4, ns="team-b"))
    for _ in range(3):
        _pass(scheduler, clock, 120)
    assert api.calls == []


def test_malformed_marks_get_a_warning_and_opt_nobody_in() -> None:
    bad = {PREEMPTIBLE: "yes", CHECKPOINT_ANNOTATION: "soon"}
    clock = [NOW]
    api = FakeApi()
    scheduler = Scheduler(OperatorSettings(preemption=RULES), api, clock=lambda: clock[0])
    scheduler.on_namespace(None, {"metadata": {"name": "team-a", "labels": {PREEMPTIBLE: "1"}}})
    for node in ("n1", "n2"):
        scheduler.on_node(None, k8s_node(node, gpus=4))
    # Created pending (the operator reads its marks), then bound and running.
    scheduler.on_pod(None, k8s_pod("a1", gpus=4, annotations=bad))
    scheduler.on_pod(None, _running("a2", "n2", annotations=bad))
    _pass(scheduler, clock)
    scheduler.on_pod("MODIFIED", _running("a1", "n1", annotations=bad))
    scheduler.on_pod(None, k8s_pod("b1", gpus=4, ns="team-b"))
    for _ in range(3):
        _pass(scheduler, clock, 120)
    assert api.calls == []
    warnings = {(name, message) for name, r, message, warning in api.events if warning}
    assert (
        "a1",
        f"metadata.annotations[{PREEMPTIBLE}]='yes': not true or false; not opting in by it",
    ) in warnings
    field = f"metadata.annotations[{CHECKPOINT_ANNOTATION}]='soon'"
    assert any(name == "a1" and m.startswith(field) for name, m in warnings)
    assert any(name == "team-a" and f"labels[{PREEMPTIBLE}]='1'" in m for name, m in warnings)


@pytest.mark.parametrize(
    ("label", "annotations", "victim"),
    [("true", None, True), ("true", {PREEMPTIBLE: "false"}, False), (None, None, False)],
)
def test_a_namespace_label_opts_its_pods_in_unless_the_pod_opts_out(
    label: str | None, annotations: dict[str, str] | None, victim: bool
) -> None:
    scheduler, api, clock = _cluster(annotations=annotations)
    labels = {PREEMPTIBLE: label} if label else {}
    scheduler.on_namespace(None, {"metadata": {"name": "team-a", "labels": labels}})
    _pass(scheduler, clock)
    assert bool(api.calls) is victim


def test_a_bad_preemption_setting_names_the_setting_and_value() -> None:
    with pytest.raises(SettingsError, match=r"^preemption: .*'soon'"):
        OperatorSettings(preemption="soon").validate()


def test_the_hold_lasts_the_victims_grace_period() -> None:
    clock = [NOW]
    api = FakeApi()
    scheduler = Scheduler(OperatorSettings(preemption=RULES), api, clock=lambda: clock[0])
    for node in ("n1", "n2"):
        scheduler.on_node(None, k8s_node(node, gpus=4))
        slow = _running(f"a-{node}", node, annotations=OPTED_IN)
        slow["spec"]["terminationGracePeriodSeconds"] = 600
        scheduler.on_pod(None, slow)
    scheduler.on_pod(None, k8s_pod("b1", gpus=4, ns="team-b"))
    _pass(scheduler, clock, 600 + HOLD_MARGIN_S - 10)
    _pass(scheduler, clock, 11)
    assert scheduler.cache.held  # still within the grace period and the margin
    _pass(scheduler, clock)
    assert not scheduler.cache.held
    told = _events(api, "b1", "FailedScheduling")
    assert any("still on n1 after 720 s" in m for m in told), told


@pytest.mark.parametrize(
    ("raw", "teams", "told"),
    [
        ("team-a", {"team-a"}, False),
        ("team-a, team-c", {"team-a", "team-c"}, False),
        ("", set(), False),
        ("Team A", set(), True),
        ("team-a,,team-b", set(), True),
    ],
)
def test_the_teams_a_preemptor_took_from_are_read_from_its_annotation(
    raw: str, teams: set[str], told: bool
) -> None:
    problems: list[Problem] = []
    marks = pod_marks({"uid": "u"}, {}, {TOOK_FROM_ANNOTATION: raw}, problems)
    assert marks.took_from == teams
    assert [p.message for p in problems] == (
        [
            f"metadata.annotations[{TOOK_FROM_ANNOTATION}]={raw!r}: not a comma-separated "
            "list of namespaces; remembering no take of the pod"
        ]
        if told
        else []
    )
