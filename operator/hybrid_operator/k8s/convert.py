"""Raw Kubernetes objects (as kopf hands them over: nested dicts) into domain types.

Everything the scheduler knows about a pod, node or namespace comes through here, so the
rules live in one place: a pod's effective request is the larger of the sum over its
containers and its largest init container, plus its overhead (as kube-scheduler counts
it); a container that sets only limits requests its limits; quantities are parsed exactly.

Every conversion is total: for any JSON value it returns a
:class:`~hybrid_operator.k8s.problems.Conversion` and never raises. A field that cannot be
used falls back so that nothing is placed where Kubernetes would not place it: a bad
annotation or label takes its documented default, a bad toleration is dropped, a bad node
resource counts as none, bad taints make the node unschedulable. An object that cannot be
used at all (no name or UID; requests or a node selector that cannot be read) is refused:
the conversion's value is ``None`` and its problems say why.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime

from hybrid_operator.k8s.constraints import pod_placement
from hybrid_operator.k8s.fields import Action, FieldReader
from hybrid_operator.k8s.fields import Body as Body  # callers import it from here
from hybrid_operator.k8s.problems import Conversion, Problem
from hybrid_policy.domain import Namespace, NodeInfo, PendingPod, Taint, TaintEffect, Toleration
from hybrid_policy.resources import MAX_AMOUNT, PODS, QuantityError, parse_quantity

PREFIX = "hybrid-scheduler.io"
WEIGHT_ANNOTATION = f"{PREFIX}/weight"
PERFORMANCE_LABEL = f"{PREFIX}/performance"
TASK_TYPE_LABEL = f"{PREFIX}/task-type"
RUNTIME_ANNOTATION = f"{PREFIX}/expected-runtime"
#: Pods of one job class predict each other's run times (else the controller's name, else
#: the ``app`` label).
JOB_CLASS_LABEL = f"{PREFIX}/job-class"
APP_LABEL = "app"
#: Namespace weights outside (0, MAX_WEIGHT] are refused and the default is used.
MAX_WEIGHT = 1000.0
DEFAULT_PERFORMANCE = 100.0
MAX_PERFORMANCE = 10_000.0
#: Expected run times above 30 days are refused (the run time counts as unknown).
MAX_RUNTIME_S = 30 * 24 * 3600.0
#: Pod priorities are 32-bit integers in Kubernetes.
PRIORITY_RANGE = range(-(2**31), 2**31)
DEFAULT_MAX_PODS = 110
TOLERATION_OPERATORS = ("Equal", "Exists")
TAINT_EFFECTS = frozenset(TaintEffect)

LEAVE_POD = Action("leaving the pod out", refuses=True)
LEAVE_NODE = Action("leaving the node out", refuses=True)
LEAVE_NAMESPACE = Action("leaving the namespace out", refuses=True)
IGNORE = Action("ignoring it")
NO_RESOURCE = Action("counting none of this resource")
IGNORE_TOLERATION = Action("ignoring this toleration")
NODE_UNSCHEDULABLE = Action("treating the node as unschedulable")
AS_NO_SCHEDULE = Action("treating it as NoSchedule")

_DURATION = re.compile(
    r"(?:([0-9]+(?:\.[0-9]+)?)h)?(?:([0-9]+(?:\.[0-9]+)?)m)?(?:([0-9]+(?:\.[0-9]+)?)s)?"
)


def _resources(amounts: object, field: str, reader: FieldReader, action: Action) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, raw in reader.mapping(amounts, field, action).items():
        try:
            out[name] = parse_quantity(name, raw)
        except QuantityError as exc:
            reader.report(f"{field}.{name}", raw, str(exc), action)
    return out


def _container_requests(container: object, field: str, reader: FieldReader) -> dict[str, int]:
    body = reader.mapping(container, field, LEAVE_POD)
    resources = reader.mapping(body.get("resources"), f"{field}.resources", LEAVE_POD)
    limits = _resources(resources.get("limits"), f"{field}.resources.limits", reader, LEAVE_POD)
    requests = _resources(
        resources.get("requests"), f"{field}.resources.requests", reader, LEAVE_POD
    )
    return {**limits, **requests}


def _requests(spec: Body, reader: FieldReader) -> dict[str, int]:
    total: dict[str, int] = {}
    containers = reader.sequence(spec.get("containers"), "spec.containers", LEAVE_POD)
    for i, container in enumerate(containers):
        for name, amount in _container_requests(container, f"spec.containers[{i}]", reader).items():
            total[name] = total.get(name, 0) + amount
    init = reader.sequence(spec.get("initContainers"), "spec.initContainers", LEAVE_POD)
    for i, container in enumerate(init):
        field = f"spec.initContainers[{i}]"
        for name, amount in _container_requests(container, field, reader).items():
            total[name] = max(total.get(name, 0), amount)
    for name, amount in _resources(
        spec.get("overhead"), "spec.overhead", reader, LEAVE_POD
    ).items():
        total[name] = total.get(name, 0) + amount
    for name, amount in total.items():
        if amount > MAX_AMOUNT:
            reader.report(
                f"spec (the pod's effective {name} request)",
                amount,
                "above the largest amount, 2**62",
                LEAVE_POD,
            )
    return {k: v for k, v in total.items() if v > 0}


def pod_requests(pod: Body, problems: list[Problem]) -> dict[str, int] | None:
    """The pod's effective requests in canonical units (see the module docstring);
    ``None``, with the reasons added to ``problems``, when they cannot be counted."""
    reader = FieldReader()
    total = _requests(reader.mapping(pod.get("spec"), "spec", LEAVE_POD), reader)
    problems.extend(reader.problems)
    return None if reader.refused else total


def _timestamp(value: object, field: str, reader: FieldReader) -> float:
    if value is None or value == "":
        return 0.0
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except (ValueError, OverflowError, OSError):
            pass
    reader.report(field, value, "not an RFC 3339 time", Action("counting it as created at 0"))
    return 0.0


def parse_duration_s(text: str) -> float | None:
    """``90s``, ``15m``, ``2h``, ``1h30m``, or plain seconds; None when not a duration
    in (0, :data:`MAX_RUNTIME_S`]."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        match = _DURATION.fullmatch(text)
        if match is None or not any(match.groups()):
            return None
        hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
        value = hours * 3600 + minutes * 60 + seconds
    return value if math.isfinite(value) and 0 < value <= MAX_RUNTIME_S else None


def _toleration(raw: object, field: str, reader: FieldReader) -> Toleration | None:
    """One toleration, or None (reported) when any part of it cannot be read."""
    before = len(reader.problems)
    t = reader.mapping(raw, field, IGNORE_TOLERATION)
    key = reader.text(t.get("key"), f"{field}.key", "", IGNORE_TOLERATION)
    operator = reader.text(t.get("operator"), f"{field}.operator", "Equal", IGNORE_TOLERATION)
    value = reader.text(t.get("value"), f"{field}.value", "", IGNORE_TOLERATION)
    effect_text = reader.text(t.get("effect"), f"{field}.effect", "", IGNORE_TOLERATION)
    if operator not in TOLERATION_OPERATORS:
        reader.report(f"{field}.operator", operator, "not Equal or Exists", IGNORE_TOLERATION)
    if effect_text and effect_text not in TAINT_EFFECTS:
        reader.report(f"{field}.effect", effect_text, "unknown taint effect", IGNORE_TOLERATION)
    if len(reader.problems) > before:
        return None
    effect = TaintEffect(effect_text) if effect_text else None
    return Toleration(key=key, operator=operator, value=value, effect=effect)


def _tolerations(spec: Body, problems: list[Problem]) -> tuple[Toleration, ...]:
    """The pod's tolerations; those that cannot be read are dropped (and reported)."""
    reader = FieldReader()
    raw = reader.sequence(spec.get("tolerations"), "spec.tolerations", IGNORE_TOLERATION)
    found = [_toleration(t, f"spec.tolerations[{i}]", reader) for i, t in enumerate(raw)]
    problems.extend(reader.problems)
    return tuple(t for t in found if t is not None)


def _priority(value: object, reader: FieldReader) -> int:
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool) and value in PRIORITY_RANGE:
        return value
    reader.report("spec.priority", value, "not a 32-bit integer", Action("using priority 0"))
    return 0


def _runtime_s(annotations: Body, reader: FieldReader) -> float | None:
    if RUNTIME_ANNOTATION not in annotations:
        return None
    raw = annotations[RUNTIME_ANNOTATION]
    runtime_s = parse_duration_s(raw)
    if runtime_s is None:
        reader.report(
            f"metadata.annotations[{RUNTIME_ANNOTATION}]",
            raw,
            "not a positive duration up to 30 days (720h), such as 90s, 15m or 2h",
            Action("treating the run time as unknown"),
        )
    return runtime_s


def job_class(meta: Body, labels: Mapping[str, str]) -> str | None:
    """The pod's job class: its ``hybrid-scheduler.io/job-class`` label, else the name of
    its controller (a Job, a ReplicaSet, ...), else its ``app`` label; None if none."""
    if labels.get(JOB_CLASS_LABEL):
        return labels[JOB_CLASS_LABEL]
    owners = meta.get("ownerReferences")
    for owner in owners if isinstance(owners, list) else ():
        if isinstance(owner, Mapping) and owner.get("controller") is True:
            name = owner.get("name")
            if isinstance(name, str) and name:
                return name
    return labels.get(APP_LABEL) or None


def pending_pod(pod: Body) -> Conversion[PendingPod]:
    """The domain view of a pod waiting for a node, and what was wrong with it."""
    reader = FieldReader()
    body = reader.mapping(pod, "pod", LEAVE_POD)
    meta = reader.mapping(body.get("metadata"), "metadata", LEAVE_POD)
    spec = reader.mapping(body.get("spec"), "spec", LEAVE_POD)
    labels = reader.string_map(meta.get("labels"), "metadata.labels", IGNORE)
    annotations = reader.string_map(meta.get("annotations"), "metadata.annotations", IGNORE)
    runtime_s = _runtime_s(annotations, reader)
    # The constraints' reader reads labels and containers again: report each field once.
    constraint_problems: list[Problem] = []
    placement = pod_placement(body, constraint_problems)
    converted = PendingPod(
        namespace=reader.text(meta.get("namespace"), "metadata.namespace", "default", LEAVE_POD),
        name=reader.name(meta.get("name"), "metadata.name", LEAVE_POD),
        uid=reader.name(meta.get("uid"), "metadata.uid", LEAVE_POD),
        requests=_requests(spec, reader),
        created_at_s=_timestamp(
            meta.get("creationTimestamp"), "metadata.creationTimestamp", reader
        ),
        priority=_priority(spec.get("priority"), reader),
        tolerations=_tolerations(spec, reader.problems),
        node_selector=reader.string_map(spec.get("nodeSelector"), "spec.nodeSelector", LEAVE_POD),
        task_type=labels.get(TASK_TYPE_LABEL),
        expected_runtime_s=runtime_s,
        labels=placement.labels,
        constraints=placement.constraints,
        job_class=job_class(meta, labels),
    )
    reported = {p.field for p in reader.problems}
    reader.problems.extend(p for p in constraint_problems if p.field not in reported)
    return Conversion(None if reader.refused else converted, reader.problems)


def _taints(spec: Body, reader: FieldReader) -> tuple[Taint, ...]:
    """The node's taints; one that cannot be read closes the node (NODE_UNSCHEDULABLE)."""
    taints = []
    for i, raw in enumerate(reader.sequence(spec.get("taints"), "spec.taints", NODE_UNSCHEDULABLE)):
        field = f"spec.taints[{i}]"
        t = reader.mapping(raw, field, NODE_UNSCHEDULABLE)
        key = reader.text(t.get("key"), f"{field}.key", "", NODE_UNSCHEDULABLE)
        value = reader.text(t.get("value"), f"{field}.value", "", NODE_UNSCHEDULABLE)
        effect = t.get("effect")
        if isinstance(effect, str) and effect in TAINT_EFFECTS:
            taints.append(Taint(key, value, TaintEffect(effect)))
        else:
            reader.report(f"{field}.effect", effect, "unknown taint effect", AS_NO_SCHEDULE)
            taints.append(Taint(key, value, TaintEffect.NO_SCHEDULE))
    return tuple(taints)


def _unschedulable(spec: Body, reader: FieldReader) -> bool:
    """``spec.unschedulable``, or True once a field of the node's spec could not be read."""
    value = spec.get("unschedulable")
    if value is not None and not isinstance(value, bool):
        reader.report("spec.unschedulable", value, "not a boolean", NODE_UNSCHEDULABLE)
    return value is True or NODE_UNSCHEDULABLE in reader.taken


def _ready(status: Body, reader: FieldReader) -> bool:
    ready = False
    conditions = reader.sequence(status.get("conditions"), "status.conditions", IGNORE)
    for i, raw in enumerate(conditions):
        condition = reader.mapping(raw, f"status.conditions[{i}]", IGNORE)
        ready = ready or (condition.get("type") == "Ready" and condition.get("status") == "True")
    return ready


def _performance(labels: Body, reader: FieldReader) -> float:
    if PERFORMANCE_LABEL not in labels:
        return DEFAULT_PERFORMANCE
    raw = labels[PERFORMANCE_LABEL]
    try:
        performance = float(raw)
    except ValueError:
        performance = math.nan
    if 0 < performance <= MAX_PERFORMANCE:  # False for NaN
        return performance
    reader.report(
        f"metadata.labels[{PERFORMANCE_LABEL}]",
        raw,
        f"not a number in (0, {MAX_PERFORMANCE:g}]",
        Action(f"using the default {DEFAULT_PERFORMANCE:g}"),
    )
    return DEFAULT_PERFORMANCE


def node_info(node: Body) -> Conversion[NodeInfo]:
    """The domain view of a node, and what was wrong with it."""
    reader = FieldReader()
    body = reader.mapping(node, "node", LEAVE_NODE)
    meta = reader.mapping(body.get("metadata"), "metadata", LEAVE_NODE)
    spec = reader.mapping(body.get("spec"), "spec", NODE_UNSCHEDULABLE)
    status = reader.mapping(body.get("status"), "status", IGNORE)
    labels = reader.string_map(meta.get("labels"), "metadata.labels", IGNORE)
    allocatable = _resources(status.get("allocatable"), "status.allocatable", reader, NO_RESOURCE)
    taints = _taints(spec, reader)
    converted = NodeInfo(
        name=reader.name(meta.get("name"), "metadata.name", LEAVE_NODE),
        allocatable=allocatable,
        capacity=_resources(status.get("capacity"), "status.capacity", reader, NO_RESOURCE),
        labels=labels,
        taints=taints,
        ready=_ready(status, reader),
        unschedulable=_unschedulable(spec, reader),
        performance=_performance(labels, reader),
        max_pods=allocatable.get(PODS, DEFAULT_MAX_PODS),
    )
    return Conversion(None if reader.refused else converted, reader.problems)


#: The ``status.addresses`` kinds by which metrics may name a node.
NODE_ADDRESS_TYPES = ("InternalIP", "ExternalIP", "Hostname")


def node_addresses(node: Body) -> tuple[str, ...]:
    """The node's InternalIP, ExternalIP and Hostname addresses (whatever shape it has)."""
    status = node.get("status") if isinstance(node, Mapping) else None
    entries = status.get("addresses") if isinstance(status, Mapping) else None
    if not isinstance(entries, list):
        return ()
    return tuple(
        a["address"]
        for a in entries
        if isinstance(a, Mapping)
        and a.get("type") in NODE_ADDRESS_TYPES
        and isinstance(a.get("address"), str)
        and a["address"]
    )


def namespace(body: Body, default_weight: float = 1.0) -> Conversion[Namespace]:
    """A namespace and its fair-share weight from the ``hybrid-scheduler.io/weight``
    annotation; values that are not numbers in (0, 1000] are refused for the default."""
    reader = FieldReader()
    obj = reader.mapping(body, "namespace", LEAVE_NAMESPACE)
    meta = reader.mapping(obj.get("metadata"), "metadata", LEAVE_NAMESPACE)
    name = reader.name(meta.get("name"), "metadata.name", LEAVE_NAMESPACE)
    default = Action(f"using the default weight {default_weight:g}")
    annotations = reader.mapping(meta.get("annotations"), "metadata.annotations", default)
    weight = default_weight
    if WEIGHT_ANNOTATION in annotations:
        raw = annotations[WEIGHT_ANNOTATION]
        try:
            parsed = float(raw) if isinstance(raw, str) else math.nan
        except ValueError:
            parsed = math.nan
        if 0 < parsed <= MAX_WEIGHT:  # False for NaN
            weight = parsed
        else:
            field = f"metadata.annotations[{WEIGHT_ANNOTATION}]"
            reader.report(field, raw, f"not a number in (0, {MAX_WEIGHT:g}]", default)
    return Conversion(None if reader.refused else Namespace(name, weight), reader.problems)
