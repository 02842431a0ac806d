"""The dev cluster's utilisation exporter: real metric names, simulated values.

Every few seconds it lists our kwok nodes and the Running pods, computes per-node usage
(:mod:`.usage`), and serves it on 127.0.0.1 under the names real clusters publish, so
PromQL written for a real cluster works unchanged:

* NVIDIA DCGM exporter: ``DCGM_FI_DEV_GPU_UTIL`` (0-100), ``DCGM_FI_DEV_FB_USED`` and
  ``DCGM_FI_DEV_FB_FREE`` (MiB), labelled ``gpu``, ``UUID``, ``device``, ``modelName``,
  ``Hostname`` (the node name, as DCGM on Kubernetes reports it);
* kubelet resource metrics: ``node_cpu_usage_seconds_total`` (counter) and
  ``node_memory_working_set_bytes``, labelled ``node``;
* kube-state-metrics: ``kube_node_status_capacity`` and ``kube_node_status_allocatable``
  with ``node``, ``resource`` and ``unit``.

Run it as ``python -m hybrid_lab.devcluster.exporter --kubeconfig K --port P``.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from prometheus_client import start_http_server
from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from hybrid_lab.devcluster.apiserver import ApiServer
from hybrid_lab.devcluster.errors import DevClusterError
from hybrid_lab.devcluster.settings import LOOPBACK
from hybrid_lab.devcluster.usage import GPU_MEMORY_MIB, NodeUsage, node_usage

GPU_MODEL = "NVIDIA H100 80GB HBM3"
NODE_SELECTOR = "type=kwok"


class UtilisationCollector(Collector):
    """Holds the latest usage per node and the CPU-seconds counters; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._usage: dict[str, NodeUsage] = {}
        self._cpu_seconds: dict[str, float] = {}
        self._last_update = time.monotonic()

    def update(self, usage: dict[str, NodeUsage], now: float | None = None) -> None:
        """Replace the usage; CPU counters advance by the previous usage times elapsed time."""
        now = time.monotonic() if now is None else now
        with self._lock:
            elapsed = max(0.0, now - self._last_update)
            for name, previous in self._usage.items():
                self._cpu_seconds[name] = (
                    self._cpu_seconds.get(name, 0.0) + previous.cpu_used_cores * elapsed
                )
            for name in usage:
                self._cpu_seconds.setdefault(name, 0.0)
            self._usage = usage
            self._last_update = now

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        """Produce every metric family from the latest usage."""
        with self._lock:
            usage = list(self._usage.values())
            elapsed = time.monotonic() - self._last_update
            cpu_seconds = {
                u.node: self._cpu_seconds.get(u.node, 0.0) + u.cpu_used_cores * elapsed
                for u in usage
            }
        yield from _dcgm_families(usage)
        cpu = CounterMetricFamily(
            "node_cpu_usage_seconds_total",
            "Cumulative cpu time consumed by the node in core-seconds",
            labels=["node"],
        )
        memory = GaugeMetricFamily(
            "node_memory_working_set_bytes",
            "Current working set of the node in bytes",
            labels=["node"],
        )
        for node in usage:
            cpu.add_metric([node.node], cpu_seconds[node.node])
            memory.add_metric([node.node], node.memory_used_bytes)
        yield cpu
        yield memory
        for name, text in (
            ("kube_node_status_capacity", "The capacity for different resources of a node."),
            (
                "kube_node_status_allocatable",
                "The allocatable for different "
                "resources of a node that are available for scheduling.",
            ),
        ):
            family = GaugeMetricFamily(name, text, labels=["node", "resource", "unit"])
            for node in usage:
                family.add_metric([node.node, "cpu", "core"], node.cpu_capacity_cores)
                family.add_metric([node.node, "memory", "byte"], node.memory_capacity_bytes)
                family.add_metric([node.node, "nvidia_com_gpu", "integer"], node.gpu_count)
            yield family


def _dcgm_families(usage: Sequence[NodeUsage]) -> Iterator[GaugeMetricFamily]:
    labels = ["gpu", "UUID", "device", "modelName", "Hostname"]
    util = GaugeMetricFamily("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", labels=labels)
    used = GaugeMetricFamily(
        "DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", labels=labels
    )
    free = GaugeMetricFamily(
        "DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).", labels=labels
    )
    for node in usage:
        for index in range(node.gpu_count):
            values = [
                str(index),
                gpu_uuid(node.node, index),
                f"nvidia{index}",
                GPU_MODEL,
                node.node,
            ]
            util.add_metric(values, round(node.gpu_util[index] * 100.0))
            used.add_metric(values, node.gpu_fb_used_mib[index])
            free.add_metric(values, GPU_MEMORY_MIB - node.gpu_fb_used_mib[index])
    yield util
    yield used
    yield free


def gpu_uuid(node: str, index: int) -> str:
    """A stable, DCGM-looking UUID for GPU ``index`` of ``node``."""
    return f"GPU-{uuid.uuid5(uuid.NAMESPACE_DNS, f'{node}.gpu{index}')}"


def refresh_forever(
    collector: UtilisationCollector, api: ApiServer, interval_seconds: float
) -> None:
    """List nodes and running pods every ``interval_seconds``; keep the last good answer."""
    while True:
        try:
            nodes = api.items("/api/v1/nodes", labelSelector=NODE_SELECTOR)
            pods = api.items("/api/v1/pods", fieldSelector="status.phase=Running")
            collector.update(node_usage(nodes, pods))
        except Exception as err:  # the API server away, a crafted object: keep going
            # Keep serving the last values; the log says why they are stale.
            print(
                f"utilisation exporter: listing from the API server failed: {err}",
                file=sys.stderr,
                flush=True,
            )
        time.sleep(interval_seconds)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the metrics until killed."""
    parser = argparse.ArgumentParser(prog="hybrid-scheduler-utilisation-exporter")
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--port", type=int, default=19400)
    parser.add_argument(
        "--refresh-seconds",
        type=float,
        default=2.0,
        help="how often to list pods and nodes (seconds, default 2)",
    )
    args = parser.parse_args(argv)
    try:
        api = ApiServer.from_kubeconfig(args.kubeconfig)
    except DevClusterError as err:
        print(f"utilisation exporter: {err}", file=sys.stderr)
        return 1
    collector = UtilisationCollector()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    start_http_server(args.port, addr=LOOPBACK, registry=registry)
    try:
        refresh_forever(collector, api, args.refresh_seconds)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
