"""kopf wiring: watch pods, nodes and namespaces, and run the scheduling loop beside them.

Only ``@kopf.on.event`` handlers are used: unlike kopf's create/update handlers they write
no annotations and no finalizers onto the objects they see, which a scheduler must not do
to its users' pods. The watches are cluster-wide because capacity is shared: every pod on
every node counts, whichever namespace or scheduler it belongs to. Before the first pass,
nodes, pods and namespaces are listed once, so the first decisions see the whole cluster.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import kopf
from kubernetes import client

from hybrid_operator.scheduler import Scheduler
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
        # Every watched resource is built in: no need to watch CustomResourceDefinitions
        # for new ones, which would also need a permission the operator has no use for.
        settings.scanning.disabled = True
        if scheduler.settings.webhook:
            settings.admission.server = webhook_server(scheduler.settings)
            settings.admission.managed = managed_configuration(scheduler.settings)

    if scheduler.settings.webhook:
        register_webhook(registry, scheduler.settings, scheduler.enabled_namespaces)

    @kopf.on.event("", "v1", "pods", registry=registry)
    def pod_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        scheduler.on_pod(event.get("type"), body)

    @kopf.on.event("", "v1", "nodes", registry=registry)
    def node_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        scheduler.on_node(event.get("type"), body)

    @kopf.on.event("", "v1", "namespaces", registry=registry)
    def namespace_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        scheduler.on_namespace(event.get("type"), body)

    return registry


def prime(scheduler: Scheduler, api_client: client.ApiClient) -> None:
    """List namespaces, nodes and pods once, so the first pass sees the whole cluster."""
    core = client.CoreV1Api(api_client)
    for kind, items, handle in (
        ("namespaces", core.list_namespace().items, scheduler.on_namespace),
        ("nodes", core.list_node().items, scheduler.on_node),
        ("pods", core.list_pod_for_all_namespaces().items, scheduler.on_pod),
    ):
        for item in items:
            # The client's serialiser has no type annotations; it returns plain dicts.
            handle(None, api_client.sanitize_for_serialization(item))  # type: ignore[no-untyped-call]
        log.info("listed %d %s", len(items), kind)


async def run_operator(
    scheduler: Scheduler, api_client: client.ApiClient, kubeconfig: str | None
) -> None:
    """Run kopf's watches and the scheduling loop until interrupted."""
    if kubeconfig:
        os.environ["KUBECONFIG"] = kubeconfig
    await asyncio.to_thread(prime, scheduler, api_client)
    stop = asyncio.Event()
    registry = build_registry(scheduler)
    runner = None
    if scheduler.settings.http_port:
        runner = await scheduler.metrics.serve(
            scheduler.settings.http_host, scheduler.settings.http_port
        )
    tasks = [asyncio.create_task(scheduler.run_forever(stop))]
    if scheduler.elector is not None:
        tasks.append(asyncio.create_task(scheduler.elector.run_forever(stop)))
    if scheduler.collector is not None:
        refresh = scheduler.settings.metrics_refresh_s
        tasks.append(asyncio.create_task(scheduler.collector.run_forever(refresh, stop)))
    try:
        await kopf.operator(registry=registry, clusterwide=True, standalone=True)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        if runner is not None:
            await runner.cleanup()
