"""Pods placed after the metrics were measured, counted from their requests.

Utilisation metrics lag: a pod bound a few seconds ago is not in the sample Prometheus
returns yet. Trimaran's rule, which the operator and the simulator both follow through
:class:`RecentPlacements`: a pod placed on a node after that node's sample was measured
counts by its requests on top of the sample. Placements are kept by node row, so one
node's correction reads only that node's recent pods, however many nodes there are.
"""

from __future__ import annotations

from hybrid_policy.framework.snapshot import FloatArray


class RecentPlacements:
    """Requests of recently placed pods, by node row, in the order they were added."""

    def __init__(self) -> None:
        self._by_node: dict[int, list[tuple[float, FloatArray]]] = {}

    def __len__(self) -> int:
        return sum(len(placed) for placed in self._by_node.values())

    def add(self, node: int, placed_at_s: float, request: FloatArray) -> None:
        """A pod with requests ``request`` was placed on node row ``node`` at ``placed_at_s``."""
        self._by_node.setdefault(node, []).append((placed_at_s, request))

    def requests_after(self, node: int, measured_at_s: float) -> list[FloatArray]:
        """Requests of the pods placed on ``node`` after a sample measured at
        ``measured_at_s``: the ones that sample cannot show, in the order they were added."""
        placed = self._by_node.get(node, ())
        return [request for at_s, request in placed if at_s > measured_at_s]

    def forget_until(self, at_s: float) -> None:
        """Drop pods placed at or before ``at_s``: every later sample shows them."""
        for node, placed in list(self._by_node.items()):
            kept = [entry for entry in placed if entry[0] > at_s]
            if kept:
                self._by_node[node] = kept
            else:
                del self._by_node[node]
