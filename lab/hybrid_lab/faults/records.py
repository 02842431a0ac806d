"""What the invariant checker keeps of the raw objects it watches: pods, their bindings,
nodes, Lease renewals, and the violations it finds, read once from the watch events.

Quantities are parsed as the API server writes them (``1e400`` included, as a Python
integer); what does not parse is left out rather than guessed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from hybrid_policy.resources import QuantityError, parse_quantity

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
