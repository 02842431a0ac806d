from typing import Any

import pytest

from builders import usable
from hybrid_operator.k8s.convert import pending_pod
from hybrid_policy.constraints import (
    HOSTNAME_KEY,
    NO_CONSTRAINTS,
    ZONE_KEY,
    HostPort,
    InclusionPolicy,
    Operator,
    PortProtocol,
    Requirement,
    Unsatisfiable,
)
from k8s_constraints import (
    PREF,
    REQ,
    WEB,
    expression,
    node_terms,
    pod_terms,
    port,
    raw_pod,
    spread,
)


def test_labels_and_no_constraints_keep_the_shared_empty_constraints() -> None:
    pod = raw_pod(volumes=[{"name": "cfg", "configMap": {"name": "x"}}])
    converted, problems = pending_pod(pod)
    assert converted is not None, problems
    assert problems == []
    assert converted.labels == {"app": "web", "rev": "7"}
    assert converted.constraints is NO_CONSTRAINTS


def test_node_affinity_required_and_preferred() -> None:
    by_name = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n9"]}]}
    spec = node_terms(expression("gpu-count", "Gt", "4"), by_name)
    spec["affinity"]["nodeAffinity"][PREF] = [
        {"weight": 30, "preference": expression("ssd", "Exists")}
    ]
    c = usable(pending_pod(raw_pod(**spec))).constraints
    assert c.required_node_terms is not None
    first, second = c.required_node_terms
    assert first.expressions == (Requirement("gpu-count", Operator.GT, ("4",)),)
    assert second.fields == (Requirement("metadata.name", Operator.IN, ("n9",)),)
    (preferred,) = c.preferred_node_terms
    assert preferred.weight == 30
    assert preferred.term.expressions == (Requirement("ssd", Operator.EXISTS),)


def test_pod_affinity_terms_resolve_namespaces_and_merge_label_keys() -> None:
    anti = {"labelSelector": WEB, "topologyKey": HOSTNAME_KEY, "matchLabelKeys": ["rev"]}
    spec = pod_terms("podAntiAffinity", anti)
    not_db = {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]}
    everywhere = {"labelSelector": not_db, "namespaceSelector": {}, "topologyKey": ZONE_KEY}
    spec["affinity"]["podAntiAffinity"][PREF] = [{"weight": 5, "podAffinityTerm": everywhere}]
    near = {"labelSelector": WEB, "namespaces": ["team-b"], "topologyKey": ZONE_KEY}
    spec["affinity"]["podAffinity"] = {REQ: [near]}
    c = usable(pending_pod(raw_pod(**spec))).constraints
    (anti_term,) = c.required_anti_affinity
    assert anti_term.pods.namespaces == frozenset({"team-a"})  # the pod's own by default
    assert anti_term.pods.selector is not None
    assert anti_term.pods.selector.requirements == (
        Requirement("app", Operator.IN, ("web",)),
        Requirement("rev", Operator.IN, ("7",)),
    )
    (near_term,) = c.required_affinity
    assert near_term.pods.namespaces == frozenset({"team-b"})
    assert near_term.topology_key == ZONE_KEY
    (preferred,) = c.preferred_anti_affinity
    assert preferred.weight == 5
    assert preferred.term.pods.namespaces is None  # namespaceSelector {}: every namespace


def test_spread_constraints_with_defaults_and_own_label_values() -> None:
    hard_fields = spread(labelSelector=WEB, minDomains=3, matchLabelKeys=["rev", "missing"])
    soft_fields = spread(
        maxSkew=2,
        topologyKey=HOSTNAME_KEY,
        whenUnsatisfiable="ScheduleAnyway",
        nodeTaintsPolicy="Honor",
        nodeAffinityPolicy="Ignore",
    )
    both = hard_fields["topologySpreadConstraints"] + soft_fields["topologySpreadConstraints"]
    hard, soft = usable(pending_pod(raw_pod(topologySpreadConstraints=both))).constraints.spread
    assert (hard.max_skew, hard.topology_key, hard.min_domains) == (1, ZONE_KEY, 3)
    assert hard.when_unsatisfiable is Unsatisfiable.DO_NOT_SCHEDULE
    assert hard.selector is not None
    assert hard.selector.requirements == (
        Requirement("app", Operator.IN, ("web",)),
        Requirement("rev", Operator.IN, ("7",)),
    )
    assert hard.node_affinity_policy is InclusionPolicy.HONOR
    assert hard.node_taints_policy is InclusionPolicy.IGNORE
    assert soft.selector is None  # counts no pod
    assert soft.node_taints_policy is InclusionPolicy.HONOR
    assert soft.node_affinity_policy is InclusionPolicy.IGNORE


def test_host_ports_of_containers_and_sidecars() -> None:
    proxy_port = {"hostPort": 53, "protocol": "UDP", "hostIP": "10.0.0.1"}
    pod = raw_pod(
        containers=[{"name": "c", "ports": [{"hostPort": 8080}, {"containerPort": 9}]}],
        initContainers=[
            {"name": "setup", "ports": [{"hostPort": 7000}]},  # runs to completion: not held
            {"name": "proxy", "restartPolicy": "Always", "ports": [proxy_port]},
        ],
    )
    assert usable(pending_pod(pod)).constraints.host_ports == (
        HostPort(53, PortProtocol.UDP, "10.0.0.1"),
        HostPort(8080, PortProtocol.TCP, "0.0.0.0"),
    )


UNSUPPORTED = [
    (
        {"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "d"}}]},
        "spec.volumes[0].persistentVolumeClaim: volume topology is not supported",
    ),
    (
        {"volumes": [{"name": "a", "emptyDir": {}}, {"name": "s", "ephemeral": {}}]},
        "spec.volumes[1].ephemeral: volume topology",
    ),
    ({"volumes": [{"name": "c", "csi": {"driver": "x"}}]}, "spec.volumes[0].csi: a csi volume"),
    ({"resourceClaims": [{"name": "gpu"}]}, "spec.resourceClaims: dynamic resource allocation"),
    (
        pod_terms(
            "podAffinity",
            {"labelSelector": WEB, "topologyKey": ZONE_KEY, "namespaceSelector": WEB},
        ),
        f"spec.affinity.podAffinity.{REQ}[0].namespaceSelector: a namespace selector",
    ),
]


@pytest.mark.parametrize(("spec", "refusal"), UNSUPPORTED)
def test_unsupported_fields_refuse_the_pod_naming_the_field(
    spec: dict[str, Any], refusal: str
) -> None:
    converted, problems = pending_pod(raw_pod(**spec))
    assert converted is not None, problems
    assert problems == []  # valid objects: nothing to report as malformed
    refusals = converted.constraints.refusals
    assert any(r.startswith(refusal) for r in refusals), refusals


NODE = f"spec.affinity.nodeAffinity.{REQ}.nodeSelectorTerms[0]"
MALFORMED = [
    (node_terms(expression("k", "Near", "x")), f"{NODE}.matchExpressions[0].operator"),
    (node_terms(expression("k", "Gt", "x")), f"{NODE}.matchExpressions[0].values"),
    (node_terms(expression("k", "In")), f"{NODE}.matchExpressions[0].values"),
    (
        node_terms({"matchFields": [{"key": "spec.x", "operator": "In", "values": ["a"]}]}),
        f"{NODE}.matchFields[0].key",
    ),
    (
        {"affinity": {"nodeAffinity": {PREF: [{"weight": 101, "preference": {}}]}}},
        f"spec.affinity.nodeAffinity.{PREF}[0].weight",
    ),
    (
        pod_terms("podAntiAffinity", {"labelSelector": WEB}),
        f"spec.affinity.podAntiAffinity.{REQ}[0].topologyKey",
    ),
    (
        pod_terms("podAffinity", {"labelSelector": expression("a", "Gt", "1"), "topologyKey": "z"}),
        f"spec.affinity.podAffinity.{REQ}[0].labelSelector.matchExpressions[0].operator",
    ),
    ({"affinity": {"podAffinity": "near the cache"}}, "spec.affinity.podAffinity"),
    (spread(maxSkew=0), "spec.topologySpreadConstraints[0].maxSkew"),
    (spread(whenUnsatisfiable="Sometimes"), "spec.topologySpreadConstraints[0].whenUnsatisfiable"),
    (
        spread(whenUnsatisfiable="ScheduleAnyway", minDomains=2),
        "spec.topologySpreadConstraints[0].minDomains",
    ),
    (port(hostPort=70000), "spec.containers[0].ports[0].hostPort"),
    (port(hostPort=80, protocol="HTTP"), "spec.containers[0].ports[0].protocol"),
]


@pytest.mark.parametrize(("spec", "field"), MALFORMED)
def test_malformed_fields_are_problems_and_refuse_the_pod(spec: dict[str, Any], field: str) -> None:
    converted, problems = pending_pod(raw_pod(**spec))
    assert converted is not None, problems
    assert field in [p.field for p in problems]
    assert any(r.startswith(f"{field}: ") for r in converted.constraints.refusals)
    assert all(p.action == "not scheduling the pod" for p in problems)
