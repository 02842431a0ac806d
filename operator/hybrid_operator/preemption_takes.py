"""What the take-back guard (``guard=takeback``) reads in the operator
(:mod:`hybrid_operator.preemption`): which bound preemptors took from which teams, and
which victims' owners wait for a pod of theirs to be bound again. Both survive a restart
and a change of leader.

A preemptor's take is remembered when the pass that binds it is decided (from its hold's
victims), written on the pod by its Binding (annotation :data:`TOOK_FROM_ANNOTATION`, the
teams, read back by :mod:`hybrid_operator.k8s.preempt`), and forgotten with the pod. A
victim's owner (its controller's UID, else its own) is owed from the plan on, by the
preemptor's team, until a pod of that owner other than those that held a node when it
was taken from holds a node again; an owner with no pod in the cache for
:data:`FORGET_OWNER_S` is forgotten (a Job deleted meanwhile never comes back). The owed
owners are kept with the preemption counts, in the ledger's ConfigMap (key
:data:`OWED_KEY`, :mod:`hybrid_operator.preemption_ledger`), and merged into memory when
a term reads it. Within a team nothing is remembered.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field

from hybrid_operator.k8s.preempt import TOOK_FROM_ANNOTATION
from hybrid_operator.k8s.problems import Problem
from hybrid_policy.preemption.model import RunningPod

__all__ = [
    "FORGET_OWNER_S",
    "OWED_KEY",
    "TOOK_FROM_ANNOTATION",
    "Owed",
    "TakeMemory",
    "encode_owed",
    "parse_owed",
]
#: Seconds an owed owner may have no pod in the cache before it is forgotten.
FORGET_OWNER_S = 600.0
#: The ledger ConfigMap's data key holding the owed owners.
OWED_KEY = "owed.json"
#: What is done with owed data that cannot be read.
LEFT_OUT = "leaving it out of the take-back guard's memory"


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


def _names(raw: object) -> set[str] | None:
    """A JSON list of non-empty strings as a set; None if it is not one."""
    if not isinstance(raw, list) or not all(isinstance(x, str) and x for x in raw):
        return None
    return set(raw)


def _owed(owner: str, value: object, problems: list[Problem]) -> Owed | None:
    where = f"data[{OWED_KEY}][{owner}]"
    if not owner or not isinstance(value, Mapping):
        what = "an empty owner UID" if not owner else 'not {"team", "takers", "held"}'
        problems.append(Problem(where, value, what, LEFT_OUT))
        return None
    team = value.get("team")
    if not isinstance(team, str) or not team:
        problems.append(Problem(f"{where}.team", team, "not a namespace name", LEFT_OUT))
        return None
    takers, held = _names(value.get("takers")), _names(value.get("held"))
    if takers is None:
        what = "not a list of namespace names"
        problems.append(Problem(f"{where}.takers", value.get("takers"), what, LEFT_OUT))
        return None
    if held is None:
        what = "not a list of pod UIDs"
        problems.append(Problem(f"{where}.held", value.get("held"), what, LEFT_OUT))
        return None
    return Owed(team, takers, held)


def parse_owed(data: Mapping[str, object]) -> tuple[dict[str, Owed], list[Problem]]:
    """The owed owners a ConfigMap's data holds, and what could not be read (left out)."""
    raw = data.get(OWED_KEY)
    if raw is None:
        return {}, []
    try:
        decoded = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        decoded = None
    if not isinstance(decoded, dict):
        return {}, [Problem(f"data[{OWED_KEY}]", raw, "not a JSON object", LEFT_OUT)]
    problems: list[Problem] = []
    out = {}
    for owner, value in decoded.items():
        owed = _owed(owner, value, problems)
        if owed is not None:
            out[owner] = owed
    return out, problems


def encode_owed(waiting: Mapping[str, Owed]) -> str:
    """The JSON kept under :data:`OWED_KEY`."""
    body = {
        owner: {"team": o.team, "takers": sorted(o.takers), "held": sorted(o.held)}
        for owner, o in sorted(waiting.items())
    }
    return json.dumps(body, separators=(",", ":"))
