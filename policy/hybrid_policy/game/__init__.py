"""The game-theoretic arbiter: namespaces in contention settle a pass at an equilibrium.

``problem`` aggregates a batch into a :class:`ContentionProblem` (no solver), ``program``
is the potential game's convex program in cvxpy, ``deviation`` checks the equilibrium by
best responses, ``fallback`` is the greedy weighted allocation, ``rounding`` turns
fractions into whole pods, and ``arbiter`` is the :class:`GameArbitrator` a profile uses.
This package is the only one that imports cvxpy (see the import contract in pyproject).
"""

from hybrid_policy.game.arbiter import GameArbitrator
from hybrid_policy.game.problem import ContentionProblem, PodClass, build_problem
from hybrid_policy.game.program import Equilibrium, GameSettings, PotentialProgram

__all__ = [
    "ContentionProblem",
    "Equilibrium",
    "GameArbitrator",
    "GameSettings",
    "PodClass",
    "PotentialProgram",
    "build_problem",
]
