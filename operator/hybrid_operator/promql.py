"""The default PromQL for per-node utilisation (0..1), as it works on real clusters.

The same queries answer on the dev cluster because its exporter publishes the series of the
kubelet resource metrics, kube-state-metrics and the NVIDIA DCGM exporter. Each query
returns one series per node: CPU and memory labelled ``node``, GPU labelled ``Hostname``
(DCGM's name for the node).
"""

from __future__ import annotations

DEFAULT_RATE_WINDOW = "1m"

CPU_UTILISATION = (
    "sum by (node) (rate(node_cpu_usage_seconds_total[{window}]))"
    ' / sum by (node) (kube_node_status_capacity{{resource="cpu"}})'
)
"""CPU cores in use over the window divided by CPU capacity."""

MEMORY_UTILISATION = (
    "sum by (node) (node_memory_working_set_bytes)"
    ' / sum by (node) (kube_node_status_capacity{{resource="memory"}})'
)
"""Working-set bytes divided by memory capacity."""

GPU_UTILISATION = "avg by (Hostname) (DCGM_FI_DEV_GPU_UTIL) / 100"
"""Mean DCGM GPU utilisation over the node's GPUs."""


def utilisation_queries(window: str = DEFAULT_RATE_WINDOW) -> dict[str, str]:
    """The three queries by resource, with ``window`` as the CPU rate window (e.g. ``1m``)."""
    return {
        "cpu": CPU_UTILISATION.format(window=window),
        "memory": MEMORY_UTILISATION.format(),
        "gpu": GPU_UTILISATION,
    }
