"""The equilibrium check: how much could one namespace gain by deviating alone?

Namespace ``i``'s utility is its own fair-share benefit and recommendation gain minus the
congestion cost of the nodes (shared by every player):

    u_i(x) = w_i log(h_i + eps + s_i(x_i)) + lam * sum_{s of i} score_s share_s x_s
             - mu/2 * sum_{u,r} (used_ur + load_ur(x))^2

For an allocation ``x`` the check solves each player's best response, the others' slots
fixed and the capacity they take subtracted, and reports the largest gain over ``x``. At a
Nash equilibrium that gap is zero up to the solver's tolerance.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from hybrid_policy.framework.snapshot import FloatArray
from hybrid_policy.game.problem import ContentionProblem
from hybrid_policy.game.program import (
    CANON_BACKEND,
    LOG_FLOOR_SHARE,
    SOLVER,
    SOLVER_OPTIONS,
    GameSettings,
)


@dataclass(frozen=True)
class DeviationGap:
    """Per-namespace gains from the best unilateral deviation, and the solves' statuses."""

    gains: FloatArray
    statuses: tuple[str, ...]

    @property
    def worst(self) -> float:
        """The largest gain any single namespace could get (NaN where a solve failed)."""
        return float(np.nanmax(self.gains)) if np.isfinite(self.gains).any() else 0.0

    @property
    def failed(self) -> int:
        """Best responses the solver could not compute."""
        return int(np.isnan(self.gains).sum())


def player_utility(
    problem: ContentionProblem, allocation: FloatArray, player: int, settings: GameSettings
) -> float:
    """``u_i(x)`` in numpy."""
    mine = problem.class_namespace[problem.slot_class] == player
    share = problem.class_pod_share[problem.slot_class]
    served = problem.held_share[player] + LOG_FLOOR_SHARE + float(share[mine] @ allocation[mine])
    gain = settings.score_weight * float((problem.slot_score * share)[mine] @ allocation[mine])
    congestion = (problem.node_used_fraction + problem.node_load_fraction(allocation)) ** 2
    benefit = problem.weights[player] * np.log(served)
    return float(benefit + gain - settings.congestion_weight / 2 * congestion.sum())


def best_response(
    problem: ContentionProblem, allocation: FloatArray, player: int, settings: GameSettings
) -> tuple[float, str]:
    """The best utility ``player`` can reach with the others' slots fixed, and the status."""
    mine = np.flatnonzero(problem.class_namespace[problem.slot_class] == player)
    others = allocation.copy()
    others[mine] = 0.0
    other_load = problem.node_load_fraction(others)
    share = problem.class_pod_share[problem.slot_class[mine]]
    x = cp.Variable(mine.size, nonneg=True)
    n_nodes, n_res = problem.node_free_fraction.shape
    rows, cols = problem.slot_node[mine], np.arange(mine.size)
    to_node = np.zeros((n_nodes, mine.size))
    to_node[rows, cols] = 1.0
    classes, class_of = np.unique(problem.slot_class[mine], return_inverse=True)
    to_class = np.zeros((classes.size, mine.size))
    to_class[class_of, cols] = 1.0
    congestion = 0
    constraints = [
        x <= problem.slot_fit_pods[mine],
        to_class @ x <= problem.class_demand_pods[classes],
    ]
    for r in range(n_res):
        load = cp.Variable(n_nodes, nonneg=True)  # a variable: diagonal quadratic cost
        constraints.append(load == to_node @ cp.multiply(problem.slot_request_fraction[mine, r], x))
        free = np.maximum(problem.node_free_fraction[:, r] - other_load[:, r], 0.0)
        constraints.append(load <= free)
        base = problem.node_used_fraction[:, r] + other_load[:, r]
        congestion += cp.sum_squares(base + load)
    served = problem.held_share[player] + LOG_FLOOR_SHARE + share @ x
    gain = settings.score_weight * (problem.slot_score[mine] * share) @ x
    objective = (
        problem.weights[player] * cp.log(served)
        + gain
        - settings.congestion_weight / 2 * congestion
    )
    program = cp.Problem(cp.Maximize(objective), constraints)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the status says it
        try:
            program.solve(solver=SOLVER, canon_backend=CANON_BACKEND, **SOLVER_OPTIONS)
        except cp.error.SolverError:
            return float("nan"), "solver_error"
    value = program.value
    return (float(value) if value is not None else float("-inf")), str(program.status)


def deviation_gap(
    problem: ContentionProblem, allocation: FloatArray, settings: GameSettings
) -> DeviationGap:
    """Best-response gain of every namespace against ``allocation``."""
    gains, statuses = [], []
    for player in range(len(problem.namespaces)):
        best, status = best_response(problem, allocation, player, settings)
        gain = best - player_utility(problem, allocation, player, settings)
        gains.append(max(gain, 0.0) if np.isfinite(gain) else float("nan"))
        statuses.append(status)
    return DeviationGap(np.array(gains), tuple(statuses))
