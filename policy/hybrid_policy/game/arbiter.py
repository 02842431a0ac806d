"""The ``game`` Arbitrator: namespaces in contention settle a pass at the game's equilibrium.

It takes whatever ScoreTables the profile's scorers produce (heuristic scores for the
``game`` policy, the DQN's Q-values for ``hybrid``). A pass is contended when two or more
namespaces have pods and some class wants more pods than fit side by side, or the batch
asks for more of some resource than is free; an uncontended pass is placed in queue order
on the best nodes, as kube-scheduler would (:attr:`SolverPath.UNCONTENDED`). A contended
pass builds a :class:`ContentionProblem`, solves the potential game
(:attr:`SolverPath.EQUILIBRIUM`) or, on a solver error, a non-optimal status or a solve
over the time budget, takes the greedy weighted allocation (:attr:`SolverPath.FALLBACK`
with its :class:`FallbackReason`), then rounds to whole pods with deficit counters and
fills what is left. Paths are counted in :attr:`GameArbitrator.paths` and written on every
decision (``uncontended``, ``equilibrium``, ``greedy-fallback:timeout``, ...).

A gang is an indivisible strategy element of its namespace (``docs/gangs.md``): its pods
join the classes of the program like any pod, but the rounding and the fallback give the
namespace the whole gang or none of it, where the gang stands in its queue; an
uncontended pass places units in queue order. A gang that cannot be placed whole in this
pass (fewer of its pods exist than it needs, or fewer fit side by side than it has) is
rejected before the game, so the equilibrium spends no share on it.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, deque
from collections.abc import Sequence

import numpy as np

from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.cycle import BatchCycle, ScoreTable
from hybrid_policy.framework.gangs import (
    Unit,
    gang_status,
    missing_members,
    place_unit,
    units,
)
from hybrid_policy.framework.paths import FallbackReason, PassPath, SolverPath
from hybrid_policy.game.fallback import greedy_allocation
from hybrid_policy.game.problem import DEFAULT_TOP_K, ContentionProblem, PodClass, build_problem
from hybrid_policy.game.program import (
    GAME,
    Equilibrium,
    GameSettings,
    PotentialProgram,
    game_path,
)
from hybrid_policy.game.rounding import carry_deficits, settle

#: Solve times a :class:`GameArbitrator` keeps (the latest ones).
SOLVE_TIMES_KEPT = 1000


class GameArbitrator:
    """Settles contended passes at the potential game's equilibrium."""

    name = GAME

    def __init__(self, settings: GameSettings | None = None, top_k: int = DEFAULT_TOP_K) -> None:
        self.program = PotentialProgram(settings)
        #: The solve's wall-clock budget as configured; ``use_wall_clock(True)`` restores it.
        self.time_budget_s = self.program.settings.time_budget_s
        self.top_k = top_k
        #: Dominant share owed to (positive) or by (negative) each namespace; at most one pod.
        self.deficit_share: dict[str, float] = {}
        #: How many passes took each path.
        self.paths: Counter[PassPath] = Counter()
        #: Wall time of the latest solve attempts, in seconds, oldest first (at most
        #: ``SOLVE_TIMES_KEPT``: an operator solves on every contended pass for months).
        self.solve_seconds: deque[float] = deque(maxlen=SOLVE_TIMES_KEPT)
        #: Solve attempts since start.
        self.solves = 0
        self.last_problem: ContentionProblem | None = None
        self.last_equilibrium: Equilibrium | None = None

    @property
    def settings(self) -> GameSettings:
        """The game's tunables."""
        return self.program.settings

    def use_wall_clock(self, enabled: bool) -> None:
        """Turn the solve's wall-clock budget off (simulations) or back to the configured one."""
        budget = self.time_budget_s if enabled else None
        self.program.settings = dataclasses.replace(self.program.settings, time_budget_s=budget)

    def arbitrate(self, batch: Sequence[PendingPod], cycle: BatchCycle) -> None:
        """Commit or reject every pod of ``batch`` (already in queue order), a gang whole
        or not at all."""
        batch = self.screen_gangs(batch, cycle)
        classes = self.pod_classes(batch, cycle)
        if not classes:
            return
        if not self._contended(classes, cycle):
            cycle.pass_path = game_path(SolverPath.UNCONTENDED)
            self.paths[cycle.pass_path] += 1
            table = {pod.uid: c.table for c in classes for pod in c.pods}
            for unit in _units([pod for pod in batch if pod.uid in table], cycle):
                gang = len(unit) > 1
                place_unit(unit, cycle, scored=table[unit[0].uid] if gang else None)
            return
        scale = 100.0 * max(sum(weight for _, weight in cycle.profile.scorers), 1e-9)
        problem = build_problem(classes, cycle.snapshot, scale, self.top_k)
        equilibrium = self.equilibrium(problem)
        cycle.pass_path = equilibrium.path
        self.paths[equilibrium.path] += 1
        position = {pod.uid: i for i, pod in enumerate(batch)}
        granted = settle(cycle, problem, equilibrium.allocation, self.deficit_share, position)
        carry_deficits(problem, equilibrium.allocation, granted, self.deficit_share)

    @staticmethod
    def screen_gangs(batch: Sequence[PendingPod], cycle: BatchCycle) -> list[PendingPod]:
        """Reject the gangs that cannot be placed whole in this pass: fewer pods exist than
        they need, or (pods of one shape) fewer fit side by side now than they have.
        Returns the pods left to the game."""
        if not cycle.profile.gang_aware:
            return list(batch)
        rejected: set[str] = set()
        for unit in units(batch, cycle):
            head = unit[0]
            if head.gang_key is None or head.gang is None:
                continue
            running = cycle.snapshot.gang_members[head.gang_key]
            if running >= head.gang.min_member:
                continue  # a late member of a gang that runs: a single pod
            if missing_members(unit, cycle):
                status = gang_status(head, 0, batch_members=running + len(unit))
            elif len({cycle.feasibility_key(p) for p in unit}) == 1:
                fit = cycle.fit_count(head)
                if fit >= len(unit):
                    continue
                status = gang_status(head, running + fit)
            else:
                continue
            for pod in unit:
                cycle.reject(pod, status)
                rejected.add(pod.uid)
        return [pod for pod in batch if pod.uid not in rejected]

    def equilibrium(self, problem: ContentionProblem) -> Equilibrium:
        """Solve the game, or fall back to the greedy weighted allocation."""
        try:
            result = self.program.solve(problem)
        except Exception as exc:  # any solver failure takes the fallback, by design
            result = Equilibrium(
                np.zeros(problem.slot_class.size),
                "error",
                0.0,
                game_path(SolverPath.FALLBACK, FallbackReason.ERROR, type(exc).__name__),
            )
        self.solve_seconds.append(result.solve_seconds)
        self.solves += 1
        if not result.solved:
            result = Equilibrium(
                greedy_allocation(problem),
                result.status,
                result.solve_seconds,
                result.path,
                result.compiled,
            )
        self.last_problem, self.last_equilibrium = problem, result
        return result

    def pod_classes(self, batch: Sequence[PendingPod], cycle: BatchCycle) -> list[PodClass]:
        """Group the batch by namespace and feasibility key; reject classes that fit nowhere."""
        members: dict[tuple[str, tuple[object, ...]], list[PendingPod]] = {}
        for pod in batch:
            members.setdefault((pod.namespace, cycle.feasibility_key(pod)), []).append(pod)
        heads: dict[tuple[object, ...], list[PendingPod]] = {}
        for (_, key), pods in members.items():
            heads.setdefault(key, []).append(pods[0])
        tables = {
            head.uid: table
            for alike in heads.values()
            for head, table in zip(alike, cycle.evaluate_alike(alike), strict=True)
        }
        classes = []
        for (namespace, _), pods in members.items():
            table = tables[pods[0].uid]
            if isinstance(table, ScoreTable):
                classes.append(PodClass(namespace, tuple(pods), table))
            else:
                for pod in pods:
                    cycle.reject(pod, table)
        return classes

    def _contended(self, classes: Sequence[PodClass], cycle: BatchCycle) -> bool:
        """Two or more namespaces, and not everything can be placed at once."""
        if len({c.namespace for c in classes}) < 2:
            return False
        snap = cycle.snapshot
        wanted = np.zeros(len(snap.resources))
        for pod_class in classes:
            if cycle.fit_count(pod_class.pods[0]) < len(pod_class.pods):
                return True
            wanted += snap.request_vector(pod_class.pods[0]) * len(pod_class.pods)
        return bool((wanted > snap.free.sum(axis=0) + 1e-9).any())


def _units(batch: Sequence[PendingPod], cycle: BatchCycle) -> list[Unit]:
    """Gangs as units when the profile is gang-aware; otherwise every pod alone."""
    if cycle.profile.gang_aware:
        return units(batch, cycle)
    return [(pod,) for pod in batch]
