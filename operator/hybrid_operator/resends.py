"""Bindings whose outcome is unknown, sent again as they were.

A Binding that got no answer (the API server could not be reached, or the client timed
out) may have been committed all the same. Its pod keeps the room it was assumed to hold,
no pass decides it again, and after the queue's back-off the same Binding (same node,
same annotations) is sent again: a pass takes it first, as a
:class:`~hybrid_policy.framework.cycle.Decision` for the same node with a ticket like any
other. Sending it twice is safe: if the first one landed, the second gets 409.

The resend ends when its pod is settled: bound (the watch or a listing shows it, or the
resend is answered), gone, or refused for good (the pod is decided again). When its node
goes or leadership is lost it is called off: the assumption is forgotten and the pod is
decided again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from hybrid_operator.cache import ClusterCache
from hybrid_policy.framework.cycle import Decision
from hybrid_policy.framework.queue import SchedulingQueue


@dataclass(frozen=True)
class Resend:
    """A Binding to send again: the placement decided, and the annotations it carried."""

    decision: Decision
    annotations: Mapping[str, str]

    @property
    def node(self) -> str:
        """The node the Binding names."""
        return str(self.decision.node)


class Resends:
    """The Bindings to send again, by pod UID; their pods wait in the queue meanwhile."""

    def __init__(
        self, cache: ClusterCache, queue: SchedulingQueue, clock: Callable[[], float]
    ) -> None:
        self.cache = cache
        self.queue = queue
        self.clock = clock
        self.book: dict[str, Resend] = {}

    def __contains__(self, uid: object) -> bool:
        return uid in self.book

    def keep(self, decision: Decision, annotations: Mapping[str, str]) -> None:
        """The popped pod's Binding got no answer: keep its assumption, send the same
        Binding again after the back-off."""
        uid = decision.pod.uid
        self.book[uid] = Resend(decision, dict(annotations))
        self.queue.wait_to_resend(uid, self.clock())

    def wait(self, uid: str) -> None:
        """The resend of ``uid``, taken by a pass, was not sent after all: again after a
        back-off."""
        self.queue.wait_to_resend(uid, self.clock())

    def of(self, decision: Decision) -> Resend | None:
        """The resend ``decision`` is, if it is one."""
        resend = self.book.get(decision.pod.uid)
        return resend if resend is not None and resend.decision is decision else None

    def due(self) -> list[Decision]:
        """The resends whose back-off has ended, each pod in flight in the queue."""
        out = []
        for pod in self.queue.take_resends(self.clock()):
            resend = self.book.get(pod.uid)
            if resend is None or self.cache.assumed_on(pod.uid) != resend.node:
                # Its room is no longer held: nothing to send again, decide it anew.
                self.book.pop(pod.uid, None)
                self.cache.forget(pod.uid)
                self.queue.requeue(pod.uid)
                continue
            out.append(resend.decision)
        return out

    def drop(self, uid: str) -> Resend | None:
        """Forget the resend of ``uid`` (its pod was settled); returns it if there was one."""
        return self.book.pop(uid, None)

    def call_off(self, uid: str) -> bool:
        """Send ``uid``'s Binding no more; a pod waiting for it forgets its room and is
        decided again (one on its way is settled by its ticket). True if there was one."""
        if self.book.pop(uid, None) is None:
            return False
        if self.queue.decide_again(uid):
            self.cache.forget(uid)
        return True

    def to(self, node: str) -> list[str]:
        """The pods whose Binding to ``node`` is to be sent again."""
        return [uid for uid, r in self.book.items() if r.node == node]
