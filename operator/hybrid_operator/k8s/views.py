"""Watch events as typed views: a raw object is converted once, here, at the edge.

kopf hands the handlers nested dicts; :func:`watch_event` turns each into a
:class:`WatchEvent` that carries a :class:`PodView`, a node or a namespace in domain
types, with the problems found on the way. The cache, the queue and shadow mode all read
the same view, so no other module looks into a raw pod.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from hybrid_operator.k8s.convert import Body, namespace, node_addresses, node_info, pending_pod
from hybrid_operator.k8s.gangs import (
    POD_GROUP_GROUP,
    POD_GROUP_VERSION,
    GangClaim,
    JobView,
    PodGroupView,
    gang_claim,
    job,
    labelled_for_gang_jobs,
    pod_group,
)
from hybrid_operator.k8s.preempt import PreemptionMarks, namespace_preemptible, pod_marks
from hybrid_operator.k8s.problems import Conversion, Problem
from hybrid_policy.domain import Namespace, NodeInfo, PendingPod

#: Namespaces labelled so opt their pods in through the admission webhook.
OPT_IN_LABEL = "hybrid-scheduler.io/enabled"
#: The decision record the scheduler writes with each Binding (see
#: :mod:`hybrid_operator.decision_record`).
DECISION_ANNOTATION = "hybrid-scheduler.io/decision"


class ObjectKind(StrEnum):
    """What a watch event is about."""

    POD = "Pod"
    NODE = "Node"
    NAMESPACE = "Namespace"
    POD_GROUP = "PodGroup"
    JOB = "Job"


class WatchType(StrEnum):
    """How the object changed; LISTED is a listing (kopf's first or re-list, or a resync)."""

    LISTED = "LISTED"
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"

    @classmethod
    def of(cls, raw: object) -> WatchType:
        """The type of a raw watch event; kopf gives None for listed objects."""
        try:
            return cls(str(raw)) if raw else cls.LISTED
        except ValueError:
            return cls.LISTED


class PodPhase(StrEnum):
    """``status.phase`` of a pod; anything unknown counts as Unknown."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    UNKNOWN = "Unknown"

    @classmethod
    def of(cls, raw: object) -> PodPhase:
        """The phase a raw value names; Pending when absent (a new pod has none yet)."""
        if raw is None or raw == "":
            return cls.PENDING
        try:
            return cls(str(raw))
        except ValueError:
            return cls.UNKNOWN


@dataclass(frozen=True)
class PodView:
    """Everything the operator uses of a pod, typed."""

    pod: PendingPod
    scheduler_name: str
    node_name: str | None
    phase: PodPhase
    terminating: bool
    #: ``status.startTime`` (seconds since the epoch), when the kubelet has set it.
    started_at_s: float | None = None
    #: The latest ``finishedAt`` of the containers that terminated, if any did.
    finished_at_s: float | None = None
    #: ``status.nominatedNodeName``: the node held for the pending pod, if any.
    nominated_node: str | None = None
    #: The PodGroup or Job gang its labels and annotations name.
    claim: GangClaim = field(default_factory=GangClaim)
    #: What the pod says about being preempted (opt-in, checkpoints, its controller).
    marks: PreemptionMarks = field(default_factory=PreemptionMarks)
    #: The decision record its Binding carried (``hybrid-scheduler.io/decision``), if any.
    record: str | None = None

    @property
    def uid(self) -> str:
        """The pod's UID: the key of the cache and the queue."""
        return self.pod.uid

    @property
    def finished(self) -> bool:
        """Succeeded or Failed: it holds no node any more."""
        return self.phase in (PodPhase.SUCCEEDED, PodPhase.FAILED)

    @property
    def holds_node(self) -> bool:
        """Bound and not finished (a terminating pod still holds its node)."""
        return self.node_name is not None and not self.finished

    @property
    def waiting(self) -> bool:
        """Not bound, not finished, not being deleted: a candidate for scheduling."""
        return self.node_name is None and not self.finished and not self.terminating


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _mapping(value: object) -> Body:
    return value if isinstance(value, dict) else {}


def _time(value: object) -> float | None:
    """An RFC 3339 time as seconds since the epoch; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError, OSError):
        return None


def _finished_at(status: Body) -> float | None:
    """The latest ``state.terminated.finishedAt`` among the pod's containers."""
    statuses = status.get("containerStatuses")
    times = [
        _time(_mapping(_mapping(_mapping(c).get("state")).get("terminated")).get("finishedAt"))
        for c in (statuses if isinstance(statuses, list) else ())
    ]
    known = [t for t in times if t is not None]
    return max(known) if known else None


def pod_view(body: Body) -> Conversion[PodView]:
    """The typed view of a raw pod; no view when the pod cannot be used at all."""
    meta, spec = _mapping(body.get("metadata")), _mapping(body.get("spec"))
    status = _mapping(body.get("status"))
    pod, problems = pending_pod(body)
    if pod is None:
        return Conversion(None, problems)
    annotations = _strings(meta.get("annotations"))
    claim, claim_problems = gang_claim(pod.labels, annotations)
    problems = [*problems, *claim_problems]
    marks = pod_marks(meta, spec, annotations, problems)
    view = PodView(
        pod=pod,
        scheduler_name=_text(spec.get("schedulerName")),
        node_name=_text(spec.get("nodeName")) or None,
        phase=PodPhase.of(status.get("phase")),
        terminating=bool(meta.get("deletionTimestamp")),
        started_at_s=_time(status.get("startTime")),
        finished_at_s=_finished_at(status),
        nominated_node=_text(status.get("nominatedNodeName")) or None,
        claim=claim or GangClaim(),
        marks=marks,
        record=annotations.get(DECISION_ANNOTATION),
    )
    return Conversion(view, problems)


def _strings(value: object) -> dict[str, str]:
    return {k: v for k, v in _mapping(value).items() if isinstance(v, str)}


@dataclass(frozen=True)
class NamespaceView:
    """A namespace's weight and whether it opted in by label."""

    namespace: Namespace
    opted_in: bool
    #: Labelled ``hybrid-scheduler.io/gang-jobs``: its indexed Jobs are gangs.
    gang_jobs: bool = False
    #: Labelled ``hybrid-scheduler.io/preemptible=true``: its pods may be preempted.
    preemptible: bool = False


@dataclass(frozen=True)
class NodeView:
    """A node in domain types, and the addresses Prometheus series may name it by."""

    node: NodeInfo
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class WatchEvent:
    """One event of one watch, converted; ``name`` and ``uid`` identify the object.

    The view of its kind is None when the object cannot be used at all (``problems``
    says why): it is then left out, as if it were gone.
    """

    kind: ObjectKind
    type: WatchType
    name: str
    uid: str
    pod: PodView | None = None
    node: NodeView | None = None
    namespace: NamespaceView | None = None
    pod_group: PodGroupView | None = None
    job: JobView | None = None
    #: A reference for Events about the object itself (kind, name, namespace, uid).
    reference: dict[str, str] = field(default_factory=dict)
    #: What conversion found wrong with the object.
    problems: tuple[Problem, ...] = ()
    #: A pod's ``spec.schedulerName`` and whether it names a node, read even when the pod
    #: is refused (so the scheduler it names can say why it will not schedule it).
    scheduler_name: str = ""
    has_node: bool = False
    #: ``metadata.resourceVersion`` as a number (etcd's revision of the object's last
    #: change); None when absent or not a decimal number.
    version: int | None = None


#: The ``apiVersion`` an Event's reference names, for the kinds outside core/v1.
API_VERSIONS = {
    ObjectKind.POD_GROUP: f"{POD_GROUP_GROUP}/{POD_GROUP_VERSION}",
    ObjectKind.JOB: "batch/v1",
}


def _reference(kind: ObjectKind, meta: Body) -> dict[str, str]:
    out = {"kind": kind.value, "name": _text(meta.get("name"))}
    if kind in API_VERSIONS:
        out["apiVersion"] = API_VERSIONS[kind]
    if _text(meta.get("namespace")):
        out["namespace"] = _text(meta.get("namespace"))
    if _text(meta.get("uid")):
        out["uid"] = _text(meta.get("uid"))
    return out


def watch_event(
    kind: ObjectKind, raw_type: object, body: Body, default_weight: float = 1.0
) -> WatchEvent:
    """Convert one raw watch event of ``kind``."""
    event = _converted(kind, raw_type, body, default_weight)
    return dataclasses.replace(event, version=resource_version(_mapping(body.get("metadata"))))


def resource_version(meta: Body) -> int | None:
    """An object's ``metadata.resourceVersion`` as a number; None when absent or not a
    decimal number (then nothing is compared)."""
    raw = meta.get("resourceVersion")
    return int(raw) if isinstance(raw, str) and raw.isdecimal() else None


def _converted(kind: ObjectKind, raw_type: object, body: Body, default_weight: float) -> WatchEvent:
    meta = _mapping(body.get("metadata"))
    kind_type = WatchType.of(raw_type)
    ref = _reference(kind, meta)
    name, uid = ref["name"], ref.get("uid", "")
    if kind is ObjectKind.POD:
        view, problems = pod_view(body)
        spec = _mapping(body.get("spec"))
        return WatchEvent(
            kind, kind_type, name, uid, pod=view, reference=ref, problems=tuple(problems),
            scheduler_name=_text(spec.get("schedulerName")), has_node=bool(spec.get("nodeName")),
        )  # fmt: skip
    if kind is ObjectKind.NODE:
        node, problems = node_info(body)
        node_view = None if node is None else NodeView(node, node_addresses(body))
        return WatchEvent(
            kind, kind_type, name, uid, node=node_view, reference=ref, problems=tuple(problems)
        )
    if kind is ObjectKind.POD_GROUP:
        group, problems = pod_group(body)
        return WatchEvent(
            kind, kind_type, name, uid, pod_group=group, reference=ref, problems=tuple(problems)
        )
    if kind is ObjectKind.JOB:
        job_view, problems = job(body)
        return WatchEvent(
            kind, kind_type, name, uid, job=job_view, reference=ref, problems=tuple(problems)
        )
    ns, problems = namespace(body, default_weight)
    labels = meta.get("labels")
    preemptible = namespace_preemptible(_mapping(labels), problems)
    ns_view = (
        None
        if ns is None
        else NamespaceView(ns, label_opts_in(labels), labelled_for_gang_jobs(labels), preemptible)
    )
    return WatchEvent(
        kind, kind_type, name, uid, namespace=ns_view, reference=ref, problems=tuple(problems)
    )


def label_opts_in(labels: object) -> bool:
    """Whether a namespace's labels opt its new pods in (``hybrid-scheduler.io/enabled``
    is ``true``, in any case)."""
    return str(_mapping(labels).get(OPT_IN_LABEL, "")).lower() == "true"


def problems_of(event: WatchEvent) -> tuple[Problem, ...]:
    """The conversion problems an event carries, whatever its kind."""
    return event.problems
