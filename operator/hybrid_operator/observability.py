"""The operator's own metrics, liveness and readiness, served over HTTP.

``/metrics`` (Prometheus text format) counts scheduling attempts by result, Bindings sent
again after an unknown outcome by result, times pending-to-bound latency, passes and their
sizes, tracks pending pods, fallbacks by reason, Prometheus series left out by resource
and reason, each namespace's weighted GPU share and Jain's index over them, the age of the
utilisation metrics, and for reserving policies the reservations held, placements
backfilled onto a node reserved for another pod, the relative error of run-time
predictions by source and progress series ignored, the gangs waiting for their pods and
placed whole, and preemptions (plans by result, victims deleted, GPU-seconds of work they
lost).
``/healthz``
answers while the event loop runs; ``/readyz`` once the cluster has been listed and the
first pass has run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from hybrid_operator.promql import DropReason
from hybrid_policy.framework.shares import namespace_shares
from hybrid_policy.framework.snapshot import ClusterSnapshot
from hybrid_policy.report.fairness import jain_index

LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600)
#: Buckets of ``|predicted - actual| / actual``.
ERROR_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10)


@dataclass
class Counters:
    """What the loop did, in plain numbers (for logs and tests)."""

    bound: int = 0
    unschedulable: int = 0
    conflicts: int = 0
    errors: int = 0
    #: Bindings called off before they were sent (node or pod gone, leadership lost).
    cancelled: int = 0
    #: Watch events that could not be applied (logged; the object is left as it was).
    bad_events: int = 0
    #: Pod and node events older than what the cache had applied (left out).
    stale_events: int = 0
    bind_attempts: dict[str, int] = field(default_factory=dict)
    #: Bindings sent again because the outcome of the first was unknown, by outcome.
    resends: dict[str, int] = field(default_factory=dict)


class OperatorMetrics:
    """Everything ``/metrics`` exposes, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.attempts = Counter(
            "hybrid_scheduler_schedule_attempts", "Pods tried, by result.", ["result"], registry=r
        )
        self.resends = Counter(
            "hybrid_scheduler_binding_resends",
            "Bindings sent again because the first got no answer, by result.",
            ["result"],
            registry=r,
        )
        self.latency = Histogram(
            "hybrid_scheduler_pending_to_bound_seconds",
            "From pod creation to a successful binding.",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.pending = Gauge(
            "hybrid_scheduler_pending_pods", "Pods waiting in the queue.", registry=r
        )
        self.batch = Histogram(
            "hybrid_scheduler_batch_duration_seconds", "Time to decide one batch.", registry=r
        )
        self.batch_size = Histogram(
            "hybrid_scheduler_batch_pods",
            "Pods per batch.",
            buckets=(1, 5, 10, 50, 100, 500, 1000),
            registry=r,
        )
        self.fallbacks = Counter(
            "hybrid_scheduler_fallbacks", "Degraded decisions, by reason.", ["reason"], registry=r
        )
        self.share = Gauge(
            "hybrid_scheduler_namespace_share",
            "Namespace GPU share of the cluster divided by its weight.",
            ["namespace"],
            registry=r,
        )
        self.jain = Gauge(
            "hybrid_scheduler_jain_index",
            "Jain's index over weighted namespace shares.",
            registry=r,
        )
        self.staleness = Gauge(
            "hybrid_scheduler_metrics_staleness_seconds",
            "Age of the oldest utilisation sample in use (-1: none).",
            registry=r,
        )
        self.dropped_series = Counter(
            "hybrid_scheduler_utilisation_series_dropped",
            "Prometheus series left out of live utilisation, by resource and reason.",
            ["resource", "reason"],
            registry=r,
        )
        self.shadow = Counter(
            "hybrid_scheduler_shadow_decisions",
            "Shadow mode: our choice against the shadowed scheduler's, by agreement.",
            ["agree"],
            registry=r,
        )
        self.reservations = Gauge(
            "hybrid_scheduler_reservations_held",
            "Nodes held for pending pods (reserving policies).",
            registry=r,
        )
        self.backfilled = Counter(
            "hybrid_scheduler_backfilled_placements",
            "Placements on a node reserved for another pod.",
            registry=r,
        )
        self.prediction_error = Histogram(
            "hybrid_scheduler_prediction_error_ratio",
            "|predicted - actual| / actual run time of finished pods, by prediction source.",
            ["source"],
            buckets=ERROR_BUCKETS,
            registry=r,
        )
        self.progress_ignored = Counter(
            "hybrid_scheduler_progress_ignored",
            "Training progress series left out, by reason.",
            ["reason"],
            registry=r,
        )
        self.gangs_waiting = Gauge(
            "hybrid_scheduler_gangs_waiting",
            "Gangs with pods but fewer than minMember of them bound.",
            registry=r,
        )
        self.gangs_placed = Counter(
            "hybrid_scheduler_gangs_placed",
            "Gangs whose minMember pods were bound (once per time they got there).",
            registry=r,
        )
        self.preemptions = Counter(
            "hybrid_scheduler_preemption_attempts",
            "Preemption plans, by result (started, bound, failed).",
            ["result"],
            registry=r,
        )
        self.preemption_victims = Counter(
            "hybrid_scheduler_preemption_victims",
            "Pods deleted to make room for a preemptor.",
            registry=r,
        )
        self.preemption_lost = Counter(
            "hybrid_scheduler_preemption_lost_gpu_seconds",
            "GPU-seconds of work the victims lost (since their last checkpoint).",
            registry=r,
        )
        self.ready = False

    def count_dropped_series(self, resource: str, reason: DropReason) -> None:
        """One Prometheus series of ``resource`` was left out for ``reason``."""
        self.dropped_series.labels(resource=resource, reason=reason.value).inc()

    def observe_shares(self, snapshot: ClusterSnapshot) -> None:
        """Weighted GPU shares of the namespaces that hold GPUs, and Jain's index."""
        shares = namespace_shares(snapshot)
        for namespace, share in shares.items():
            self.share.labels(namespace=namespace).set(share)
        self.jain.set(jain_index(list(shares.values())))
        ages = snapshot.utilisation_age_s[np.isfinite(snapshot.utilisation_age_s)]
        self.staleness.set(float(ages.max()) if ages.size else -1.0)

    def app(self) -> web.Application:
        """The HTTP endpoints."""

        async def metrics(_: web.Request) -> web.Response:
            body = generate_latest(self.registry)
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

        async def healthz(_: web.Request) -> web.Response:
            return web.Response(text="ok")

        async def readyz(_: web.Request) -> web.Response:
            return web.Response(
                text="ok" if self.ready else "not ready", status=200 if self.ready else 503
            )

        application = web.Application()
        application.add_routes(
            [web.get("/metrics", metrics), web.get("/healthz", healthz), web.get("/readyz", readyz)]
        )
        return application

    async def serve(self, host: str, port: int) -> web.AppRunner:
        """Start serving; the caller cleans the returned runner up."""
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        return runner
