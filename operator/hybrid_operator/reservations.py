"""Reservations as people see them: the node held for a pending pod, and why it waits.

A reserving policy leaves a pod that fits nowhere pending with a
:class:`~hybrid_policy.framework.nomination.Nomination`. After each pass the scheduling
cycle turns every one into a :class:`ReservationNotice`: the node, the predicted start
and where that prediction came from, the pod's place in its namespace's queue, and what
the namespace holds of the cluster's GPUs against what its weight entitles it to. The
reporter writes it on the pod (``status.nominatedNodeName``, the ``PodScheduled``
condition and a ``Reserved`` Event) once per change of node, and ``explain`` reads it back
(:func:`parse_notice`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.cycle import Decision
from hybrid_policy.framework.queue import SortKey
from hybrid_policy.framework.snapshot import ClusterSnapshot
from hybrid_policy.policies import Policy
from hybrid_policy.prediction.model import PredictionSource
from hybrid_policy.reservation import ReservingArbitrator
from hybrid_policy.resources import GPU

#: How a message names each prediction source (None: the node is free now).
SOURCE_TEXT = {
    PredictionSource.PROGRESS: "progress reports",
    PredictionSource.USER_ESTIMATE: "the user's estimate",
    PredictionSource.HISTORY: "history",
    PredictionSource.PRIOR: "the prior",
    None: "the node being free",
}
_MESSAGE = re.compile(
    r"waiting for (?P<node>\S+): predicted start in [^(]+\((?P<at>[0-9:]+ UTC)\) "
    r"from (?P<source>[^(]+?) \(reserved; (?P<rank>[0-9]+)\w\w in (?P<ns>\S+)'s queue; "
)


def held_arbitrator(policy: Policy) -> ReservingArbitrator | None:
    """The policy's reserving arbitrator, if it reserves nodes."""
    arbitrator = policy.profile.arbitrator
    return arbitrator if isinstance(arbitrator, ReservingArbitrator) else None


def ordinal(n: int) -> str:
    """``1st``, ``2nd``, ``3rd``, ``4th``, ``11th``, ``22nd``."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def span(seconds: float) -> str:
    """A wait as people say it: ``40 s``, ``6 min``, ``2.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass(frozen=True)
class ReservationNotice:
    """What a pod holding a reservation is told."""

    node: str
    now_s: float
    predicted_start_s: float
    source: PredictionSource | None
    namespace: str
    #: Place in the namespace's queue, from 1.
    rank: int
    #: The namespace's part of the cluster's GPUs, and what its weight entitles it to.
    holds: float
    entitled: float

    def message(self) -> str:
        """``waiting for node-3: predicted start in 6 min (10:46:05 UTC) from history
        (reserved; 2nd in team-a's queue; team-a holds 0.18 of an entitled 0.20)``."""
        wait = max(self.predicted_start_s - self.now_s, 0.0)
        at = datetime.fromtimestamp(self.predicted_start_s, UTC).strftime("%H:%M:%S UTC")
        ns = self.namespace
        return (
            f"waiting for {self.node}: predicted start in {span(wait)} ({at}) "
            f"from {SOURCE_TEXT[self.source]} (reserved; {ordinal(self.rank)} in {ns}'s "
            f"queue; {ns} holds {self.holds:.2f} of an entitled {self.entitled:.2f})"
        )


@dataclass(frozen=True)
class ParsedNotice:
    """A notice read back from a pod's ``PodScheduled`` condition."""

    node: str
    predicted_start: str
    source: str
    rank: int
    namespace: str


def parse_notice(message: str) -> ParsedNotice | None:
    """The notice a :meth:`ReservationNotice.message` wrote; None for any other text."""
    found = _MESSAGE.search(message)
    if found is None:
        return None
    return ParsedNotice(
        found["node"], found["at"], found["source"], int(found["rank"]), found["ns"]
    )


def notices(
    decisions: Iterable[Decision],
    snapshot: ClusterSnapshot,
    waiting: Sequence[PendingPod],
    sort_key: SortKey,
) -> dict[str, ReservationNotice]:
    """A notice for each decision of a pass that holds a node, by pod UID.

    ``waiting`` is every pod still queued after the pass; ``snapshot`` is the pass's, with
    its placements counted.
    """
    nominated = [d for d in decisions if d.nomination is not None]
    if not nominated:
        return {}
    gpu = snapshot.index[GPU]
    total = float(snapshot.total_allocatable[gpu])
    held = {ns: float(a[gpu]) for ns, a in snapshot.namespace_allocated.items() if a[gpu] > 0}
    active = set(held) | {p.namespace for p in waiting}
    weights = sum(snapshot.weight_of(ns) for ns in active) or 1.0
    out: dict[str, ReservationNotice] = {}
    for d in nominated:
        assert d.nomination is not None
        pod, ns = d.pod, d.pod.namespace
        key = sort_key(pod)
        rank = 1 + sum(1 for p in waiting if p.namespace == ns and sort_key(p) < key)
        out[pod.uid] = ReservationNotice(
            node=d.nomination.node,
            now_s=snapshot.now_s,
            predicted_start_s=d.nomination.predicted_start_s,
            source=d.nomination.source,
            namespace=ns,
            rank=rank,
            holds=held.get(ns, 0.0) / total if total > 0 else 0.0,
            entitled=snapshot.weight_of(ns) / weights,
        )
    return out
