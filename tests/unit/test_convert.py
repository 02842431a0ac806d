import asyncio

import pytest

from builders import k8s_node, k8s_pod
from fake_api import FakeApi
from hybrid_operator.k8s.convert import (
    RUNTIME_ANNOTATION,
    WEIGHT_ANNOTATION,
    namespace,
    node_info,
    parse_duration_s,
    pending_pod,
)
from hybrid_operator.scheduler import Scheduler
from hybrid_operator.settings import OperatorSettings
from hybrid_policy.domain import TaintEffect, Toleration

GIB = 1024**3


def _pod(**spec: object) -> dict[str, object]:
    return {
        "metadata": {
            "name": "train-1",
            "namespace": "team-a",
            "uid": "u-1",
            "creationTimestamp": "2026-11-24T10:00:00Z",
            "labels": {"hybrid-scheduler.io/task-type": "nlp"},
            "annotations": {"hybrid-scheduler.io/expected-runtime": "1h30m"},
        },
        "spec": {"schedulerName": "hybrid-scheduler", **spec},
    }


def test_effective_requests_follow_kube_scheduler() -> None:
    pod = _pod(
        containers=[
            {"resources": {"requests": {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"}}},
            {"resources": {"limits": {"cpu": "500m", "nvidia.com/gpu": 1}}},  # limits only
        ],
        initContainers=[{"resources": {"requests": {"cpu": "4", "memory": "1Gi"}}}],
        overhead={"memory": "1Gi"},
        priority=100,
        nodeSelector={"pool": "a100"},
        tolerations=[
            {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
        ],
    )
    converted, problems = pending_pod(pod)
    assert problems == []
    assert converted is not None
    # cpu: max(2 + 0.5, 4) = 4; memory: max(8, 1) + 1 overhead = 9 GiB; gpus 1 + 1
    assert converted.requests == {"cpu": 4000, "memory": 9 * GIB, "nvidia.com/gpu": 2}
    assert converted.priority == 100
    assert converted.key == "team-a/train-1"
    assert converted.uid == "u-1"
    assert converted.task_type == "nlp"
    assert converted.expected_runtime_s == 5400.0
    assert converted.node_selector == {"pool": "a100"}
    assert converted.tolerations[0].effect is TaintEffect.NO_SCHEDULE
    assert converted.created_at_s == pytest.approx(1795514400.0)


def test_pod_without_requests_is_fine() -> None:
    converted, problems = pending_pod(_pod(containers=[{"name": "c"}]))
    assert converted is not None
    assert converted.requests == {}
    assert problems == []


def test_a_bad_annotation_falls_back_to_its_default() -> None:
    pod = _pod(containers=[{"resources": {"requests": {"memory": "1Gi"}}}])
    pod["metadata"]["annotations"] = {"hybrid-scheduler.io/expected-runtime": "soon"}  # type: ignore[index]
    converted, problems = pending_pod(pod)
    assert converted is not None
    assert converted.requests == {"memory": GIB}
    assert converted.expected_runtime_s is None
    assert [p.field for p in problems] == [
        "metadata.annotations[hybrid-scheduler.io/expected-runtime]"
    ]
    assert "treating the run time as unknown" in problems[0].message


def test_a_bad_quantity_leaves_the_pod_out_and_every_problem_is_reported() -> None:
    pod = _pod(containers=[{"resources": {"requests": {"cpu": "lots", "memory": "1Gi"}}}])
    pod["metadata"]["annotations"] = {"hybrid-scheduler.io/expected-runtime": "soon"}  # type: ignore[index]
    converted, problems = pending_pod(pod)
    assert converted is None
    assert [p.field for p in problems] == [
        "metadata.annotations[hybrid-scheduler.io/expected-runtime]",
        "spec.containers[0].resources.requests.cpu",
    ]
    assert "'lots'" in problems[1].message
    assert problems[1].message.endswith("leaving the pod out")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("15m", 900.0),
        ("2h", 7200.0),
        ("1h30m", 5400.0),
        ("45", 45.0),
        ("0.5h", 1800.0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5s", "0", "1d", "nan", "inf"])
def test_bad_durations(text: str) -> None:
    assert parse_duration_s(text) is None


def test_node_conversion() -> None:
    node = {
        "metadata": {"name": "n1", "labels": {"hybrid-scheduler.io/performance": "75"}},
        "spec": {
            "unschedulable": True,
            "taints": [{"key": "gpu", "value": "a100", "effect": "NoExecute"}],
        },
        "status": {
            "allocatable": {
                "cpu": "63500m",
                "memory": "500Gi",
                "nvidia.com/gpu": "8",
                "pods": "110",
            },
            "capacity": {"cpu": "64", "memory": "512Gi", "nvidia.com/gpu": "8", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
    info, problems = node_info(node)
    assert problems == []
    assert info is not None
    assert info.allocatable == {"cpu": 63500, "memory": 500 * GIB, "nvidia.com/gpu": 8, "pods": 110}
    assert info.ready and info.unschedulable
    assert info.performance == 75.0
    assert info.taints[0].effect is TaintEffect.NO_EXECUTE


def test_node_without_ready_condition_and_with_bad_performance() -> None:
    node = {
        "metadata": {"name": "n2", "labels": {"hybrid-scheduler.io/performance": "fast"}},
        "status": {},
    }
    info, problems = node_info(node)
    assert info is not None
    assert not info.ready
    assert info.performance == 100.0
    assert problems[0].message.startswith("metadata.labels[hybrid-scheduler.io/performance]='fast'")


@pytest.mark.parametrize(("raw", "weight"), [("2", 2.0), ("0.5", 0.5), ("1000", 1000.0)])
def test_namespace_weights(raw: str, weight: float) -> None:
    ns, problems = namespace(
        {"metadata": {"name": "team-c", "annotations": {WEIGHT_ANNOTATION: raw}}}
    )
    assert ns is not None
    assert (ns.name, ns.weight, problems) == ("team-c", weight, [])


@pytest.mark.parametrize("raw", ["abc", "-1", "0", "1e99", "nan", "inf", ""])
def test_bad_namespace_weights_fall_back_to_the_default(raw: str) -> None:
    ns, problems = namespace(
        {"metadata": {"name": "team-x", "annotations": {WEIGHT_ANNOTATION: raw}}}, 1.0
    )
    assert ns is not None
    assert ns.weight == 1.0
    assert len(problems) == 1
    assert problems[0].field == f"metadata.annotations[{WEIGHT_ANNOTATION}]"
    assert problems[0].value == raw
    assert "using the default weight 1" in problems[0].message


def test_namespace_without_annotation_gets_the_configured_default() -> None:
    ns, problems = namespace({"metadata": {"name": "team-y"}}, default_weight=3.0)
    assert ns is not None
    assert (ns.weight, problems) == (3.0, [])


def _node(**status: object) -> dict[str, object]:
    return {
        "metadata": {"name": "n9"},
        "status": {
            "allocatable": {"cpu": "64", "memory": "512Gi", "nvidia.com/gpu": "8"},
            "conditions": [{"type": "Ready", "status": "True"}],
            **status,
        },
    }


@pytest.mark.parametrize(
    ("resource", "raw"),
    [
        ("cpu", "1e999999"),
        ("nvidia.com/gpu", "1e400"),
        pytest.param("memory", 10**400, id="memory-int-1e400"),
    ],
)
def test_an_absurd_node_quantity_counts_as_none_and_is_reported(resource: str, raw: object) -> None:
    node = _node()
    node["status"]["allocatable"][resource] = raw  # type: ignore[index]
    info, problems = node_info(node)
    assert info is not None
    assert resource not in info.allocatable
    assert len(info.allocatable) == 2
    assert [p.field for p in problems] == [f"status.allocatable.{resource}"]
    assert problems[0].value == raw
    assert "above the largest amount" in problems[0].message
    assert problems[0].message.endswith("counting none of this resource")


REQUESTS = "spec.containers[0].resources.requests"


@pytest.mark.parametrize(
    ("spec", "field", "problem"),
    [
        ({"containers": [{"resources": {"requests": "lots"}}]}, REQUESTS, "not a map"),
        (
            {"containers": [{"resources": {"requests": {"cpu": "1e400"}}}]},
            f"{REQUESTS}.cpu",
            "2**62",
        ),
        ({"containers": [{"resources": ["cpu"]}]}, "spec.containers[0].resources", "not a map"),
        ({"containers": ["c"]}, "spec.containers[0]", "not a map"),
        ({"containers": {"name": "c"}}, "spec.containers", "not a list"),
        ({"overhead": {"memory": "-1Gi"}}, "spec.overhead.memory", "negative"),
        ({"nodeSelector": "gpu"}, "spec.nodeSelector", "not a map"),
        ({"nodeSelector": {"pool": 1}}, "spec.nodeSelector[pool]", "not a string"),
    ],
)
def test_requests_or_a_selector_that_cannot_be_read_leave_the_pod_out(
    spec: dict[str, object], field: str, problem: str
) -> None:
    converted, problems = pending_pod(_pod(**spec))
    assert converted is None
    assert [p.field for p in problems] == [field]
    assert problem in problems[0].problem
    assert problems[0].action == "leaving the pod out"


def test_tolerations_that_cannot_be_read_are_dropped_and_the_pod_is_kept() -> None:
    good = {"key": "gpu", "operator": "Exists"}
    pod = _pod(tolerations=["gpu", {"key": 5}, {"operator": "Maybe"}, good])
    converted, problems = pending_pod(pod)
    assert converted is not None
    assert converted.tolerations == (Toleration("gpu", "Exists"),)
    assert [p.field for p in problems] == [
        "spec.tolerations[0]",
        "spec.tolerations[1].key",
        "spec.tolerations[2].operator",
    ]
    assert {p.action for p in problems} == {"ignoring this toleration"}
    converted, problems = pending_pod(_pod(tolerations="all"))
    assert converted is not None
    assert converted.tolerations == ()
    assert problems[0].field == "spec.tolerations"


def test_labels_annotations_and_priority_of_the_wrong_type_fall_back() -> None:
    pod = _pod(priority=2**40)
    pod["metadata"]["labels"] = ["nlp"]  # type: ignore[index]
    pod["metadata"]["annotations"] = {RUNTIME_ANNOTATION: 90}  # type: ignore[index]
    converted, problems = pending_pod(pod)
    assert converted is not None
    assert (converted.task_type, converted.expected_runtime_s, converted.priority) == (
        None,
        None,
        0,
    )
    assert [p.field for p in problems] == [
        "metadata.labels",
        f"metadata.annotations[{RUNTIME_ANNOTATION}]",
        "spec.priority",
    ]


@pytest.mark.parametrize("meta", [{"name": "p"}, {"uid": "u"}, {"name": "p", "uid": 7}])
def test_a_pod_without_name_or_uid_is_left_out(meta: dict[str, object]) -> None:
    converted, problems = pending_pod({"metadata": meta, "spec": {}})
    assert converted is None
    assert problems[-1].action == "leaving the pod out"


def test_a_node_with_unreadable_taints_is_unschedulable_and_one_without_name_is_left_out() -> None:
    node = _node()
    node["spec"] = {"taints": "gpu=yes:NoSchedule"}
    info, problems = node_info(node)
    assert info is not None
    assert info.unschedulable
    assert problems[0].message.endswith("treating the node as unschedulable")
    node["metadata"] = {"labels": {}}
    info, problems = node_info(node)
    assert info is None
    assert problems[-1].action == "leaving the node out"


@pytest.mark.parametrize(
    "raw", [10**400, 2.0, ["2"], None], ids=["int-1e400", "2.0", "list", "null"]
)
def test_namespace_weights_that_are_not_strings_fall_back(raw: object) -> None:
    ns, problems = namespace({"metadata": {"name": "t", "annotations": {WEIGHT_ANNOTATION: raw}}})
    assert ns is not None
    assert ns.weight == 1.0
    assert [p.field for p in problems] == [f"metadata.annotations[{WEIGHT_ANNOTATION}]"]


def test_a_namespace_without_name_is_left_out() -> None:
    ns, problems = namespace({"metadata": "team-a"})
    assert ns is None
    assert [p.action for p in problems] == ["leaving the namespace out"] * 2


def test_crafted_objects_never_stop_the_scheduler_and_are_reported() -> None:
    api = FakeApi()
    scheduler = Scheduler(OperatorSettings(), api, clock=lambda: 1000.0)
    scheduler.on_node(None, k8s_node("good"))
    for name, resource, raw in (
        ("huge-gpu", "nvidia.com/gpu", "1e400"),
        ("huge-cpu", "cpu", "1e999999"),
    ):
        node = k8s_node(name)
        node["status"]["allocatable"][resource] = raw
        scheduler.on_node(None, node)
    lots = k8s_pod("lots")
    lots["spec"]["containers"][0]["resources"]["requests"] = "lots"
    strings = k8s_pod("strings")
    strings["spec"]["tolerations"] = ["gpu", "all"]
    for body in (lots, strings, k8s_pod("plain")):
        scheduler.on_pod(None, body)
    asyncio.run(scheduler.schedule_once())
    assert sorted(key for key, _ in api.binds) == ["team-a/plain", "team-a/strings"]
    invalid = [
        (name, message) for name, reason, message, _ in api.events if reason == "InvalidField"
    ]
    assert [name for name, _ in invalid] == ["huge-gpu", "huge-cpu", "lots", "strings", "strings"]
    assert invalid[0][1].startswith("status.allocatable.nvidia.com/gpu='1e400'")
    assert invalid[2][1].startswith("spec.containers[0].resources.requests='lots': not a map")
