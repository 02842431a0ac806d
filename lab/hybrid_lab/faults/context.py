"""What every fault works with: the rig, the plan, its notes and its cleanups.

A fault is a function that blocks for as long as the fault lasts and notes what it did;
an optional ``prepare`` runs before the workload starts (an extra node to delete later,
pods that can never fit). Whatever a fault leaves behind (a node, a slowed proxy, a bad
Prometheus) is undone by the callbacks it adds to :attr:`FaultContext.cleanups`, which
run once the fault's recovery has been measured.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from hybrid_lab.devcluster import nodes
from hybrid_lab.devcluster.scenario import NodeSpec
from hybrid_lab.devcluster.workload import wait_for
from hybrid_lab.faults.plan import FaultPlan
from hybrid_lab.faults.rig import FaultRig

#: The shape of the nodes faults add: like the dev cluster's own.
EXTRA_NODE_GPUS = 8


@dataclass
class FaultContext:
    """What a fault works with, and what it reports."""

    rig: FaultRig
    plan: FaultPlan
    fault: str
    notes: list[str] = field(default_factory=list)
    cleanups: list[Callable[[], object]] = field(default_factory=list)
    #: UIDs of pods the fault deleted on purpose.
    deleted: set[str] = field(default_factory=set)
    #: What a fault found broken beyond the common invariants, one phrase each.
    violations: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        """Add a line to the fault's notes."""
        self.notes.append(text)

    @property
    def extra_node(self) -> str:
        """The name of the node a fault adds (and deletes)."""
        return f"{self.fault}-node"

    def add_node(self, name: str) -> None:
        """A kwok node like the others, Ready, and deleted at cleanup if still there."""
        spec = NodeSpec(name, gpus=EXTRA_NODE_GPUS, cpu=64, memory_gib=512, performance=90)
        api = self.rig.admin
        api.create("/api/v1/nodes", nodes.node_manifest(spec), exist_ok=True)
        self.cleanups.append(lambda: api.delete(f"/api/v1/nodes/{name}"))
        wait_for(
            f"node {name} to be Ready", lambda: name in nodes.ready_node_names(api) or None, 30
        )


FaultStep = Callable[[FaultContext], None]


@dataclass(frozen=True)
class Fault:
    """A fault by name."""

    name: str
    inject: FaultStep
    prepare: FaultStep | None = None
    burst: bool = False
    """Its workload is the plan's burst, created all at once, instead of the flow."""

    @property
    def summary(self) -> str:
        """What the fault does, in one line (the first paragraph of its docstring)."""
        return " ".join((self.inject.__doc__ or self.name).strip().split("\n\n")[0].split())
