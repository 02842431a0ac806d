"""Gangs as the API states them: PodGroups, indexed Jobs, and what a pod claims.

A pod asks for a gang in one of two ways (``docs/gangs.md``):

- the label ``scheduling.x-k8s.io/pod-group: NAME`` names a PodGroup
  (``scheduling.x-k8s.io/v1alpha1``, as scheduler-plugins' Coscheduling defines it) in the
  pod's namespace; its ``spec.minMember`` pods run together or none does;
- a pod of an indexed Job (label ``batch.kubernetes.io/job-name``) whose annotation
  ``hybrid-scheduler.io/gang`` is ``"true"``, or whose namespace carries the label
  ``hybrid-scheduler.io/gang-jobs: "true"``, belongs to the gang named after the Job, of
  ``min(parallelism, completions)`` pods (only for ``completionMode: Indexed`` and
  ``parallelism`` > 1; an annotation ``"false"`` opts a pod out of its namespace's rule).

A PodGroup's ``spec.minResources`` is read into canonical amounts (a value that is no
quantity is a problem, and that resource is left out of the check).

Conversions are total, as in :mod:`hybrid_operator.k8s.convert`: a field that cannot be
used is a :class:`~hybrid_operator.k8s.problems.Problem` saying what is done instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from hybrid_operator.k8s.fields import Action, Body, FieldReader
from hybrid_operator.k8s.problems import Conversion, Problem
from hybrid_policy.resources import QuantityError, parse_quantity

POD_GROUP_GROUP = "scheduling.x-k8s.io"
POD_GROUP_VERSION = "v1alpha1"
POD_GROUP_PLURAL = "podgroups"
POD_GROUP_LABEL = f"{POD_GROUP_GROUP}/pod-group"
GANG_ANNOTATION = "hybrid-scheduler.io/gang"
#: A namespace labelled so makes every indexed Job in it with ``parallelism`` > 1 a gang.
GANG_JOBS_LABEL = "hybrid-scheduler.io/gang-jobs"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
INDEXED = "Indexed"

ALONE = Action("scheduling its pods one by one, as if they were no gang")
LEAVE_GROUP = Action("leaving the PodGroup out", refuses=True)
NO_TIMEOUT = Action("ignoring the timeout")
NO_MIN_RESOURCE = Action("leaving this resource out of the minResources check")
IGNORE_ANNOTATION = Action("ignoring the annotation (the namespace's rule applies)")
GROUP_WINS = Action("using the PodGroup")
LEAVE_JOB = Action("leaving the Job out", refuses=True)


@dataclass(frozen=True)
class PodGroupView:
    """A PodGroup: ``min_member`` None when the gang rule is off (minMember absent or
    not a positive integer: its pods are scheduled alone)."""

    namespace: str
    name: str
    uid: str
    min_member: int | None
    schedule_timeout_s: float | None = None
    #: ``status.scheduleStartTime`` as found on the object (kept when status is written).
    schedule_start: str | None = None
    #: What its status says now: phase, the four counts, the ``Scheduled`` condition's
    #: reason and message (None where absent), to leave a status that says it unwritten.
    observed: tuple[object, ...] = ()
    #: ``spec.minResources`` in canonical units (only the values that parse): the gang is
    #: not tried while the cluster has less of one of them free in total.
    min_resources: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class JobView:
    """What a Job's spec says about its gang."""

    namespace: str
    name: str
    uid: str
    indexed: bool
    parallelism: int
    completions: int | None

    @property
    def gang_size(self) -> int | None:
        """``min(parallelism, completions)`` for an indexed Job of more than one pod in
        parallel; None when the Job is no gang."""
        if not self.indexed or self.parallelism <= 1:
            return None
        size = (
            self.parallelism
            if self.completions is None
            else min(self.parallelism, self.completions)
        )
        return size if size > 1 else None


@dataclass(frozen=True)
class GangClaim:
    """What a pod's labels and annotation ask for: a PodGroup, its Job's gang, or both."""

    pod_group: str | None = None
    job: str | None = None
    #: The annotation ``hybrid-scheduler.io/gang``: True, False, or None when absent/bad.
    job_gang: bool | None = None

    @property
    def empty(self) -> bool:
        """Whether the pod names neither a PodGroup nor a Job."""
        return self.pod_group is None and self.job is None


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def pod_group(body: Body) -> Conversion[PodGroupView]:
    """A PodGroup's view, and what was wrong with it."""
    reader = FieldReader()
    meta = reader.mapping(body.get("metadata"), "metadata", LEAVE_GROUP)
    spec = reader.mapping(body.get("spec"), "spec", ALONE)
    status = reader.mapping(body.get("status"), "status", Action("ignoring it"))
    raw_min = spec.get("minMember")
    min_member = _count(raw_min)
    if min_member is None or min_member < 1:
        problem = "missing" if raw_min is None else "not a positive integer"
        reader.report("spec.minMember", raw_min, problem, ALONE)
        min_member = None
    raw_timeout = spec.get("scheduleTimeoutSeconds")
    timeout = _count(raw_timeout)
    if raw_timeout is not None and (timeout is None or timeout < 1):
        reader.report(
            "spec.scheduleTimeoutSeconds", raw_timeout, "not a positive integer", NO_TIMEOUT
        )
        timeout = None
    start = status.get("scheduleStartTime")
    view = PodGroupView(
        namespace=reader.name(meta.get("namespace"), "metadata.namespace", LEAVE_GROUP),
        name=reader.name(meta.get("name"), "metadata.name", LEAVE_GROUP),
        uid=reader.name(meta.get("uid"), "metadata.uid", LEAVE_GROUP),
        min_member=min_member,
        schedule_timeout_s=None if timeout is None else float(timeout),
        schedule_start=start if isinstance(start, str) and start else None,
        observed=_observed(status),
        min_resources=_min_resources(spec.get("minResources"), reader),
    )
    return Conversion(None if reader.refused else view, reader.problems)


def _min_resources(raw: object, reader: FieldReader) -> dict[str, int]:
    """``spec.minResources``: each quantity that parses, in canonical units."""
    amounts: dict[str, int] = {}
    for name, value in reader.mapping(raw, "spec.minResources", NO_MIN_RESOURCE).items():
        try:
            amounts[name] = parse_quantity(name, value)
        except QuantityError as exc:
            reader.report(f"spec.minResources.{name}", value, str(exc), NO_MIN_RESOURCE)
    return amounts


def _observed(status: Mapping[str, object]) -> tuple[object, ...]:
    conditions = status.get("conditions")
    scheduled: Mapping[str, object] = next(
        (
            c
            for c in (conditions if isinstance(conditions, list) else ())
            if isinstance(c, Mapping) and c.get("type") == "Scheduled"
        ),
        {},
    )
    counts = (status.get(k) for k in ("scheduled", "running", "succeeded", "failed"))
    return (status.get("phase"), *counts, scheduled.get("reason"), scheduled.get("message"))


def job(body: Body) -> Conversion[JobView]:
    """A Job's view (only what its gang needs), and what was wrong with it."""
    reader = FieldReader()
    meta = reader.mapping(body.get("metadata"), "metadata", LEAVE_JOB)
    spec = reader.mapping(body.get("spec"), "spec", LEAVE_JOB)
    parallelism = _count(spec.get("parallelism"))
    view = JobView(
        namespace=reader.name(meta.get("namespace"), "metadata.namespace", LEAVE_JOB),
        name=reader.name(meta.get("name"), "metadata.name", LEAVE_JOB),
        uid=reader.name(meta.get("uid"), "metadata.uid", LEAVE_JOB),
        indexed=spec.get("completionMode") == INDEXED,
        parallelism=1 if parallelism is None else parallelism,
        completions=_count(spec.get("completions")),
    )
    return Conversion(None if reader.refused else view, reader.problems)


def gang_claim(labels: Mapping[str, str], annotations: Mapping[str, str]) -> Conversion[GangClaim]:
    """What a pod's labels and annotations ask for; a bad annotation value, or a PodGroup
    and a Job gang that name different gangs, is a problem (the PodGroup wins)."""
    problems: list[Problem] = []
    raw = annotations.get(GANG_ANNOTATION)
    job_gang: bool | None = None
    if raw is not None:
        if raw.lower() in ("true", "false"):
            job_gang = raw.lower() == "true"
        else:
            where = f"metadata.annotations[{GANG_ANNOTATION}]"
            problems.append(Problem(where, raw, "not true or false", IGNORE_ANNOTATION.text))
    group = labels.get(POD_GROUP_LABEL) or None
    job_name = labels.get(JOB_NAME_LABEL) or None
    if group is not None and job_gang and job_name is not None and job_name != group:
        problems.append(
            Problem(
                f"metadata.annotations[{GANG_ANNOTATION}]",
                raw,
                f"asks for the gang of Job {job_name}, but the label {POD_GROUP_LABEL} "
                f"names the PodGroup {group}",
                GROUP_WINS.text,
            )
        )
    return Conversion(GangClaim(group, job_name, job_gang), problems)


def labelled_for_gang_jobs(labels: object) -> bool:
    """Whether a namespace's labels make its indexed Jobs gangs."""
    return isinstance(labels, Mapping) and str(labels.get(GANG_JOBS_LABEL, "")).lower() == "true"
