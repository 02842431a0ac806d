"""The take-back guard: with ``guard=takeback`` no pair of teams preempts each other
back and forth, for any reason.

Across teams (a preemptor of team ``Y``, a running pod of team ``X != Y``):

- a running pod that got its place by a plan that stopped pods of ``Y`` (and has not
  stopped since: ``RunningPod.took_from``) is never a victim of ``Y``;
- ``Y`` takes nothing from ``X`` while a job of ``Y`` that a plan of ``X`` stopped waits
  to start again (``owed``: per team, the teams that took a job of it that still waits).

Within a team nothing changes. The phase asks :meth:`TakeBackGuard.eligible_for` once
per preemptor team and tells the guard of each plan it makes (:meth:`took`), so that a
later plan of the same phase never answers it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum

from hybrid_policy.preemption.model import RunningPod


class Guard(StrEnum):
    """What the phase guards against beyond the rules of each reason."""

    NONE = "none"
    """Nothing: each reason's own test decides."""
    TAKEBACK = "takeback"
    """No team takes back from a team it took from or that took from it (module docstring)."""


class TakeBackGuard:
    """The guard over one phase: who owes whom, and the eligible pods per preemptor team."""

    def __init__(
        self,
        running: Sequence[RunningPod],
        eligible: Mapping[str, bool],
        owed: Mapping[str, frozenset[str]],
    ) -> None:
        self._running = running
        self._eligible = eligible
        self._owed: dict[str, set[str]] = {team: set(takers) for team, takers in owed.items()}
        self._by_team: dict[str, dict[str, bool]] = {}

    def allows(self, team: str, pod: RunningPod) -> bool:
        """Whether a preemptor of ``team`` may take ``pod`` back, as the guard sees it."""
        if pod.namespace == team:
            return True
        return team not in pod.took_from and pod.namespace not in self._owed.get(team, ())

    def eligible_for(self, team: str) -> Mapping[str, bool]:
        """The phase's eligible pods, less those the guard keeps from ``team``."""
        known = self._by_team.get(team)
        if known is None:
            known = {
                p.uid: self._eligible.get(p.uid, False) and self.allows(team, p)
                for p in self._running
            }
            self._by_team[team] = known
        return known

    def took(self, team: str, victims: Sequence[RunningPod]) -> None:
        """A plan of ``team`` stopped ``victims``: their teams are owed by ``team`` from
        now on, for the rest of the phase."""
        for victim in victims:
            if victim.namespace != team and team not in self._owed.get(victim.namespace, ()):
                self._owed.setdefault(victim.namespace, set()).add(team)
                self._by_team.pop(victim.namespace, None)
