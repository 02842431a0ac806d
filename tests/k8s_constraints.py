"""Raw pod fields with placement constraints, for conversion and operator tests."""

from __future__ import annotations

from typing import Any

from hybrid_policy.constraints import ZONE_KEY

REQ = "requiredDuringSchedulingIgnoredDuringExecution"
PREF = "preferredDuringSchedulingIgnoredDuringExecution"
WEB = {"matchLabels": {"app": "web"}}


def raw_pod(**spec: Any) -> dict[str, Any]:
    """A pod labelled ``app=web, rev=7`` in ``team-a`` with ``spec`` fields."""
    return {
        "metadata": {
            "name": "web-1",
            "namespace": "team-a",
            "uid": "u-1",
            "labels": {"app": "web", "rev": "7"},
        },
        "spec": {"containers": [{"name": "c"}], **spec},
    }


def node_terms(*terms: dict[str, Any]) -> dict[str, Any]:
    """``spec`` fields with required node affinity ``terms``."""
    return {"affinity": {"nodeAffinity": {REQ: {"nodeSelectorTerms": list(terms)}}}}


def expression(key: str, operator: str, *values: str) -> dict[str, Any]:
    """A node selector term with one ``matchExpressions`` entry."""
    return {"matchExpressions": [{"key": key, "operator": operator, "values": list(values)}]}


def pod_terms(kind: str, *terms: dict[str, Any]) -> dict[str, Any]:
    """``spec`` fields with required ``podAffinity`` or ``podAntiAffinity`` terms."""
    return {"affinity": {kind: {REQ: list(terms)}}}


def spread(**fields: Any) -> dict[str, Any]:
    """``spec`` fields with one spread constraint (zone, skew 1, DoNotSchedule by default)."""
    constraint = {"maxSkew": 1, "topologyKey": ZONE_KEY, "whenUnsatisfiable": "DoNotSchedule"}
    return {"topologySpreadConstraints": [{**constraint, **fields}]}


def port(**fields: Any) -> dict[str, Any]:
    """``spec`` fields with one container port."""
    return {"containers": [{"name": "c", "ports": [fields]}]}
