"""One small interface per phase.

Plugins see every node at once: a Filter returns a boolean mask over the snapshot's node
rows, a Score returns one number per candidate row. Per-node reasons are produced only
when a pod fits nowhere, to build kube-scheduler's "0/10 nodes are available: ..." line.
Plugins that concern few pods (affinity, spread, host ports) are :class:`Conditional`:
the framework skips them for the others, so those pay nothing for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.snapshot import BoolArray, ClusterSnapshot, FloatArray, IntArray

if TYPE_CHECKING:
    from hybrid_policy.framework.cycle import BatchCycle


class QueueSortPlugin(Protocol):
    """Orders pending pods; smaller keys are scheduled first."""

    name: str

    def sort_key(self, pod: PendingPod) -> tuple[float | int | str, ...]:
        """The pod's position in the queue."""
        ...


class FilterPlugin(Protocol):
    """Removes nodes a pod cannot run on."""

    name: str
    #: True when the answer depends only on pod and node specs, not on load, so the
    #: framework may reuse it for every pod with the same constraints.
    static: bool
    #: True when failing this filter cannot be fixed by other pods leaving.
    unresolvable: bool

    def filter(self, pod: PendingPod, snapshot: ClusterSnapshot) -> BoolArray:
        """Mask over node rows: True where the pod may run."""
        ...

    def reasons(self, pod: PendingPod, snapshot: ClusterSnapshot, node: int) -> Sequence[str]:
        """Why node row ``node`` was filtered out, in kube-scheduler's words."""
        ...


class Conditional(Protocol):
    """A Filter or Score plugin with nothing to say about most pods (kube-scheduler's
    PreFilter or PreScore answering Skip): the framework runs it only where it applies.

    Such plugins concern pods with placement constraints, and any pod once a placed pod's
    affinity terms may select it; the framework skips them without asking for every
    other pod (its fast path)."""

    def applies(self, pod: PendingPod, snapshot: ClusterSnapshot) -> bool:
        """Whether the plugin has anything to check or score for ``pod``."""
        ...


class ScorePlugin(Protocol):
    """Rates feasible nodes for a pod: higher is better, in [0, 100] after normalising."""

    name: str

    def score(self, pod: PendingPod, snapshot: ClusterSnapshot, candidates: IntArray) -> FloatArray:
        """Raw scores for node rows ``candidates``."""
        ...

    def normalize(self, scores: FloatArray) -> FloatArray:
        """NormalizeScore: map raw scores into [0, 100]."""
        ...


@runtime_checkable
class AlikeScorer(Protocol):
    """A score plugin that rates several pods of one feasibility key at once (same
    requests and constraints, against the same snapshot) more cheaply than one by one,
    with exactly the scores :meth:`ScorePlugin.score` gives each."""

    def score_alike(
        self, pods: Sequence[PendingPod], snapshot: ClusterSnapshot, candidates: IntArray
    ) -> list[FloatArray]:
        """Raw scores of node rows ``candidates`` for each of ``pods``, in order."""
        ...


class Arbitrator(Protocol):
    """Decides, across a batch, which pending pod gets which node."""

    name: str

    def arbitrate(self, batch: Sequence[PendingPod], cycle: BatchCycle) -> None:
        """Place (``cycle.commit``) or leave (``cycle.reject``) every pod of ``batch``."""
        ...

    def use_wall_clock(self, enabled: bool) -> None:
        """Let decisions depend on wall time (a solver's time budget), or not.

        The simulator turns it off, so that two replays of one seed decide alike; turned
        back on, the arbitrator uses the budget it was configured with. Arbitrators
        without a time budget do nothing.
        """
        ...


class ReservePlugin(Protocol):
    """Reserve/Unreserve: hold resources for a placement until it is bound."""

    name: str

    def reserve(self, pod: PendingPod, snapshot: ClusterSnapshot, node: int) -> None:
        """Count ``pod`` on node row ``node``."""
        ...

    def unreserve(self, pod: PendingPod, snapshot: ClusterSnapshot) -> None:
        """Take the reservation back; harmless when it was never made."""
        ...


class Normalized:
    """Mixin for scorers whose raw scores already lie in [0, 100]."""

    def normalize(self, scores: FloatArray) -> FloatArray:
        """Return ``scores`` clipped to [0, 100]."""
        clipped: FloatArray = np.clip(scores, 0.0, 100.0)
        return clipped


class MinMaxNormalized:
    """Mixin: rescale raw scores linearly so that the best candidate gets 100."""

    def normalize(self, scores: FloatArray) -> FloatArray:
        """Map ``[min, max]`` onto ``[0, 100]``; all-equal scores become 100."""
        if scores.size == 0:
            return scores
        low, high = float(scores.min()), float(scores.max())
        if high - low < 1e-12:
            return np.full_like(scores, 100.0)
        scaled: FloatArray = (scores - low) * (100.0 / (high - low))
        return scaled
