"""Live node utilisation from Prometheus, with staleness and a graceful way out.

The collector runs the configured PromQL per resource (defaults and the reading of answers
in :mod:`hybrid_operator.promql`), keeps the latest value per node with the time the node
was measured, and hands the scheduler only samples younger than the staleness window. A
series is matched to a node by name or by one of the node's addresses (node-exporter names
nodes by ``instance``, ``IP:port``). One bad series (not a number, outside 0..1, stamped in
the future) is dropped alone, counted and logged once per node and resource. A query that
fails, times out, answers garbage or answers nothing never stops scheduling: the old
samples age out, the node scores as if it had no metrics (the scorer's minimum), and
:attr:`UtilisationCollector.status` says why, for the log, the operator's metrics and each
decision record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

import numpy as np

from hybrid_operator.cache import ClusterCache
from hybrid_operator.promql import (
    SAMPLE_TIME_QUERIES,
    DropReason,
    NodeSample,
    ParsedAnswer,
    SeriesNode,
    parse_sample_times,
    parse_vector,
    utilisation_queries,
)
from hybrid_policy.framework.recent import RecentPlacements
from hybrid_policy.framework.snapshot import ClusterSnapshot
from hybrid_policy.resources import CPU, GPU, MEMORY

log = logging.getLogger("hybrid_scheduler")
RESOURCE_OF_QUERY = {"cpu": CPU, "memory": MEMORY, "gpu": GPU}
#: A status reason longer than this is cut (it ends up in every decision record).
MAX_REASON = 300


class PromClient(Protocol):
    """The one call needed from prometheus-api-client's ``PrometheusConnect``."""

    def custom_query(self, query: str, params: dict[str, Any] | None = None) -> Any:
        """An instant query's result list."""
        ...


class MetricsState(Enum):
    """Where live utilisation stands."""

    NOT_QUERIED = "not queried yet"
    LIVE = "live"
    #: Some resources answered, others failed or answered nothing.
    DEGRADED = "degraded"
    #: No resource answered anything usable.
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class MetricsStatus:
    """The state of live utilisation and, unless live, why."""

    state: MetricsState
    reason: str = ""

    @property
    def live(self) -> bool:
        """Whether every query answered usable series."""
        return self.state is MetricsState.LIVE

    def __str__(self) -> str:
        return f"{self.state.value} ({self.reason})" if self.reason else self.state.value


class NodeAddresses:
    """The cluster's node names and which node each address (``status.addresses``:
    InternalIP, ExternalIP, Hostname) belongs to."""

    def __init__(self) -> None:
        self.by_address: dict[str, str] = {}
        self.of_node: dict[str, tuple[str, ...]] = {}

    def update(self, node: str, addresses: Iterable[str]) -> None:
        """A node was listed or changed."""
        self.remove(node)
        self.of_node[node] = tuple(addresses)
        for address in self.of_node[node]:
            self.by_address[address] = node

    def remove(self, node: str) -> None:
        """A node went away."""
        for address in self.of_node.pop(node, ()):
            if self.by_address.get(address) == node:
                del self.by_address[address]

    def node_of(self, name: SeriesNode) -> str:
        """The node a series names, by node name or address; the name itself if neither."""
        if name in self.of_node:
            return name
        return self.by_address.get(name, name)


def connect(url: str, timeout_s: float) -> PromClient:
    """A prometheus-api-client connection to ``url``."""
    from prometheus_api_client import PrometheusConnect

    client: PromClient = PrometheusConnect(url=url, disable_ssl=True, timeout=timeout_s)
    return client


def _ignore_drop(resource: str, reason: DropReason) -> None:
    pass


class UtilisationCollector:
    """Per-node utilisation by resource, refreshed periodically.

    ``sample_time_queries`` (by resource) answer when each node was measured; without one
    a resource's samples are aged from the query's evaluation time. The defaults go with
    the default queries. ``on_drop`` is told of every dropped series (resource, reason).
    """

    def __init__(
        self,
        client: PromClient,
        queries: Mapping[str, str] | None = None,
        staleness_s: float = 120.0,
        clock: Callable[[], float] = time.time,
        sample_time_queries: Mapping[str, str] | None = None,
        on_drop: Callable[[str, DropReason], None] = _ignore_drop,
    ) -> None:
        self.client = client
        self.queries = dict(queries or utilisation_queries())
        default_times = SAMPLE_TIME_QUERIES if queries is None else {}
        self.sample_time_queries = dict(
            default_times if sample_time_queries is None else sample_time_queries
        )
        self.staleness_s = staleness_s
        self.clock = clock
        self.on_drop = on_drop
        self.addresses = NodeAddresses()
        #: Latest sample per resource, by what the series calls its node.
        self.samples: dict[SeriesNode, dict[str, NodeSample]] = {}
        self.status = MetricsStatus(MetricsState.NOT_QUERIED)
        self.failures = 0
        self.warned: set[tuple[str, str]] = set()

    def refresh(self) -> None:
        """Run every query once; keep what parsed, note what failed."""
        now = self.clock()
        problems: list[str] = []
        samples = {node: dict(by) for node, by in self.samples.items()}
        answered = 0
        for key, query in self.queries.items():
            parsed = self._ask(key, query, now, problems)
            if parsed is None:
                continue
            answered += 1
            for node, sample in parsed.samples.items():
                samples.setdefault(node, {})[RESOURCE_OF_QUERY[key]] = sample
        self.samples = {
            node: young
            for node, by in samples.items()
            if (young := {r: s for r, s in by.items() if now - s.observed_at_s <= self.staleness_s})
        }
        self._set_status(problems, answered)

    def _ask(self, key: str, query: str, now: float, problems: list[str]) -> ParsedAnswer | None:
        """One resource's answer, or ``None`` (and why, in ``problems``) if unusable.

        The sample-time query runs only after the value query answered some series, so an
        unreachable Prometheus costs one failed query per resource, as without it.
        """
        try:
            answer = self.client.custom_query(query)
            times = None
            if answer and key in self.sample_time_queries:
                times = self._sample_times(key, problems)
            parsed = parse_vector(answer, now, times)
        except Exception as exc:  # unreachable, slow, or an answer we cannot read
            problems.append(f"{key}: {type(exc).__name__}: {exc}")
            return None
        self._note_drops(key, parsed)
        if not parsed.samples:
            dropped = len(parsed.dropped)
            problems.append(
                f"{key}: no usable series ({dropped} dropped)"
                if dropped
                else f"{key}: empty answer"
            )
            return None
        return parsed

    def _sample_times(self, key: str, problems: list[str]) -> dict[SeriesNode, float] | None:
        """When each node's input to ``key`` was scraped; ``None`` (and why) if unknown."""
        try:
            return parse_sample_times(self.client.custom_query(self.sample_time_queries[key]))
        except Exception as exc:  # the values still count, aged from evaluation time
            problems.append(f"{key} sample times: {type(exc).__name__}: {exc}")
            return None

    def _note_drops(self, key: str, parsed: ParsedAnswer) -> None:
        """Count every dropped series; warn once per node and resource until it is good."""
        for node in parsed.samples:
            self.warned.discard((self.addresses.node_of(node), key))
        for dropped in parsed.dropped:
            self.on_drop(key, dropped.reason)
            node = self.addresses.node_of(dropped.node) if dropped.node else "(unnamed)"
            if (node, key) in self.warned:
                continue
            self.warned.add((node, key))
            log.warning(
                "Prometheus: ignoring the %s utilisation of node %s: %s (%s)",
                key,
                node,
                dropped.reason.value,
                dropped.detail,
            )

    def _set_status(self, problems: list[str], answered: int) -> None:
        if not problems:
            status = MetricsStatus(MetricsState.LIVE)
        else:
            state = MetricsState.DEGRADED if answered else MetricsState.UNAVAILABLE
            status = MetricsStatus(state, "; ".join(problems)[:MAX_REASON])
            self.failures += 1
        if status != self.status:
            if status.live:
                log.info("Prometheus: live utilisation for %d nodes", len(self.samples))
            else:
                log.warning(
                    "Prometheus: %s; scheduling on requests alone where metrics are missing",
                    status,
                )
        self.status = status

    def fresh(self, now_s: float | None = None) -> dict[str, tuple[dict[str, float], float]]:
        """Per node: fractions by resource younger than the staleness window, and the age
        of the oldest of them in seconds."""
        now = self.clock() if now_s is None else now_s
        out: dict[str, tuple[dict[str, float], float]] = {}
        for name, by_resource in self.samples.items():
            young = {
                r: s for r, s in by_resource.items() if now - s.observed_at_s <= self.staleness_s
            }
            if not young:
                continue
            node = self.addresses.node_of(name)
            fractions, age = out.get(node, ({}, 0.0))
            fractions.update({r: s.fraction for r, s in young.items()})
            age = max(age, *(max(now - s.observed_at_s, 0.0) for s in young.values()))
            out[node] = (fractions, age)
        return out

    async def run_forever(self, interval_s: float, stop: asyncio.Event) -> None:
        """Refresh every ``interval_s`` in a worker thread until ``stop`` is set."""
        while not stop.is_set():
            await asyncio.to_thread(self.refresh)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)


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
