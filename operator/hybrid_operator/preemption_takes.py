"""What the take-back guard (``guard=takeback``) reads in the operator, kept in memory
(:mod:`hybrid_operator.preemption`): which bound preemptors took from which teams, and
which victims' owners wait for a pod of theirs to be bound again.

A preemptor's take is remembered when the pass that binds it is decided (from its hold's
victims) and forgotten when the pod is deleted. A victim's owner (its controller's UID,
else its own) is owed from the plan on, by the preemptor's team, until a pod of that owner
other than the victims holds a node again; an owner with no pod in the cache for
:data:`FORGET_OWNER_S` is forgotten (a Job deleted meanwhile never comes back). Within a
team nothing is remembered. The memory does not survive a restart or a change of leader:
a new leader starts with no take remembered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field

from hybrid_policy.preemption.model import RunningPod

#: Seconds an owed owner may have no pod in the cache before it is forgotten.
FORGET_OWNER_S = 600.0


@dataclass
class _Owed:
    """A victim owner waiting to run again: its team, who took from it, and its pods
    that held a node when it was taken from (the victims among them)."""

    team: str
    takers: set[str]
    held: set[str]
    absent_since_s: float | None = None


@dataclass
class TakeMemory:
    """Takes remembered between passes (module docstring)."""

    #: Per bound preemptor's UID: the other teams its plan took from.
    took: dict[str, frozenset[str]] = field(default_factory=dict)
    #: Per victim owner: who took from it, while it waits.
    waiting: dict[str, _Owed] = field(default_factory=dict)

    def planned(
        self, team: str, victims: Iterable[tuple[RunningPod, str]], held: Mapping[str, set[str]]
    ) -> None:
        """A plan of ``team`` takes ``victims`` (each with its owner; ``held``: each
        owner's pods that hold a node now)."""
        for victim, owner in victims:
            if victim.namespace == team:
                continue
            owed = self.waiting.setdefault(owner, _Owed(victim.namespace, set(), set()))
            owed.takers.add(team)
            owed.held |= held.get(owner, set()) | {victim.uid}

    def bound(self, uids: Iterable[str], victims: Iterable[RunningPod]) -> None:
        """The preemptors ``uids`` are bound to the room of ``victims``."""
        teams = frozenset(v.namespace for v in victims)
        for uid in uids:
            self.took[uid] = teams

    def runs(self, uid: str, owner: str) -> None:
        """Pod ``uid`` of ``owner`` holds a node: the owner no longer waits, unless the
        pod held one already when the owner was taken from (a victim still terminating,
        or a pod of it that was not taken)."""
        owed = self.waiting.get(owner)
        if owed is not None and uid not in owed.held:
            del self.waiting[owner]

    def gone(self, uid: str) -> None:
        """Pod ``uid`` was deleted: what it took is forgotten."""
        self.took.pop(uid, None)

    def took_from(self, uid: str) -> frozenset[str]:
        """The teams the plan that placed the bound pod ``uid`` took from."""
        return self.took.get(uid, frozenset())

    def owed(self, present: Set[str], now_s: float) -> Mapping[str, frozenset[str]]:
        """For each team, the teams that took a job of it that still waits (``present``:
        the owners with a pod in the cache now)."""
        out: dict[str, set[str]] = {}
        for owner, owed in list(self.waiting.items()):
            if owner in present:
                owed.absent_since_s = None
            elif owed.absent_since_s is None:
                owed.absent_since_s = now_s
            elif now_s - owed.absent_since_s > FORGET_OWNER_S:
                del self.waiting[owner]
                continue
            out.setdefault(owed.team, set()).update(owed.takers)
        return {team: frozenset(takers) for team, takers in out.items()}
