import asyncio
import copy
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builders import k8s_node, k8s_pod, make_node
from fake_api import FakeApi
from hybrid_operator.k8s.convert import node_info, pending_pod
from hybrid_operator.scheduler import Scheduler
from hybrid_operator.settings import OperatorSettings
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
from hybrid_policy.framework.snapshot import ClusterSnapshot
from hybrid_policy.policies import build_policy

REQ = "requiredDuringSchedulingIgnoredDuringExecution"
PREF = "preferredDuringSchedulingIgnoredDuringExecution"
WEB = {"matchLabels": {"app": "web"}}


def _pod(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "web-1",
            "namespace": "team-a",
            "uid": "u-1",
            "labels": {"app": "web", "rev": "7"},
        },
        "spec": {"containers": [{"name": "c"}], **spec},
    }


def test_labels_and_no_constraints_keep_the_shared_empty_constraints() -> None:
    converted, problems = pending_pod(_pod(volumes=[{"name": "cfg", "configMap": {"name": "x"}}]))
    assert problems == []
    assert converted.labels == {"app": "web", "rev": "7"}
    assert converted.constraints is NO_CONSTRAINTS


def test_node_affinity_required_and_preferred() -> None:
    affinity = {
        "nodeAffinity": {
            REQ: {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "gpu-count", "operator": "Gt", "values": ["4"]}]},
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n9"]}]},
                ]
            },
            PREF: [
                {
                    "weight": 30,
                    "preference": {"matchExpressions": [{"key": "ssd", "operator": "Exists"}]},
                }
            ],
        }
    }
    c = pending_pod(_pod(affinity=affinity))[0].constraints
    assert c.required_node_terms is not None
    first, second = c.required_node_terms
    assert first.expressions == (Requirement("gpu-count", Operator.GT, ("4",)),)
    assert second.fields == (Requirement("metadata.name", Operator.IN, ("n9",)),)
    (preferred,) = c.preferred_node_terms
    assert preferred.weight == 30
    assert preferred.term.expressions == (Requirement("ssd", Operator.EXISTS),)


def test_pod_affinity_terms_resolve_namespaces_and_merge_label_keys() -> None:
    affinity = {
        "podAntiAffinity": {
            REQ: [{"labelSelector": WEB, "topologyKey": HOSTNAME_KEY, "matchLabelKeys": ["rev"]}],
            PREF: [
                {
                    "weight": 5,
                    "podAffinityTerm": {
                        "labelSelector": {
                            "matchExpressions": [
                                {"key": "tier", "operator": "NotIn", "values": ["db"]}
                            ]
                        },
                        "namespaceSelector": {},
                        "topologyKey": ZONE_KEY,
                    },
                }
            ],
        },
        "podAffinity": {
            REQ: [{"labelSelector": WEB, "namespaces": ["team-b"], "topologyKey": ZONE_KEY}]
        },
    }
    c = pending_pod(_pod(affinity=affinity))[0].constraints
    (anti,) = c.required_anti_affinity
    assert anti.pods.namespaces == frozenset({"team-a"})  # the pod's own by default
    assert anti.pods.selector is not None
    assert anti.pods.selector.requirements == (
        Requirement("app", Operator.IN, ("web",)),
        Requirement("rev", Operator.IN, ("7",)),
    )
    (near,) = c.required_affinity
    assert near.pods.namespaces == frozenset({"team-b"})
    assert near.topology_key == ZONE_KEY
    (preferred,) = c.preferred_anti_affinity
    assert preferred.weight == 5
    assert preferred.term.pods.namespaces is None  # namespaceSelector {}: every namespace


def test_spread_constraints_with_defaults_and_own_label_values() -> None:
    spread = [
        {
            "maxSkew": 1,
            "topologyKey": ZONE_KEY,
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": WEB,
            "minDomains": 3,
            "matchLabelKeys": ["rev", "missing"],
        },
        {
            "maxSkew": 2,
            "topologyKey": HOSTNAME_KEY,
            "whenUnsatisfiable": "ScheduleAnyway",
            "nodeTaintsPolicy": "Honor",
            "nodeAffinityPolicy": "Ignore",
        },
    ]
    hard, soft = pending_pod(_pod(topologySpreadConstraints=spread))[0].constraints.spread
    assert (hard.max_skew, hard.topology_key, hard.min_domains) == (1, ZONE_KEY, 3)
    assert hard.when_unsatisfiable is Unsatisfiable.DO_NOT_SCHEDULE
    assert hard.selector is not None and len(hard.selector.requirements) == 2
    assert hard.node_affinity_policy is InclusionPolicy.HONOR
    assert hard.node_taints_policy is InclusionPolicy.IGNORE
    assert soft.selector is None  # counts no pod
    assert soft.node_taints_policy is InclusionPolicy.HONOR
    assert soft.node_affinity_policy is InclusionPolicy.IGNORE


def test_host_ports_of_containers_and_sidecars() -> None:
    pod = _pod(
        containers=[
            {"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 9}]}
        ],
        initContainers=[
            {"name": "setup", "ports": [{"hostPort": 7000}]},  # runs to completion: not held
            {
                "name": "proxy",
                "restartPolicy": "Always",
                "ports": [{"hostPort": 53, "protocol": "UDP", "hostIP": "10.0.0.1"}],
            },
        ],
    )
    assert pending_pod(pod)[0].constraints.host_ports == (
        HostPort(53, PortProtocol.UDP, "10.0.0.1"),
        HostPort(8080, PortProtocol.TCP, "0.0.0.0"),
    )


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (
            {"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "d"}}]},
            "spec.volumes[0].persistentVolumeClaim: volume topology is not supported",
        ),
        (
            {"volumes": [{"name": "a", "emptyDir": {}}, {"name": "s", "ephemeral": {}}]},
            "spec.volumes[1].ephemeral: volume topology",
        ),
        ({"volumes": [{"name": "c", "csi": {"driver": "x"}}]}, "spec.volumes[0].csi: a csi volume"),
        (
            {"resourceClaims": [{"name": "gpu"}]},
            "spec.resourceClaims: dynamic resource allocation is not supported",
        ),
        (
            {
                "affinity": {
                    "podAffinity": {
                        REQ: [
                            {
                                "labelSelector": WEB,
                                "topologyKey": ZONE_KEY,
                                "namespaceSelector": {"matchLabels": {"t": "x"}},
                            }
                        ]
                    }
                }
            },
            f"spec.affinity.podAffinity.{REQ}[0].namespaceSelector: a namespace selector",
        ),
    ],
)
def test_unsupported_fields_refuse_the_pod_naming_the_field(
    spec: dict[str, Any], field: str
) -> None:
    converted, problems = pending_pod(_pod(**spec))
    assert problems == []  # valid objects: nothing to report as malformed
    assert any(r.startswith(field) for r in converted.constraints.refusals), (
        converted.constraints.refusals
    )


NODE_TERM = f"spec.affinity.nodeAffinity.{REQ}.nodeSelectorTerms[0].matchExpressions[0]"


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (
            {
                "affinity": {
                    "nodeAffinity": {
                        REQ: {
                            "nodeSelectorTerms": [
                                {
                                    "matchExpressions": [
                                        {"key": "k", "operator": "Near", "values": ["x"]}
                                    ]
                                }
                            ]
                        }
                    }
                }
            },
            f"{NODE_TERM}.operator",
        ),
        (
            {
                "affinity": {
                    "nodeAffinity": {
                        REQ: {
                            "nodeSelectorTerms": [
                                {
                                    "matchExpressions": [
                                        {"key": "k", "operator": "Gt", "values": ["x"]}
                                    ]
                                }
                            ]
                        }
                    }
                }
            },
            f"{NODE_TERM}.values",
        ),
        (
            {
                "affinity": {
                    "nodeAffinity": {
                        REQ: {
                            "nodeSelectorTerms": [
                                {"matchExpressions": [{"key": "k", "operator": "In", "values": []}]}
                            ]
                        }
                    }
                }
            },
            f"{NODE_TERM}.values",
        ),
        (
            {
                "affinity": {
                    "nodeAffinity": {
                        REQ: {
                            "nodeSelectorTerms": [
                                {
                                    "matchFields": [
                                        {"key": "spec.x", "operator": "In", "values": ["a"]}
                                    ]
                                }
                            ]
                        }
                    }
                }
            },
            f"spec.affinity.nodeAffinity.{REQ}.nodeSelectorTerms[0].matchFields[0].key",
        ),
        (
            {"affinity": {"nodeAffinity": {PREF: [{"weight": 101, "preference": {}}]}}},
            f"spec.affinity.nodeAffinity.{PREF}[0].weight",
        ),
        (
            {"affinity": {"podAntiAffinity": {REQ: [{"labelSelector": WEB}]}}},
            f"spec.affinity.podAntiAffinity.{REQ}[0].topologyKey",
        ),
        (
            {
                "affinity": {
                    "podAffinity": {
                        REQ: [
                            {
                                "labelSelector": {
                                    "matchExpressions": [
                                        {"key": "a", "operator": "Gt", "values": ["1"]}
                                    ]
                                },
                                "topologyKey": ZONE_KEY,
                            }
                        ]
                    }
                }
            },
            f"spec.affinity.podAffinity.{REQ}[0].labelSelector.matchExpressions[0].operator",
        ),
        ({"affinity": {"podAffinity": "near the cache"}}, "spec.affinity.podAffinity"),
        (
            {
                "topologySpreadConstraints": [
                    {"maxSkew": 0, "topologyKey": ZONE_KEY, "whenUnsatisfiable": "DoNotSchedule"}
                ]
            },
            "spec.topologySpreadConstraints[0].maxSkew",
        ),
        (
            {
                "topologySpreadConstraints": [
                    {"maxSkew": 1, "topologyKey": ZONE_KEY, "whenUnsatisfiable": "Sometimes"}
                ]
            },
            "spec.topologySpreadConstraints[0].whenUnsatisfiable",
        ),
        (
            {
                "topologySpreadConstraints": [
                    {
                        "maxSkew": 1,
                        "topologyKey": ZONE_KEY,
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "minDomains": 2,
                    }
                ]
            },
            "spec.topologySpreadConstraints[0].minDomains",
        ),
        (
            {"containers": [{"name": "c", "ports": [{"hostPort": 70000}]}]},
            "spec.containers[0].ports[0].hostPort",
        ),
        (
            {"containers": [{"name": "c", "ports": [{"hostPort": 80, "protocol": "HTTP"}]}]},
            "spec.containers[0].ports[0].protocol",
        ),
    ],
)
def test_malformed_fields_are_problems_and_refuse_the_pod(spec: dict[str, Any], field: str) -> None:
    converted, problems = pending_pod(_pod(**spec))
    assert field in [p.field for p in problems]
    assert any(r.startswith(f"{field}: ") for r in converted.constraints.refusals)
    assert all(p.action == "not scheduling the pod" for p in problems)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3)
    ),
    max_leaves=12,
)
KEYS = st.sampled_from(
    [
        "labelSelector",
        "topologyKey",
        "matchExpressions",
        "matchLabels",
        "values",
        "operator",
        "key",
        "weight",
        "namespaces",
        "namespaceSelector",
        "maxSkew",
        "hostPort",
        "ports",
        REQ,
        PREF,
    ]
)


def _plant(template: Any, junk: Any, path: list[int]) -> Any:
    """Replace one node of ``template`` (chosen by ``path``) with ``junk``."""
    if not path or not isinstance(template, dict | list) or not template:
        return junk
    keys = list(template) if isinstance(template, dict) else list(range(len(template)))
    key = keys[path[0] % len(keys)]
    template[key] = _plant(template[key], junk, path[1:])
    return template


FULL = _pod(
    affinity={
        "nodeAffinity": {
            REQ: {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "k", "operator": "In", "values": ["v"]}]}
                ]
            },
            PREF: [
                {
                    "weight": 1,
                    "preference": {
                        "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}]
                    },
                }
            ],
        },
        "podAffinity": {REQ: [{"labelSelector": WEB, "topologyKey": ZONE_KEY}]},
        "podAntiAffinity": {
            PREF: [
                {
                    "weight": 2,
                    "podAffinityTerm": {
                        "labelSelector": WEB,
                        "topologyKey": ZONE_KEY,
                        "namespaceSelector": {},
                    },
                }
            ]
        },
    },
    topologySpreadConstraints=[
        {
            "maxSkew": 1,
            "topologyKey": ZONE_KEY,
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": WEB,
        }
    ],
    containers=[{"name": "c", "ports": [{"hostPort": 80}]}],
    volumes=[{"name": "v", "emptyDir": {}}],
)


@settings(max_examples=300, deadline=None)
@given(
    junk=JSON | st.dictionaries(KEYS, JSON, max_size=3),
    path=st.lists(st.integers(0, 7), min_size=1, max_size=8),
)
def test_crafted_constraint_fields_never_raise(junk: Any, path: list[int]) -> None:
    spec = copy.deepcopy(FULL["spec"])
    fields = {k: spec.pop(k) for k in ("affinity", "topologySpreadConstraints", "volumes")}
    fields["ports"] = spec["containers"][0]["ports"]
    planted = _plant(fields, junk, path)
    spec["containers"][0]["ports"] = planted.pop("ports")
    pod = {**FULL, "spec": {**spec, **planted}}
    converted, problems = pending_pod(pod)
    assert len(converted.constraints.refusals) >= len(problems)
    nodes = [make_node(f"n{z}", labels={ZONE_KEY: z, "k": "v"}) for z in "ab"]
    profile = build_policy("kube-default", np.random.default_rng(0)).profile
    (decision,) = profile.schedule_batch(
        [converted], ClusterSnapshot(nodes), np.random.default_rng(0)
    )
    assert decision.placed or decision.status.message.startswith("0/2 nodes are available: ")


def test_the_operator_posts_the_refusal_as_failed_scheduling() -> None:
    api = FakeApi()
    scheduler = Scheduler(OperatorSettings(), api, clock=lambda: 1000.0)
    for name in ("n1", "n2", "n3"):
        scheduler.on_node(None, k8s_node(name))
    body = k8s_pod("db")
    body["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "d"}}]
    scheduler.on_pod(None, body)
    asyncio.run(scheduler.schedule_once())
    assert api.binds == []
    (failed,) = [e for e in api.events if e[1] == "FailedScheduling"]
    assert failed[2] == (
        "0/3 nodes are available: spec.volumes[0].persistentVolumeClaim: "
        "volume topology is not supported by hybrid-scheduler."
    )


def test_the_operator_keeps_pods_away_from_bound_pods_anti_affinity() -> None:
    api = FakeApi()
    scheduler = Scheduler(OperatorSettings(), api, clock=lambda: 1000.0)
    for name in ("n1", "n2"):
        node = k8s_node(name)
        node["metadata"]["labels"] = {HOSTNAME_KEY: name}
        scheduler.on_node(None, node)
    guard = k8s_pod("guard", node="n1", phase="Running", scheduler="default-scheduler")
    guard["spec"]["affinity"] = {
        "podAntiAffinity": {REQ: [{"labelSelector": WEB, "topologyKey": HOSTNAME_KEY}]}
    }
    scheduler.on_pod(None, guard)
    for i in range(2):
        web = k8s_pod(f"web-{i}")
        web["metadata"]["labels"] = {"app": "web"}
        scheduler.on_pod(None, web)
    asyncio.run(scheduler.schedule_once())
    assert [node for _, node in api.binds] == ["n2", "n2"]


def test_the_operator_holds_nodes_to_their_pod_limit() -> None:
    api = FakeApi()
    scheduler = Scheduler(OperatorSettings(), api, clock=lambda: 1000.0)
    node = k8s_node("n1")
    node["status"]["allocatable"]["pods"] = "3"
    scheduler.on_node(None, node)
    scheduler.on_pod(None, k8s_pod("daemon", gpus=0, node="n1", scheduler="default-scheduler"))
    for i in range(4):
        scheduler.on_pod(None, k8s_pod(f"p{i}", gpus=0))
    asyncio.run(scheduler.schedule_once())
    assert len(api.binds) == 2
    failed = {e[2] for e in api.events if e[1] == "FailedScheduling"}
    assert failed == {"0/1 nodes are available: 1 Too many pods."}


def test_a_node_that_reports_no_pod_limit_gets_kubelets_default() -> None:
    node = k8s_node("n1")
    del node["status"]["allocatable"]["pods"]
    assert node_info(node)[0].max_pods == 110
