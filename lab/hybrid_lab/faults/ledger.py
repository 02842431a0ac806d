"""What the invariant checker has seen of pods, nodes and the leader's Lease, and which
invariants broke: plain bookkeeping fed by watch events (or by tests), no I/O.

* **Bindings**: the first ``spec.nodeName`` seen for a pod UID is its binding; a second,
  different one is a double binding.
* **Overcommit**: after every change, each touched node's sum of requests of the pods bound
  to it and not terminated is compared with its allocatable, resource by resource; each
  time a resource goes over counts once.
* **Deleted nodes**: a binding whose resourceVersion is newer than the deletion of its node
  (or names a node never seen) lands on a node that is gone.
* **Leadership**: every renewal of the Lease is kept; a binding by the scheduler is stale
  when the decision record's ``instance`` did not hold an unexpired Lease when the binding
  was seen (with a little slack for the watch's delay).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from hybrid_policy.resources import PODS, QuantityError, parse_quantity

TERMINAL_PHASES = ("Succeeded", "Failed")
FAULT_LABEL = "hybrid-scheduler.io/fault"
DECISION_ANNOTATION = "hybrid-scheduler.io/decision"

Body = Mapping[str, Any]


class EventKind(StrEnum):
    """Watch event types the ledger acts on."""

    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


@dataclass
class PodRecord:
    """The latest state of one pod."""

    uid: str
    namespace: str
    name: str
    scheduler_name: str
    fault: str | None
    requests: dict[str, int]
    node: str | None = None
    phase: str = "Pending"
    deleting: bool = False
    gone: bool = False
    #: The message of a ``PodScheduled=False`` condition, if the pod has one.
    unschedulable: str | None = None

    @property
    def holds_node(self) -> bool:
        """Whether the pod counts against its node's allocatable."""
        return bool(self.node) and not self.gone and self.phase not in TERMINAL_PHASES

    @property
    def pending(self) -> bool:
        """Waiting for a node: not bound, not finished, not being deleted."""
        return not self.node and not self.gone and not self.deleting and self.phase == "Pending"


@dataclass(frozen=True)
class Binding:
    """The first node seen on a pod."""

    uid: str
    pod: str
    fault: str | None
    node: str
    seen_at: float
    version: int
    #: ``instance``, ``at`` and ``metrics`` of the decision record, if the pod has one.
    instance: str | None
    decided_at: float | None
    metrics: str | None


@dataclass(frozen=True)
class Violation:
    """One broken invariant, as a line for the report."""

    seen_at: float
    fault: str | None
    what: str


@dataclass(frozen=True)
class LeaseRenewal:
    """One state of the Lease: who held it, renewed when, for how long."""

    holder: str
    renewed_at: float
    duration_s: float


@dataclass
class NodeRecord:
    """A node's allocatable and the resourceVersions it lived between."""

    allocatable: dict[str, int]
    created_version: int
    deleted_version: int | None = None
    #: When the checker saw the deletion (wall clock, s).
    deleted_at: float | None = None


@dataclass
class Ledger:
    """Everything seen so far, and the invariants broken, for one scheduler name."""

    scheduler_name: str
    #: How long before its sighting a binding may have happened (the watch's delay), s.
    slack_s: float = 1.0
    pods: dict[str, PodRecord] = field(default_factory=dict)
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    bindings: dict[str, Binding] = field(default_factory=dict)
    double_bindings: list[Violation] = field(default_factory=list)
    overcommits: list[Violation] = field(default_factory=list)
    lease: list[LeaseRenewal] = field(default_factory=list)
    _on_node: dict[str, set[str]] = field(default_factory=dict)
    _over: set[tuple[str, str]] = field(default_factory=set)

    # -- pods ---------------------------------------------------------------------------

    def see_pod(self, kind: EventKind, body: Body, seen_at: float) -> None:
        """A pod event from the watch."""
        record = pod_record(body)
        record.gone = kind is EventKind.DELETED
        binding = self.bindings.get(record.uid)
        if record.node and binding is None:
            self.bindings[record.uid] = binding_of(body, record, seen_at)
        elif record.node and binding is not None and binding.node != record.node:
            what = f"{binding.pod} bound to {binding.node}, then to {record.node}"
            self.double_bindings.append(Violation(seen_at, record.fault, what))
        self._update(record, seen_at)

    def relist_pods(self, bodies: Iterable[Body], seen_at: float) -> None:
        """A fresh list: every known pod not in it is gone (first, so that the capacity
        they held is free), then every pod in it is seen."""
        items = list(bodies)
        listed = {str((body.get("metadata") or {}).get("uid") or "") for body in items}
        for uid, record in list(self.pods.items()):
            if uid not in listed and not record.gone:
                self._update(dataclasses.replace(record, gone=True), seen_at)
        for body in items:
            self.see_pod(EventKind.MODIFIED, body, seen_at)

    def _update(self, record: PodRecord, seen_at: float) -> None:
        old = self.pods.get(record.uid)
        self.pods[record.uid] = record
        self._reindex(record.uid, old, record)
        for node in {old.node if old else None, record.node} - {None}:
            self._check_node(str(node), seen_at)

    def _reindex(self, uid: str, old: PodRecord | None, new: PodRecord) -> None:
        if old is not None and old.node:
            self._on_node.get(old.node, set()).discard(uid)
        if new.holds_node and new.node:
            self._on_node.setdefault(new.node, set()).add(uid)

    # -- nodes --------------------------------------------------------------------------

    def see_node(self, kind: EventKind, body: Body, seen_at: float) -> None:
        """A node event from the watch."""
        meta = body.get("metadata") or {}
        name = str(meta.get("name") or "")
        version = int(meta.get("resourceVersion") or 0)
        known = self.nodes.get(name)
        if kind is EventKind.DELETED:
            if known is not None and known.deleted_version is None:
                known.deleted_version = version
                known.deleted_at = seen_at
            return
        allocatable = parse_amounts((body.get("status") or {}).get("allocatable") or {})
        if known is None or known.deleted_version is not None:
            created = version if kind is EventKind.ADDED else 0
            self.nodes[name] = NodeRecord(allocatable, created)
        else:
            known.allocatable = allocatable
        self._check_node(name, seen_at)

    def relist_nodes(self, bodies: Iterable[Body], version: int, seen_at: float) -> None:
        """A fresh list at ``version``: nodes not in it were deleted by then."""
        listed = set()
        for body in bodies:
            listed.add(str((body.get("metadata") or {}).get("name") or ""))
            self.see_node(EventKind.MODIFIED, body, seen_at)
        for name, record in self.nodes.items():
            if name not in listed and record.deleted_version is None:
                record.deleted_version = version
                record.deleted_at = seen_at

    def _check_node(self, name: str, seen_at: float) -> None:
        node = self.nodes.get(name)
        if node is None or node.deleted_version is not None:
            return
        used = self.used(name)
        for resource, allocatable in node.allocatable.items():
            over = used.get(resource, 0) > allocatable
            if over and (name, resource) not in self._over:
                fault = next(
                    (self.pods[u].fault for u in self._on_node.get(name, ()) if self.pods[u].fault),
                    None,
                )
                what = (
                    f"{name}: {resource} {used.get(resource, 0)} requested, "
                    f"{allocatable} allocatable"
                )
                self.overcommits.append(Violation(seen_at, fault, what))
                self._over.add((name, resource))
            elif not over:
                self._over.discard((name, resource))

    def used(self, node: str) -> dict[str, int]:
        """Requests of the pods that hold ``node``, by resource (``pods`` counts them)."""
        total: dict[str, int] = {PODS: 0}
        for uid in self._on_node.get(node, ()):
            record = self.pods[uid]
            total[PODS] += 1
            for resource, amount in record.requests.items():
                total[resource] = total.get(resource, 0) + amount
        return total

    def live_nodes(self) -> list[str]:
        """Nodes that exist now."""
        return sorted(n for n, r in self.nodes.items() if r.deleted_version is None)

    # -- the Lease ----------------------------------------------------------------------

    def see_lease(self, body: Body) -> None:
        """A state of the leader Lease (from a watch event or a list)."""
        spec = body.get("spec") or {}
        holder, renewed = spec.get("holderIdentity"), spec.get("renewTime")
        if not holder or not renewed:
            return
        renewal = LeaseRenewal(
            str(holder), micro_time(str(renewed)), float(spec.get("leaseDurationSeconds") or 0)
        )
        if renewal not in self.lease:
            self.lease.append(renewal)
            self.lease.sort(key=lambda r: r.renewed_at)

    def leader_at(self, t: float) -> str | None:
        """Who held an unexpired Lease at wall time ``t``, if anyone."""
        last = None
        for renewal in self.lease:
            if renewal.renewed_at > t:
                break
            last = renewal
        if last is None or t > last.renewed_at + last.duration_s:
            return None
        return last.holder

    # -- what broke ---------------------------------------------------------------------

    def stale_bindings(self, sent_at: Mapping[str, float] | None = None) -> list[Violation]:
        """Bindings of ours by a replica that did not hold the Lease when it sent them
        (``sent_at``: when each pod's binding request was sent, by ``namespace/name``), or
        else when they were seen; none when nothing ever held the Lease (leader election
        is off). A request sent while leading that the API server applied late (it was
        slow, or etcd away) is no fault of the replica's."""
        if not self.lease:
            return []
        out = []
        for b in self.bindings.values():
            if b.instance is None or not self._is_ours(b.uid):
                continue
            t = (sent_at or {}).get(b.pod, b.seen_at)
            if b.instance not in (self.leader_at(t), self.leader_at(t - self.slack_s)):
                holder = self.leader_at(t) or "nobody"
                what = f"{b.pod} bound to {b.node} by {b.instance} while {holder} led"
                out.append(Violation(b.seen_at, b.fault, what))
        return out

    def bindings_to_missing_nodes(
        self, sent_at: Mapping[str, float] | None = None
    ) -> tuple[list[Violation], list[Violation]]:
        """Bindings to a node that never existed or was deleted before they were applied:
        (sent after the deletion, sent before it).

        Only the first is the scheduler's fault: it sent a binding to a node already gone
        (``slack_s`` allows for its watch showing the deletion later than the checker's).
        A binding already sent when the node was deleted cannot be recalled, and the API
        server applies it anyway (a Binding has no precondition on the node): no scheduler
        can prevent that; kube-controller-manager's pod garbage collector removes the pod.
        """
        late: list[Violation] = []
        landed: list[Violation] = []
        for b in self.bindings.values():
            node = self.nodes.get(b.node)
            if node is None:
                late.append(Violation(b.seen_at, b.fault, f"{b.pod} bound to unknown {b.node}"))
                continue
            if node.deleted_version is None or b.version <= node.deleted_version:
                continue
            sent = (sent_at or {}).get(b.pod, b.seen_at)
            deleted = node.deleted_at if node.deleted_at is not None else b.seen_at
            if sent > deleted + self.slack_s:
                what = f"{b.pod} sent to {b.node} {sent - deleted:.1f} s after it was deleted"
                late.append(Violation(b.seen_at, b.fault, what))
            else:
                what = f"{b.pod} sent to {b.node} before its deletion, applied after"
                landed.append(Violation(b.seen_at, b.fault, what))
        return late, landed

    def _is_ours(self, uid: str) -> bool:
        record = self.pods.get(uid)
        return record is not None and record.scheduler_name == self.scheduler_name


def pod_record(body: Body) -> PodRecord:
    """The parts of a pod the checks need."""
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    status = body.get("status") or {}
    unschedulable = next(
        (
            str(c.get("message") or "")
            for c in status.get("conditions") or []
            if c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("message")
        ),
        None,
    )
    return PodRecord(
        uid=str(meta.get("uid") or ""),
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        scheduler_name=str(spec.get("schedulerName") or ""),
        fault=(meta.get("labels") or {}).get(FAULT_LABEL),
        requests=pod_requests(spec),
        node=spec.get("nodeName") or None,
        phase=str(status.get("phase") or "Pending"),
        deleting=bool(meta.get("deletionTimestamp")),
        unschedulable=unschedulable,
    )


def binding_of(body: Body, record: PodRecord, seen_at: float) -> Binding:
    """A pod's binding as first seen, with the decision record's author if any."""
    meta = body.get("metadata") or {}
    raw = (meta.get("annotations") or {}).get(DECISION_ANNOTATION)
    decision: dict[str, Any] = {}
    if raw:
        try:
            decision = dict(json.loads(raw))
        except (ValueError, TypeError):
            decision = {}
    instance, decided_at, metrics = (decision.get(k) for k in ("instance", "at", "metrics"))
    return Binding(
        record.uid,
        f"{record.namespace}/{record.name}",
        record.fault,
        str(record.node),
        seen_at,
        int(meta.get("resourceVersion") or 0),
        None if instance is None else str(instance),
        None if decided_at is None else float(decided_at),
        None if metrics is None else str(metrics),
    )


def pod_requests(spec: Body) -> dict[str, int]:
    """Effective requests, as kube-scheduler counts them: the sum over containers (limits
    where no request is given), at least each init container's, plus the overhead."""
    total: dict[str, int] = {}
    for container in spec.get("containers") or []:
        for name, amount in _container(container).items():
            total[name] = total.get(name, 0) + amount
    for container in spec.get("initContainers") or []:
        for name, amount in _container(container).items():
            total[name] = max(total.get(name, 0), amount)
    for name, amount in parse_amounts(spec.get("overhead") or {}).items():
        total[name] = total.get(name, 0) + amount
    return total


def _container(container: Body) -> dict[str, int]:
    resources = container.get("resources") or {}
    return {
        **parse_amounts(resources.get("limits") or {}),
        **parse_amounts(resources.get("requests") or {}),
    }


def parse_amounts(amounts: Mapping[str, Any]) -> dict[str, int]:
    """Quantities in canonical units; what does not parse is left out.

    Amounts beyond the operator's bound (``1e400``) are kept as the API server stores
    them: the checker judges what is on the nodes, not what the operator accepts.
    """
    out = {}
    for name, raw in amounts.items():
        try:
            out[str(name)] = parse_quantity(str(name), raw)
        except QuantityError:
            huge = _plain_number(raw)
            if huge is not None:
                out[str(name)] = huge
    return out


def _plain_number(raw: object) -> int | None:
    """A plain decimal number of any size (no suffix), rounded up; None otherwise."""
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        return None
    if not value.is_finite() or value <= 0:
        return None
    return int(value.to_integral_value(rounding=ROUND_CEILING))


def micro_time(text: str) -> float:
    """A Kubernetes (Micro)Time as seconds since the epoch."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
