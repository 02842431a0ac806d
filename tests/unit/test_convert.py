import pytest

from hybrid_operator.k8s.convert import (
    WEIGHT_ANNOTATION,
    namespace,
    node_info,
    parse_duration_s,
    pending_pod,
)
from hybrid_policy.domain import TaintEffect

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
    assert converted.requests == {}
    assert problems == []


def test_bad_quantities_and_annotations_are_reported_not_raised() -> None:
    pod = _pod(containers=[{"resources": {"requests": {"cpu": "lots", "memory": "1Gi"}}}])
    pod["metadata"]["annotations"] = {"hybrid-scheduler.io/expected-runtime": "soon"}  # type: ignore[index]
    converted, problems = pending_pod(pod)
    assert converted.requests == {"memory": GIB}
    assert [p.field for p in problems] == [
        "metadata.annotations[hybrid-scheduler.io/expected-runtime]",
        "spec.containers[0].resources.requests.cpu",
    ]
    assert "'lots'" in problems[1].message
    assert converted.expected_runtime_s is None


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
    assert not info.ready
    assert info.performance == 100.0
    assert problems[0].message.startswith("metadata.labels[hybrid-scheduler.io/performance]='fast'")


@pytest.mark.parametrize(("raw", "weight"), [("2", 2.0), ("0.5", 0.5), ("1000", 1000.0)])
def test_namespace_weights(raw: str, weight: float) -> None:
    ns, problems = namespace(
        {"metadata": {"name": "team-c", "annotations": {WEIGHT_ANNOTATION: raw}}}
    )
    assert (ns.name, ns.weight, problems) == ("team-c", weight, [])


@pytest.mark.parametrize("raw", ["abc", "-1", "0", "1e99", "nan", "inf", ""])
def test_bad_namespace_weights_fall_back_to_the_default(raw: str) -> None:
    ns, problems = namespace(
        {"metadata": {"name": "team-x", "annotations": {WEIGHT_ANNOTATION: raw}}}, 1.0
    )
    assert ns.weight == 1.0
    assert len(problems) == 1
    assert problems[0].field == f"metadata.annotations[{WEIGHT_ANNOTATION}]"
    assert problems[0].value == raw
    assert "using the default weight 1" in problems[0].message


def test_namespace_without_annotation_gets_the_configured_default() -> None:
    ns, problems = namespace({"metadata": {"name": "team-y"}}, default_weight=3.0)
    assert (ns.weight, problems) == (3.0, [])
