"""Gangs fed from the watches: the loop's part of :class:`~hybrid_operator.gangs.GangBook`.

Every pod event passes through :meth:`GangFeed.observe`, which stamps the pod's gang on
it (the cache then counts the gang's bound members, the queue holds it with its gang).
A pending pod whose PodGroup does not exist is held out of the queue, told why once per
reason (FailedScheduling and PodScheduled=False), and queued as soon as the PodGroup
appears. A PodGroup, Job or namespace event resolves the gangs of the pods it concerns
again; a pod queued under another gang is queued again with the new one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from hybrid_operator.cache import ClusterCache
from hybrid_operator.gang_reports import GangReports
from hybrid_operator.gangs import GangBook, Member, Resolution
from hybrid_operator.k8s.views import PodView, WatchEvent, WatchType
from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.queue import SchedulingQueue
from hybrid_policy.policies import Policy

log = logging.getLogger("hybrid_scheduler")


class GangFeed:
    """Resolves pods' gangs as the watches change them; holds pods waiting for a PodGroup."""

    def __init__(
        self,
        book: GangBook,
        reports: GangReports,
        cache: ClusterCache,
        queue: SchedulingQueue,
        policy: Policy,
        is_ours: Callable[[PodView], bool],
        tell: Callable[[PendingPod, str], None],
    ) -> None:
        self.book = book
        self.reports = reports
        self.cache = cache
        self.queue = queue
        self.policy = policy
        self.is_ours = is_ours
        #: Tells a pending pod why it cannot be scheduled (at the end of the pass).
        self.tell = tell
        #: Pending pods of ours held out of the queue, and why (their PodGroup is missing).
        self.held: dict[str, str] = {}
        #: Whether a gang was seen under a policy that places pods one by one (logged).
        self.told_gang_blind = False

    def observe(self, view: PodView) -> tuple[PodView, Resolution, bool]:
        """The pod's view with its gang stamped, its resolution, and whether it changed."""
        return self.book.observe(view)

    def gone(self, uid: str) -> None:
        """A pod was deleted, or no longer waits."""
        self.book.gone(uid)
        self.held.pop(uid, None)

    def enqueue(self, pod: PendingPod, resolution: Resolution, changed: bool) -> None:
        """Queue a pending pod of ours with its gang, or hold it out of the queue."""
        uid = pod.uid
        in_flight = self.queue.is_in_flight(uid)
        if resolution.hold is not None:
            if not in_flight:
                self.queue.remove(uid)
            if self.held.get(uid) != resolution.hold:
                self.held[uid] = resolution.hold
                if resolution.tell:
                    self.tell(pod, resolution.hold)
            return
        self.held.pop(uid, None)
        if resolution.gang is not None and not self.policy.profile.gang_aware:
            self._gang_blind(pod)
        if changed and not in_flight:
            self.queue.remove(uid)  # queued with another gang: queue it again
        if uid not in self.queue:
            self.queue.add(pod)

    def _gang_blind(self, pod: PendingPod) -> None:
        if not self.told_gang_blind:
            self.told_gang_blind = True
            log.warning(
                "policy %s places pods one by one: %s's gang is not placed all or nothing "
                "(gang-aware policies: docs/gangs.md)",
                self.policy.name,
                pod.key,
            )

    def regang(self, members: list[Member]) -> None:
        """A PodGroup, Job or namespace changed: resolve its pods' gangs again."""
        for member in members:
            view, resolution, changed = self.book.observe(member.view)
            if not changed:
                continue
            uid = view.uid
            if uid in self.cache.bound:
                self.cache.upsert_pod(view)  # counted in its gang's members
            elif view.waiting and self.is_ours(view) and not self.cache.is_placed(uid):
                self.enqueue(view.pod, resolution, changed)
        self.queue.move_all_to_active()

    def pod_group(self, event: WatchEvent) -> None:
        """A PodGroup was listed, added, changed or deleted."""
        group = event.pod_group
        if event.type is WatchType.DELETED or group is None:
            namespace = event.reference.get("namespace", "")
            self.group_gone(namespace, event.name)
            return
        self.regang(self.book.upsert_group(group))

    def group_gone(self, namespace: str, name: str) -> None:
        """A PodGroup went: its pods wait for it again."""
        self.reports.forget((namespace, name))
        self.regang(self.book.delete_group(namespace, name))

    def job(self, event: WatchEvent) -> None:
        """A Job was listed, added, changed or deleted."""
        job = event.job
        if event.type is WatchType.DELETED or job is None:
            self.book.delete_job(event.reference.get("namespace", ""), event.name)
            return
        self.regang(self.book.upsert_job(job))

    def namespace(self, name: str, gang_jobs: bool) -> None:
        """A namespace's ``gang-jobs`` label was seen."""
        self.regang(self.book.namespace_rule(name, gang_jobs))
