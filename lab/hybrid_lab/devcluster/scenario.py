"""Which simulated nodes the dev cluster gets: ``--nodes N``, ``seed-paper`` or a file.

Scenarios are read by the policy core's loader, and nodes come from the same
``build_nodes`` the simulator uses, so a scenario gives the dev cluster exactly the nodes
(names, capacities, performance ratings) that the simulator replays on.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from hybrid_lab.devcluster.errors import ScenarioError
from hybrid_policy.resources import CPU, GIB, GPU, MEMORY
from hybrid_policy.scenario.fields import ScenarioError as PolicyScenarioError
from hybrid_policy.scenario.jobs import build_nodes
from hybrid_policy.scenario.loader import load_scenario

SEED_PAPER = "seed-paper"
DEFAULT_NODES = 4


@dataclass(frozen=True)
class NodeSpec:
    """One kwok node to create."""

    name: str
    """Node name, as the simulator names it (``node-003``)."""
    gpus: int
    """``nvidia.com/gpu`` capacity."""
    cpu: int
    """CPU capacity (cores)."""
    memory_gib: int
    """Memory capacity (GiB)."""
    performance: int
    """Performance rating, written to the ``hybrid-scheduler.io/performance`` label."""


def resolve(scenario: str | None, nodes: int | None) -> list[NodeSpec]:
    """Node list for the ``up`` flags: a scenario name or file, else ``--nodes`` nodes
    shaped like the seed-paper ones (default 4)."""
    if scenario is not None and nodes is not None:
        raise ScenarioError("give either --nodes or --scenario, not both")
    if nodes is not None and nodes < 1:
        raise ScenarioError(f"--nodes must be at least 1, got {nodes}")
    try:
        loaded = load_scenario(scenario or SEED_PAPER)
    except PolicyScenarioError as err:
        raise ScenarioError(str(err)) from err
    if scenario is None:
        group = dataclasses.replace(loaded.nodes[0], count=nodes or DEFAULT_NODES)
        loaded = dataclasses.replace(loaded, nodes=(group,))
    return [
        NodeSpec(
            name=node.name,
            gpus=int(node.allocatable.get(GPU, 0)),
            cpu=int(node.allocatable[CPU] // 1000),
            memory_gib=int(node.allocatable[MEMORY] // GIB),
            performance=round(node.performance),
        )
        for node in build_nodes(loaded)
    ]
