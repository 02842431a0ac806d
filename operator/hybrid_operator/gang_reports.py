"""What the leader tells about gangs: PodGroup status, Events on the PodGroup, gang metrics.

At the end of a pass, every gang whose members, object or notice changed is looked at
again (:meth:`GangBook.status`). A PodGroup's status subresource is patched only when
what it says changed (``phase``, the counts, ``scheduleStartTime`` and the ``Scheduled``
condition); the condition's reason and message also go out as an Event on the PodGroup,
once per change, because scheduler-plugins' CRD prunes ``conditions``.

``scheduleTimeoutSeconds``: no pod of a waiting gang is bound before all fit, so no
capacity is held by its pods (a reserving policy's reservation of nodes for it is the
arbitrator's and follows its own rules); once a PodGroup has waited that long (from
``scheduleStartTime``, or from when it last fell short again), a Warning Event
``GangTimeout`` says how many of its pods exist and are bound, once per wait, and the
gang keeps waiting.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hybrid_operator.gangs import GangBook, GangKey, GroupStatus, WaitReason
from hybrid_operator.k8s.api import ClusterApi
from hybrid_operator.k8s.calls import ApiThreads
from hybrid_operator.k8s.gangs import POD_GROUP_GROUP, POD_GROUP_VERSION
from hybrid_operator.observability import OperatorMetrics

log = logging.getLogger("hybrid_scheduler")
TIMEOUT_REASON = "GangTimeout"


@dataclass
class Waiting:
    """A gang that waits: since when (seconds since the epoch), and whether its timeout
    was told."""

    since_s: float
    timed_out: bool = False


def rfc3339(at_s: float) -> str:
    """Seconds since the epoch in the API server's time format."""
    return datetime.fromtimestamp(at_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_body(status: GroupStatus, start: str | None, changed_at: str) -> dict[str, Any]:
    """The status subresource's fields for ``status``."""
    body: dict[str, Any] = {
        "phase": status.phase.value,
        "scheduled": status.scheduled,
        "running": status.running,
        "succeeded": status.succeeded,
        "failed": status.failed,
        "conditions": [
            {
                "type": "Scheduled",
                "status": "False" if status.waiting else "True",
                "reason": status.reason.value,
                "message": status.message,
                "lastTransitionTime": changed_at,
            }
        ],
    }
    if start is not None:
        body["scheduleStartTime"] = start
    return body


def observed(status: GroupStatus) -> tuple[object, ...]:
    """``status`` as :attr:`PodGroupView.observed` reads it back from the object."""
    counts = (status.scheduled, status.running, status.succeeded, status.failed)
    return (status.phase.value, *counts, status.reason.value, status.message)


class GangReports:
    """Writes PodGroup status and Events for the gangs the book marks as changed."""

    def __init__(
        self,
        book: GangBook,
        api: ClusterApi,
        threads: ApiThreads,
        metrics: OperatorMetrics,
        clock: Callable[[], float],
    ) -> None:
        self.book = book
        self.api = api
        self.threads = threads
        self.metrics = metrics
        self.clock = clock
        #: What was last written (or found written) per PodGroup, without the times.
        self.written: dict[GangKey, tuple[GroupStatus, str | None]] = {}
        #: The last (reason, message) told as an Event per PodGroup.
        self.told: dict[GangKey, tuple[WaitReason, str]] = {}
        self.waiting: dict[GangKey, Waiting] = {}
        #: When each PodGroup was first looked at with pods, and the ``scheduleStartTime``
        #: written (or found) for it.
        self.started: dict[GangKey, float] = {}
        self.start_told: dict[GangKey, str] = {}
        #: Gangs whose minMember pods were bound (each counted once while it stays so).
        self.placed: set[GangKey] = set()

    def due(self) -> bool:
        """Whether a gang changed or a timeout is due (a flush has work)."""
        return bool(self.book.dirty) or bool(self._timeouts_due(self.clock()))

    def _timeouts_due(self, now: float) -> list[GangKey]:
        due = []
        for key, wait in self.waiting.items():
            group = self.book.groups.get(key)
            timeout = None if group is None else group.schedule_timeout_s
            if timeout is not None and not wait.timed_out and now - wait.since_s >= timeout:
                due.append(key)
        return due

    async def flush(self) -> None:
        """Look at every changed gang again; tell what changed (best effort)."""
        now = self.clock()
        keys, self.book.dirty = self.book.dirty, set()
        for key in sorted(keys | set(self._timeouts_due(now))):
            await self._gang(key, now)
        self.metrics.gangs_waiting.set(len(self.waiting))

    async def _gang(self, key: GangKey, now: float) -> None:
        status = self.book.status(key)
        if status is None:
            self.waiting.pop(key, None)
            self.placed.discard(key)
            return
        members = len(self.book.claiming(key))
        if members:
            self.started.setdefault(key, now)
        if status.waiting and members:
            self.waiting.setdefault(key, Waiting(now))
            self.placed.discard(key)
        elif not status.waiting:
            self.waiting.pop(key, None)
            if key not in self.placed:
                self.placed.add(key)
                self.metrics.gangs_placed.inc()
        group = self.book.groups.get(key)
        if group is None:
            return  # a Job's gang: no object to write on
        wait = self.waiting.get(key)
        await self._write(key, status, self._start(key, group.schedule_start), now)
        if (status.reason, status.message) != self.told.get(key):
            self.told[key] = (status.reason, status.message)
            warning = status.waiting and status.reason is not WaitReason.NOT_TRIED
            await self._event(key, status.reason.value, status.message, warning)
        timeout = group.schedule_timeout_s
        if (
            wait is not None
            and timeout is not None
            and not wait.timed_out
            and now - wait.since_s >= timeout
        ):
            wait.timed_out = True
            message = (
                f"gang {key[0]}/{key[1]}: {status.scheduled} of {group.min_member} pods "
                f"bound, {members} {'exists' if members == 1 else 'exist'}, "
                f"after scheduleTimeoutSeconds={timeout:g}; "
                "none is bound until all fit; it keeps waiting"
            )
            await self._event(key, TIMEOUT_REASON, message, True)

    def _start(self, key: GangKey, found: str | None) -> str | None:
        """``scheduleStartTime``: the one found on the object when first looked at, else
        when this replica first looked at the gang with pods; kept from then on, so that
        another controller's writes to it never make this one write again."""
        if key in self.start_told:
            return self.start_told[key]
        since = self.started.get(key)
        start = found or (None if since is None else rfc3339(since))
        if start is not None:
            self.start_told[key] = start
        return start

    async def _write(
        self, key: GangKey, status: GroupStatus, start: str | None, now: float
    ) -> None:
        if self.written.get(key) == (status, start):
            return
        group = self.book.groups.get(key)
        if (
            key not in self.written  # the first look: the object may say it already
            and group is not None
            and (group.schedule_start, group.observed) == (start, observed(status))
        ):
            self.written[key] = (status, start)
            return
        body = status_body(status, start, rfc3339(now))
        try:
            await self.threads.call(self.api.patch_pod_group_status, key[0], key[1], body)
        except Exception as exc:  # best effort: the next change writes it again
            log.warning("could not patch the status of PodGroup %s/%s: %s", *key, exc)
            return
        self.written[key] = (status, start)

    async def _event(self, key: GangKey, reason: str, message: str, warning: bool) -> None:
        reference = {
            "apiVersion": f"{POD_GROUP_GROUP}/{POD_GROUP_VERSION}",
            "kind": "PodGroup",
            "namespace": key[0],
            "name": key[1],
        }
        group = self.book.groups.get(key)
        if group is not None:
            reference["uid"] = group.uid
        try:
            await self.threads.call(self.api.event, reference, reason, message, warning)
        except Exception as exc:  # best effort
            log.warning("could not post %s on PodGroup %s/%s: %s", reason, *key, exc)

    def forget(self, key: GangKey) -> None:
        """PodGroup ``key`` was deleted."""
        self.written.pop(key, None)
        self.told.pop(key, None)
        self.waiting.pop(key, None)
        self.started.pop(key, None)
        self.start_told.pop(key, None)
        self.placed.discard(key)
