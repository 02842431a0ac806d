"""How long the operator takes to put live utilisation into a pass's snapshot.

``apply_utilisation`` runs once per scheduling pass (every second by default): it copies
each node's fresh Prometheus sample into the snapshot and counts the pods placed since
that sample from their requests (Trimaran's rule). This benchmark fills a cache with
``--nodes`` nodes and ``--recent`` pods bound after the samples were measured, answers
the collector's queries from memory (no Prometheus), and times that one call::

    python -m hybrid_lab.utilisation_bench --nodes 1000 --recent 5000 --repeats 20

It prints the parameters, then the median and the spread (min-max) over the repeats.
Building the cache and the snapshot is not timed.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hybrid_operator.cache import ClusterCache
from hybrid_operator.k8s.convert import node_info
from hybrid_operator.k8s.views import pod_view
from hybrid_operator.utilisation import UtilisationCollector, apply_utilisation

#: Age of the Prometheus samples when the pass runs, and how recently the pods were bound.
SAMPLE_AGE_S = 30.0
#: Queries the in-memory Prometheus answers (one series per node each).
QUERIES = {"cpu": "cpu", "memory": "memory", "gpu": "gpu"}


@dataclass(frozen=True)
class BenchSettings:
    """What one run of the benchmark measures."""

    nodes: int = 1000
    recent: int = 5000
    repeats: int = 20


class MemoryProm:
    """Answers every query with one sample per node, measured ``SAMPLE_AGE_S`` ago."""

    def __init__(self, nodes: Sequence[str], measured_at_s: float) -> None:
        self.vector = [{"metric": {"node": n}, "value": [measured_at_s, "0.5"]} for n in nodes]

    def custom_query(self, query: str, params: dict[str, Any] | None = None) -> Any:
        """The same vector for every query."""
        return self.vector


def _node(name: str) -> dict[str, Any]:
    allocatable = {"cpu": "64", "memory": "512Gi", "nvidia.com/gpu": "8", "pods": "110"}
    return {
        "metadata": {"name": name},
        "status": {"allocatable": allocatable, "conditions": [{"type": "Ready", "status": "True"}]},
    }


def _pod(i: int, node: str) -> dict[str, Any]:
    requests = {"cpu": "1", "memory": "4Gi", "nvidia.com/gpu": "1"}
    return {
        "metadata": {"name": f"p{i}", "namespace": "team-a", "uid": f"uid-{i}"},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "main", "resources": {"requests": requests}}],
        },
        "status": {"phase": "Running"},
    }


def build(settings: BenchSettings, now_s: float) -> tuple[ClusterCache, UtilisationCollector]:
    """A cache with every node and the recent pods, and a collector holding fresh samples."""
    bound_at = [now_s - SAMPLE_AGE_S / 2]
    cache = ClusterCache(clock=lambda: bound_at[0])
    names = [f"node-{i:05d}" for i in range(settings.nodes)]
    for name in names:
        node, _ = node_info(_node(name))
        if node is not None:
            cache.upsert_node(node)
    for i in range(settings.recent):
        view, _ = pod_view(_pod(i, names[i % len(names)]))
        if view is not None:
            cache.upsert_pod(view)
    prom = MemoryProm(names, now_s - SAMPLE_AGE_S)
    collector = UtilisationCollector(prom, QUERIES, staleness_s=120.0, clock=lambda: now_s)
    collector.refresh()
    return cache, collector


def measure(settings: BenchSettings) -> list[float]:
    """Seconds per ``apply_utilisation`` call, one value per repeat."""
    now_s = 1_000_000.0
    cache, collector = build(settings, now_s)
    times = []
    for _ in range(settings.repeats):
        snapshot = cache.snapshot(now_s)
        started = time.perf_counter()
        apply_utilisation(snapshot, collector, cache, now_s)
        times.append(time.perf_counter() - started)
    return times


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the parameters, the median and the spread."""
    parser = argparse.ArgumentParser(prog="python -m hybrid_lab.utilisation_bench")
    parser.add_argument("--nodes", type=int, default=BenchSettings.nodes)
    parser.add_argument("--recent", type=int, default=BenchSettings.recent)
    parser.add_argument("--repeats", type=int, default=BenchSettings.repeats)
    args = parser.parse_args(argv)
    for flag in ("nodes", "recent", "repeats"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    settings = BenchSettings(args.nodes, args.recent, args.repeats)
    times_ms = 1e3 * np.asarray(measure(settings))
    print(
        f"apply_utilisation: {settings.nodes} nodes with fresh samples, "
        f"{settings.recent} pods placed since, {settings.repeats} repeats"
    )
    print(
        f"median {np.median(times_ms):.2f} ms, "
        f"min {times_ms.min():.2f} ms, max {times_ms.max():.2f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
