"""When a team may take back GPUs from another: the reclaim rule and why it cannot loop.

A team's *share* is the GPUs its running pods hold over the cluster's GPUs, divided by its
weight: ``s_t = used_t / (T w_t)`` (the namespace share the rest of the scheduler uses).
With ``W`` the sum of the weights of the teams that have pods running or waiting, a team
is *at its entitlement* when ``used_t / T = w_t / W``, that is when ``s_t = 1 / W``: one
threshold for every team.

A reclaim by team ``p`` of victims from teams ``V`` is allowed only when ``p`` is below its
entitlement, every team in ``V`` above theirs, and afterwards ``p``'s share is still at or
below each victim team's (Kueue's LessThanOrEqualToFinalShare): ``s_p' <= s_v'``.

**Why this cannot loop.** Before the reclaim ``s_p < 1/W < s_v``; after it
``s_p < s_p' <= s_v' < s_v`` for every victim team ``v`` (``p`` gains, each ``v`` loses,
and nobody overtakes). Sort the teams' shares in increasing order: every value that
changed is now above ``s_p``, the smallest value that changed, and values below ``s_p``
are untouched, so the sorted vector grows strictly in the leximin order. There are
finitely many ways to place a finite set of pods, so while no pod arrives or finishes
only finitely many reclaims can happen one after another; in particular ``v`` can never
take back from ``p`` right away, since that would need ``s_v'' <= s_p''`` with
``s_v'' > s_v' >= s_p' > s_p''``. ``tests/unit/test_preemption.py`` checks both
statements on random states.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class TeamShares:
    """GPUs held per team, the teams' weights, the cluster's GPUs, and which teams count
    towards the entitlement (those with pods running or waiting)."""

    used: Mapping[str, float]
    weights: Mapping[str, float]
    total_gpus: float
    active: frozenset[str] = field(default_factory=frozenset)

    def weight(self, team: str) -> float:
        """The team's weight (1 when unset; never below a tiny positive floor)."""
        return max(self.weights.get(team, 1.0), 1e-9)

    def share(self, team: str, delta: float = 0.0) -> float:
        """The team's weighted share, after it gains ``delta`` GPUs (loses, if negative)."""
        if self.total_gpus <= 0:
            return 0.0
        return (self.used.get(team, 0.0) + delta) / (self.total_gpus * self.weight(team))

    @property
    def entitled(self) -> float:
        """The weighted share at which every active team holds its entitlement, 1/W."""
        teams = self.active | {t for t, u in self.used.items() if u > 0}
        total = sum(self.weight(t) for t in teams)
        return 1.0 / total if total > 0 else 0.0

    def below_entitlement(self, team: str) -> bool:
        """Whether the team holds less than its entitlement."""
        return self.share(team) < self.entitled - 1e-12

    def above_entitlement(self, team: str) -> bool:
        """Whether the team holds more than its entitlement."""
        return self.share(team) > self.entitled + 1e-12

    def after(self, gains: Mapping[str, float]) -> TeamShares:
        """The shares once each team has gained (or lost) what ``gains`` says."""
        used = dict(self.used)
        for team, delta in gains.items():
            used[team] = used.get(team, 0.0) + delta
        return TeamShares(used, self.weights, self.total_gpus, self.active)


def reclaim_allowed(
    shares: TeamShares, preemptor_team: str, preemptor_gpus: float, taken: Mapping[str, float]
) -> bool:
    """Whether ``preemptor_team``, starting a pod of ``preemptor_gpus`` GPUs, may take
    ``taken`` GPUs from each of the other teams (see the module's rule)."""
    if not taken or preemptor_team in taken or preemptor_gpus <= 0:
        return False
    if not shares.below_entitlement(preemptor_team):
        return False
    if not all(shares.above_entitlement(team) for team in taken):
        return False
    final = shares.after({preemptor_team: preemptor_gpus, **{t: -g for t, g in taken.items()}})
    mine = final.share(preemptor_team)
    return all(mine <= final.share(team) + 1e-12 for team in taken)


def fair_to_take(shares: TeamShares, team: str, gpus: float, taken: Mapping[str, float]) -> bool:
    """Whether ``team``, starting a pod of ``gpus`` GPUs, still holds at most the share
    of every other team it takes ``taken`` GPUs from (Kueue's
    LessThanOrEqualToFinalShare, without reclaim's entitlement test; what it takes from
    its own team is not counted). A take it allows raises the teams' sorted shares in the
    leximin order, as a reclaim does, and cannot be answered at once."""
    others = {t: g for t, g in taken.items() if t != team}
    if not others:
        return True
    if gpus <= 0:
        return False
    final = shares.after({team: gpus, **{t: -g for t, g in others.items()}})
    return all(final.share(team) <= final.share(t) + 1e-12 for t in others)
