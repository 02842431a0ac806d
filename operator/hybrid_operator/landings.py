"""Bindings whose answer was lost, told once the watch shows that they landed.

A Binding that got no answer may have been committed all the same: the pod is bound, but
this replica never heard so, and a replica that took over meanwhile sees a pod bound by
someone else. Nobody would post the pod's ``Scheduled`` Event. So the decision record each
such Binding carried is kept, and when the watch or a listing shows the pod bound to that
node with that very record, the Binding was this replica's and its Event is due, whether
this replica still leads or not. A pod seen bound with another record (another replica,
or a later decision, bound it) or seen gone ends the wait without a word.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from hybrid_operator.cache import Placement
from hybrid_policy.framework.cycle import Decision

log = logging.getLogger("hybrid_scheduler")


@dataclass(frozen=True)
class Unanswered:
    """A Binding that got no answer, and the decision record it carried."""

    decision: Decision
    record: str


class Landings:
    """The Bindings of this replica whose outcome is unknown, by pod UID, and the decisions
    whose Binding was seen to land, to be told."""

    def __init__(self) -> None:
        self.waiting: dict[str, Unanswered] = {}
        self.due: list[Decision] = []

    def unanswered(self, decision: Decision, record: str | None, bound: Placement | None) -> None:
        """``decision``'s Binding, carrying ``record``, got no answer; ``bound`` is the pod's
        placement when the watch shows it bound already (it may come before the answer)."""
        if record is None:
            return
        uid = decision.pod.uid
        self.waiting[uid] = Unanswered(decision, record)
        if bound is not None:
            self.seen(uid, bound.node, bound.record)

    def answered(self, uid: str) -> None:
        """A Binding of the pod was answered with success: its Event is told with it."""
        self.waiting.pop(uid, None)

    def seen(self, uid: str, node: str | None, record: str | None) -> None:
        """The pod was seen settled: bound to ``node`` with ``record``, or gone or ended
        unbound (``node`` None)."""
        entry = self.waiting.pop(uid, None)
        if entry is None or node != entry.decision.node or record != entry.record:
            return
        log.info(
            "the binding of %s to %s landed, though its answer was lost",
            entry.decision.pod.key, node,
        )  # fmt: skip
        self.due.append(entry.decision)

    def take(self) -> list[Decision]:
        """The decisions whose Binding landed, each once."""
        due, self.due = self.due, []
        return due
