"""Raw Kubernetes objects (as kopf hands them over: nested dicts) into domain types.

Everything the scheduler knows about a pod, node or namespace comes through here, so the
rules live in one place: a pod's effective request is the larger of the sum over its
containers and its largest init container, plus its overhead (as kube-scheduler counts
it); a container that sets only limits requests its limits; quantities are parsed exactly;
malformed annotations fall back to documented defaults and are reported as
:class:`~hybrid_operator.k8s.problems.Problem`\\ s, never raised.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from hybrid_operator.k8s.constraints import pod_placement
from hybrid_operator.k8s.problems import Problem
from hybrid_policy.domain import (
    Namespace,
    NodeInfo,
    PendingPod,
    Taint,
    TaintEffect,
    Toleration,
)
from hybrid_policy.resources import PODS, QuantityError, parse_quantity

PREFIX = "hybrid-scheduler.io"
WEIGHT_ANNOTATION = f"{PREFIX}/weight"
PERFORMANCE_LABEL = f"{PREFIX}/performance"
TASK_TYPE_LABEL = f"{PREFIX}/task-type"
RUNTIME_ANNOTATION = f"{PREFIX}/expected-runtime"
#: Namespace weights outside (0, MAX_WEIGHT] are refused and the default is used.
MAX_WEIGHT = 1000.0
DEFAULT_PERFORMANCE = 100.0
MAX_PERFORMANCE = 10_000.0

Body = Mapping[str, Any]
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")


def _resources(amounts: Mapping[str, Any], field: str, problems: list[Problem]) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, raw in amounts.items():
        try:
            out[str(name)] = parse_quantity(str(name), raw)
        except QuantityError as exc:
            problems.append(Problem(f"{field}.{name}", raw, str(exc), "ignoring this resource"))
    return out


def _container_requests(container: Body, field: str, problems: list[Problem]) -> dict[str, int]:
    resources = container.get("resources") or {}
    limits = _resources(resources.get("limits") or {}, f"{field}.resources.limits", problems)
    requests = _resources(resources.get("requests") or {}, f"{field}.resources.requests", problems)
    return {**limits, **requests}


def pod_requests(pod: Body, problems: list[Problem]) -> dict[str, int]:
    """The pod's effective requests in canonical units (see module docstring)."""
    spec = pod.get("spec") or {}
    total: dict[str, int] = {}
    for i, container in enumerate(spec.get("containers") or []):
        for name, amount in _container_requests(
            container, f"spec.containers[{i}]", problems
        ).items():
            total[name] = total.get(name, 0) + amount
    for i, container in enumerate(spec.get("initContainers") or []):
        for name, amount in _container_requests(
            container, f"spec.initContainers[{i}]", problems
        ).items():
            total[name] = max(total.get(name, 0), amount)
    for name, amount in _resources(spec.get("overhead") or {}, "spec.overhead", problems).items():
        total[name] = total.get(name, 0) + amount
    return {k: v for k, v in total.items() if v > 0}


def _timestamp(text: object) -> float:
    if not isinstance(text, str) or not text:
        return 0.0
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def parse_duration_s(text: str) -> float | None:
    """``90s``, ``15m``, ``2h``, ``1h30m``, or plain seconds; None when not a duration."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        match = _DURATION.match(text)
        if match is None or not any(match.groups()):
            return None
        hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
        value = hours * 3600 + minutes * 60 + seconds
    return value if math.isfinite(value) and value > 0 else None


def _tolerations(spec: Body, problems: list[Problem]) -> tuple[Toleration, ...]:
    out = []
    for i, t in enumerate(spec.get("tolerations") or []):
        effect_text = t.get("effect") or ""
        try:
            effect = TaintEffect(effect_text) if effect_text else None
        except ValueError:
            problems.append(
                Problem(
                    f"spec.tolerations[{i}].effect",
                    effect_text,
                    "unknown taint effect",
                    "ignoring this toleration",
                )
            )
            continue
        out.append(
            Toleration(
                key=t.get("key") or "",
                operator=t.get("operator") or "Equal",
                value=t.get("value") or "",
                effect=effect,
            )
        )
    return tuple(out)


def pending_pod(pod: Body) -> tuple[PendingPod, list[Problem]]:
    """The domain view of a pod waiting for a node, and what was wrong with it."""
    problems: list[Problem] = []
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    runtime_s = None
    if RUNTIME_ANNOTATION in annotations:
        runtime_s = parse_duration_s(str(annotations[RUNTIME_ANNOTATION]))
        if runtime_s is None:
            problems.append(
                Problem(
                    f"metadata.annotations[{RUNTIME_ANNOTATION}]",
                    annotations[RUNTIME_ANNOTATION],
                    "not a positive duration such as 90s, 15m or 2h",
                    "treating the run time as unknown",
                )
            )
    priority = spec.get("priority")
    if not isinstance(priority, int) or isinstance(priority, bool):
        priority = 0
    selector = spec.get("nodeSelector") or {}
    placement = pod_placement(pod, problems)
    converted = PendingPod(
        namespace=str(meta.get("namespace") or "default"),
        name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""),
        requests=pod_requests(pod, problems),
        created_at_s=_timestamp(meta.get("creationTimestamp")),
        priority=priority,
        tolerations=_tolerations(spec, problems),
        node_selector={str(k): str(v) for k, v in selector.items()},
        task_type=str(labels[TASK_TYPE_LABEL]) if TASK_TYPE_LABEL in labels else None,
        expected_runtime_s=runtime_s,
        labels=placement.labels,
        constraints=placement.constraints,
    )
    return converted, problems


def node_info(node: Body) -> tuple[NodeInfo, list[Problem]]:
    """The domain view of a node, and what was wrong with it."""
    problems: list[Problem] = []
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    allocatable = _resources(status.get("allocatable") or {}, "status.allocatable", problems)
    capacity = _resources(status.get("capacity") or {}, "status.capacity", problems)
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    taints = []
    for i, t in enumerate(spec.get("taints") or []):
        try:
            taints.append(
                Taint(
                    str(t.get("key") or ""), str(t.get("value") or ""), TaintEffect(t.get("effect"))
                )
            )
        except ValueError:
            problems.append(
                Problem(
                    f"spec.taints[{i}].effect",
                    t.get("effect"),
                    "unknown taint effect",
                    "treating it as NoSchedule",
                )
            )
            taints.append(
                Taint(str(t.get("key") or ""), str(t.get("value") or ""), TaintEffect.NO_SCHEDULE)
            )
    performance = DEFAULT_PERFORMANCE
    if PERFORMANCE_LABEL in labels:
        raw = labels[PERFORMANCE_LABEL]
        try:
            performance = float(raw)
            if not 0 < performance <= MAX_PERFORMANCE:
                raise ValueError
        except ValueError:
            performance = DEFAULT_PERFORMANCE
            problems.append(
                Problem(
                    f"metadata.labels[{PERFORMANCE_LABEL}]",
                    raw,
                    f"not a number in (0, {MAX_PERFORMANCE:g}]",
                    f"using the default {DEFAULT_PERFORMANCE:g}",
                )
            )
    converted = NodeInfo(
        name=str(meta.get("name") or ""),
        allocatable=allocatable,
        capacity=capacity,
        labels=labels,
        taints=tuple(taints),
        ready=ready,
        unschedulable=bool(spec.get("unschedulable")),
        performance=performance,
        max_pods=allocatable.get(PODS, 110),
    )
    return converted, problems


def namespace(body: Body, default_weight: float = 1.0) -> tuple[Namespace, list[Problem]]:
    """A namespace and its fair-share weight from the ``hybrid-scheduler.io/weight``
    annotation; values that are not numbers in (0, 1000] are refused for the default."""
    meta = body.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    name = str(meta.get("name") or "")
    if WEIGHT_ANNOTATION not in annotations:
        return Namespace(name, default_weight), []
    raw = annotations[WEIGHT_ANNOTATION]
    try:
        weight = float(raw)
    except (TypeError, ValueError):
        weight = math.nan
    if math.isfinite(weight) and 0 < weight <= MAX_WEIGHT:
        return Namespace(name, weight), []
    problem = Problem(
        f"metadata.annotations[{WEIGHT_ANNOTATION}]",
        raw,
        f"not a number in (0, {MAX_WEIGHT:g}]",
        f"using the default weight {default_weight:g}",
    )
    return Namespace(name, default_weight), [problem]
