"""Placement constraints of a pod as kube-scheduler reads them: node affinity, inter-pod
affinity and anti-affinity, topology spread, host ports, and what is refused.

Plain frozen (hashable) dataclasses with the matching rules of the Kubernetes API: label
selector operators, node selector terms ORed with their expressions ANDed, the namespaces
an affinity term looks at, host-port conflicts. The Filter and Score plugins only count
and compare; the operator parses these from pod specs (``hybrid_operator.k8s.constraints``)
and scenarios leave them empty.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

#: kube-scheduler's per-node topology key (each node is its own domain).
HOSTNAME_KEY = "kubernetes.io/hostname"
ZONE_KEY = "topology.kubernetes.io/zone"
#: The one field a node selector term's ``matchFields`` may name.
NODE_NAME_FIELD = "metadata.name"
ANY_HOST_IP = "0.0.0.0"
_INT64 = re.compile(r"^[+-]?[0-9]+$")


class Operator(StrEnum):
    """A selector requirement's operator (``Gt``/``Lt`` only in node selectors)."""

    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"
    GT = "Gt"
    LT = "Lt"


def parse_int64(text: str) -> int | None:
    """``text`` as Go's ``strconv.ParseInt(text, 10, 64)`` reads it, or None."""
    if not _INT64.match(text):
        return None
    value = int(text)
    return value if -(2**63) <= value < 2**63 else None


@dataclass(frozen=True, slots=True)
class Requirement:
    """``key operator values``: one expression of a selector."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this requirement (Kubernetes semantics)."""
        value = labels.get(self.key)
        op = self.operator
        if op is Operator.IN:
            return value is not None and value in self.values
        if op is Operator.NOT_IN:
            return value is None or value not in self.values
        if op is Operator.EXISTS:
            return value is not None
        if op is Operator.DOES_NOT_EXIST:
            return value is None
        # Gt/Lt: both sides must be integers, else the node does not match.
        have = parse_int64(value) if value is not None else None
        want = parse_int64(self.values[0]) if len(self.values) == 1 else None
        if have is None or want is None:
            return False
        return have > want if op is Operator.GT else have < want


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A pod label selector: ``matchLabels`` and ``matchExpressions``, ANDed.

    The empty selector matches every pod; a missing selector is ``None`` where it is used,
    and matches none.
    """

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether every requirement holds for ``labels``."""
        return all(r.matches(labels) for r in self.requirements)


@dataclass(frozen=True, slots=True)
class NodeSelectorTerm:
    """One term of a node affinity: its expressions and fields are ANDed; empty matches none."""

    expressions: tuple[Requirement, ...] = ()
    #: Requirements on ``metadata.name`` (``matchFields``).
    fields: tuple[Requirement, ...] = ()

    def matches(self, node_name: str, labels: Mapping[str, str]) -> bool:
        """Whether the node ``node_name`` with ``labels`` satisfies the term."""
        if not self.expressions and not self.fields:
            return False
        if not all(r.matches(labels) for r in self.expressions):
            return False
        return all(r.matches({NODE_NAME_FIELD: node_name}) for r in self.fields)


@dataclass(frozen=True, slots=True)
class WeightedNodeTerm:
    """A preferred node affinity term and its weight (1-100)."""

    weight: int
    term: NodeSelectorTerm


@dataclass(frozen=True, slots=True)
class PodSelector:
    """Which pods an affinity term or spread constraint counts: namespace and labels."""

    #: ``None`` matches no pod (a term without ``labelSelector``).
    selector: LabelSelector | None
    #: ``None`` means every namespace (``namespaceSelector: {}``).
    namespaces: frozenset[str] | None

    def matches(self, namespace: str, labels: Mapping[str, str]) -> bool:
        """Whether a pod in ``namespace`` with ``labels`` is selected."""
        if self.selector is None:
            return False
        if self.namespaces is not None and namespace not in self.namespaces:
            return False
        return self.selector.matches(labels)


@dataclass(frozen=True, slots=True)
class PodAffinityTerm:
    """Pods selected by ``pods`` in the same domain of ``topology_key`` as the node."""

    pods: PodSelector
    topology_key: str


@dataclass(frozen=True, slots=True)
class WeightedPodAffinityTerm:
    """A preferred pod (anti-)affinity term and its weight (1-100)."""

    weight: int
    term: PodAffinityTerm


class Unsatisfiable(StrEnum):
    """``whenUnsatisfiable`` of a topology spread constraint."""

    DO_NOT_SCHEDULE = "DoNotSchedule"
    SCHEDULE_ANYWAY = "ScheduleAnyway"


class InclusionPolicy(StrEnum):
    """Whether a spread constraint counts only nodes the pod could use (``Honor``)."""

    HONOR = "Honor"
    IGNORE = "Ignore"


@dataclass(frozen=True, slots=True)
class SpreadConstraint:
    """One ``topologySpreadConstraints`` entry, ``matchLabelKeys`` already merged in."""

    max_skew: int
    topology_key: str
    when_unsatisfiable: Unsatisfiable
    #: Pods counted, in the pod's own namespace; ``None`` counts none.
    selector: LabelSelector | None
    min_domains: int = 1
    node_affinity_policy: InclusionPolicy = InclusionPolicy.HONOR
    node_taints_policy: InclusionPolicy = InclusionPolicy.IGNORE

    @property
    def hard(self) -> bool:
        """True for ``DoNotSchedule`` (a filter); ``ScheduleAnyway`` is a score."""
        return self.when_unsatisfiable is Unsatisfiable.DO_NOT_SCHEDULE


class PortProtocol(StrEnum):
    """A container port's protocol."""

    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"


@dataclass(frozen=True, slots=True)
class HostPort:
    """A port a container binds on its node."""

    port: int
    protocol: PortProtocol = PortProtocol.TCP
    host_ip: str = ANY_HOST_IP

    def conflicts(self, other: HostPort) -> bool:
        """Same port and protocol, and the same IP or either on every IP (0.0.0.0)."""
        if self.port != other.port or self.protocol is not other.protocol:
            return False
        return ANY_HOST_IP in (self.host_ip, other.host_ip) or self.host_ip == other.host_ip


@dataclass(frozen=True, slots=True)
class PlacementConstraints:
    """Everything beyond requests, selector and tolerations that decides where a pod goes."""

    #: Required node affinity terms (ORed); ``None`` when there is no requirement.
    required_node_terms: tuple[NodeSelectorTerm, ...] | None = None
    preferred_node_terms: tuple[WeightedNodeTerm, ...] = ()
    required_affinity: tuple[PodAffinityTerm, ...] = ()
    required_anti_affinity: tuple[PodAffinityTerm, ...] = ()
    preferred_affinity: tuple[WeightedPodAffinityTerm, ...] = ()
    preferred_anti_affinity: tuple[WeightedPodAffinityTerm, ...] = ()
    spread: tuple[SpreadConstraint, ...] = ()
    host_ports: tuple[HostPort, ...] = ()
    #: Why the pod cannot be scheduled at all: ``field: reason`` per unsupported or
    #: malformed field (e.g. a ``persistentVolumeClaim`` volume).
    refusals: tuple[str, ...] = ()

    @property
    def inter_pod(self) -> bool:
        """Whether other pods' labels matter to this pod (affinity terms or spread)."""
        return bool(
            self.required_affinity
            or self.required_anti_affinity
            or self.preferred_affinity
            or self.preferred_anti_affinity
            or self.spread
        )

    @property
    def placement_dependent(self) -> bool:
        """Whether a placement can make a node feasible that was not: required pod
        affinity and hard spread constraints are not monotone in the pods placed."""
        return bool(self.required_affinity) or any(c.hard for c in self.spread)

    @property
    def scoring_terms(self) -> bool:
        """Whether placed pods score the nodes around them for pods this pod's terms match."""
        return bool(
            self.required_affinity or self.preferred_affinity or self.preferred_anti_affinity
        )


NO_CONSTRAINTS = PlacementConstraints()
