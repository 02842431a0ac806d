"""The scheduling loop: watch events in, bindings, Events and decision records out.

Watch handlers feed :meth:`Scheduler.on_pod`, :meth:`Scheduler.on_node` and
:meth:`Scheduler.on_namespace`; :meth:`Scheduler.schedule_once` takes a batch from the
queue, runs the policy's profile on a snapshot of the cache (the same code the simulator
runs), assumes every placement, then binds. A pod is bound at most once: a pod that is
bound or assumed is never queued or scheduled again, and a binding carries the pod's UID.
A failed binding forgets the assumption (conflict or pod gone) or retries with back-off.
A successful placement costs two API calls, as with kube-scheduler: the binding, which
also carries the decision record, and the ``Scheduled`` Event.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from hybrid_operator.cache import TERMINAL_PHASES, ClusterCache
from hybrid_operator.k8s.api import (
    BindOutcome,
    ClusterApi,
    involved_object,
    pod_reference,
    record_json,
)
from hybrid_operator.k8s.convert import Body, pending_pod
from hybrid_operator.k8s.problems import Problem
from hybrid_operator.leader import LeaderElector
from hybrid_operator.observability import Counters, OperatorMetrics
from hybrid_operator.settings import OperatorSettings
from hybrid_operator.shadow import ShadowRecorder
from hybrid_operator.utilisation import UtilisationCollector, apply_utilisation
from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.cycle import Decision
from hybrid_policy.framework.queue import SchedulingQueue
from hybrid_policy.policies import ModelOptions, Policy, build_policy

log = logging.getLogger("hybrid_scheduler")
DECISION_ANNOTATION = "hybrid-scheduler.io/decision"
OPT_IN_LABEL = "hybrid-scheduler.io/enabled"
#: Placements bound at once, and threads for API calls.
BIND_CONCURRENCY = 16
T = TypeVar("T")
MAX_PASSES_IN_FLIGHT = 2
#: ``hybrid_scheduler_fallbacks_total`` reason of passes made without the learned model.
MODEL_FALLBACK_REASON = "model-unavailable"


def policy_from(settings: OperatorSettings, rng: np.random.Generator) -> Policy:
    """The policy the settings name, its model from ``model_path``/``model_fallback``.

    Raises :class:`~hybrid_policy.dqn.checkpoint.CheckpointError` (naming the file and the
    problem) when a learned policy's checkpoint is unusable and there is no fallback.
    """
    model = ModelOptions(
        Path(settings.model_path) if settings.model_path else None, settings.model_fallback
    )
    return build_policy(settings.policy, rng, model)


class Scheduler:
    """Queue, cache and policy, driven by watch events and a periodic pass."""

    def __init__(
        self,
        settings: OperatorSettings,
        api: ClusterApi,
        clock: Callable[[], float] = time.time,
        collector: UtilisationCollector | None = None,
        elector: LeaderElector | None = None,
        policy: Policy | None = None,
    ) -> None:
        self.settings = settings
        self.api = api
        self.clock = clock
        self.collector = collector
        self.elector = elector
        self.cache = ClusterCache(settings.default_weight, clock)
        self.queue = SchedulingQueue(settings.initial_backoff_s, settings.max_backoff_s)
        self.rng = np.random.default_rng(settings.seed)
        self.policy = policy or policy_from(settings, self.rng)
        if self.policy.fallback:
            log.warning(
                "policy %s runs degraded: the model is unusable, scheduling with %s",
                self.policy.name,
                self.policy.fallback,
            )
        self.counters = Counters()
        #: Namespaces labelled ``hybrid-scheduler.io/enabled=true`` (for the webhook).
        self.enabled_namespaces: set[str] = set()
        #: The last FailedScheduling message posted per pod UID: a pod that keeps failing
        #: for the same reason gets one Event, not one per retry.
        self.last_failure: dict[str, str] = {}
        self.shadow = ShadowRecorder(self, settings.shadow_of) if settings.shadow_of else None
        self.metrics = OperatorMetrics()
        self.api_threads = ThreadPoolExecutor(BIND_CONCURRENCY, thread_name_prefix="api")

    # -- watch events -------------------------------------------------------------------

    def is_ours(self, body: Body) -> bool:
        """Whether the pod names this scheduler and lives in a namespace we schedule."""
        spec = body.get("spec") or {}
        namespace = (body.get("metadata") or {}).get("namespace")
        wanted = not self.settings.namespaces or namespace in self.settings.namespaces
        return spec.get("schedulerName") == self.settings.scheduler_name and wanted

    def on_pod(self, event_type: str | None, body: Body) -> None:
        """A pod was listed, added, changed or deleted."""
        meta = body.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        had_node = uid in self.cache.bound
        if event_type == "DELETED":
            self.cache.delete_pod(uid)
            self.queue.remove(uid)
            self.last_failure.pop(uid, None)
            if had_node:
                self.queue.move_all_to_active()
            return
        self.cache.upsert_pod(body)
        if self.shadow is not None:
            self.shadow.observe(body)
        spec = body.get("spec") or {}
        phase = (body.get("status") or {}).get("phase")
        if spec.get("nodeName") or phase in TERMINAL_PHASES or meta.get("deletionTimestamp"):
            self.queue.remove(uid)
            if had_node and uid not in self.cache.bound:
                self.queue.move_all_to_active()  # capacity was freed
            return
        if self.is_ours(body) and not self.cache.is_placed(uid) and uid not in self.queue:
            pod, problems = pending_pod(body)
            self._report(body, "Pod", problems)
            self.queue.add(pod)

    def on_node(self, event_type: str | None, body: Body) -> None:
        """A node was listed, added, changed or deleted."""
        name = str((body.get("metadata") or {}).get("name") or "")
        if event_type == "DELETED":
            for pod in self.cache.delete_node(name):
                log.warning(
                    "node %s went away before %s was bound; scheduling it again", name, pod.key
                )
                self.queue.add(pod)
            return
        self._report(body, "Node", self.cache.upsert_node(body))
        self.queue.move_all_to_active()

    def on_namespace(self, event_type: str | None, body: Body) -> None:
        """A namespace was listed, added, changed or deleted."""
        meta = body.get("metadata") or {}
        name = str(meta.get("name") or "")
        labels = meta.get("labels") or {}
        if event_type != "DELETED" and str(labels.get(OPT_IN_LABEL, "")).lower() == "true":
            self.enabled_namespaces.add(name)
        else:
            self.enabled_namespaces.discard(name)
        if event_type == "DELETED":
            self.cache.delete_namespace(name)
            return
        self._report(body, "Namespace", self.cache.upsert_namespace(body))

    def _report(self, body: Body, kind: str, problems: list[Problem]) -> None:
        for problem in problems:
            name = (body.get("metadata") or {}).get("name")
            log.warning("%s %s: %s", kind, name, problem.message)
            self._post(involved_object(body, kind), "InvalidField", problem.message, warning=True)

    def _post(
        self, involved: dict[str, str], reason: str, message: str, warning: bool = False
    ) -> None:
        try:
            self.api.event(involved, reason, message, warning)
        except Exception as exc:  # an Event is best effort; never let it stop scheduling
            log.warning("could not post %s event for %s: %s", reason, involved.get("name"), exc)

    # -- the pass -----------------------------------------------------------------------

    def decide(self) -> list[Decision]:
        """Take a batch, run the profile, assume every placement; nothing is bound yet."""
        now = self.clock()
        batch = self.queue.pop_batch(
            now, self.policy.profile.queue_sort.sort_key, self.settings.batch_size
        )
        fresh = []
        for pod in batch:
            if self.cache.is_placed(pod.uid):
                self.queue.done(pod.uid)
            else:
                fresh.append(pod)
        self.metrics.pending.set(len(self.queue) + len(fresh))
        if not fresh:
            return []
        started = time.perf_counter()
        snapshot = self.cache.snapshot(now)
        if self.collector is not None:
            apply_utilisation(snapshot, self.collector, self.cache, now)
        # The queue context learned scorers read: how much is waiting, and for what.
        waiting = [*self.queue.pending(), *fresh]
        snapshot.queue.pending_pods = len(waiting)
        snapshot.queue.pending_demand = sum(
            (snapshot.request_vector(p) for p in waiting), np.zeros(len(snapshot.resources))
        )
        decisions = self.policy.profile.schedule_batch(fresh, snapshot, self.rng, explain=True)
        self.metrics.batch.observe(time.perf_counter() - started)
        self.metrics.batch_size.observe(len(fresh))
        self.metrics.observe_shares(snapshot)
        if self.collector is not None and self.collector.status != "live":
            self.metrics.fallbacks.labels(reason="metrics-unavailable").inc()
        if self.policy.fallback:
            self.metrics.fallbacks.labels(reason=MODEL_FALLBACK_REASON).inc()
        for d in decisions:
            if d.node is not None:
                self.cache.assume(d.pod, d.node)
        return decisions

    @property
    def metrics_status(self) -> str:
        """Where live utilisation stands: live, unavailable (why), or not configured."""
        return self.collector.status if self.collector else "not configured"

    async def schedule_once(self) -> list[Decision]:
        """One pass: decide, then bind placements concurrently and report every outcome.

        API calls run in worker threads; the queue and the cache are only touched here,
        on the event loop, like the watch handlers that also change them.
        """
        decisions = self.decide()
        await self.settle_all(decisions, asyncio.Semaphore(BIND_CONCURRENCY))
        return decisions

    async def settle_all(self, decisions: list[Decision], limit: asyncio.Semaphore) -> None:
        """Bind (or report) every decision of a pass, at most ``limit`` at a time."""

        async def settle(decision: Decision) -> None:
            async with limit:
                await self._settle(decision)

        await asyncio.gather(*(settle(d) for d in decisions))
        if self.shadow is not None:
            await self.shadow.flush()

    async def in_api_thread(self, fn: Callable[..., T], *args: object) -> T:
        """Run a blocking API call in one of the operator's own API threads.

        Calls wait there for the client's rate limit, so they get threads of their own
        rather than the event loop's few default workers, which the watches' helpers and
        the Prometheus collector also use.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.api_threads, functools.partial(fn, *args))

    async def _call(
        self, what: str, pod: PendingPod, fn: Callable[..., object], *args: object
    ) -> None:
        try:
            await self.in_api_thread(fn, *args)
        except Exception as exc:  # reporting is best effort; never let it stop scheduling
            log.warning("could not %s on %s: %s", what, pod.key, exc)

    async def _settle(self, d: Decision) -> None:
        pod = d.pod
        if d.node is None:
            self.counters.unschedulable += 1
            self.metrics.attempts.labels(result="unschedulable").inc()
            self.queue.park(pod.uid, self.clock())
            message = d.status.message
            if self.last_failure.get(pod.uid) == message:
                return
            self.last_failure[pod.uid] = message
            await self._call(
                "post FailedScheduling",
                pod,
                self.api.event,
                pod_reference(pod),
                "FailedScheduling",
                message,
                True,
            )
            await self._call("set PodScheduled", pod, self.api.mark_unschedulable, pod, message)
            return
        if self.elector is not None and not self.elector.may_act():
            # Leadership ended after this pass decided: the pod is the new leader's.
            self.cache.forget(pod.uid)
            self.queue.requeue(pod.uid)
            return
        # The decision record rides on the Binding: the API server writes it onto the pod
        # with the node and PodScheduled=True, so success costs a binding and an Event,
        # as with kube-scheduler.
        record = {DECISION_ANNOTATION: record_json(self.record(d))}
        result = await self.in_api_thread(self.api.bind, pod, d.node, record)
        attempts = self.counters.bind_attempts
        attempts[result.outcome] = attempts.get(result.outcome, 0) + 1
        self.metrics.attempts.labels(result=result.outcome.value).inc()
        self.last_failure.pop(pod.uid, None)
        if result.outcome is BindOutcome.BOUND:
            self.counters.bound += 1
            if pod.created_at_s > 0:
                self.metrics.latency.observe(max(self.clock() - pod.created_at_s, 0.0))
            self.queue.done(pod.uid)
            share = "n/a" if d.namespace_share is None else f"{d.namespace_share:.3f}"
            score = "n/a" if d.score is None else f"{d.score:.1f}"
            message = (
                f"Successfully assigned {pod.key} to {d.node} "
                f"(score {score}, namespace share {share})"
            )
            await self._call(
                "post Scheduled", pod, self.api.event, pod_reference(pod), "Scheduled", message
            )
            return
        self.cache.forget(pod.uid)
        if result.outcome in (BindOutcome.CONFLICT, BindOutcome.GONE):
            # Bound by someone else, recreated, or deleted: the watch says what happens next.
            self.counters.conflicts += 1
            self.queue.done(pod.uid)
            log.info("binding %s to %s: %s (%s)", pod.key, d.node, result.outcome, result.detail)
        else:
            self.counters.errors += 1
            self.queue.park(pod.uid, self.clock())
            self.queue.move_all_to_active()
            log.warning("binding %s to %s failed, will retry: %s", pod.key, d.node, result.detail)

    def record(self, d: Decision) -> dict[str, Any]:
        """The compact decision record written on a bound pod."""
        return {
            "policy": self.policy.name,
            "path": f"{d.path}, {self.policy.fallback_part} fallback"
            if self.policy.fallback
            else d.path,
            "node": d.node,
            "score": None if d.score is None else round(d.score, 2),
            "runnersUp": [{"node": n, "score": round(s, 2)} for n, s in d.runners_up],
            "namespaceShare": None if d.namespace_share is None else round(d.namespace_share, 4),
            "metrics": self.metrics_status,
            "instance": self.settings.identity,
            "at": round(self.clock(), 3),
        }

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Pass after pass, every ``batch_interval_s``, until ``stop`` is set.

        A pass's bindings go on while the next pass decides, as kube-scheduler's binding
        cycle runs beside its next scheduling cycle: the placements are assumed in the
        cache, so the next pass counts them, and deciding never waits for the API
        server. At most ``MAX_PASSES_IN_FLIGHT`` passes bind at once.
        """
        limit = asyncio.Semaphore(BIND_CONCURRENCY)
        in_flight: set[asyncio.Task[None]] = set()
        while not stop.is_set():
            started = time.perf_counter()
            try:
                if self.elector is None or self.elector.is_leader:
                    while len(in_flight) >= MAX_PASSES_IN_FLIGHT:
                        await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                    decisions = self.decide()
                    # Shadow records are written at the end of a pass, ours or not.
                    if decisions or self.shadow is not None:
                        task = asyncio.create_task(self._settle_pass(decisions, limit))
                        in_flight.add(task)
                        task.add_done_callback(in_flight.discard)
            except Exception:  # one bad pass must not end scheduling
                log.exception("scheduling pass failed")
            self.metrics.ready = True
            pause = max(self.settings.batch_interval_s - (time.perf_counter() - started), 0.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=pause)
        if in_flight:
            await asyncio.wait(in_flight)

    async def _settle_pass(self, decisions: list[Decision], limit: asyncio.Semaphore) -> None:
        try:
            await self.settle_all(decisions, limit)
        except Exception:  # one bad pass must not end scheduling
            log.exception("binding a pass failed")
