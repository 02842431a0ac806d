"""A node held for a pending pod that fits nowhere yet: what a driver shows and acts on.

When the pod whose turn it is cannot start, a reserving arbitrator holds the node where
it is predicted to start earliest; other pods may use that node only where they do not
delay that start. The :class:`Nomination` rides on the pod's (unplaced) Decision so that
the operator can set ``status.nominatedNodeName`` and write an Event, and the simulator
can count it.
"""

from __future__ import annotations

from dataclasses import dataclass

from hybrid_policy.prediction.model import PredictionSource


@dataclass(frozen=True, slots=True)
class Nomination:
    """The node reserved for one pending pod, and when the pod is predicted to start."""

    node: str
    node_row: int
    #: Predicted start on the driver's clock, in seconds.
    predicted_start_s: float
    #: Place among the reservations of the pass: 0 starts next.
    queue_position: int
    #: Where the predicted end of the pods now on the node came from (the least reliable
    #: source among them; ``None`` when the node is free of running pods).
    source: PredictionSource | None

    def describe(self, now_s: float) -> str:
        """One line for an Event: ``node-003 reserved, predicted start in 240 s (progress),
        position 0``."""
        wait = max(self.predicted_start_s - now_s, 0.0)
        source = self.source.value if self.source is not None else "free now"
        return (
            f"{self.node} reserved, predicted start in {wait:.0f} s ({source}), "
            f"position {self.queue_position}"
        )
