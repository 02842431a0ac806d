"""The operator's own threads for blocking API calls, and listings of the whole cluster.

Calls wait there for the client's rate limit, so they get threads of their own rather
than the event loop's few default workers, which the watches' helpers and the Prometheus
collector also use. Nothing in these threads touches the cache or the queue: results come
back to the event loop, which owns them.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from hybrid_operator.k8s.convert import Body
from hybrid_operator.k8s.gangs import POD_GROUP_GROUP, POD_GROUP_PLURAL, POD_GROUP_VERSION

T = TypeVar("T")
#: Placements bound at once, and threads for API calls.
API_THREADS = 16


class ApiThreads:
    """A pool of threads for blocking calls, awaited from the event loop."""

    def __init__(self, size: int = API_THREADS) -> None:
        self.pool = ThreadPoolExecutor(size, thread_name_prefix="api")

    async def call(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` in one of the pool's threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, functools.partial(fn, *args))


@dataclass(frozen=True)
class Listing:
    """Every namespace, node and pod as one listing returned them (raw objects)."""

    namespaces: list[Body]
    nodes: list[Body]
    pods: list[Body]
    #: PodGroups; None when their CRD is not installed.
    pod_groups: list[Body] | None = None
    jobs: list[Body] = field(default_factory=list)


def list_pod_groups(api_client: client.ApiClient, timeout_s: float) -> list[Body] | None:
    """Every PodGroup, or None when the API server does not serve them (no CRD)."""
    custom = client.CustomObjectsApi(api_client)
    try:
        listed: Any = custom.list_cluster_custom_object(
            POD_GROUP_GROUP, POD_GROUP_VERSION, POD_GROUP_PLURAL, _request_timeout=timeout_s
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    items: list[Body] = listed.get("items") or []
    return items


def list_cluster(api_client: client.ApiClient, timeout_s: float) -> Listing:
    """List namespaces, nodes, pods, PodGroups and Jobs (blocking; each call with a
    timeout)."""
    core = client.CoreV1Api(api_client)
    batch = client.BatchV1Api(api_client)

    def plain(items: list[Any]) -> list[Body]:
        # The client's serialiser has no type annotations; it returns plain dicts.
        return [api_client.sanitize_for_serialization(i) for i in items]  # type: ignore[no-untyped-call]

    return Listing(
        namespaces=plain(core.list_namespace(_request_timeout=timeout_s).items),
        nodes=plain(core.list_node(_request_timeout=timeout_s).items),
        pods=plain(core.list_pod_for_all_namespaces(_request_timeout=timeout_s).items),
        pod_groups=list_pod_groups(api_client, timeout_s),
        jobs=plain(batch.list_job_for_all_namespaces(_request_timeout=timeout_s).items),
    )
