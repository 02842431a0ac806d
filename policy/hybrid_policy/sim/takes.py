"""Who took from whom: the preemption phase's takes in a simulation run, counted per
ordered pair of teams, and the ping-pong among them (docs/preemption.md, "Ping-pong").

A *take* is one job stopped by one plan of the preemption phase (a job stopped by a plan
is counted once, however many of its pods the plan takes). It is counted under the pair
``Y->X``: team ``Y`` made the plan (its pod alone or its gang is bound to the room), team
``X`` owned the stopped job. Takes within a team (``X->X``, by priority, wide, shorten
or shortest) are counted per pair but are never ping-pong: the promise is about pairs of
teams. For a take ``Y->X`` with ``X != Y``:

- it is *back and forth* when the stopped job got the place it holds by a plan that
  stopped a job of ``Y`` (``Y`` takes from ``X`` a job that took from ``Y`` and has not
  stopped since); its *gap* is the time since that plan;
- it is a *team reversal* when a job of ``Y`` that a plan of ``X`` stopped is still
  waiting to start again;
- a team reversal is *at once* when, since that plan of ``X``, the shares moved only by
  takes: no job arrived, finished, or was placed by a scheduling pass.

The reclaim rule and the share test of the other reasons rule out reversals at once
(``preemption/fairness.py``); ``min_runtime_s`` rules out a back and forth with a gap
under it. Preemptive policies (``srtf-oracle``) that re-plan every job in each pass stop
jobs without the phase; their stops count in the run's preemptions, not here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


def pair_key(preemptor_team: str, victim_team: str) -> str:
    """The key of an ordered pair of teams in the records: ``team-b->team-a`` counts the
    jobs of ``team-a`` stopped for ``team-b``."""
    return f"{preemptor_team}->{victim_team}"


@dataclass(frozen=True)
class TakeTally:
    """The takes of one run: per ordered pair (:func:`pair_key`), and the ping-pong
    among them (module docstring). ``shortest_gap_s`` is the smallest gap of a back and
    forth (NaN when there was none)."""

    by_pair: dict[str, int] = field(default_factory=dict)
    back_and_forth: int = 0
    shortest_gap_s: float = math.nan
    reversals: int = 0
    reversals_at_once: int = 0

    @property
    def total(self) -> int:
        """Jobs stopped by the phase's plans, over all pairs."""
        return sum(self.by_pair.values())


@dataclass(frozen=True, slots=True)
class _Take:
    """A plan, as a later take compares itself with it."""

    team: str
    taken_from: frozenset[str]
    at_s: float
    #: The count of ordinary changes (arrivals, completions, placements) before it.
    moves: int


class TakeLedger:
    """Follows the takes of one run as the simulator applies the phase's plans.

    ``team_of`` gives each job's team by its index. The simulator calls :meth:`took` for
    every plan before it applies it, :meth:`started` whenever a job starts running, and
    :meth:`moved` when a job arrives, finishes or is placed by a scheduling pass.
    """

    def __init__(self, team_of: Sequence[str]) -> None:
        self._team_of = team_of
        self._moves = 0
        #: Per running job placed by a plan: that plan.
        self._placed_by: dict[int, _Take] = {}
        #: Per stopped job still waiting to start again: the plan that stopped it.
        self._stopped_by: dict[int, _Take] = {}
        self._by_pair: dict[str, int] = {}
        self._gaps: list[float] = []
        self._reversals = 0
        self._at_once = 0

    def moved(self) -> None:
        """A job arrived, finished or was placed by a pass: the shares moved."""
        self._moves += 1

    def took(self, team: str, placed: Iterable[int], stopped: Iterable[int], now_s: float) -> None:
        """A plan of ``team`` at ``now_s`` stops the jobs ``stopped`` (each once) and
        places the jobs ``placed`` (those of the pods it binds)."""
        victims = list(dict.fromkeys(stopped))
        for job in victims:
            self._count(team, job, now_s)
        take = _Take(team, frozenset(self._team_of[j] for j in victims), now_s, self._moves)
        for job in victims:
            self._placed_by.pop(job, None)
            self._stopped_by[job] = take
        for job in placed:
            self._placed_by[job] = take

    def _count(self, team: str, job: int, now_s: float) -> None:
        victim_team = self._team_of[job]
        key = pair_key(team, victim_team)
        self._by_pair[key] = self._by_pair.get(key, 0) + 1
        if victim_team == team:
            return
        earlier = self._placed_by.get(job)
        if earlier is not None and team in earlier.taken_from:
            self._gaps.append(now_s - earlier.at_s)
        answered = [
            take
            for j, take in self._stopped_by.items()
            if self._team_of[j] == team and take.team == victim_team
        ]
        if answered:
            self._reversals += 1
            if any(take.moves == self._moves for take in answered):
                self._at_once += 1

    def took_from(self, job: int) -> frozenset[str]:
        """The teams whose jobs the plan that placed ``job`` stopped (empty when a pass
        placed it, or it stopped since): what the take-back guard reads of a running job."""
        take = self._placed_by.get(job)
        return frozenset() if take is None else take.taken_from

    def owed(self) -> dict[str, frozenset[str]]:
        """For each team, the other teams that stopped a job of it that still waits to
        start again."""
        out: dict[str, set[str]] = {}
        for job, take in self._stopped_by.items():
            team = self._team_of[job]
            if take.team != team:
                out.setdefault(team, set()).add(take.team)
        return {team: frozenset(takers) for team, takers in out.items()}

    def started(self, job: int) -> None:
        """``job`` runs (again): it no longer waits for the place a take cost it."""
        self._stopped_by.pop(job, None)

    def tally(self) -> TakeTally:
        """The counts so far."""
        return TakeTally(
            by_pair=dict(sorted(self._by_pair.items())),
            back_and_forth=len(self._gaps),
            shortest_gap_s=min(self._gaps, default=math.nan),
            reversals=self._reversals,
            reversals_at_once=self._at_once,
        )
