"""The gangs the cluster states: which gang each pod belongs to, and how each PodGroup stands.

The book keeps the PodGroups and Jobs the watches show, the namespaces that make their
indexed Jobs gangs, and every pod that names a PodGroup or a Job. For each such pod it
answers a :class:`Resolution`: the :class:`~hybrid_policy.domain.Gang` the pod belongs to
(the policy core then places the gang all or nothing), none (the pod is scheduled alone),
or a reason to hold the pod out of the queue (its PodGroup does not exist yet: like
Coscheduling, the pod waits for it, and is queued once it appears).

From the same members it computes each PodGroup's status (:func:`group_status`), which
the leader writes (:mod:`hybrid_operator.gang_reports`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from hybrid_operator.gang_resources import MIN_RESOURCES
from hybrid_operator.k8s.gangs import GangClaim, JobView, PodGroupView
from hybrid_operator.k8s.views import PodPhase, PodView
from hybrid_policy.domain import Gang
from hybrid_policy.framework.cycle import Decision

GangKey = tuple[str, str]


@dataclass(frozen=True)
class Resolution:
    """A pod's gang (None: scheduled alone), or why it is held out of the queue."""

    gang: Gang | None = None
    hold: str | None = None
    #: Whether the pod is told why it is held (not while its Job's event is on its way).
    tell: bool = True


ALONE = Resolution()


class GroupPhase(StrEnum):
    """``status.phase`` of a PodGroup, as scheduler-plugins names them."""

    PENDING = "Pending"
    SCHEDULED = "Scheduled"
    RUNNING = "Running"
    FINISHED = "Finished"
    FAILED = "Failed"


class WaitReason(StrEnum):
    """The reason of the ``Scheduled`` condition (and of the Event) of a PodGroup."""

    SCHEDULED = "Scheduled"
    WAITING_FOR_MEMBERS = "WaitingForMembers"
    UNSCHEDULABLE = "Unschedulable"
    TOO_FEW_MEMBERS = "TooFewMembers"
    #: Its PodGroup's ``minResources`` are more than the cluster has free.
    INSUFFICIENT_RESOURCES = "InsufficientMinResources"
    #: Its pods exist but no pass has decided them yet.
    NOT_TRIED = "Pending"


@dataclass(frozen=True)
class GroupStatus:
    """What a PodGroup's status says (every field but the times)."""

    phase: GroupPhase
    scheduled: int
    running: int
    succeeded: int
    failed: int
    reason: WaitReason
    message: str

    @property
    def waiting(self) -> bool:
        """Fewer than ``minMember`` pods are bound."""
        return self.reason is not WaitReason.SCHEDULED


@dataclass
class Member:
    """A pod that names a PodGroup or a Job, as last seen."""

    view: PodView
    claim: GangClaim
    key: GangKey | None = None
    resolution: Resolution = ALONE


@dataclass
class GangBook:
    """PodGroups, Jobs, gang-job namespaces and the pods that claim a gang."""

    groups: dict[GangKey, PodGroupView] = field(default_factory=dict)
    jobs: dict[GangKey, JobView] = field(default_factory=dict)
    gang_job_namespaces: set[str] = field(default_factory=set)
    members: dict[str, Member] = field(default_factory=dict)
    #: The UIDs of the members whose claim names each PodGroup or Job.
    by_key: dict[GangKey, set[str]] = field(default_factory=dict)
    #: The last gang notice of the policy for each gang still waiting.
    notices: dict[GangKey, str] = field(default_factory=dict)
    #: The last notice of the gangs held out because the cluster lacks their minResources.
    short: dict[GangKey, str] = field(default_factory=dict)
    #: PodGroups whose status may have changed since it was last looked at.
    dirty: set[GangKey] = field(default_factory=set)
    #: A monotonic clock, and when each PodGroup was last seen on it (against listings).
    ticks: Callable[[], float] = time.monotonic
    groups_seen: dict[GangKey, float] = field(default_factory=dict)

    # -- pods ----------------------------------------------------------------------------

    def resolve(self, namespace: str, claim: GangClaim) -> tuple[Resolution, GangKey | None]:
        """The gang ``claim`` names in ``namespace``, and the key of the object naming it."""
        if claim.pod_group is not None:
            key = (namespace, claim.pod_group)
            group = self.groups.get(key)
            if group is None:
                return Resolution(hold=self.missing_group(key)), key
            if group.min_member is None:
                return ALONE, key
            return Resolution(Gang(group.name, group.min_member)), key
        wanted = claim.job_gang
        if claim.job is None or not (
            wanted or (wanted is None and namespace in self.gang_job_namespaces)
        ):
            return ALONE, None
        key = (namespace, claim.job)
        job = self.jobs.get(key)
        if job is None:
            # The Job's and its pods' watches are separate streams: wait for it quietly.
            hold = f"gang {namespace}/{claim.job}: its Job is not seen yet"
            return Resolution(hold=hold, tell=False), key
        size = job.gang_size
        return (ALONE if size is None else Resolution(Gang(job.name, size))), key

    @staticmethod
    def missing_group(key: GangKey) -> str:
        """Why a pod that names a PodGroup that does not exist waits."""
        return (
            f"gang {key[0]}/{key[1]}: PodGroup {key[1]} does not exist (label "
            f"scheduling.x-k8s.io/pod-group); the pod waits until it is created"
        )

    def observe(self, view: PodView) -> tuple[PodView, Resolution, bool]:
        """Remember a pod; returns its view with its gang stamped, its resolution, and
        whether that changed since the pod was last seen."""
        claim = view.claim
        resolution, key = self.resolve(view.pod.namespace, claim)
        old = self._drop(view.uid)
        if not claim.empty:
            self.members[view.uid] = Member(view, claim, key, resolution)
            if key is not None:
                self.by_key.setdefault(key, set()).add(view.uid)
                self.dirty.add(key)
        changed = (old.resolution if old is not None else ALONE) != resolution
        return replace(view, pod=replace(view.pod, gang=resolution.gang)), resolution, changed

    def gone(self, uid: str) -> None:
        """A pod was deleted."""
        self._drop(uid)

    def _drop(self, uid: str) -> Member | None:
        member = self.members.pop(uid, None)
        if member is not None and member.key is not None:
            self.dirty.add(member.key)
            uids = self.by_key.get(member.key)
            if uids is not None:
                uids.discard(uid)
                if not uids:
                    del self.by_key[member.key]
        return member

    def claiming(self, key: GangKey) -> list[Member]:
        """The pods whose claim names ``key`` (a PodGroup, or a Job)."""
        return [self.members[uid] for uid in sorted(self.by_key.get(key, ()))]

    def in_namespace(self, namespace: str) -> list[Member]:
        """The pods that claim a gang in ``namespace``."""
        return [m for m in self.members.values() if m.view.pod.namespace == namespace]

    # -- PodGroups, Jobs, namespaces -----------------------------------------------------

    def upsert_group(self, group: PodGroupView) -> list[Member]:
        """A PodGroup was added or changed; returns the pods to resolve again."""
        key = (group.namespace, group.name)
        self.groups[key] = group
        self.groups_seen[key] = self.ticks()
        self.dirty.add(key)
        return self.claiming(key)

    def delete_group(self, namespace: str, name: str) -> list[Member]:
        """A PodGroup was deleted; returns the pods to resolve again (they wait for it)."""
        key = (namespace, name)
        self.groups.pop(key, None)
        self.groups_seen.pop(key, None)
        self.notices.pop(key, None)
        self.short.pop(key, None)
        self.dirty.discard(key)
        return self.claiming(key)

    def unlisted_groups(self, listed: Collection[GangKey], listed_at: float) -> list[GangKey]:
        """PodGroups a listing begun at ``listed_at`` (``ticks``) no longer shows and not
        seen since: deleted while the watch was down."""
        return [k for k, seen in self.groups_seen.items() if k not in listed and seen < listed_at]

    def upsert_job(self, job: JobView) -> list[Member]:
        """A Job was added or changed; returns the pods to resolve again."""
        key = (job.namespace, job.name)
        self.jobs[key] = job
        return self.claiming(key)

    def delete_job(self, namespace: str, name: str) -> None:
        """A Job was deleted (its pods are deleted with it)."""
        self.jobs.pop((namespace, name), None)

    def namespace_rule(self, namespace: str, gang_jobs: bool) -> list[Member]:
        """A namespace's ``gang-jobs`` label was seen; returns the pods to resolve again
        when it changed."""
        if gang_jobs == (namespace in self.gang_job_namespaces):
            return []
        if gang_jobs:
            self.gang_job_namespaces.add(namespace)
        else:
            self.gang_job_namespaces.discard(namespace)
        return self.in_namespace(namespace)

    # -- status --------------------------------------------------------------------------

    def min_member(self, key: GangKey) -> int | None:
        """How many pods gang ``key`` needs (a PodGroup's, else a Job's); None: no gang."""
        group = self.groups.get(key)
        if group is not None:
            return group.min_member
        job = self.jobs.get(key)
        return None if job is None else job.gang_size

    def status(self, key: GangKey) -> GroupStatus | None:
        """How gang ``key`` stands (None when it is unknown or no gang)."""
        need = self.min_member(key)
        if need is None:
            return None
        members = [m for m in self.claiming(key) if m.resolution.gang is not None]
        views = [m.view for m in members]
        notice, short = self.notices.get(key), self.short.get(key)
        return group_status(key, need, views, notice, self._cap(members), short)

    def min_resources(self, key: GangKey) -> Mapping[str, int]:
        """``spec.minResources`` of gang ``key``'s PodGroup (empty: none, or no PodGroup)."""
        group = self.groups.get(key)
        return {} if group is None else group.min_resources

    def note(self, outcomes: GangOutcomes) -> None:
        """A pass placed pods of some gangs and left others waiting, with the policy's
        notice or for their minResources."""
        for key in outcomes.placed | outcomes.short.keys():
            self.notices.pop(key, None)
        for key in outcomes.placed | outcomes.notices.keys():
            self.short.pop(key, None)
        self.notices.update(outcomes.notices)
        self.short.update(outcomes.short)
        self.dirty.update(outcomes.placed, outcomes.notices, outcomes.short)

    def _cap(self, members: list[Member]) -> tuple[str, int] | None:
        """The Job the members belong to and its parallelism, when it is known."""
        for member in members:
            job = member.claim.job
            known = self.jobs.get((member.view.pod.namespace, job)) if job else None
            if known is not None:
                return known.name, known.parallelism
        return None


def group_status(
    key: GangKey,
    min_member: int,
    views: list[PodView],
    notice: str | None,
    cap: tuple[str, int] | None = None,
    short: str | None = None,
) -> GroupStatus:
    """A PodGroup's status from its members (the rules are in ``docs/gangs.md``)."""
    phases = Counter(v.phase for v in views)
    running, succeeded = phases[PodPhase.RUNNING], phases[PodPhase.SUCCEEDED]
    failed = phases[PodPhase.FAILED]
    scheduled = sum(1 for v in views if v.node_name is not None and v.phase is not PodPhase.FAILED)
    if succeeded >= min_member:
        phase = GroupPhase.FINISHED
    elif failed and len(views) - failed < min_member:
        phase = GroupPhase.FAILED
    elif running + succeeded >= min_member:
        phase = GroupPhase.RUNNING
    elif scheduled >= min_member:
        phase = GroupPhase.SCHEDULED
    else:
        phase = GroupPhase.PENDING
    name = f"gang {key[0]}/{key[1]}"
    if scheduled >= min_member or phase in (GroupPhase.FINISHED, GroupPhase.RUNNING):
        reason, message = WaitReason.SCHEDULED, f"{name}: {scheduled} of {min_member} pods bound"
    elif cap is not None and cap[1] < min_member:
        reason = WaitReason.TOO_FEW_MEMBERS
        message = (
            f"{name}: spec.minMember={min_member} is more than Job {cap[0]}'s parallelism "
            f"{cap[1]}; the gang cannot start and its pods wait"
        )
    elif short is not None and len(views) >= min_member:
        reason, message = WaitReason.INSUFFICIENT_RESOURCES, short
    elif notice is not None and "would fit" in notice:
        reason, message = WaitReason.UNSCHEDULABLE, notice
    elif notice is not None or len(views) < min_member:
        reason = WaitReason.WAITING_FOR_MEMBERS
        message = notice or f"{name}: {len(views)} of {min_member} pods exist; waiting for the rest"
    else:
        reason = WaitReason.NOT_TRIED
        message = f"{name}: {len(views)} pods exist, {scheduled} bound; not tried yet"
    return GroupStatus(phase, scheduled, running, succeeded, failed, reason, message)


@dataclass(frozen=True)
class GangOutcomes:
    """What a pass did to gangs: those it placed pods of, the policy's notice for each
    it left waiting, and the notice for each held out for its minResources."""

    placed: set[GangKey] = field(default_factory=set)
    notices: dict[GangKey, str] = field(default_factory=dict)
    short: dict[GangKey, str] = field(default_factory=dict)


def gang_outcomes(decisions: list[Decision]) -> GangOutcomes:
    """What a pass did to the gangs of its ``decisions``."""
    outcomes = GangOutcomes()
    for d in decisions:
        key = d.pod.gang_key
        if key is None:
            continue
        if d.placed:
            outcomes.placed.add(key)
        elif d.status.plugin == MIN_RESOURCES:
            outcomes.short[key] = d.status.message
        elif d.status.message.startswith("gang "):
            outcomes.notices[key] = d.status.message
    return outcomes
