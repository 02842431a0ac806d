"""Builders for placement constraints in tests: selectors, affinity terms, labelled nodes."""

from __future__ import annotations

from builders import make_node
from hybrid_policy.constraints import (
    HOSTNAME_KEY,
    ZONE_KEY,
    LabelSelector,
    Operator,
    PodAffinityTerm,
    PodSelector,
    Requirement,
    SpreadConstraint,
    Unsatisfiable,
)
from hybrid_policy.domain import NodeInfo


def req(key: str, op: str, *values: str) -> Requirement:
    """``key op values``."""
    return Requirement(key, Operator(op), values)


def app(name: str) -> LabelSelector:
    """Selects pods labelled ``app=name``."""
    return LabelSelector((req("app", "In", name),))


def term(
    selector: LabelSelector | None,
    key: str = HOSTNAME_KEY,
    namespaces: tuple[str, ...] = ("team-a",),
) -> PodAffinityTerm:
    """A pod affinity term over ``namespaces`` (None: every namespace)."""
    return PodAffinityTerm(PodSelector(selector, frozenset(namespaces)), key)


def spread(
    selector: LabelSelector | None,
    key: str = ZONE_KEY,
    max_skew: int = 1,
    hard: bool = True,
    min_domains: int = 1,
) -> SpreadConstraint:
    """A topology spread constraint."""
    when = Unsatisfiable.DO_NOT_SCHEDULE if hard else Unsatisfiable.SCHEDULE_ANYWAY
    return SpreadConstraint(max_skew, key, when, selector, min_domains)


def zoned_nodes(zones: str, **labels: str) -> list[NodeInfo]:
    """One node per letter of ``zones`` (``"aab"``: n0, n1 in zone a, n2 in zone b)."""
    return [
        make_node(f"n{i}", labels={HOSTNAME_KEY: f"n{i}", ZONE_KEY: zone, **labels})
        for i, zone in enumerate(zones)
    ]
