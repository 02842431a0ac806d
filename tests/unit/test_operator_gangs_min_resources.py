"""A PodGroup's ``spec.minResources`` in the operator: a gang whose minResources are more
than the cluster has free in total is not tried, and says so on its pods and PodGroup; a
value that is no quantity is told and left out; without minResources nothing changes."""

import asyncio
from typing import Any

import pytest

from builders import k8s_node, k8s_pod
from fake_api import FakeApi
from hybrid_operator.commands import explain_cmd
from hybrid_operator.gangs import WaitReason
from hybrid_operator.k8s.views import ObjectKind
from hybrid_operator.scheduler import Scheduler
from hybrid_operator.settings import OperatorSettings

GROUP_LABEL = "scheduling.x-k8s.io/pod-group"
SHORT = WaitReason.INSUFFICIENT_RESOURCES.value
TOO_BIG = (
    "gang team-a/llm: minResources nvidia.com/gpu=16 is more than the 12 free in the cluster; "
    "none of its 2 pods is placed until they are free"
)


def _scheduler(nodes: int, clock: list[float]) -> tuple[Scheduler, FakeApi]:
    api = FakeApi()
    options = OperatorSettings(policy="binpack-gang", initial_backoff_s=5.0)
    scheduler = Scheduler(options, api, clock=lambda: clock[0])
    for i in range(nodes):
        scheduler.on_node(None, k8s_node(f"n{i}"))
    return scheduler, api


def pod_group(min_resources: dict[str, Any] | None, min_member: int = 2) -> dict[str, Any]:
    spec: dict[str, Any] = {"minMember": min_member}
    if min_resources is not None:
        spec["minResources"] = min_resources
    return {"metadata": {"name": "llm", "namespace": "team-a", "uid": "pg-llm"}, "spec": spec}


def member(name: str, gpus: int = 4, **kwargs: Any) -> dict[str, Any]:
    return k8s_pod(name, gpus, labels={GROUP_LABEL: "llm"}, **kwargs)


def bound(api: FakeApi) -> list[str]:
    return sorted(key.split("/")[1] for key, _ in api.binds)


def events(api: FakeApi, reason: str) -> list[tuple[str, str, str, bool]]:
    return [e for e in api.events if e[1] == reason]


def run(scheduler: Scheduler) -> None:
    asyncio.run(scheduler.schedule_once())


def _busy_cluster(
    clock: list[float], min_resources: dict[str, Any] | None
) -> tuple[Scheduler, FakeApi]:
    """Two 8-GPU nodes with 4 GPUs taken (12 free), a cordoned third node, and a gang of
    two 4-GPU pods that would fit."""
    scheduler, api = _scheduler(2, clock)
    cordoned = k8s_node("n2")
    cordoned["spec"] = {"unschedulable": True}
    scheduler.on_node(None, cordoned)
    scheduler.on_pod(None, k8s_pod("other", 4, node="n0", phase="Running", scheduler="default"))
    scheduler.on_event(ObjectKind.POD_GROUP, None, pod_group(min_resources))
    for i in range(2):
        scheduler.on_pod(None, member(f"w{i}"))
    return scheduler, api


def test_min_resources_above_what_is_free_hold_the_gang_with_the_reason() -> None:
    clock = [1000.0]
    scheduler, api = _busy_cluster(clock, {"nvidia.com/gpu": "16", "cpu": "8"})
    run(scheduler)
    clock[0] += 20
    scheduler.queue.move_all_to_active()
    run(scheduler)  # tried again: nothing new to tell
    assert api.binds == []
    failed = events(api, "FailedScheduling")
    assert {e[0] for e in failed} == {"w0", "w1"}
    assert {e[2] for e in failed} == {TOO_BIG}
    (told,) = events(api, SHORT)  # on the PodGroup, once per change, as a Warning
    assert (told[0], told[2], told[3]) == ("llm", TOO_BIG, True)
    (condition,) = api.group_status[-1][1]["conditions"]
    assert (condition["status"], condition["reason"], condition["message"]) == (
        "False",
        SHORT,
        TOO_BIG,
    )
    # Patched down to what is free: the gang is placed whole.
    scheduler.on_event(ObjectKind.POD_GROUP, "MODIFIED", pod_group({"nvidia.com/gpu": "12"}))
    clock[0] += 40
    run(scheduler)
    assert bound(api) == ["w0", "w1"]


def test_explain_prints_the_min_resources_reason_in_the_gang_lines() -> None:
    condition = {"type": "PodScheduled", "status": "False", "message": TOO_BIG}
    pod = member("w0", status={"conditions": [condition]})
    result = explain_cmd.explain_pod("team-a/w0", pod, [pod, member("w1")])
    assert result.code == 0
    assert result.out.splitlines()[1:] == [
        "gang:            team-a/llm: 0 bound, 2 exist, 2 needed",
        f"waiting:         {TOO_BIG.removeprefix('gang team-a/llm: ')}",
    ]


@pytest.mark.parametrize(
    ("min_resources", "placed"),
    [
        ({"nvidia.com/gpu": "12", "memory": "1Ti"}, True),  # exactly what is free
        ({"nvidia.com/gpu": "13"}, False),
        ({"pods": "219"}, True),  # 2 x 110 slots, one taken by the other pod
        ({"pods": "220"}, False),
        ({"example.com/fpga": "1"}, False),  # no node has any
    ],
)
def test_what_is_free_is_allocatable_minus_requested_over_schedulable_nodes(
    min_resources: dict[str, Any], placed: bool
) -> None:
    scheduler, api = _busy_cluster([1000.0], min_resources)
    assert scheduler.gangs.min_resources(("team-a", "llm")).keys() == min_resources.keys()
    run(scheduler)
    assert bound(api) == (["w0", "w1"] if placed else [])
    assert len(events(api, SHORT)) == (0 if placed else 1)


def test_the_gangs_own_bound_pods_count_as_free() -> None:
    clock = [1000.0]
    scheduler, api = _scheduler(2, clock)
    scheduler.on_event(ObjectKind.POD_GROUP, None, pod_group({"nvidia.com/gpu": "16"}))
    scheduler.on_pod(None, member("w0", gpus=8, node="n0", phase="Running"))
    scheduler.on_pod(None, member("w1", gpus=8))
    assert scheduler.gangs.min_resources(("team-a", "llm")) == {"nvidia.com/gpu": 16}
    run(scheduler)
    assert bound(api) == ["w1"]  # 8 free, and w0's 8 are the gang's own


def test_a_min_resources_value_that_is_no_quantity_is_told_and_left_out() -> None:
    scheduler, api = _busy_cluster([1000.0], {"nvidia.com/gpu": "lots", "cpu": "1k"})
    run(scheduler)
    (invalid,) = events(api, "InvalidField")
    assert invalid[0] == "llm" and invalid[3] is True
    assert invalid[2].startswith("spec.minResources.nvidia.com/gpu='lots': ")
    assert invalid[2].endswith("leaving this resource out of the minResources check")
    assert api.binds == []  # held by the cpu it names, which does parse
    (told,) = events(api, SHORT)
    assert "minResources cpu=1000 is more than the 127 free" in told[2]
    assert "nvidia.com/gpu" not in told[2]


def test_only_a_bad_min_resources_value_leaves_the_gang_unchecked() -> None:
    scheduler, api = _busy_cluster([1000.0], {"nvidia.com/gpu": "-3"})
    run(scheduler)
    assert len(events(api, "InvalidField")) == 1
    assert bound(api) == ["w0", "w1"]


def test_without_min_resources_the_gang_is_placed_as_before() -> None:
    scheduler, api = _busy_cluster([1000.0], None)
    assert scheduler.gangs.min_resources(("team-a", "llm")) == {}
    run(scheduler)
    assert bound(api) == ["w0", "w1"]
    assert events(api, SHORT) == [] and events(api, "InvalidField") == []


def test_a_gang_short_of_members_waits_for_them_before_min_resources_are_checked() -> None:
    scheduler, api = _scheduler(1, [1000.0])
    scheduler.on_event(ObjectKind.POD_GROUP, None, pod_group({"nvidia.com/gpu": "64"}, 3))
    scheduler.on_pod(None, member("w0"))
    run(scheduler)
    assert events(api, SHORT) == []
    (condition,) = api.group_status[-1][1]["conditions"]
    assert condition["reason"] == WaitReason.WAITING_FOR_MEMBERS.value
