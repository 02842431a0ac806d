"""Live node utilisation from Prometheus, with staleness and a graceful way out.

The collector runs the configured PromQL per resource (defaults in
:mod:`hybrid_operator.promql`), keeps the latest value per node with the time Prometheus
measured it, and hands the scheduler only samples younger than the staleness window.
A query that fails, times out or answers garbage (not a number, negative, absurdly
large) never stops scheduling: the old samples age out, the node scores as if it had no
metrics (the scorer's minimum), and :attr:`UtilisationCollector.status` says why, for the
log, the operator's metrics and each decision record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from hybrid_operator.cache import ClusterCache
from hybrid_operator.promql import utilisation_queries
from hybrid_policy.framework.recent import RecentPlacements
from hybrid_policy.framework.snapshot import ClusterSnapshot
from hybrid_policy.resources import CPU, GPU, MEMORY

log = logging.getLogger("hybrid_scheduler")
RESOURCE_OF_QUERY = {"cpu": CPU, "memory": MEMORY, "gpu": GPU}
#: Labels that name the node in common exporters, in the order they are tried.
NODE_LABELS = ("node", "Hostname", "kubernetes_node", "instance")
#: Utilisation above this (as a fraction) is taken for garbage, not for load.
MAX_FRACTION = 10.0


class PromClient(Protocol):
    """The one call needed from prometheus-api-client's ``PrometheusConnect``."""

    def custom_query(self, query: str, params: dict[str, Any] | None = None) -> Any:
        """An instant query's result list."""
        ...


@dataclass(frozen=True)
class NodeSample:
    """One resource's utilisation on one node, as Prometheus measured it."""

    fraction: float
    observed_at_s: float


def connect(url: str, timeout_s: float) -> PromClient:
    """A prometheus-api-client connection to ``url``."""
    from prometheus_api_client import PrometheusConnect

    client: PromClient = PrometheusConnect(url=url, disable_ssl=True, timeout=timeout_s)
    return client


class UtilisationCollector:
    """Per-node utilisation by resource, refreshed periodically."""

    def __init__(
        self,
        client: PromClient,
        queries: Mapping[str, str] | None = None,
        staleness_s: float = 120.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.queries = dict(queries or utilisation_queries())
        self.staleness_s = staleness_s
        self.clock = clock
        self.samples: dict[str, dict[str, NodeSample]] = {}
        self.status = "not queried yet"
        self.failures = 0

    def refresh(self) -> None:
        """Run every query once; keep what parsed, note what failed."""
        problems = []
        for key, query in self.queries.items():
            resource = RESOURCE_OF_QUERY[key]
            try:
                result = self.client.custom_query(query)
                parsed = parse_vector(result)
            except Exception as exc:  # unreachable, slow, or an answer we cannot read
                problems.append(f"{key}: {type(exc).__name__}: {exc}")
                continue
            for node, sample in parsed.items():
                self.samples.setdefault(node, {})[resource] = sample
        if problems:
            self.failures += 1
            self.status = "unavailable (" + "; ".join(problems)[:300] + ")"
            log.warning(
                "Prometheus: %s; scheduling on requests alone where metrics are missing",
                self.status,
            )
        else:
            if self.status != "live":
                log.info("Prometheus: live utilisation for %d nodes", len(self.samples))
            self.status = "live"

    def fresh(self, now_s: float | None = None) -> dict[str, tuple[dict[str, float], float]]:
        """Per node: fractions by resource younger than the staleness window, and the age
        of the oldest of them in seconds."""
        now = self.clock() if now_s is None else now_s
        out: dict[str, tuple[dict[str, float], float]] = {}
        for node, by_resource in self.samples.items():
            young = {
                r: s for r, s in by_resource.items() if now - s.observed_at_s <= self.staleness_s
            }
            if young:
                age = max(now - s.observed_at_s for s in young.values())
                out[node] = ({r: s.fraction for r, s in young.items()}, age)
        return out

    async def run_forever(self, interval_s: float, stop: asyncio.Event) -> None:
        """Refresh every ``interval_s`` in a worker thread until ``stop`` is set."""
        while not stop.is_set():
            await asyncio.to_thread(self.refresh)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)


def parse_vector(result: Any) -> dict[str, NodeSample]:
    """An instant-vector result as samples by node; garbage raises ``ValueError``."""
    if not isinstance(result, list):
        raise ValueError(f"expected a vector, got {type(result).__name__}")
    out: dict[str, NodeSample] = {}
    for series in result:
        metric = series.get("metric") or {}
        node = next((str(metric[k]) for k in NODE_LABELS if metric.get(k)), None)
        at, raw = series.get("value") or ("nan", "nan")
        if node is None:
            continue
        value, when = float(raw), float(at)
        if not math.isfinite(value) or not 0.0 <= value <= MAX_FRACTION:
            raise ValueError(f"utilisation {raw!r} for node {node} is not a fraction")
        out[node.split(":")[0]] = NodeSample(value, when)
    return out


def apply_utilisation(
    snapshot: ClusterSnapshot, collector: UtilisationCollector, cache: ClusterCache, now: float
) -> None:
    """Fresh utilisation per node, plus pods placed after the sample, by request
    (Trimaran's rule: metrics do not show a pod that has just started)."""
    fresh = collector.fresh(now)
    oldest_s = max((age_s for _, age_s in fresh.values()), default=0.0)
    recent = recent_placements(snapshot, cache, now - oldest_s)
    for node, (fractions, age_s) in fresh.items():
        row = snapshot.node_index.get(node)
        if row is None:
            continue
        snapshot.set_utilisation(row, fractions, age_s)
        counted = recent.requests_after(row, now - age_s)
        if counted:
            alloc = snapshot.allocatable[row]
            requested = np.sum(counted, axis=0)
            extra = np.divide(requested, alloc, out=np.zeros_like(alloc), where=alloc > 0)
            snapshot.utilisation[row] = np.nan_to_num(snapshot.utilisation[row]) + extra


def recent_placements(
    snapshot: ClusterSnapshot, cache: ClusterCache, since_s: float
) -> RecentPlacements:
    """The cache's pods placed after ``since_s``, by node row of ``snapshot``: one pass
    over the cache, however many nodes have samples."""
    recent = RecentPlacements()
    for placement in cache.placed_since(since_s):
        row = snapshot.node_index.get(placement.node)
        if row is not None:
            recent.add(row, placement.since_s, snapshot.request_vector(placement.pod))
    return recent
