"""The exporter's numbers from a list of pods, and the series it publishes."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.core import CollectorRegistry

from hybrid_lab.devcluster.exporter import UtilisationCollector
from hybrid_lab.devcluster.usage import (
    GPU_MEMORY_MIB,
    node_usage,
    usage_fractions,
)


def node(name: str, gpus: int = 8) -> dict[str, Any]:
    capacity = {"cpu": "64", "memory": "512Gi", "nvidia.com/gpu": str(gpus), "pods": "110"}
    return {"metadata": {"name": name}, "status": {"capacity": capacity}}


def pod(
    name: str,
    node_name: str,
    gpus: int,
    cpu: str,
    memory: str,
    *,
    phase: str = "Running",
    usage: str | None = None,
    task_type: str | None = None,
    created: str = "2026-01-01T00:00:00Z",
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": "ns",
        "creationTimestamp": created,
        "annotations": {},
        "labels": {},
    }
    if usage is not None:
        metadata["annotations"]["hybrid-scheduler.io/sim-usage"] = usage
    if task_type is not None:
        metadata["labels"]["hybrid-scheduler.io/task-type"] = task_type
    requests = {"cpu": cpu, "memory": memory, "nvidia.com/gpu": str(gpus)}
    return {
        "metadata": metadata,
        "spec": {
            "nodeName": node_name,
            "containers": [{"name": "main", "resources": {"requests": requests}}],
        },
        "status": {"phase": phase},
    }


def test_usage_defaults_per_task_type_and_annotation_overrides() -> None:
    nlp = usage_fractions(pod("a", "n", 1, "1", "1Gi", task_type="nlp"))
    assert (nlp.gpu, nlp.cpu, nlp.memory) == (0.9, 0.5, 0.8)
    image = usage_fractions(pod("a", "n", 1, "1", "1Gi", task_type="image-classification"))
    assert (image.gpu, image.cpu, image.memory) == (0.85, 0.6, 0.7)
    other = usage_fractions(pod("a", "n", 1, "1", "1Gi"))
    assert (other.gpu, other.cpu, other.memory) == (0.8, 0.5, 0.6)
    partial = usage_fractions(
        pod("a", "n", 1, "1", "1Gi", usage="gpu=0.3, cpu=bad, x=1", task_type="nlp")
    )
    assert (partial.gpu, partial.cpu, partial.memory) == (0.3, 0.5, 0.8)


def test_node_usage_follows_running_pods_only() -> None:
    pods = [
        pod("a", "n0", 2, "8", "64Gi", usage="gpu=0.5,cpu=0.25,memory=0.5"),
        pod("b", "n0", 1, "4", "32Gi", task_type="nlp", created="2026-01-01T00:00:01Z"),
        pod("done", "n0", 4, "8", "8Gi", phase="Succeeded"),
        pod("pending", "n1", 4, "8", "8Gi", phase="Pending"),
        pod("elsewhere", "not-ours", 4, "8", "8Gi"),
    ]
    usage = node_usage([node("n0"), node("n1")], pods)
    n0, n1 = usage["n0"], usage["n1"]
    assert n0.cpu_used_cores == pytest.approx(8 * 0.25 + 4 * 0.5)
    assert n0.memory_used_bytes == pytest.approx((64 * 0.5 + 32 * 0.8) * 2**30)
    assert n0.gpu_util == [0.5, 0.5, 0.9, 0, 0, 0, 0, 0]
    assert n0.gpu_fb_used_mib[:3] == [
        0.5 * GPU_MEMORY_MIB,
        0.5 * GPU_MEMORY_MIB,
        0.8 * GPU_MEMORY_MIB,
    ]
    assert (n1.cpu_used_cores, n1.memory_used_bytes, sum(n1.gpu_util)) == (0, 0, 0)


def test_gpus_beyond_capacity_are_not_invented() -> None:
    usage = node_usage([node("n0", gpus=2)], [pod("a", "n0", 4, "1", "1Gi")])
    assert usage["n0"].gpu_util == [0.8, 0.8]


def test_cpu_counter_integrates_usage_over_time() -> None:
    collector = UtilisationCollector()
    usage = node_usage([node("n0")], [pod("a", "n0", 0, "16", "1Gi", usage="cpu=0.5")])
    collector.update(usage, now=100.0)
    collector.update(node_usage([node("n0")], []), now=110.0)
    text = _exposition(collector)
    assert 'node_cpu_usage_seconds_total{node="n0"} 80.0' in text


def test_exposition_uses_dcgm_kubelet_and_kube_state_metrics_names() -> None:
    collector = UtilisationCollector()
    collector.update(
        node_usage([node("n0", gpus=2)], [pod("a", "n0", 1, "8", "64Gi", usage="gpu=0.9")])
    )
    text = _exposition(collector)
    assert 'DCGM_FI_DEV_GPU_UTIL{Hostname="n0",' in text
    assert text.count("DCGM_FI_DEV_GPU_UTIL{") == 2
    assert 'gpu="0"' in text
    assert 'UUID="GPU-' in text
    assert "DCGM_FI_DEV_FB_USED{" in text
    assert 'node_memory_working_set_bytes{node="n0"}' in text
    assert 'kube_node_status_capacity{node="n0",resource="cpu",unit="core"} 64.0' in text
    assert (
        'kube_node_status_capacity{node="n0",resource="nvidia_com_gpu",unit="integer"} 2.0' in text
    )


def _exposition(collector: UtilisationCollector) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry).decode()


def test_a_node_or_pod_with_an_absurd_quantity_does_not_stop_the_exporter() -> None:
    from hybrid_lab.devcluster.usage import node_usage

    crafted = {
        "metadata": {"name": "crafted"},
        "status": {"capacity": {"cpu": "8", "memory": "8Gi", "nvidia.com/gpu": "1e400"}},
    }
    normal = {
        "metadata": {"name": "normal"},
        "status": {"capacity": {"cpu": "8", "memory": "8Gi", "nvidia.com/gpu": "2"}},
    }
    usage = node_usage([crafted, normal], [])
    assert usage["crafted"].gpu_count == 0
    assert usage["normal"].gpu_count == 2
