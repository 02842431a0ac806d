"""Per-node utilisation derived from the pods bound to each node (no cluster needed).

A simulated pod uses a fraction of what it requests: the ``hybrid-scheduler.io/sim-usage``
annotation (``gpu=0.9,cpu=0.5,memory=0.6``) if present, else defaults per task type
(label ``hybrid-scheduler.io/task-type``). GPUs are handed out to pods by index in
creation order, the way the device plugin gives each pod whole devices.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hybrid_policy.resources import CPU, GPU, MEMORY, QuantityError, parse_quantity
from hybrid_policy.scenario.loader import load_scenario
from hybrid_policy.scenario.model import DEFAULT_USAGE

SIM_USAGE_ANNOTATION = "hybrid-scheduler.io/sim-usage"
TASK_TYPE_LABEL = "hybrid-scheduler.io/task-type"
GPU_MEMORY_MIB = 81920
"""Frame-buffer size of each simulated GPU (MiB; an 80 GB H100)."""


@dataclass(frozen=True)
class UsageFractions:
    """Fractions (0..1) of a pod's requests that it actually uses."""

    gpu: float
    """Of each requested GPU's compute."""
    cpu: float
    """Of the requested CPU."""
    memory: float
    """Of the requested memory (and of each GPU's frame buffer)."""


def _fractions(usage: Mapping[str, float]) -> UsageFractions:
    return UsageFractions(gpu=usage[GPU], cpu=usage[CPU], memory=usage[MEMORY])


#: Per task type, the usage the seed-paper scenario gives it, so the dev cluster's
#: metrics match what the simulator assumes.
TASK_TYPE_DEFAULTS: Mapping[str, UsageFractions] = {
    task.name: _fractions(task.usage) for task in load_scenario("seed-paper").task_types
}
OTHER_TASK_DEFAULT = _fractions(DEFAULT_USAGE)


def usage_fractions(pod: Mapping[str, Any]) -> UsageFractions:
    """The pod's usage fractions: its annotation, completed by its task type's defaults."""
    metadata = pod.get("metadata", {})
    task_type = (metadata.get("labels") or {}).get(TASK_TYPE_LABEL, "")
    base = TASK_TYPE_DEFAULTS.get(task_type, OTHER_TASK_DEFAULT)
    annotation = (metadata.get("annotations") or {}).get(SIM_USAGE_ANNOTATION)
    if not annotation:
        return base
    values = {"gpu": base.gpu, "cpu": base.cpu, "memory": base.memory}
    for part in annotation.split(","):
        key, _, raw = part.partition("=")
        key = key.strip()
        try:
            value = float(raw)
        except ValueError:
            continue
        if key in values and 0.0 <= value <= 1.0:
            values[key] = value
    return UsageFractions(**values)


def pod_requests(pod: Mapping[str, Any]) -> dict[str, float]:
    """Summed container requests of a pod: cpu (cores), memory (bytes), gpus."""
    totals = {"cpu": 0.0, "memory": 0.0, "gpu": 0.0}
    for container in pod.get("spec", {}).get("containers") or []:
        requests = (container.get("resources") or {}).get("requests") or {}
        for resource, key in ((CPU, "cpu"), (MEMORY, "memory"), (GPU, "gpu")):
            if resource in requests:
                totals[key] += _amount(resource, requests[resource])
    totals["cpu"] /= 1000.0  # millicores -> cores
    return totals


def _amount(resource: str, raw: object) -> int:
    """A quantity in canonical units; 0 for one that cannot be used (a crafted ``1e400``
    must not stop the exporter from reporting every other node)."""
    try:
        return parse_quantity(resource, str(raw))
    except QuantityError:
        return 0


@dataclass
class NodeUsage:
    """Capacity and simulated usage of one node."""

    node: str
    """Node name."""
    cpu_capacity_cores: float
    """CPU capacity (cores)."""
    memory_capacity_bytes: float
    """Memory capacity (bytes)."""
    gpu_count: int
    """Number of GPUs (``nvidia.com/gpu`` capacity)."""
    cpu_used_cores: float = 0.0
    """CPU in use (cores)."""
    memory_used_bytes: float = 0.0
    """Memory in use, the working set (bytes)."""
    gpu_util: list[float] = field(default_factory=list)
    """Per GPU index: compute utilisation (0..1)."""
    gpu_fb_used_mib: list[float] = field(default_factory=list)
    """Per GPU index: frame buffer in use (MiB)."""


def node_usage(
    node_objects: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]]
) -> dict[str, NodeUsage]:
    """Usage of every node from the Running pods bound to it."""
    result: dict[str, NodeUsage] = {}
    for node in node_objects:
        name = node["metadata"]["name"]
        capacity = node.get("status", {}).get("capacity") or {}
        gpus = _amount(GPU, capacity.get(GPU, "0"))
        result[name] = NodeUsage(
            node=name,
            cpu_capacity_cores=_amount(CPU, capacity.get(CPU, "0")) / 1000.0,
            memory_capacity_bytes=float(_amount(MEMORY, capacity.get(MEMORY, "0"))),
            gpu_count=gpus,
            gpu_util=[0.0] * gpus,
            gpu_fb_used_mib=[0.0] * gpus,
        )
    next_gpu = dict.fromkeys(result, 0)
    for pod in sorted(pods, key=_creation_order):
        usage = result.get(pod.get("spec", {}).get("nodeName") or "")
        if usage is None or pod.get("status", {}).get("phase") != "Running":
            continue
        fractions = usage_fractions(pod)
        requests = pod_requests(pod)
        usage.cpu_used_cores += requests["cpu"] * fractions.cpu
        usage.memory_used_bytes += requests["memory"] * fractions.memory
        for _ in range(int(requests["gpu"])):
            index = next_gpu[usage.node]
            if index >= usage.gpu_count:
                break
            usage.gpu_util[index] = fractions.gpu
            usage.gpu_fb_used_mib[index] = fractions.memory * GPU_MEMORY_MIB
            next_gpu[usage.node] = index + 1
    return result


def _creation_order(pod: Mapping[str, Any]) -> tuple[str, str, str]:
    metadata = pod.get("metadata", {})
    return (
        str(metadata.get("creationTimestamp", "")),
        str(metadata.get("namespace", "")),
        str(metadata.get("name", "")),
    )
