"""A raw pod's placement constraints: labels, node and pod affinity, topology spread, host
ports, and the fields hybrid-scheduler refuses.

Read once, at the edge, into :class:`~hybrid_policy.constraints.PlacementConstraints`.
Nothing here raises. A malformed field is reported as a
:class:`~hybrid_operator.k8s.problems.Problem` *and* refuses the pod (it stays pending
with a FailedScheduling message naming the field), so a pod is never scheduled as if it
were unconstrained. Fields that change placement but are not supported refuse the pod the
same way: volumes other than node-local and configuration ones (a
``persistentVolumeClaim`` may be bound to a zone or wait for its first consumer),
``spec.resourceClaims`` (dynamic resource allocation), and namespace selectors other than
``{}`` in pod affinity terms (namespace labels are not watched).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hybrid_operator.k8s.problems import Problem
from hybrid_operator.k8s.selectors import (
    Reader,
    label_selector,
    pod_affinity,
    required_node_terms,
    weighted_node_terms,
)
from hybrid_policy.constraints import (
    ANY_HOST_IP,
    NO_CONSTRAINTS,
    HostPort,
    InclusionPolicy,
    LabelSelector,
    Operator,
    PlacementConstraints,
    PortProtocol,
    Requirement,
    SpreadConstraint,
    Unsatisfiable,
)

#: Volume sources that tie a pod to no node: no topology, no attach limits.
NODE_LOCAL_VOLUMES = frozenset(
    {"emptyDir", "hostPath", "configMap", "secret", "downwardAPI", "projected", "nfs", "image"}
)
#: Volume sources backed by a PersistentVolumeClaim (zone, node affinity, binding mode).
CLAIM_VOLUMES = frozenset({"persistentVolumeClaim", "ephemeral"})
MAX_PORT = 65535
MAX_SKEW = 2**31 - 1


@dataclass(frozen=True)
class PodPlacement:
    """What other pods select this pod by, and what constrains where it goes."""

    labels: Mapping[str, str]
    constraints: PlacementConstraints


def pod_placement(pod: Mapping[str, Any], problems: list[Problem]) -> PodPlacement:
    """The pod's labels and placement constraints; malformed fields go to ``problems``."""
    meta = pod.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    spec = pod.get("spec")
    spec = spec if isinstance(spec, Mapping) else {}
    r = Reader(str(meta.get("namespace") or "default"), problems)
    r.labels = _labels(r, meta.get("labels"))
    affinity = r.mapping(spec.get("affinity"), "spec.affinity") or {}
    field = "spec.affinity.nodeAffinity"
    node = r.mapping(affinity.get("nodeAffinity"), field) or {}
    pods = pod_affinity(r, affinity)
    constraints = PlacementConstraints(
        required_node_terms=required_node_terms(r, node, field),
        preferred_node_terms=weighted_node_terms(r, node, field),
        required_affinity=pods.required_affinity,
        required_anti_affinity=pods.required_anti_affinity,
        preferred_affinity=pods.preferred_affinity,
        preferred_anti_affinity=pods.preferred_anti_affinity,
        spread=_spread(r, spec.get("topologySpreadConstraints")),
        host_ports=_host_ports(r, spec),
    )
    _refuse_unsupported(r, spec)
    if r.refusals:
        constraints = dataclasses.replace(constraints, refusals=tuple(r.refusals))
    if constraints == NO_CONSTRAINTS:
        constraints = NO_CONSTRAINTS  # the shared instance: the framework's fast path
    return PodPlacement(r.labels, constraints)


def _labels(r: Reader, raw: object) -> dict[str, str]:
    labels = r.mapping(raw, "metadata.labels") or {}
    out = {}
    for key, value in labels.items():
        if isinstance(key, str) and isinstance(value, str):
            out[key] = value
        else:
            r.malformed(f"metadata.labels[{key!s:.60}]", value, "labels are strings")
    return out


def _spread(r: Reader, raw: object) -> tuple[SpreadConstraint, ...]:
    out = []
    for i, item in enumerate(r.items(raw, "spec.topologySpreadConstraints")):
        field = f"spec.topologySpreadConstraints[{i}]"
        m = r.mapping(item, field)
        if m is None:
            if item is None:
                r.malformed(field, item, "missing constraint")
            continue
        skew = r.integer(m.get("maxSkew"), f"{field}.maxSkew", 1, MAX_SKEW)
        key = r.text(m.get("topologyKey"), f"{field}.topologyKey")
        when = r.choice(m.get("whenUnsatisfiable"), f"{field}.whenUnsatisfiable", Unsatisfiable)
        selector = _with_own_values(r, m, field)
        affinity_policy = _policy(r, m, f"{field}.nodeAffinityPolicy", InclusionPolicy.HONOR)
        taints_policy = _policy(r, m, f"{field}.nodeTaintsPolicy", InclusionPolicy.IGNORE)
        domains = 1
        if m.get("minDomains") is not None:
            domains = r.integer(m["minDomains"], f"{field}.minDomains", 1, MAX_SKEW) or 1
            if when is Unsatisfiable.SCHEDULE_ANYWAY:
                r.malformed(f"{field}.minDomains", m["minDomains"], "only with DoNotSchedule")
        if skew is None or key is None or when is None:
            continue
        if affinity_policy is None or taints_policy is None:
            continue
        out.append(
            SpreadConstraint(skew, key, when, selector, domains, affinity_policy, taints_policy)
        )
    return tuple(out)


def _policy(
    r: Reader, m: Mapping[str, Any], field: str, default: InclusionPolicy
) -> InclusionPolicy | None:
    raw = m.get(field.rsplit(".", 1)[1])
    return default if raw is None else r.choice(raw, field, InclusionPolicy)


def _with_own_values(r: Reader, m: Mapping[str, Any], field: str) -> LabelSelector | None:
    """The constraint's selector with ``matchLabelKeys`` set to the pod's own values."""
    selector = label_selector(r, m.get("labelSelector"), f"{field}.labelSelector")
    keys = r.texts(m.get("matchLabelKeys"), f"{field}.matchLabelKeys") or ()
    extra = tuple(Requirement(k, Operator.IN, (r.labels[k],)) for k in keys if k in r.labels)
    if selector is None or not extra:
        return selector
    return LabelSelector(selector.requirements + extra)


def _host_ports(r: Reader, spec: Mapping[str, Any]) -> tuple[HostPort, ...]:
    """Host ports of the containers and of the init containers that keep running."""
    containers = [
        (f"spec.initContainers[{i}]", c)
        for i, c in enumerate(r.items(spec.get("initContainers"), "spec.initContainers"))
        if isinstance(c, Mapping) and c.get("restartPolicy") == "Always"
    ]
    containers += [
        (f"spec.containers[{i}]", c)
        for i, c in enumerate(r.items(spec.get("containers"), "spec.containers"))
        if isinstance(c, Mapping)
    ]
    out = []
    for where, container in containers:
        for j, raw in enumerate(r.items(container.get("ports"), f"{where}.ports")):
            field = f"{where}.ports[{j}]"
            port = r.mapping(raw, field) or {}
            if port.get("hostPort") in (None, 0):
                continue
            number = r.integer(port.get("hostPort"), f"{field}.hostPort", 1, MAX_PORT)
            protocol = r.choice(port.get("protocol") or "TCP", f"{field}.protocol", PortProtocol)
            host_ip = port.get("hostIP") or ANY_HOST_IP
            if not isinstance(host_ip, str):
                r.malformed(f"{field}.hostIP", host_ip, "not an IP address")
            elif number is not None and protocol is not None:
                out.append(HostPort(number, protocol, host_ip))
    return tuple(out)


def _refuse_unsupported(r: Reader, spec: Mapping[str, Any]) -> None:
    """Volumes with topology or attach limits, and dynamic resource claims."""
    for i, volume in enumerate(r.items(spec.get("volumes"), "spec.volumes")):
        m = r.mapping(volume, f"spec.volumes[{i}]") or {}
        for source in sorted(k for k in m if k != "name" and isinstance(k, str)):
            field = f"spec.volumes[{i}].{source}"
            if source in CLAIM_VOLUMES:
                r.unsupported(field, "volume topology")
            elif source not in NODE_LOCAL_VOLUMES:
                r.unsupported(field, f"a {source} volume (topology, attach limits)")
    if r.items(spec.get("resourceClaims"), "spec.resourceClaims"):
        r.unsupported("spec.resourceClaims", "dynamic resource allocation")
