"""Which simulated nodes the dev cluster gets: ``--nodes N``, ``seed-paper`` or a file.

Only the ``nodes:`` list of a scenario file is read here (the policy core owns the full
scenario format). Each node group expands into :class:`NodeSpec` values whose performance
rating is drawn uniformly from the group's range with the scenario seed, so the same
scenario always gives the same cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from hybrid_operator.devcluster.errors import ScenarioError

SEED_PAPER = "seed-paper"
DEFAULT_SEED = 7


@dataclass(frozen=True)
class NodeGroup:
    """A number of identical nodes; performance is a range, drawn per node."""

    count: int
    """How many nodes (>= 1)."""
    gpus: int
    """``nvidia.com/gpu`` capacity per node (>= 0)."""
    cpu: int
    """CPU capacity per node (cores, >= 1)."""
    memory_gib: int
    """Memory capacity per node (GiB, >= 1)."""
    performance: tuple[float, float]
    """Performance rating range [lo, hi], drawn uniformly per node."""


@dataclass(frozen=True)
class NodeSpec:
    """One kwok node to create."""

    name: str
    """Node name, e.g. ``kwok-node-003``."""
    gpus: int
    """``nvidia.com/gpu`` capacity."""
    cpu: int
    """CPU capacity (cores)."""
    memory_gib: int
    """Memory capacity (GiB)."""
    performance: int
    """Performance rating, written to the ``hybrid-scheduler.io/performance`` label."""


SEED_PAPER_GROUP = NodeGroup(count=10, gpus=8, cpu=64, memory_gib=512, performance=(50, 100))


def uniform_groups(count: int) -> list[NodeGroup]:
    """``--nodes N``: N nodes shaped like the seed-paper ones."""
    if count < 1:
        raise ScenarioError(f"--nodes must be at least 1, got {count}")
    base = SEED_PAPER_GROUP
    return [NodeGroup(count, base.gpus, base.cpu, base.memory_gib, base.performance)]


def expand(groups: list[NodeGroup], seed: int = DEFAULT_SEED) -> list[NodeSpec]:
    """Turn node groups into named nodes with seeded performance ratings."""
    rng = np.random.default_rng(seed)
    total = sum(group.count for group in groups)
    width = max(3, len(str(total - 1)))
    nodes: list[NodeSpec] = []
    for group in groups:
        lo, hi = group.performance
        for _ in range(group.count):
            rating = round(float(rng.uniform(lo, hi)))
            name = f"kwok-node-{len(nodes):0{width}d}"
            nodes.append(NodeSpec(name, group.gpus, group.cpu, group.memory_gib, rating))
    return nodes


def resolve(scenario: str | None, nodes: int | None) -> list[NodeSpec]:
    """Node list for the ``up`` flags: a scenario name or file, else ``--nodes`` (default 4)."""
    if scenario is None:
        return expand(uniform_groups(4 if nodes is None else nodes))
    if nodes is not None:
        raise ScenarioError("give either --nodes or --scenario, not both")
    if scenario == SEED_PAPER:
        return expand([SEED_PAPER_GROUP])
    groups, seed = read_node_groups(Path(scenario))
    return expand(groups, seed)


def read_node_groups(path: Path) -> tuple[list[NodeGroup], int]:
    """Read and validate the ``nodes:`` list (and optional ``seed:``) of a scenario file."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ScenarioError(f"{path}: cannot read scenario file: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise ScenarioError(f"{path}: not valid YAML: {err}".replace("\n", " ")) from err
    if not isinstance(document, Mapping):
        raise ScenarioError(f"{path}: expected a mapping with a 'nodes' list at the top")
    seed = document.get("seed", DEFAULT_SEED)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ScenarioError(f"{path}: field 'seed' must be an integer, got {seed!r}")
    entries = document.get("nodes")
    if not isinstance(entries, list) or not entries:
        raise ScenarioError(f"{path}: field 'nodes' must be a non-empty list, got {entries!r}")
    groups = [_node_group(path, index, entry) for index, entry in enumerate(entries)]
    return groups, seed


def _node_group(path: Path, index: int, entry: Any) -> NodeGroup:
    where = f"{path}: nodes[{index}]"
    if not isinstance(entry, Mapping):
        raise ScenarioError(f"{where}: expected a mapping, got {entry!r}")
    unknown = sorted(set(entry) - {"count", "gpus", "cpu", "memory_gib", "performance"})
    if unknown:
        raise ScenarioError(f"{where}: unknown field {unknown[0]!r}")
    count = _integer(where, entry, "count", minimum=1, default=None)
    gpus = _integer(where, entry, "gpus", minimum=0, default=0)
    cpu = _integer(where, entry, "cpu", minimum=1, default=None)
    memory_gib = _integer(where, entry, "memory_gib", minimum=1, default=None)
    performance = entry.get("performance", [100, 100])
    if (
        not isinstance(performance, list)
        or len(performance) != 2
        or not all(_is_number(value) for value in performance)
        or not 0 < performance[0] <= performance[1]
    ):
        raise ScenarioError(
            f"{where}.performance: expected [lo, hi] with 0 < lo <= hi, got {performance!r}"
        )
    return NodeGroup(count, gpus, cpu, memory_gib, (float(performance[0]), float(performance[1])))


def _integer(where: str, entry: Mapping[str, Any], name: str, minimum: int,
             default: int | None) -> int:
    value = entry.get(name, default)
    if value is None:
        raise ScenarioError(f"{where}: missing field {name!r}")
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ScenarioError(f"{where}.{name}: expected an integer >= {minimum}, got {value!r}")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
