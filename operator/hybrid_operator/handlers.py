"""kopf wiring: watch pods, nodes, namespaces, PodGroups and Jobs, feed the loop, reconcile.

Only ``@kopf.on.event`` handlers are used: unlike kopf's create/update handlers they write
no annotations and no finalizers onto the objects they see, which a scheduler must not do
to its users' pods. The handlers are ``async``, so kopf runs them on the event loop rather
than in its thread pool, and they only convert the raw object and hand the event to the
loop that owns the state (:meth:`Scheduler.feed`). The watches are cluster-wide because
capacity is shared: every pod on every node counts, whichever namespace or scheduler it
belongs to. Before the first pass, the cluster is listed once; later listings (every
``resync_interval_s``, and soon after the watches re-list) reconcile the cache, as
informers do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

import kopf
from kubernetes import client

from hybrid_operator.k8s.calls import list_cluster
from hybrid_operator.k8s.fields import Body
from hybrid_operator.k8s.gangs import POD_GROUP_GROUP, POD_GROUP_PLURAL, POD_GROUP_VERSION
from hybrid_operator.k8s.pod_group_watch import PodGroupWatch
from hybrid_operator.k8s.views import ObjectKind
from hybrid_operator.scheduler import RELIST_RETRY_S, Scheduler
from hybrid_operator.webhook import managed_configuration, register_webhook, webhook_server

log = logging.getLogger("hybrid_scheduler")


def build_registry(scheduler: Scheduler) -> kopf.OperatorRegistry:
    """Handlers that feed ``scheduler`` from the watches."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_with_kubeconfig(**kwargs) or kopf.login_with_service_account(**kwargs)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.level = logging.WARNING
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.watching.connect_timeout = scheduler.settings.api_timeout_s
        # The resources are found once, at start-up: no need to watch
        # CustomResourceDefinitions for new ones, which would also need a permission the
        # operator has no use for. Without the PodGroup CRD, kopf says once that podgroups
        # cannot be served and watches the rest; a CRD installed later is found by the
        # reconciling listings, and PodGroups are then watched by watch_late_pod_groups.
        settings.scanning.disabled = True
        if scheduler.settings.webhook:
            settings.admission.server = webhook_server(scheduler.settings)
            settings.admission.managed = managed_configuration(scheduler.settings)

    if scheduler.settings.webhook:
        register_webhook(registry, scheduler.settings, scheduler.enabled_namespaces)

    @kopf.on.event("", "v1", "pods", registry=registry)
    async def pod_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        scheduler.feed(ObjectKind.POD, event.get("type"), body)

    @kopf.on.event("", "v1", "nodes", registry=registry)
    async def node_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        scheduler.feed(ObjectKind.NODE, event.get("type"), body)

    @kopf.on.event("", "v1", "namespaces", registry=registry)
    async def namespace_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        scheduler.feed(ObjectKind.NAMESPACE, event.get("type"), body)

    @kopf.on.event(POD_GROUP_GROUP, POD_GROUP_VERSION, POD_GROUP_PLURAL, registry=registry)
    async def pod_group_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        scheduler.feed(ObjectKind.POD_GROUP, event.get("type"), body)

    @kopf.on.event("batch", "v1", "jobs", registry=registry)
    async def job_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        scheduler.feed(ObjectKind.JOB, event.get("type"), body)

    return registry


async def resync(scheduler: Scheduler, api_client: client.ApiClient) -> float:
    """List the whole cluster in a thread, then reconcile the cache on the loop; returns
    when the listing began (the cache's ticks)."""
    listed_at = scheduler.cache.ticks()
    listing = await asyncio.to_thread(list_cluster, api_client, scheduler.settings.api_timeout_s)
    scheduler.drain()
    scheduler.reconcile(listing, listed_at)
    log.info(
        "listed %d namespaces, %d nodes, %d pods, %d PodGroups, %d Jobs",
        len(listing.namespaces),
        len(listing.nodes),
        len(listing.pods),
        len(listing.pod_groups or ()),
        len(listing.jobs),
    )
    return listed_at


async def resync_forever(
    scheduler: Scheduler, api_client: client.ApiClient, stop: asyncio.Event
) -> None:
    """Reconcile every ``resync_interval_s``, and at once when the cache may have missed
    events (passes wait meanwhile; a failed listing is tried again every second)."""
    while not stop.is_set():
        if not scheduler.relisted.is_set():
            waits = [
                asyncio.create_task(stop.wait()),
                asyncio.create_task(scheduler.relisted.wait()),
            ]
            await asyncio.wait(
                waits, timeout=scheduler.settings.resync_interval_s, return_when="FIRST_COMPLETED"
            )
            for task in waits:
                task.cancel()
        if stop.is_set():
            return
        try:
            listed_at = await resync(scheduler, api_client)
        except Exception as exc:  # the API server may be down: try again soon
            log.warning("could not list the cluster to reconcile: %s", exc)
            if scheduler.relisted.is_set():
                await asyncio.sleep(RELIST_RETRY_S)
            continue
        scheduler.reconciled(listed_at)


async def watch_late_pod_groups(
    scheduler: Scheduler, api_client: client.ApiClient, stop: asyncio.Event
) -> None:
    """Once a listing finds the PodGroup CRD installed after start-up, watch PodGroups
    with the operator's own watch (kopf does not) until ``stop`` is set."""
    waits = [
        asyncio.create_task(stop.wait()),
        asyncio.create_task(scheduler.pod_groups_appeared.wait()),
    ]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in waits:
        task.cancel()
    if stop.is_set():
        return

    def feed(kind: str | None, body: Body) -> None:
        scheduler.feed(ObjectKind.POD_GROUP, kind, body)

    await PodGroupWatch(api_client, feed, scheduler.settings.api_timeout_s).run(stop)


async def run_operator(
    scheduler: Scheduler, api_client: client.ApiClient, kubeconfig: str | None
) -> None:
    """Run kopf's watches, the scheduling loop and the reconciling listings until stopped."""
    if kubeconfig:
        os.environ["KUBECONFIG"] = kubeconfig
    await resync(scheduler, api_client)
    stop = asyncio.Event()
    registry = build_registry(scheduler)
    runner = None
    if scheduler.settings.http_port:
        runner = await scheduler.metrics.serve(
            scheduler.settings.http_host, scheduler.settings.http_port
        )
    tasks = [
        asyncio.create_task(scheduler.run_forever(stop)),
        asyncio.create_task(resync_forever(scheduler, api_client, stop)),
        asyncio.create_task(watch_late_pod_groups(scheduler, api_client, stop)),
    ]
    if scheduler.elector is not None:
        tasks.append(asyncio.create_task(scheduler.elector.run_forever(stop)))
    if scheduler.collector is not None:
        refresh = scheduler.settings.metrics_refresh_s
        tasks.append(asyncio.create_task(scheduler.collector.run_forever(refresh, stop)))
    try:
        await kopf.operator(registry=registry, clusterwide=True, standalone=True)
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.gather(*tasks)
        if runner is not None:
            await runner.cleanup()
