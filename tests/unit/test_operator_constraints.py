import asyncio
import copy
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from builders import k8s_node, k8s_pod, make_node, usable
from fake_api import FakeApi
from hybrid_operator.k8s.convert import node_info, pending_pod
from hybrid_operator.scheduler import Scheduler
from hybrid_operator.settings import OperatorSettings
from hybrid_policy.constraints import HOSTNAME_KEY, ZONE_KEY
from hybrid_policy.framework.snapshot import ClusterSnapshot
from hybrid_policy.policies import build_policy
from k8s_constraints import PREF, REQ, WEB, expression, node_terms, pod_terms, raw_pod, spread

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3)
    ),
    max_leaves=12,
)
FIELD_NAMES = "labelSelector topologyKey matchExpressions matchLabels values operator key weight"
KEYS = st.sampled_from([*FIELD_NAMES.split(), "namespaces", "maxSkew", "hostPort", REQ, PREF])


def _plant(template: Any, junk: Any, path: list[int]) -> Any:
    """Replace one node of ``template`` (chosen by ``path``) with ``junk``."""
    if not path or not isinstance(template, dict | list) or not template:
        return junk
    keys = list(template) if isinstance(template, dict) else list(range(len(template)))
    key = keys[path[0] % len(keys)]
    template[key] = _plant(template[key], junk, path[1:])
    return template


def _full_spec() -> dict[str, Any]:
    spec = node_terms(expression("k", "In", "v"))
    spec["affinity"]["nodeAffinity"][PREF] = [{"weight": 1, "preference": expression("k", "In")}]
    spec["affinity"].update(pod_terms("podAffinity", {"labelSelector": WEB, "topologyKey": "z"}))
    anti = {"labelSelector": WEB, "topologyKey": "z", "namespaceSelector": {}}
    spec["affinity"]["podAntiAffinity"] = {PREF: [{"weight": 2, "podAffinityTerm": anti}]}
    return {**spec, **spread(labelSelector=WEB), "volumes": [{"name": "v", "emptyDir": {}}]}


@settings(max_examples=300, deadline=None)
@given(
    junk=JSON | st.dictionaries(KEYS, JSON, max_size=3),
    path=st.lists(st.integers(0, 7), min_size=1, max_size=8),
)
def test_crafted_constraint_fields_never_raise(junk: Any, path: list[int]) -> None:
    fields = {**_full_spec(), "ports": [{"hostPort": 80}]}
    planted = _plant(copy.deepcopy(fields), junk, path)
    ports = planted.pop("ports")
    pod = raw_pod(**planted, containers=[{"name": "c", "ports": ports}])
    converted, problems = pending_pod(pod)
    assert converted is not None, problems
    assert len(converted.constraints.refusals) >= len(problems)
    nodes = [make_node(f"n{z}", labels={ZONE_KEY: z, "k": "v"}) for z in "ab"]
    profile = build_policy("kube-default", np.random.default_rng(0)).profile
    snapshot = ClusterSnapshot(nodes)
    (decision,) = profile.schedule_batch([converted], snapshot, np.random.default_rng(0))
    assert decision.placed or decision.status.message.startswith("0/2 nodes are available: ")


def _scheduler(*nodes: dict[str, Any]) -> tuple[Scheduler, FakeApi]:
    api = FakeApi()
    scheduler = Scheduler(OperatorSettings(), api, clock=lambda: 1000.0)
    for node in nodes:
        scheduler.on_node(None, node)
    return scheduler, api


def test_the_operator_posts_the_refusal_as_failed_scheduling() -> None:
    scheduler, api = _scheduler(k8s_node("n1"), k8s_node("n2"), k8s_node("n3"))
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
    nodes = [k8s_node(name) for name in ("n1", "n2")]
    for node in nodes:
        node["metadata"]["labels"] = {HOSTNAME_KEY: node["metadata"]["name"]}
    scheduler, api = _scheduler(*nodes)
    guard = k8s_pod("guard", node="n1", phase="Running", scheduler="default-scheduler")
    guard["spec"].update(
        pod_terms("podAntiAffinity", {"labelSelector": WEB, "topologyKey": HOSTNAME_KEY})
    )
    scheduler.on_pod(None, guard)
    for i in range(2):
        web = k8s_pod(f"web-{i}")
        web["metadata"]["labels"] = {"app": "web"}
        scheduler.on_pod(None, web)
    asyncio.run(scheduler.schedule_once())
    assert [node for _, node in api.binds] == ["n2", "n2"]


def test_the_operator_holds_nodes_to_their_pod_limit() -> None:
    node = k8s_node("n1")
    node["status"]["allocatable"]["pods"] = "3"
    scheduler, api = _scheduler(node)
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
    assert usable(node_info(node)).max_pods == 110
