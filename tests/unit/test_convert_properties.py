"""Conversion is total: any JSON anywhere in a pod, node or namespace gives a domain object
within bounds, or a refusal with problems; never an exception, never a non-finite number."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builders import k8s_node, k8s_pod
from crafted_objects import (
    Json,
    crafted_namespaces,
    crafted_nodes,
    crafted_pods,
    json_values,
    valid_namespace,
    valid_node,
    valid_pod,
)
from hybrid_operator.k8s.convert import (
    LEAVE_NAMESPACE,
    LEAVE_NODE,
    LEAVE_POD,
    MAX_PERFORMANCE,
    MAX_RUNTIME_S,
    MAX_WEIGHT,
    namespace,
    node_info,
    pending_pod,
)
from hybrid_operator.k8s.problems import Conversion, Problem
from hybrid_policy.domain import Namespace, NodeInfo, PendingPod, Taint, TaintEffect, Toleration
from hybrid_policy.framework.snapshot import ClusterSnapshot
from hybrid_policy.policies import build_policy, policy_names
from hybrid_policy.resources import MAX_AMOUNT, QuantityError, parse_quantity

SUFFIXES = {
    "": Fraction(1),
    "m": Fraction(1, 1000),
    **{s: Fraction(10) ** (3 * (i + 1)) for i, s in enumerate("kMGTPE")},
    **{f"{s}i": Fraction(2) ** (10 * (i + 1)) for i, s in enumerate("KMGTPE")},
}
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: For the properties that build a snapshot or run a pass per example.
PASS_PROPERTY = settings(PROPERTY, max_examples=100)


def _amount(value: object) -> bool:
    return type(value) is int and 0 <= value <= MAX_AMOUNT


def _parsed(resource: str, value: Json) -> int | QuantityError:
    try:
        return parse_quantity(resource, value)
    except QuantityError as exc:
        return exc


def _string_map(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def _checked_problems(result: object, refusal: str) -> object:
    """The value of a conversion, after checking its shape and its problems."""
    assert isinstance(result, Conversion)
    value, problems = result
    assert all(isinstance(p, Problem) and isinstance(p.message, str) for p in problems)
    if value is None:
        assert any(p.action == refusal for p in problems), problems
    return value


def check_pod(result: object) -> PendingPod | None:
    pod = _checked_problems(result, LEAVE_POD.text)
    if pod is None:
        return None
    assert isinstance(pod, PendingPod)
    assert all(isinstance(x, str) and x for x in (pod.namespace, pod.name, pod.uid))
    assert all(isinstance(r, str) and _amount(v) and v > 0 for r, v in pod.requests.items())
    assert isinstance(pod.created_at_s, float) and math.isfinite(pod.created_at_s)
    assert type(pod.priority) is int and -(2**31) <= pod.priority < 2**31
    for t in pod.tolerations:
        assert isinstance(t, Toleration) and isinstance(t.key, str) and isinstance(t.value, str)
        assert t.operator in ("Equal", "Exists")
        assert t.effect is None or isinstance(t.effect, TaintEffect)
    assert _string_map(pod.node_selector)
    assert pod.task_type is None or isinstance(pod.task_type, str)
    runtime = pod.expected_runtime_s
    assert runtime is None or (isinstance(runtime, float) and 0 < runtime <= MAX_RUNTIME_S)
    return pod


def check_node(result: object) -> NodeInfo | None:
    node = _checked_problems(result, LEAVE_NODE.text)
    if node is None:
        return None
    assert isinstance(node, NodeInfo)
    assert isinstance(node.name, str) and node.name
    for amounts in (node.allocatable, node.capacity):
        assert all(isinstance(r, str) and _amount(v) for r, v in amounts.items())
    assert _string_map(node.labels)
    for t in node.taints:
        assert isinstance(t, Taint) and isinstance(t.key, str) and isinstance(t.value, str)
        assert isinstance(t.effect, TaintEffect)
    assert type(node.ready) is bool and type(node.unschedulable) is bool
    assert isinstance(node.performance, float) and 0 < node.performance <= MAX_PERFORMANCE
    assert _amount(node.max_pods)
    return node


def check_namespace(result: object) -> Namespace | None:
    ns = _checked_problems(result, LEAVE_NAMESPACE.text)
    if ns is None:
        return None
    assert isinstance(ns, Namespace)
    assert isinstance(ns.name, str) and ns.name
    assert isinstance(ns.weight, float) and 0 < ns.weight <= MAX_WEIGHT
    return ns


def test_the_valid_templates_convert_without_problems() -> None:
    for result in (pending_pod(valid_pod()), node_info(valid_node()), namespace(valid_namespace())):
        assert result.value is not None
        assert result.problems == []


@PROPERTY
@given(crafted_pods)
def test_any_pod_converts_or_is_refused_with_a_problem(body: Json) -> None:
    check_pod(pending_pod(body))


@PROPERTY
@given(crafted_nodes)
def test_any_node_converts_or_is_refused_with_a_problem(body: Json) -> None:
    check_node(node_info(body))


@PROPERTY
@given(crafted_namespaces, st.sampled_from([0.5, 1.0, 3.0]))
def test_any_namespace_converts_or_is_refused_with_a_problem(body: Json, default: float) -> None:
    check_namespace(namespace(body, default))


@PROPERTY
@given(json_values)
def test_any_json_value_as_a_whole_object_never_raises(body: Json) -> None:
    check_pod(pending_pod(body))
    check_node(node_info(body))
    check_namespace(namespace(body))


@PROPERTY
@given(st.sampled_from(["cpu", "memory", "nvidia.com/gpu", "example.com/fpga"]), json_values)
def test_parse_quantity_returns_a_bounded_amount_or_raises_quantity_error(
    resource: str, value: Json
) -> None:
    outcome = _parsed(resource, value)
    if isinstance(outcome, QuantityError):
        assert resource in str(outcome)
    else:
        assert _amount(outcome)


@st.composite
def quantities(draw: st.DrawFn) -> tuple[str, int]:
    """A quantity string in any of Kubernetes' notations, with its exact canonical value."""
    whole = draw(st.integers(0, 10**6))
    fraction = draw(st.text("0123456789", max_size=4))
    suffix, factor = draw(st.sampled_from(list(SUFFIXES.items())))
    if draw(st.booleans()):
        exponent = draw(st.integers(-30, 30))
        sign = draw(st.sampled_from(["+", ""])) if exponent >= 0 else ""
        suffix, factor = f"{draw(st.sampled_from('eE'))}{sign}{exponent}", Fraction(10) ** exponent
    number = f"{draw(st.sampled_from(['', '+']))}{whole}" + (f".{fraction}" if fraction else "")
    value = (whole + Fraction(int(fraction or "0"), 10 ** len(fraction))) * factor
    return number + suffix, math.ceil(value)


@PROPERTY
@given(quantities())
def test_every_notation_is_parsed_exactly_and_rounded_up(quantity: tuple[str, int]) -> None:
    text, expected = quantity
    outcome = _parsed("memory", text)
    if expected > MAX_AMOUNT:
        assert isinstance(outcome, QuantityError)
        assert "above the largest amount" in str(outcome)
    else:
        assert outcome == expected


def _good(i: int) -> tuple[dict[str, Json], dict[str, Json]]:
    return k8s_node(f"good-{i}"), k8s_pod(f"good-{i}", gpus=1)


def _finite(*arrays: object) -> bool:
    return all(np.isfinite(np.asarray(a, dtype=float)).all() for a in arrays)


@PASS_PROPERTY
@given(st.lists(crafted_nodes, min_size=1, max_size=3), st.lists(crafted_pods, max_size=4))
def test_snapshots_of_converted_objects_hold_finite_numbers(
    node_bodies: list[Json], pod_bodies: list[Json]
) -> None:
    nodes = {n.name: n for n in (check_node(node_info(b)) for b in node_bodies) if n is not None}
    pods = {p.uid: p for p in (check_pod(pending_pod(b)) for b in pod_bodies) if p is not None}
    snapshot = ClusterSnapshot(list(nodes.values()))
    for i, pod in enumerate(pods.values()):
        if len(snapshot):
            snapshot.assume(pod, i % len(snapshot))
    demand = [snapshot.request_vector(p) for p in pods.values()]
    assert _finite(snapshot.allocatable, snapshot.requested, snapshot.free, *demand)
    assert _finite(snapshot.performance, snapshot.total_allocatable, snapshot.max_pods)
    assert _finite(*snapshot.namespace_allocated.values(), sum(demand, np.zeros(1)))


@PASS_PROPERTY
@given(crafted_nodes, crafted_pods)
def test_a_crafted_node_and_pod_never_stop_a_pass_and_good_pods_are_placed(
    node_body: Json, pod_body: Json
) -> None:
    nodes: dict[str, NodeInfo] = {}
    good: list[PendingPod] = []
    for i in range(3):
        node_raw, pod_raw = _good(i)
        node, pod = node_info(node_raw).value, pending_pod(pod_raw).value
        assert node is not None and pod is not None
        nodes[node.name] = node
        good.append(pod)
    crafted_node, crafted_pod = check_node(node_info(node_body)), check_pod(pending_pod(pod_body))
    if crafted_node is not None:
        nodes[crafted_node.name] = crafted_node  # as the cache keeps nodes, by name
    batch = list(good)
    if crafted_pod is not None and crafted_pod.uid not in {p.uid for p in good}:
        batch.append(crafted_pod)
    rng = np.random.default_rng(0)
    snapshot = ClusterSnapshot(list(nodes.values()))
    decisions = build_policy("binpack", rng).profile.schedule_batch(batch, snapshot, rng)
    placed = {d.pod.uid for d in decisions if d.node is not None}
    assert {p.uid for p in good} <= placed
    assert _finite(snapshot.requested, snapshot.free)


@pytest.mark.filterwarnings("error")  # numpy's overflow and invalid-value warnings included
@pytest.mark.parametrize("policy", policy_names())
def test_every_policy_copes_with_amounts_at_the_bound(policy: str) -> None:
    at_bound = {"cpu": str(MAX_AMOUNT // 1000), "memory": "4Ei", "nvidia.com/gpu": str(MAX_AMOUNT)}
    big_node = k8s_node("big")
    big_node["status"]["allocatable"] = {**at_bound, "pods": str(MAX_AMOUNT)}
    big_pod = k8s_pod("big")
    big_pod["spec"]["containers"][0]["resources"]["requests"] = at_bound
    nodes = [node_info(body).value for body in (k8s_node("n0"), k8s_node("n1"), big_node)]
    pods = [pending_pod(body).value for body in (k8s_pod("p0"), k8s_pod("p1"), big_pod)]
    assert all(n is not None for n in nodes) and all(p is not None for p in pods)
    snapshot = ClusterSnapshot([n for n in nodes if n is not None])
    rng = np.random.default_rng(0)
    decisions = build_policy(policy, rng).profile.schedule_batch(
        [p for p in pods if p is not None], snapshot, rng
    )
    assert {d.pod.name: d.node for d in decisions}["big"] == "big"
    assert all(d.node is not None for d in decisions)
    assert _finite(snapshot.requested, snapshot.free)
