"""What the take-back guard (``guard=takeback``) reads in the operator
(:mod:`hybrid_operator.preemption`): which bound preemptors took from which teams, and
which victims' owners wait for a pod of theirs to be bound again. Both survive a restart
and a change of leader.

A preemptor's take is remembered when the pass that binds it is decided (from its hold's
victims), written on the pod by its Binding (annotation ``hybrid-scheduler.io/took-from``,
the teams, read back by :mod:`hybrid_operator.k8s.preempt`), and forgotten with the pod. A
victim's owner (its controller's UID, else its own) is owed from the plan on, by the
preemptor's team, until a pod of that owner other than those that held a node when it
was taken from holds a node again; an owner with no pod in the cache for
:data:`FORGET_OWNER_S` is forgotten (a Job deleted meanwhile never comes back). The owed
owners are kept with the preemption counts, in the ledger's ConfigMap (key
``owed.json``, :mod:`hybrid_operator.preemption_ledger`), and merged into memory when a
term reads it. Within a team nothing is remembered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field

from hybrid_policy.preemption.model import RunningPod

#: Seconds an owed owner may have no pod in the cache before it is forgotten.
FORGET_OWNER_S = 600.0


@dataclass
class Owed:
    """A victim owner waiting to run again: its team, who took from it, and its pods
    that held a node when it was taken from (the victims among them)."""

    team: str
    takers: set[str]
    held: set[str]
    absent_since_s: float | None = None

    def merge(self, other: Owed) -> None:
        """Add another reading of the same owner (the union of both)."""
        self.takers |= other.takers
        self.held |= other.held


@dataclass
class TakeMemory:
    """Takes remembered between passes (module docstring)."""

    #: Per bound preemptor's UID: the other teams its plan took from.
    took: dict[str, frozenset[str]] = field(default_factory=dict)
    #: Per victim owner: who took from it, while it waits (the ledger's, when shared).
    waiting: dict[str, Owed] = field(default_factory=dict)

    def planned(
        self, team: str, victims: Iterable[tuple[RunningPod, str]], held: Mapping[str, set[str]]
    ) -> None:
        """A plan of ``team`` takes ``victims`` (each with its owner; ``held``: each
        owner's pods that hold a node now)."""
        for victim, owner in victims:
            if victim.namespace == team:
                continue
            owed = self.waiting.setdefault(owner, Owed(victim.namespace, set(), set()))
            owed.takers.add(team)
            owed.held |= held.get(owner, set()) | {victim.uid}

    def bound(self, uids: Iterable[str], victims: Iterable[RunningPod]) -> frozenset[str]:
        """The preemptors ``uids`` are bound to the room of ``victims``; returns the teams
        they took from (what their Binding writes on them)."""
        teams = frozenset(v.namespace for v in victims)
        for uid in uids:
            self.took[uid] = teams
        return teams

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

    def owed(
        self, present: Set[str], holding: Mapping[str, Set[str]], now_s: float
    ) -> Mapping[str, frozenset[str]]:
        """For each team, the teams that took a job of it that still waits (``present``:
        the owners with a pod in the cache now; ``holding``: per owner, its pods that hold
        a node now). An owner read from the ledger that runs again since is let go here."""
        out: dict[str, set[str]] = {}
        for owner, owed in list(self.waiting.items()):
            if holding.get(owner, set()) - owed.held:
                del self.waiting[owner]
                continue
            if owner in present:
                owed.absent_since_s = None
            elif owed.absent_since_s is None:
                owed.absent_since_s = now_s
            elif now_s - owed.absent_since_s > FORGET_OWNER_S:
                del self.waiting[owner]
                continue
            out.setdefault(owed.team, set()).update(owed.takers)
        return {team: frozenset(takers) for team, takers in out.items()}
