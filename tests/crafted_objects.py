"""Crafted Kubernetes objects for property tests: valid ones with subtrees replaced by any JSON.

Shared by the conversion's properties and the scheduling loop's, so that both feed the
same arbitrary objects.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from typing import Any

from hypothesis import strategies as st

from builders import k8s_node, k8s_pod
from hybrid_operator.k8s.convert import (
    PERFORMANCE_LABEL,
    RUNTIME_ANNOTATION,
    TASK_TYPE_LABEL,
    WEIGHT_ANNOTATION,
)

Json = Any
Path = tuple[str | int, ...]

#: Strings that mean something to the conversion, so that generated objects reach deep.
MEANINGFUL = [
    "1e999999",
    "1e400",
    "1e-999999",
    "4Ei",
    "5Ei",
    "-1",
    "0",
    "500m",
    "1.5Gi",
    "NaN",
    "inf",
    "",
    "NoSchedule",
    "NoExecute",
    "Exists",
    "Equal",
    "Ready",
    "True",
    "90s",
    "1e308",
    "2026-11-24T10:00:00Z",
    "0001-01-01T00:00:00",
    "cpu",
    "nvidia.com/gpu",
    "pods",
]
leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([2**62, 2**62 + 1, 2**63, 10**400, -(10**400)])
    | st.floats()
    | st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0, 5e-324])
    | st.text(max_size=12)
    | st.sampled_from(MEANINGFUL)
)
json_values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=6) | st.sampled_from(MEANINGFUL), inner, max_size=3)
    ),
    max_leaves=10,
)


def valid_pod(name: str = "crafted") -> dict[str, Json]:
    """Every field the conversion reads, valid."""
    pod = k8s_pod(name, gpus=1)
    pod["metadata"].update(
        creationTimestamp="2026-11-24T10:00:00Z",
        labels={TASK_TYPE_LABEL: "nlp"},
        annotations={RUNTIME_ANNOTATION: "1h"},
    )
    container = pod["spec"]["containers"][0]
    container["resources"]["limits"] = {"memory": "2Gi"}
    pod["spec"].update(
        initContainers=[{"resources": {"requests": {"cpu": "2"}}}],
        overhead={"memory": "64Mi"},
        priority=10,
        nodeSelector={"pool": "a100"},
        tolerations=[{"key": "gpu", "operator": "Equal", "value": "a100", "effect": "NoSchedule"}],
    )
    return pod


def valid_node(name: str = "crafted") -> dict[str, Json]:
    """Every field the conversion reads, valid."""
    node = k8s_node(name)
    node["metadata"]["labels"] = {PERFORMANCE_LABEL: "120", "pool": "a100"}
    node["spec"] = {"unschedulable": False, "taints": [{"key": "gpu", "effect": "NoExecute"}]}
    node["status"]["capacity"] = dict(node["status"]["allocatable"])
    return node


def valid_namespace() -> dict[str, Json]:
    """Every field the conversion reads, valid."""
    return {"metadata": {"name": "team-a", "annotations": {WEIGHT_ANNOTATION: "2"}}}


def paths(value: Json, prefix: Path = ()) -> Iterator[Path]:
    """Every subtree of ``value``, the whole included."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from paths(item, (*prefix, i))


def replaced(value: Json, path: Path, new: Json) -> Json:
    """``value`` with the subtree at ``path`` replaced by ``new`` (if it is still there)."""
    if not path:
        return new
    out = copy.deepcopy(value)
    parent: Any = out
    for step in path[:-1]:
        try:
            parent = parent[step]
        except (KeyError, IndexError, TypeError):
            return out
    last, target = path[-1], parent
    there = isinstance(last, int) and isinstance(parent, list) and last < len(parent)
    if there or isinstance(parent, dict):
        target[last] = new
    return out


def crafted(valid: Callable[[], dict[str, Json]]) -> st.SearchStrategy[Json]:
    """A valid object with one to three of its subtrees replaced by arbitrary JSON."""
    template = valid()
    edits = st.lists(
        st.tuples(st.sampled_from(list(paths(template))), json_values), min_size=1, max_size=3
    )

    def apply(changes: list[tuple[Path, Json]]) -> Json:
        out: Json = template
        for path, new in changes:
            out = replaced(out, path, new)
        return out

    return edits.map(apply)


crafted_pods = crafted(valid_pod)
crafted_nodes = crafted(valid_node)
crafted_namespaces = crafted(valid_namespace)
