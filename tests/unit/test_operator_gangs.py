"""Gangs in the operator: PodGroups and indexed Jobs become gangs placed all or nothing,
never split by the batch limit, finished first after a failed binding, with PodGroup status
and Events, and every kind of bad input told on the object."""

import asyncio
import logging
from typing import Any

import pytest

from builders import k8s_node, k8s_pod
from electors import SwitchedElector
from fake_api import FakeApi
from hybrid_operator.gangs import GroupPhase, WaitReason, group_status
from hybrid_operator.k8s.api import BindOutcome
from hybrid_operator.k8s.calls import Listing
from hybrid_operator.k8s.convert import Body
from hybrid_operator.k8s.views import ObjectKind, pod_view
from hybrid_operator.scheduler import Scheduler
from hybrid_operator.settings import OperatorSettings
from loop_runner import run_with_listings

GROUP_LABEL = "scheduling.x-k8s.io/pod-group"
JOB_LABEL = "batch.kubernetes.io/job-name"


def _scheduler(
    nodes: int = 2, clock: list[float] | None = None, **settings: Any
) -> tuple[Scheduler, FakeApi]:
    api = FakeApi()
    t = clock if clock is not None else [1000.0]
    policy = settings.pop("policy_name", "binpack-gang")
    options = OperatorSettings(policy=policy, initial_backoff_s=5.0, **settings)
    scheduler = Scheduler(options, api, clock=lambda: t[0])
    for i in range(nodes):
        scheduler.on_node(None, k8s_node(f"n{i}"))
    return scheduler, api


def pod_group(name: str, min_member: object = 3, ns: str = "team-a", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {} if min_member is None else {"minMember": min_member}
    return {
        "metadata": {"name": name, "namespace": ns, "uid": f"pg-{name}"},
        "spec": {**body, **spec},
    }


def job(
    name: str, parallelism: int = 3, indexed: bool = True, ns: str = "team-a"
) -> dict[str, Any]:
    spec: dict[str, Any] = {"parallelism": parallelism, "completions": parallelism}
    if indexed:
        spec["completionMode"] = "Indexed"
    return {"metadata": {"name": name, "namespace": ns, "uid": f"job-{name}"}, "spec": spec}


def member(name: str, group: str = "llm", gpus: int = 8, **kwargs: Any) -> dict[str, Any]:
    return k8s_pod(name, gpus, labels={GROUP_LABEL: group}, **kwargs)


def job_pod(name: str, job_name: str = "train", gang: str | None = "true") -> dict[str, Any]:
    annotations = {} if gang is None else {"hybrid-scheduler.io/gang": gang}
    return k8s_pod(name, 8, labels={JOB_LABEL: job_name}, annotations=annotations, owner=job_name)


def bound(api: FakeApi) -> list[str]:
    return sorted(key.split("/")[1] for key, _ in api.binds)


def events(api: FakeApi, reason: str) -> list[tuple[str, str, str, bool]]:
    return [e for e in api.events if e[1] == reason]


def run(scheduler: Scheduler) -> None:
    asyncio.run(scheduler.schedule_once())


def test_a_podgroup_that_does_not_fit_binds_nothing_and_says_why() -> None:
    clock = [1000.0]
    scheduler, api = _scheduler(nodes=2, clock=clock)
    scheduler.on_event(ObjectKind.POD_GROUP, None, pod_group("llm", 3))
    for i in range(3):
        scheduler.on_pod(None, member(f"w{i}"))
    run(scheduler)
    clock[0] += 20  # retried, and a member changes: nothing new to say
    scheduler.queue.move_all_to_active()
    scheduler.on_pod("MODIFIED", member("w0"))
    assert scheduler.gang_reports.due()
    run(scheduler)
    assert api.binds == []
    failed = events(api, "FailedScheduling")
    assert {e[0] for e in failed} == {"w0", "w1", "w2"}
    assert failed[0][2] == "gang team-a/llm: 2 of 3 pods would fit; none is placed until all fit"
    assert sorted(api.unschedulable) == ["team-a/w0", "team-a/w1", "team-a/w2"]  # PodScheduled
    (where, status), *rest = api.group_status
    assert rest == []  # patched once, not once per pass
    assert where == "team-a/llm"
    assert (status["phase"], status["scheduled"]) == ("Pending", 0)
    (condition,) = status["conditions"]
    assert (condition["type"], condition["status"]) == ("Scheduled", "False")
    assert (condition["reason"], condition["message"]) == ("Unschedulable", failed[0][2])
    assert len(events(api, "Unschedulable")) == 1  # one Event on the PodGroup per change
    scheduler.on_node(None, k8s_node("n2"))
    clock[0] += 40  # past the back-off
    run(scheduler)
    assert bound(api) == ["w0", "w1", "w2"]


def test_a_gang_is_never_split_by_the_batch_limit() -> None:
    scheduler, api = _scheduler(nodes=4, batch_size=2)
    scheduler.on_event(ObjectKind.POD_GROUP, None, pod_group("llm", 3))
    for i in range(3):
        scheduler.on_pod(None, member(f"w{i}"))
    decisions = asyncio.run(scheduler.schedule_once())
    assert len(decisions) == 3
    assert bound(api) == ["w0", "w1", "w2"]


def test_a_binding_that_fails_midway_gets_the_rest_of_the_gang_served_next_pass() -> None:
    scheduler, api = _scheduler(nodes=3)
    scheduler.on_event(ObjectKind.POD_GROUP, None, pod_group("llm", 3))
    for i in range(3):
        scheduler.on_pod(None, member(f"w{i}"))
    api.outcomes["w1"] = BindOutcome.ERROR
    run(scheduler)
    for key, node in api.binds:
        name = key.split("/")[1]
        if name != "w1":  # the watch shows the two bound members
            scheduler.on_pod("MODIFIED", member(name, node=node))
    del api.outcomes["w1"]
    # w1 backs off for 5 s, yet the next pass (same instant) takes it: its gang is short.
    decisions = asyncio.run(scheduler.schedule_once())
    assert [d.pod.name for d in decisions] == ["w1"]
    assert decisions[0].placed
    assert [key for key, _ in api.binds].count("team-a/w1") == 2


def test_a_late_member_is_placed_like_a_single_pod() -> None:
    scheduler, api = _scheduler(nodes=3)
    scheduler.on_event(ObjectKind.POD_GROUP, None, pod_group("llm", 2))
    for i in range(2):
        scheduler.on_pod(None, member(f"w{i}", node=f"n{i}", phase="Running"))
    scheduler.on_pod(None, member("late"))
    run(scheduler)
    assert bound(api) == ["late"]


def test_a_pod_whose_podgroup_does_not_exist_waits_for_it() -> None:
    scheduler, api = _scheduler(nodes=2)
    scheduler.on_pod(None, member("w0", gpus=1))
    run(scheduler)
    assert api.binds == []
    (failed,) = events(api, "FailedScheduling")
    assert failed[3] is True
    assert "PodGroup llm does not exist" in failed[2]
    assert api.unschedulable == ["team-a/w0"]
    assert scheduler.metrics.pending._value.get() == 1
    scheduler.on_event(ObjectKind.POD_GROUP, "ADDED", pod_group("llm", 1))
    run(scheduler)
    assert bound(api) == ["w0"]


def test_a_deleted_podgroup_holds_its_waiting_pods_again() -> None:
    scheduler, api = _scheduler(nodes=1)
    scheduler.on_event(ObjectKind.POD_GROUP, None, pod_group("llm", 2))
    for i in range(2):
        scheduler.on_pod(None, member(f"w{i}"))
    run(scheduler)
    scheduler.on_event(ObjectKind.POD_GROUP, "DELETED", pod_group("llm", 2))
    assert set(scheduler.gang_feed.held) == {"uid-w0", "uid-w1"}
    assert len(scheduler.queue) == 0
    scheduler.on_pod("DELETED", member("w0"))
    run(scheduler)
    assert set(scheduler.gang_feed.held) == {"uid-w1"}
    assert ("team-a", "llm") not in scheduler.gang_reports.written
    assert "does not exist" in api.events[-1][2]


@pytest.mark.parametrize("min_member", [None, 0, "3"])
def test_a_podgroup_without_a_usable_min_member_schedules_its_pods_alone(
    min_member: object,
) -> None:
    scheduler, api = _scheduler(nodes=1)
    scheduler.on_event(ObjectKind.POD_GROUP, None, pod_group("llm", min_member))
    scheduler.on_pod(None, member("w0"))
    run(scheduler)
    assert bound(api) == ["w0"]
    (invalid,) = events(api, "InvalidField")
    assert invalid[0] == "llm"
    assert invalid[2].startswith("spec.minMember=")
    assert "scheduling its pods one by one" in invalid[2]


def test_an_indexed_job_with_the_gang_annotation_is_a_gang_named_after_it() -> None:
    scheduler, api = _scheduler(nodes=2)
    scheduler.on_event(ObjectKind.JOB, None, job("train", parallelism=3))
    for i in range(3):
        scheduler.on_pod(None, job_pod(f"train-{i}"))
    run(scheduler)
    assert api.binds == []
    (message,) = {e[2] for e in events(api, "FailedScheduling")}
    assert message.startswith("gang team-a/train: 2 of 3 pods would fit")
    assert api.group_status == []  # a Job's gang has no PodGroup to write on


@pytest.mark.parametrize(
    ("parallelism", "indexed", "gang", "ns_label", "is_gang"),
    [
        (3, True, None, True, True),  # the namespace opts in
        (3, True, "false", True, False),  # the pod opts out
        (3, True, None, False, False),  # neither
        (3, False, "true", False, False),  # not indexed
        (1, True, "true", False, False),  # one pod at a time
    ],
)
def test_which_jobs_are_gangs(
    parallelism: int, indexed: bool, gang: str | None, ns_label: bool, is_gang: bool
) -> None:
    scheduler, api = _scheduler(nodes=2)
    labels = {"hybrid-scheduler.io/gang-jobs": "true"} if ns_label else {}
    scheduler.on_namespace(None, {"metadata": {"name": "team-a", "labels": labels}})
    scheduler.on_event(ObjectKind.JOB, None, job("train", parallelism, indexed))
    for i in range(3):
        scheduler.on_pod(None, job_pod(f"train-{i}", gang=gang))
    run(scheduler)
    assert len(api.binds) == (0 if is_gang else 2)


def test_a_bad_gang_annotation_and_a_conflicting_claim_are_told_on_the_pod() -> None:
    bad = k8s_pod("p", labels={JOB_LABEL: "train"}, annotations={"hybrid-scheduler.io/gang": "yes"})
    view, problems = pod_view(bad)
    assert view is not None and view.claim.job_gang is None
    (problem,) = problems
    assert problem.message.startswith(
        "metadata.annotations[hybrid-scheduler.io/gang]='yes': not true or false"
    )
    both = k8s_pod(
        "q",
        labels={JOB_LABEL: "train", GROUP_LABEL: "llm"},
        annotations={"hybrid-scheduler.io/gang": "true"},
    )
    scheduler, api = _scheduler(nodes=2)
    scheduler.on_event(ObjectKind.JOB, None, job("train", parallelism=2))
    scheduler.on_event(ObjectKind.POD_GROUP, None, pod_group("llm", 1))
    scheduler.on_pod(None, both)
    run(scheduler)
    assert bound(api) == ["q"]  # the PodGroup (one pod) wins over the Job (two)
    (invalid,) = events(api, "InvalidField")
    assert "names the PodGroup llm" in invalid[2] and invalid[2].endswith("using the PodGroup")


def _views(*phases: tuple[str, str | None]) -> list[Any]:
    out = []
    for i, (phase, node) in enumerate(phases):
        view, _ = pod_view(k8s_pod(f"p{i}", node=node, phase=phase))
        out.append(view)
    return out


@pytest.mark.parametrize(
    ("phases", "phase", "counts"),
    [
        ([("Pending", None)] * 2, GroupPhase.PENDING, (0, 0, 0, 0)),
        ([("Pending", "n1"), ("Pending", "n2")], GroupPhase.SCHEDULED, (2, 0, 0, 0)),
        ([("Running", "n1"), ("Running", "n2")], GroupPhase.RUNNING, (2, 2, 0, 0)),
        ([("Succeeded", "n1"), ("Running", "n2")], GroupPhase.RUNNING, (2, 1, 1, 0)),
        ([("Succeeded", "n1"), ("Succeeded", "n2")], GroupPhase.FINISHED, (2, 0, 2, 0)),
        ([("Failed", "n1"), ("Running", "n2")], GroupPhase.FAILED, (1, 1, 0, 1)),
    ],
)
def test_podgroup_status_counts_and_phase(
    phases: list[tuple[str, str | None]], phase: GroupPhase, counts: tuple[int, ...]
) -> None:
    status = group_status(("team-a", "llm"), 2, _views(*phases), None)
    assert status.phase is phase
    assert (status.scheduled, status.running, status.succeeded, status.failed) == counts
    assert status.waiting is (phase is GroupPhase.PENDING or phase is GroupPhase.FAILED)


def test_a_min_member_above_the_jobs_parallelism_waits_with_a_reason() -> None:
    scheduler, api = _scheduler(nodes=4)
    scheduler.on_event(ObjectKind.JOB, None, job("train", parallelism=2, indexed=False))
    scheduler.on_event(ObjectKind.POD_GROUP, None, pod_group("llm", 3))
    for i in range(2):
        pod = member(f"w{i}", owner="train")
        pod["metadata"]["labels"][JOB_LABEL] = "train"
        scheduler.on_pod(None, pod)
    run(scheduler)
    assert api.binds == []
    status = api.group_status[-1][1]
    (condition,) = status["conditions"]
    assert condition["reason"] == WaitReason.TOO_FEW_MEMBERS.value
    assert "spec.minMember=3 is more than Job train's parallelism 2" in condition["message"]
    (told,) = events(api, "TooFewMembers")
    assert told[3] is True


def test_schedule_timeout_posts_one_gang_timeout_and_the_gang_keeps_waiting() -> None:
    clock = [1000.0]
    scheduler, api = _scheduler(nodes=1, clock=clock)
    scheduler.on_event(ObjectKind.POD_GROUP, None, pod_group("llm", 2, scheduleTimeoutSeconds=60))
    scheduler.on_pod(None, member("w0"))
    run(scheduler)
    assert events(api, "GangTimeout") == []
    assert api.group_status[-1][1]["scheduleStartTime"] == "1970-01-01T00:16:40Z"
    clock[0] += 61
    assert scheduler.gang_reports.due()
    run(scheduler)
    clock[0] += 61
    run(scheduler)
    (timeout,) = events(api, "GangTimeout")
    assert timeout[3] is True
    assert timeout[2] == (
        "gang team-a/llm: 0 of 2 pods bound, 1 exists, after scheduleTimeoutSeconds=60; "
        "none is bound until all fit; it keeps waiting"
    )
    scheduler.on_pod(None, member("w1"))
    run(scheduler)
    assert api.binds == []  # two 8-GPU pods on one node: still waiting
    scheduler.on_node(None, k8s_node("n1"))
    clock[0] += 20  # past the back-off
    run(scheduler)
    assert bound(api) == ["w0", "w1"]
    assert scheduler.metrics.gangs_waiting._value.get() == 1  # bound, not yet seen bound


def test_without_the_podgroup_crd_the_operator_says_so_once_and_job_gangs_work(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scheduler, api = _scheduler(nodes=3)
    pods: list[Body] = [job_pod(f"train-{i}") for i in range(3)]
    listing = Listing([], [k8s_node(f"n{i}") for i in range(3)], pods, None, [job("train")])
    with caplog.at_level(logging.WARNING, "hybrid_scheduler"):
        scheduler.reconcile(listing, scheduler.cache.ticks())
        scheduler.reconcile(listing, scheduler.cache.ticks())
    said = [r for r in caplog.records if "PodGroup CRD" in r.getMessage()]
    assert len(said) == 1
    run(scheduler)
    assert bound(api) == ["train-0", "train-1", "train-2"]


def test_metrics_count_gangs_waiting_and_placed() -> None:
    scheduler, api = _scheduler(nodes=2)
    scheduler.on_event(ObjectKind.POD_GROUP, None, pod_group("llm", 2))
    for i in range(2):
        scheduler.on_pod(None, member(f"w{i}"))
    scheduler.on_event(ObjectKind.POD_GROUP, None, pod_group("big", 3))
    for i in range(3):
        scheduler.on_pod(None, member(f"b{i}", group="big"))
    run(scheduler)
    for key, node in api.binds:
        scheduler.on_pod("MODIFIED", member(key.split("/")[1], node=node))
    run(scheduler)
    assert scheduler.metrics.gangs_placed._value.get() == 1
    assert scheduler.metrics.gangs_waiting._value.get() == 1
    status = dict(api.group_status)["team-a/llm"]
    assert (status["phase"], status["scheduled"]) == ("Scheduled", 2)
    assert status["conditions"][0]["status"] == "True"


def test_a_policy_that_places_pods_one_by_one_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scheduler, _ = _scheduler(nodes=2, policy_name="kube-default")
    scheduler.on_event(ObjectKind.POD_GROUP, None, pod_group("llm", 3))
    with caplog.at_level(logging.WARNING, "hybrid_scheduler"):
        for i in range(3):
            scheduler.on_pod(None, member(f"w{i}"))
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        "policy kube-default places pods one by one: team-a/w0's gang is not placed all or "
        "nothing (gang-aware policies: docs/gangs.md)"
    ]


def test_a_podgroup_deleted_while_the_watch_was_down_goes_with_the_next_listing() -> None:
    scheduler, _ = _scheduler(nodes=1)
    scheduler.on_event(ObjectKind.POD_GROUP, None, pod_group("llm", 2))
    scheduler.on_event(ObjectKind.POD_GROUP, None, pod_group("kept", 2))
    pods: list[Body] = [member("w0")]
    kept: list[Body] = [pod_group("kept", 2)]
    scheduler.reconcile(Listing([], [k8s_node("n0")], pods, kept), scheduler.cache.ticks())
    assert set(scheduler.gangs.groups) == {("team-a", "kept")}
    assert set(scheduler.gang_feed.held) == {"uid-w0"}  # its PodGroup is gone: it waits for it


def test_a_status_already_written_is_not_written_again_after_a_restart() -> None:
    scheduler, api = _scheduler(nodes=2)
    scheduler.on_event(ObjectKind.POD_GROUP, None, pod_group("llm", 2))
    for i in range(2):
        scheduler.on_pod(None, member(f"w{i}", node=f"n{i}", phase="Running"))
    run(scheduler)
    ((_, written),) = api.group_status
    assert written["phase"] == "Running" and written["running"] == 2
    assert written["scheduleStartTime"] == "1970-01-01T00:16:40Z"  # placed without waiting
    # A new leader finds the status written on the object.
    successor, fresh = _scheduler(nodes=2)
    successor.on_event(ObjectKind.POD_GROUP, None, {**pod_group("llm", 2), "status": written})
    for i in range(2):
        successor.on_pod(None, member(f"w{i}", node=f"n{i}", phase="Running"))
    run(successor)
    assert fresh.group_status == []


def test_a_pod_seen_before_its_job_waits_quietly_for_it() -> None:
    scheduler, api = _scheduler(nodes=2)
    for i in range(2):
        scheduler.on_pod(None, job_pod(f"train-{i}"))
    run(scheduler)
    assert (api.binds, api.events) == ([], [])
    assert set(scheduler.gang_feed.held) == {"uid-train-0", "uid-train-1"}
    scheduler.on_event(ObjectKind.JOB, "ADDED", job("train", parallelism=2))
    run(scheduler)
    assert bound(api) == ["train-0", "train-1"]


def test_only_the_leader_writes_podgroup_status() -> None:
    api, elector = FakeApi(), SwitchedElector(leading=False)
    options = OperatorSettings(policy="binpack-gang", batch_interval_s=0.05)
    scheduler = Scheduler(options, api, clock=lambda: 1000.0, elector=elector)
    listing = Listing(
        namespaces=[],
        nodes=[k8s_node("n0")],
        pods=[member(f"w{i}") for i in range(2)],
        pod_groups=[pod_group("llm", 2)],
    )
    scheduler.reconcile(listing, scheduler.cache.ticks())
    run_with_listings(scheduler, 0.3, listing)
    assert (api.group_status, api.events) == ([], [])
    elector.leading = True
    run_with_listings(scheduler, 0.3, listing)
    assert [where for where, _ in api.group_status] == ["team-a/llm"]


def test_a_gang_whose_pods_all_exist_but_were_not_tried_says_so() -> None:
    status = group_status(("team-a", "llm"), 2, _views(("Pending", None), ("Pending", None)), None)
    assert (status.reason, status.message) == (
        WaitReason.NOT_TRIED,
        "gang team-a/llm: 2 pods exist, 0 bound; not tried yet",
    )
    fewer = group_status(("team-a", "llm"), 3, _views(("Pending", None)), None)
    assert (fewer.reason, fewer.message) == (
        WaitReason.WAITING_FOR_MEMBERS,
        "gang team-a/llm: 1 of 3 pods exist; waiting for the rest",
    )


def test_another_controllers_status_write_does_not_make_the_operator_write_again() -> None:
    scheduler, api = _scheduler(nodes=1)
    scheduler.on_event(ObjectKind.POD_GROUP, None, pod_group("llm", 2))
    scheduler.on_pod(None, member("w0"))
    run(scheduler)
    assert len(api.group_status) == 1
    # scheduler-plugins' PodGroup controller writes its own view of the status.
    theirs = {"phase": "Pending", "scheduleStartTime": "2026-01-01T00:00:00Z"}
    scheduler.on_event(ObjectKind.POD_GROUP, "MODIFIED", {**pod_group("llm", 2), "status": theirs})
    run(scheduler)
    assert len(api.group_status) == 1
