"""Reading selectors and affinity terms from raw pods, without ever raising.

:class:`Reader` checks each field's type and range as the API server validates it; what
does not pass is a :class:`~hybrid_operator.k8s.problems.Problem` and a refusal (the pod
is not scheduled, and its FailedScheduling message names the field). Node selector terms,
label selectors and pod (anti-)affinity terms are built here;
:mod:`hybrid_operator.k8s.constraints` puts a pod's constraints together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from hybrid_operator.k8s.problems import Problem
from hybrid_policy.constraints import (
    NODE_NAME_FIELD,
    LabelSelector,
    NodeSelectorTerm,
    Operator,
    PodAffinityTerm,
    PodSelector,
    Requirement,
    WeightedNodeTerm,
    WeightedPodAffinityTerm,
    parse_int64,
)

REFUSING = "not scheduling the pod"
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"
SET_OPERATORS = frozenset({Operator.IN, Operator.NOT_IN, Operator.EXISTS, Operator.DOES_NOT_EXIST})
FIELD_OPERATORS = frozenset({Operator.IN, Operator.NOT_IN})
MAX_WEIGHT = 100
E = TypeVar("E", bound=StrEnum)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Reader:
    """Type-checked access to one pod's fields, collecting problems and refusals."""

    def __init__(self, namespace: str, problems: list[Problem]) -> None:
        self.namespace = namespace
        self.labels: Mapping[str, str] = {}
        self.problems = problems
        self.refusals: list[str] = []

    def malformed(self, field: str, value: object, problem: str) -> None:
        """A field the API server would not accept: report it and refuse the pod."""
        self.problems.append(Problem(field, value, problem, REFUSING))
        self.refusals.append(f"{field}: {problem}")

    def unsupported(self, field: str, what: str) -> None:
        """A valid field that changes placement in a way hybrid-scheduler cannot honour."""
        self.refusals.append(f"{field}: {what} is not supported by hybrid-scheduler")

    def mapping(self, value: object, field: str) -> Mapping[str, Any] | None:
        """An object, or None when absent (or malformed, then reported)."""
        if value is None or isinstance(value, Mapping):
            return value
        self.malformed(field, value, f"{_short(value)} is not an object")
        return None

    def items(self, value: object, field: str) -> Sequence[Any]:
        """A list, empty when absent (or malformed, then reported)."""
        if value is None:
            return ()
        if isinstance(value, list | tuple):
            return value
        self.malformed(field, value, f"{_short(value)} is not a list")
        return ()

    def text(self, value: object, field: str) -> str | None:
        """A non-empty string, or None (reported)."""
        if isinstance(value, str) and value:
            return value
        self.malformed(field, value, f"{_short(value)} is not a non-empty string")
        return None

    def texts(self, value: object, field: str) -> tuple[str, ...] | None:
        """A list of strings (empty when absent), or None (reported)."""
        values = self.items(value, field)
        if all(isinstance(v, str) for v in values):
            return tuple(values)
        self.malformed(field, value, f"{_short(value)} is not a list of strings")
        return None

    def integer(self, value: object, field: str, low: int, high: int) -> int | None:
        """An integer in [low, high], or None (reported)."""
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return value
        self.malformed(field, value, f"{_short(value)} is not an integer in [{low}, {high}]")
        return None

    def choice(
        self, value: object, field: str, kind: type[E], allowed: Sequence[E] = ()
    ) -> E | None:
        """One of the enum's values (or of ``allowed``), or None (reported)."""
        options = list(allowed) or list(kind)
        for option in options:
            if value == option.value:
                return option
        names = ", ".join(o.value for o in options)
        self.malformed(field, value, f"{_short(value)} is not one of {names}")
        return None


def requirement(
    r: Reader, raw: object, field: str, operators: frozenset[Operator] | None = None
) -> Requirement | None:
    """One ``matchExpressions``/``matchFields`` entry, checked as the API server does."""
    m = r.mapping(raw, field)
    if m is None:
        if raw is None:
            r.malformed(field, raw, "missing requirement")
        return None
    key = r.text(m.get("key"), f"{field}.key")
    allowed = sorted(operators or Operator, key=list(Operator).index)
    op = r.choice(m.get("operator"), f"{field}.operator", Operator, allowed)
    values = r.texts(m.get("values"), f"{field}.values")
    if key is None or op is None or values is None:
        return None
    problem = None
    if op in (Operator.IN, Operator.NOT_IN) and not values:
        problem = "must not be empty for In and NotIn"
    elif op in (Operator.EXISTS, Operator.DOES_NOT_EXIST) and values:
        problem = "must be empty for Exists and DoesNotExist"
    elif op in (Operator.GT, Operator.LT) and (len(values) != 1 or parse_int64(values[0]) is None):
        problem = "Gt and Lt take exactly one integer"
    if problem is not None:
        r.malformed(f"{field}.values", list(values), problem)
        return None
    return Requirement(key, op, values)


def node_term(r: Reader, raw: object, field: str) -> NodeSelectorTerm:
    """A node selector term (a null or empty term matches no node)."""
    m = r.mapping(raw, field) or {}
    expressions = [
        requirement(r, x, f"{field}.matchExpressions[{i}]")
        for i, x in enumerate(r.items(m.get("matchExpressions"), f"{field}.matchExpressions"))
    ]
    fields = []
    for i, x in enumerate(r.items(m.get("matchFields"), f"{field}.matchFields")):
        found = requirement(r, x, f"{field}.matchFields[{i}]", FIELD_OPERATORS)
        if found is not None and found.key != NODE_NAME_FIELD:
            r.malformed(f"{field}.matchFields[{i}].key", found.key, f"only {NODE_NAME_FIELD}")
            found = None
        fields.append(found)
    return NodeSelectorTerm(
        tuple(e for e in expressions if e is not None), tuple(f for f in fields if f is not None)
    )


def required_node_terms(
    r: Reader, node: Mapping[str, Any], field: str
) -> tuple[NodeSelectorTerm, ...] | None:
    """The required node affinity's terms, or None when there is no requirement."""
    required = r.mapping(node.get(REQUIRED), f"{field}.{REQUIRED}")
    if required is None:
        return None
    where = f"{field}.{REQUIRED}.nodeSelectorTerms"
    return tuple(
        node_term(r, t, f"{where}[{i}]")
        for i, t in enumerate(r.items(required.get("nodeSelectorTerms"), where))
    )


def weighted_node_terms(
    r: Reader, node: Mapping[str, Any], field: str
) -> tuple[WeightedNodeTerm, ...]:
    """The preferred node affinity's terms with their weights."""
    out = []
    where = f"{field}.{PREFERRED}"
    for i, raw in enumerate(r.items(node.get(PREFERRED), where)):
        m = r.mapping(raw, f"{where}[{i}]") or {}
        weight = r.integer(m.get("weight"), f"{where}[{i}].weight", 1, MAX_WEIGHT)
        term = node_term(r, m.get("preference"), f"{where}[{i}].preference")
        if weight is not None:
            out.append(WeightedNodeTerm(weight, term))
    return tuple(out)


def label_selector(r: Reader, raw: object, field: str) -> LabelSelector | None:
    """A pod label selector; None when absent (it then selects no pod)."""
    m = r.mapping(raw, field)
    if m is None:
        return None
    found: list[Requirement | None] = []
    labels = r.mapping(m.get("matchLabels"), f"{field}.matchLabels") or {}
    for key, value in labels.items():
        if isinstance(key, str) and key and isinstance(value, str):
            found.append(Requirement(key, Operator.IN, (value,)))
        else:
            r.malformed(f"{field}.matchLabels", {key: value}, "labels are non-empty strings")
    where = f"{field}.matchExpressions"
    for i, x in enumerate(r.items(m.get("matchExpressions"), where)):
        found.append(requirement(r, x, f"{where}[{i}]", SET_OPERATORS))
    return LabelSelector(tuple(f for f in found if f is not None))


def merge_label_keys(
    r: Reader, selector: LabelSelector | None, m: Mapping[str, Any], field: str
) -> LabelSelector | None:
    """``matchLabelKeys`` (``key In [own value]``) and ``mismatchLabelKeys`` (``NotIn``)
    merged into ``selector`` from the pod's own labels; keys it lacks are ignored."""
    extra = []
    for name, op in (("matchLabelKeys", Operator.IN), ("mismatchLabelKeys", Operator.NOT_IN)):
        for key in r.texts(m.get(name), f"{field}.{name}") or ():
            if key in r.labels:
                extra.append(Requirement(key, op, (r.labels[key],)))
    if selector is None or not extra:
        return selector
    return LabelSelector(selector.requirements + tuple(extra))


def pod_term(r: Reader, raw: object, field: str) -> PodAffinityTerm | None:
    """A pod affinity term, its namespaces resolved (own namespace by default)."""
    m = r.mapping(raw, field)
    if m is None:
        if raw is None:
            r.malformed(field, raw, "missing term")
        return None
    key = r.text(m.get("topologyKey"), f"{field}.topologyKey")
    selector = label_selector(r, m.get("labelSelector"), f"{field}.labelSelector")
    selector = merge_label_keys(r, selector, m, field)
    named = frozenset(r.texts(m.get("namespaces"), f"{field}.namespaces") or ())
    scope: frozenset[str] | None = named or frozenset({r.namespace})
    chooser = r.mapping(m.get("namespaceSelector"), f"{field}.namespaceSelector")
    if (
        chooser is not None
        and not chooser.get("matchLabels")
        and not chooser.get("matchExpressions")
    ):
        scope = None  # {} selects every namespace
    elif chooser is not None:
        r.unsupported(f"{field}.namespaceSelector", "a namespace selector other than {}")
    return None if key is None else PodAffinityTerm(PodSelector(selector, scope), key)


@dataclass(frozen=True)
class PodAffinityTerms:
    """The four lists of a pod's ``podAffinity`` and ``podAntiAffinity``."""

    required_affinity: tuple[PodAffinityTerm, ...] = ()
    required_anti_affinity: tuple[PodAffinityTerm, ...] = ()
    preferred_affinity: tuple[WeightedPodAffinityTerm, ...] = ()
    preferred_anti_affinity: tuple[WeightedPodAffinityTerm, ...] = ()


def pod_affinity(r: Reader, affinity: Mapping[str, Any]) -> PodAffinityTerms:
    """``spec.affinity.podAffinity`` and ``podAntiAffinity``, required and preferred."""
    found: dict[str, tuple[Any, ...]] = {}
    for kind, name in (("affinity", "podAffinity"), ("anti_affinity", "podAntiAffinity")):
        field = f"spec.affinity.{name}"
        m = r.mapping(affinity.get(name), field) or {}
        required = [
            pod_term(r, t, f"{field}.{REQUIRED}[{i}]")
            for i, t in enumerate(r.items(m.get(REQUIRED), f"{field}.{REQUIRED}"))
        ]
        found[f"required_{kind}"] = tuple(t for t in required if t is not None)
        preferred = []
        for i, raw in enumerate(r.items(m.get(PREFERRED), f"{field}.{PREFERRED}")):
            where = f"{field}.{PREFERRED}[{i}]"
            w = r.mapping(raw, where) or {}
            weight = r.integer(w.get("weight"), f"{where}.weight", 1, MAX_WEIGHT)
            term = pod_term(r, w.get("podAffinityTerm"), f"{where}.podAffinityTerm")
            if weight is not None and term is not None:
                preferred.append(WeightedPodAffinityTerm(weight, term))
        found[f"preferred_{kind}"] = tuple(preferred)
    return PodAffinityTerms(**found)
