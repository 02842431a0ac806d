"""Preemption at the edge: what a pod and its namespace say about being a victim, and
the outcome of the calls that take a victim back.

A pod opts in with the annotation ``hybrid-scheduler.io/preemptible: "true"`` (or
``"false"`` to opt out of its namespace's choice), a namespace with the label of the same
name; ``hybrid-scheduler.io/checkpoint-interval`` says how often the pod saves its work
(a duration such as ``5m``, or ``none``). A value that cannot be read is a
:class:`~hybrid_operator.k8s.problems.Problem` (an ``InvalidField`` Warning Event naming
the field and value) and never opts a pod in. A pending pod whose
``spec.preemptionPolicy`` is ``Never`` (set from its PriorityClass) never preempts, as
with kube-scheduler; it may still be a victim. A pod this scheduler bound to the room of
victims of other teams carries those teams in ``hybrid-scheduler.io/took-from`` (written
by its Binding; the take-back guard reads it, :mod:`hybrid_operator.preemption_takes`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from hybrid_operator.k8s.convert import PREFIX, parse_duration_s
from hybrid_operator.k8s.fields import Body
from hybrid_operator.k8s.problems import Problem

PREEMPTIBLE = f"{PREFIX}/preemptible"
CHECKPOINT_ANNOTATION = f"{PREFIX}/checkpoint-interval"
TOOK_FROM_ANNOTATION = f"{PREFIX}/took-from"
#: A namespace name (an RFC 1123 label).
NAMESPACE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
NO_TAKE = "remembering no take of the pod"
#: What a malformed opt-in value leads to.
NOT_OPTED_IN = "not opting in by it"
NO_CHECKPOINTS = "counting the pod as never saving its work"
#: ``spec.preemptionPolicy`` values, as the API defines them.
NEVER = "Never"
PREEMPT_LOWER_PRIORITY = "PreemptLowerPriority"
NEVER_PREEMPTING = "not preempting for the pod"
#: Kubernetes' default ``terminationGracePeriodSeconds``.
DEFAULT_GRACE_PERIOD_S = 30.0
#: The condition a victim gets before it is deleted, as kube-scheduler writes it.
DISRUPTION_TARGET = "DisruptionTarget"
PREEMPTION_BY_SCHEDULER = "PreemptionByScheduler"


@dataclass(frozen=True)
class PreemptionMarks:
    """A pod's own word on preemption: opted in, out, or silent (None); how often it saves
    its work (None: never); the UID of its controller (else its own), which counts its
    preemptions across the pods the controller makes again; its grace period
    (``spec.terminationGracePeriodSeconds``, 30 s unless set), which a deletion gives it;
    whether, pending, it never preempts (``spec.preemptionPolicy: Never``); the teams
    whose pods it was bound in place of (``took-from``)."""

    preemptible: bool | None = None
    checkpoint_interval_s: float | None = None
    owner_uid: str = ""
    grace_period_s: float = DEFAULT_GRACE_PERIOD_S
    never_preempts: bool = False
    took_from: frozenset[str] = frozenset()


def _flag(raw: str, field: str, problems: list[Problem]) -> bool | None:
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    problems.append(Problem(field, raw, "not true or false", NOT_OPTED_IN))
    return None


def pod_marks(
    meta: Body, spec: Body, annotations: Mapping[str, str], problems: list[Problem]
) -> PreemptionMarks:
    """The marks of a pod from its metadata, spec and annotations (problems added)."""
    preemptible = None
    if PREEMPTIBLE in annotations:
        field = f"metadata.annotations[{PREEMPTIBLE}]"
        preemptible = _flag(annotations[PREEMPTIBLE], field, problems)
    interval = None
    raw = annotations.get(CHECKPOINT_ANNOTATION)
    if raw is not None and raw.strip().lower() != "none":
        interval = parse_duration_s(raw)
        if interval is None:
            field = f"metadata.annotations[{CHECKPOINT_ANNOTATION}]"
            problem = "not a duration such as 5m or 1h, nor none"
            problems.append(Problem(field, raw, problem, NO_CHECKPOINTS))
    grace = spec.get("terminationGracePeriodSeconds")
    grace_s = DEFAULT_GRACE_PERIOD_S
    if isinstance(grace, int) and not isinstance(grace, bool) and grace >= 0:
        grace_s = float(grace)
    never = _never_preempts(spec.get("preemptionPolicy"), problems)
    took = _took_from(annotations.get(TOOK_FROM_ANNOTATION), problems)
    return PreemptionMarks(preemptible, interval, _owner_uid(meta), grace_s, never, took)


def took_from_value(teams: frozenset[str]) -> str:
    """The ``took-from`` annotation's value for ``teams``."""
    return ",".join(sorted(teams))


def _took_from(raw: str | None, problems: list[Problem]) -> frozenset[str]:
    """The teams of a ``took-from`` annotation (none, with a problem, if it is malformed)."""
    if raw is None or not raw.strip():
        return frozenset()
    teams = [t.strip() for t in raw.split(",")]
    if all(NAMESPACE_NAME.fullmatch(t) for t in teams):
        return frozenset(teams)
    where = f"metadata.annotations[{TOOK_FROM_ANNOTATION}]"
    problems.append(Problem(where, raw, "not a comma-separated list of namespaces", NO_TAKE))
    return frozenset()


def _never_preempts(raw: object, problems: list[Problem]) -> bool:
    """Whether ``spec.preemptionPolicy`` is ``Never`` (a value the API would not accept
    counts as ``Never``: the pod is told, and preempts nobody)."""
    if raw is None or raw == PREEMPT_LOWER_PRIORITY:
        return False
    if raw == NEVER:
        return True
    problem = f"not {NEVER} or {PREEMPT_LOWER_PRIORITY}"
    problems.append(Problem("spec.preemptionPolicy", raw, problem, NEVER_PREEMPTING))
    return True


def _owner_uid(meta: Body) -> str:
    owners = meta.get("ownerReferences")
    for owner in owners if isinstance(owners, list) else ():
        if isinstance(owner, Mapping) and owner.get("controller") is True:
            uid = owner.get("uid")
            if isinstance(uid, str) and uid:
                return uid
    uid = meta.get("uid")
    return uid if isinstance(uid, str) else ""


def namespace_preemptible(labels: Mapping[str, object], problems: list[Problem]) -> bool:
    """Whether a namespace's label opts its pods in (problems added for a bad value)."""
    raw = labels.get(PREEMPTIBLE)
    if raw is None:
        return False
    if not isinstance(raw, str):
        problems.append(
            Problem(f"metadata.labels[{PREEMPTIBLE}]", raw, "not a string", NOT_OPTED_IN)
        )
        return False
    return _flag(raw, f"metadata.labels[{PREEMPTIBLE}]", problems) is True


class DeleteOutcome(StrEnum):
    """What became of a victim's deletion."""

    DELETED = "deleted"
    #: 404: the pod was gone already.
    GONE = "gone"
    #: 409 or 422: the UID precondition failed (the pod was recreated under its name).
    PRECONDITION = "precondition failed"
    #: 401 or 403: the operator may not delete pods (preemption off in the chart's RBAC).
    FORBIDDEN = "forbidden"
    #: Anything else: a refusal, a timeout, an API server out of reach.
    ERROR = "error"

    @classmethod
    def of_status(cls, status: int) -> DeleteOutcome:
        """The outcome an HTTP status of a failed deletion means."""
        return {404: cls.GONE, 409: cls.PRECONDITION, 422: cls.PRECONDITION}.get(
            status, cls.FORBIDDEN if status in (401, 403) else cls.ERROR
        )


@dataclass(frozen=True)
class DeleteResult:
    """A deletion's outcome and, when it failed, the API server's words."""

    outcome: DeleteOutcome
    detail: str = ""

    @property
    def deleted(self) -> bool:
        """Whether the API server accepted the deletion."""
        return self.outcome is DeleteOutcome.DELETED


def disruption_condition(message: str, now: str) -> dict[str, str]:
    """The ``DisruptionTarget`` condition kube-scheduler sets on a pod it preempts."""
    return {
        "type": DISRUPTION_TARGET,
        "status": "True",
        "reason": PREEMPTION_BY_SCHEDULER,
        "message": message,
        "lastTransitionTime": now,
    }
