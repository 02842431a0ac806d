"""The potential game's convex program in cvxpy: built once per sparsity pattern, re-solved.

Maximise, over slot amounts ``x >= 0`` (pods of class ``c`` on node ``u``),

    Phi(x) = sum_i w_i log(h_i + eps + s_i(x))            fair-share benefit (concave)
           + lam * sum_s score_s * share_s * x_s            the scorer's recommendations
           - mu/2 * sum_{u,r} (used_ur + load_ur(x))^2      congestion on shared nodes

subject to per-slot fit, per-class demand and per-node capacity of every resource. ``s_i``
is namespace ``i``'s served dominant share. Every number (weights, held shares, scores,
capacities, requests, demands) is a ``cp.Parameter``, so the program is DPP: cvxpy compiles
it once per sparsity pattern (which class and node each slot stands for) and later passes
with the same pattern only substitute values. ``docs/game.md`` shows that ``Phi`` is an
exact potential of the namespaces' game, so its maximiser is a Nash equilibrium.
"""

from __future__ import annotations

import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import scipy.sparse as sparse

from hybrid_policy.framework.paths import FallbackReason, PassPath, SolverPath
from hybrid_policy.framework.snapshot import FloatArray
from hybrid_policy.game.problem import ContentionProblem

#: Added inside the log so that a namespace holding nothing has a finite marginal value.
LOG_FLOOR_SHARE = 1e-3
#: The solver: interior point with native exponential cones (the log needs them).
SOLVER = "CLARABEL"
#: cvxpy's COO canonicalisation backend (cvxpy 1.8+) compiles this program 2-3x faster.
CANON_BACKEND = "COO"
#: Extra Clarabel settings: none (more equilibration passes did not help once the program
#: was scaled). Its defaults solve 93 of the benchmark's 100 programs to "optimal"; the
#: rest come back "optimal_inaccurate" or fail, and take the fallback (docs/game.md).
SOLVER_OPTIONS: dict[str, float] = {}
#: The game arbitrator's name: the arbitrator of every path a game pass takes.
GAME = "game"


def game_path(
    solver: SolverPath, reason: FallbackReason | None = None, detail: str = ""
) -> PassPath:
    """The path of a game pass."""
    return PassPath(GAME, solver, reason, detail)


@dataclass(frozen=True)
class GameSettings:
    """Tunables of the game (how the defaults were picked: docs/game.md)."""

    #: lam: weight of the scorer's normalised recommendations (per dominant share).
    score_weight: float = 1.0
    #: mu: weight of the quadratic congestion cost on node load fractions.
    congestion_weight: float = 0.01
    #: Wall-clock budget of one solve, in seconds; over it the greedy fallback decides.
    #: None: no wall-clock budget (the simulator's choice, so that replays are exact).
    time_budget_s: float | None = 0.25
    #: Compiled programs kept, keyed by sparsity pattern.
    cache_size: int = 16


@dataclass(frozen=True)
class Equilibrium:
    """The outcome of one pass's game."""

    #: Pods per slot (fractional when solved, whole when from the fallback).
    allocation: FloatArray
    #: Solver status, or why there was no solve.
    status: str
    solve_seconds: float
    #: The solver's equilibrium, or the greedy fallback and why.
    path: PassPath
    #: Whether this pass compiled a new program (a new sparsity pattern).
    compiled: bool = False

    @property
    def solved(self) -> bool:
        """True when the allocation is the solver's optimum."""
        return self.path.solver is SolverPath.EQUILIBRIUM


def _incidence(rows: np.ndarray, size: int, count: int) -> sparse.csr_matrix:
    cols = np.arange(rows.size)
    return sparse.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(size, count))


class _Compiled:
    """One cvxpy problem and its Parameters, for one sparsity pattern."""

    def __init__(self, problem: ContentionProblem, settings: GameSettings) -> None:
        n_ns, n_nodes = len(problem.namespaces), problem.node_rows.size
        n_slots, n_res = problem.slot_class.size, problem.node_free_fraction.shape[1]
        slot_ns = problem.class_namespace[problem.slot_class]
        by_node = _incidence(problem.slot_node, n_nodes, n_slots)
        by_class = _incidence(problem.slot_class, len(problem.classes), n_slots)
        by_ns = _incidence(slot_ns, n_ns, n_slots)
        self.weights = cp.Parameter(n_ns, nonneg=True)
        self.held = cp.Parameter(n_ns, nonneg=True)
        self.share = cp.Parameter(n_slots, nonneg=True)
        self.gain = cp.Parameter(n_slots, nonneg=True)
        self.fit = cp.Parameter(n_slots, nonneg=True)
        self.demand = cp.Parameter(len(problem.classes), nonneg=True)
        self.coef = [cp.Parameter(n_slots, nonneg=True) for _ in range(n_res)]
        # Node fractions of every resource in one vector, resource-major (``r * nodes + u``):
        # one load variable, capacity constraint and congestion term for all resources
        # leave cvxpy fewer objects to canonicalise than one of each per resource.
        self.free = cp.Parameter(n_res * n_nodes, nonneg=True)
        self.used = cp.Parameter(n_res * n_nodes, nonneg=True)
        self.x = cp.Variable(n_slots, nonneg=True)
        served = cp.Variable(n_ns, nonneg=True)
        # Node loads as variables of their own: the quadratic cost is then diagonal, which
        # keeps Clarabel's linear systems well conditioned (a dense P made about one large
        # program in three fail).
        loads = cp.Variable(n_res * n_nodes, nonneg=True)
        objective = (
            self.weights @ cp.log(served)
            + self.gain @ self.x
            - settings.congestion_weight / 2 * cp.sum_squares(self.used + loads)
        )
        node_loads = cp.hstack([by_node @ cp.multiply(coef, self.x) for coef in self.coef])
        constraints = [
            served <= self.held + by_ns @ cp.multiply(self.share, self.x),
            self.x <= self.fit,
            by_class @ self.x <= self.demand,
            loads == node_loads,
            loads <= self.free,
        ]
        self.problem = cp.Problem(cp.Maximize(objective), constraints)

    def load(self, problem: ContentionProblem, settings: GameSettings) -> None:
        """Set every Parameter from ``problem``."""
        share = problem.class_pod_share[problem.slot_class]
        self.weights.value = problem.weights
        # Shares inside the log are counted in fair shares (1 / namespaces): the same
        # optimum (log(k t) = log k + log t), with numbers near 1 for the solver.
        unit = float(len(problem.namespaces))
        self.held.value = (problem.held_share + LOG_FLOOR_SHARE) * unit
        self.share.value = share * unit
        self.gain.value = settings.score_weight * problem.slot_score * share
        self.fit.value = problem.slot_fit_pods
        self.demand.value = problem.class_demand_pods
        for r, coef in enumerate(self.coef):
            coef.value = problem.slot_request_fraction[:, r]
        self.free.value = problem.node_free_fraction.T.ravel()
        self.used.value = problem.node_used_fraction.T.ravel()


class PotentialProgram:
    """Solves contention problems, reusing compiled programs across passes."""

    def __init__(self, settings: GameSettings | None = None) -> None:
        self.settings = settings or GameSettings()
        self._compiled: OrderedDict[tuple[object, ...], _Compiled] = OrderedDict()
        self.compilations = 0

    def solve(self, problem: ContentionProblem) -> Equilibrium:
        """Maximise the potential; raises on solver errors (the caller falls back)."""
        tick = time.perf_counter()
        key = problem.pattern
        compiled = self._compiled.get(key)
        fresh = compiled is None
        if compiled is None:
            compiled = _Compiled(problem, self.settings)
            self.compilations += 1
            self._compiled[key] = compiled
            while len(self._compiled) > self.settings.cache_size:
                self._compiled.popitem(last=False)
        else:
            self._compiled.move_to_end(key)
        compiled.load(problem, self.settings)
        budget = self.settings.time_budget_s
        limit = (
            {}
            if budget is None
            else {"time_limit": max(budget - (time.perf_counter() - tick), 1e-3)}
        )
        with warnings.catch_warnings():
            # An inaccurate solution is not silently used: its status takes the fallback.
            warnings.simplefilter("ignore", UserWarning)
            compiled.problem.solve(
                solver=SOLVER, canon_backend=CANON_BACKEND, **limit, **SOLVER_OPTIONS
            )
        seconds = time.perf_counter() - tick
        status = str(compiled.problem.status)
        value = compiled.x.value
        empty = np.zeros(problem.slot_class.size)
        if budget is not None and seconds > budget:
            path = game_path(SolverPath.FALLBACK, FallbackReason.TIMEOUT)
            return Equilibrium(empty, status, seconds, path, fresh)
        if status != cp.OPTIMAL or value is None:
            detail = status.replace("_", "-")
            path = game_path(SolverPath.FALLBACK, FallbackReason.STATUS, detail)
            return Equilibrium(empty, status, seconds, path, fresh)
        allocation = np.clip(np.asarray(value, dtype=float), 0.0, problem.slot_fit_pods)
        return Equilibrium(allocation, status, seconds, game_path(SolverPath.EQUILIBRIUM), fresh)


def potential(problem: ContentionProblem, allocation: FloatArray, settings: GameSettings) -> float:
    """``Phi(x)`` evaluated in numpy (for checks and tests)."""
    served = problem.held_share + LOG_FLOOR_SHARE + problem.served_share(allocation)
    share = problem.class_pod_share[problem.slot_class]
    gain = settings.score_weight * problem.slot_score * share
    congestion = (problem.node_used_fraction + problem.node_load_fraction(allocation)) ** 2
    return float(
        problem.weights @ np.log(served)
        + gain @ allocation
        - settings.congestion_weight / 2 * congestion.sum()
    )
