"""Leader election over a coordination.k8s.io Lease, as kube-scheduler does it.

Several replicas watch and keep their caches warm; only the holder of the Lease runs
scheduling passes, so a takeover needs no warm-up. The holder renews every
``renew_interval_s``; a replica takes the Lease over when it has not seen it renewed for
``lease_duration_s`` by its own clock (never comparing clocks across machines). Every
write carries the Lease's resourceVersion, so two replicas racing for it cannot both win.
Even a deposed leader that still binds cannot bind a pod twice: a binding names the pod's
UID and the API server refuses a second one with a conflict.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("hybrid_scheduler")


def _micro_now() -> datetime:
    return datetime.now(UTC)


class LeaderElector:
    """Holds or watches one Lease."""

    def __init__(
        self,
        api_client: client.ApiClient,
        identity: str,
        namespace: str = "default",
        name: str = "hybrid-scheduler",
        lease_duration_s: float = 15.0,
        renew_interval_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = client.CoordinationV1Api(api_client)
        self.identity = identity
        self.namespace = namespace
        self.name = name
        self.lease_duration_s = lease_duration_s
        self.renew_interval_s = renew_interval_s
        self.clock = clock
        self.is_leader = False
        self._observed: tuple[Any, Any] | None = None
        self._observed_at = 0.0

    def _spec(self, transitions: int) -> client.V1LeaseSpec:
        now = _micro_now()
        return client.V1LeaseSpec(
            holder_identity=self.identity,
            lease_duration_seconds=int(self.lease_duration_s),
            acquire_time=now,
            renew_time=now,
            lease_transitions=transitions,
        )

    def try_acquire_or_renew(self) -> bool:
        """One round of the election; returns whether this replica leads now."""
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                log.warning("leader election: cannot read the Lease: %s %s", exc.status, exc.reason)
                return self._lose()
            body = client.V1Lease(
                metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
                spec=self._spec(0),
            )
            return self._write(lambda: self.api.create_namespaced_lease(self.namespace, body))
        spec = lease.spec or client.V1LeaseSpec()
        seen = (spec.holder_identity, spec.renew_time)
        if seen != self._observed:
            self._observed, self._observed_at = seen, self.clock()
        if spec.holder_identity == self.identity:
            spec.renew_time = _micro_now()
        elif self.clock() - self._observed_at < self.lease_duration_s and spec.holder_identity:
            return self._lose()
        else:
            log.info("leader election: %s stopped renewing; taking over", spec.holder_identity)
            spec = self._spec((spec.lease_transitions or 0) + 1)
        lease.spec = spec
        return self._write(
            lambda: self.api.replace_namespaced_lease(self.name, self.namespace, lease)
        )

    def _write(self, call: Callable[[], object]) -> bool:
        try:
            call()
        except ApiException as exc:  # 409: someone else wrote first
            if exc.status != 409:
                log.warning(
                    "leader election: cannot write the Lease: %s %s", exc.status, exc.reason
                )
            return self._lose()
        if not self.is_leader:
            log.info("leader election: %s now leads", self.identity)
        self.is_leader = True
        return True

    def _lose(self) -> bool:
        if self.is_leader:
            log.warning("leader election: %s lost the lease; pausing scheduling", self.identity)
        self.is_leader = False
        return False

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Renew or contend every ``renew_interval_s`` until ``stop`` is set."""
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.try_acquire_or_renew)
            except Exception:  # an election round must never end the operator
                log.exception("leader election round failed")
                self._lose()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.renew_interval_s)
