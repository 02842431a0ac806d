"""Lower bounds on mean completion time that no scheduler can beat on a given workload.

Two bounds, both independent of any policy:

* **fastest node**: every job runs on the fastest node the moment it arrives. It ignores
  that the fastest node is one node among many.
* **capacity** (a linear program): jobs may be split across nodes, migrated and
  preempted for free, and GPUs may be shared without regard to whole pods; the only rules
  kept are that a job's work is done at the speed of the nodes that do it, that a node
  has its GPUs and no more, and that no job starts before it arrives. Pick a deadline
  ``D`` after the last arrival. Every job either finishes by ``D``, having spent at least
  its work times ``100 / performance`` of the nodes that ran it, or does not, and then
  spends at least ``D - submit`` in the system. For every arrival time ``t`` on a grid,
  the GPU-time of the jobs arriving from ``t`` on that finish by ``D`` fits into each
  node's GPUs over ``[t, D]``. Any schedule gives a feasible point of this program whose
  objective is at most its own mean completion time, so the program's minimum is a
  lower bound; the bound reported is the largest over a few deadlines.

The capacity bound is what a scheduler pays for the cluster's slower nodes when the load
does not fit on the fast ones; it answers whether a target on mean completion time is
reachable at all (``docs/benchmarks.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sparse
from scipy.optimize import linprog

from hybrid_policy.resources import GPU
from hybrid_policy.scenario.workload import Workload

#: Deadlines tried, in hours after the last arrival.
DEFAULT_SLACK_HOURS: tuple[float, ...] = (0.0, 1.0, 3.0)
#: Width of the arrival-time grid of the capacity constraints.
DEFAULT_GRID_S = 1800.0


class BoundError(RuntimeError):
    """The linear program could not be solved (the message says why)."""


@dataclass(frozen=True)
class CompletionBound:
    """Lower bounds on one workload's mean completion time, in seconds."""

    jobs: int
    fastest_node_s: float
    capacity_s: float
    #: The deadline (hours after the last arrival) that gave ``capacity_s``.
    deadline_slack_h: float


def capacity_bound(
    workload: Workload,
    slack_hours: Sequence[float] = DEFAULT_SLACK_HOURS,
    grid_s: float = DEFAULT_GRID_S,
) -> CompletionBound:
    """Both bounds for ``workload`` (see the module docstring)."""
    jobs = workload.jobs
    if not jobs or not workload.nodes:
        raise BoundError("no jobs or no nodes: nothing to bound")
    speed = np.array([n.performance / 100.0 for n in workload.nodes])
    gpus = np.array([float(n.allocatable.get(GPU, 0)) for n in workload.nodes])
    work = np.array([j.runtime_s for j in jobs])
    submit = np.array([j.submit_s for j in jobs])
    width = np.array([float(j.gpus) for j in jobs])
    fastest = float(work.mean() / speed.max())
    last_arrival = float(submit.max())
    best = (fastest, 0.0)
    for slack in slack_hours:
        deadline = last_arrival + 3600.0 * slack
        value = _solve(work, submit, width, speed, gpus, deadline, grid_s)
        if value > best[0]:
            best = (value, slack)
    return CompletionBound(len(jobs), fastest, best[0], best[1])


def _solve(
    work: np.ndarray,
    submit: np.ndarray,
    width: np.ndarray,
    speed: np.ndarray,
    gpus: np.ndarray,
    deadline: float,
    grid_s: float,
) -> float:
    """Minimum of the capacity program for one deadline; mean seconds per job."""
    n_jobs, n_nodes = work.size, speed.size
    bucket = (submit // grid_s).astype(int)  # deadlines fall after every arrival
    n_buckets = int(bucket.max()) + 1
    # Variables: x[j, n] (share of job j's work done on node n, job-major), late[j],
    # then tail[k, n]: GPU-time on node n of the on-time jobs arriving in bucket k or later.
    n_x = n_jobs * n_nodes
    n_vars = n_x + n_jobs + n_buckets * n_nodes
    run_s = work[:, None] / speed[None, :]
    cost = np.concatenate(
        [run_s.ravel(), np.maximum(deadline - submit, 0.0), np.zeros(n_buckets * n_nodes)]
    )
    jobs_idx = np.repeat(np.arange(n_jobs), n_nodes)
    x_idx = np.arange(n_x)
    # Each job is done (on some nodes) or late: sum_n x[j, n] + late[j] = 1.
    done = sparse.coo_matrix(
        (
            np.ones(n_x + n_jobs),
            (
                np.concatenate([jobs_idx, np.arange(n_jobs)]),
                np.concatenate([x_idx, n_x + np.arange(n_jobs)]),
            ),
        ),
        shape=(n_jobs, n_vars),
    )
    # tail[k, n] - tail[k + 1, n] - sum_{j in bucket k} gpu_time[j, n] x[j, n] = 0.
    tail_col = n_x + n_jobs + np.arange(n_buckets * n_nodes)
    rows_k = np.arange(n_buckets * n_nodes)
    next_rows = rows_k[: (n_buckets - 1) * n_nodes]
    gpu_time = (width[:, None] * run_s).ravel()
    job_rows = bucket[jobs_idx] * n_nodes + np.tile(np.arange(n_nodes), n_jobs)
    tails = sparse.coo_matrix(
        (
            np.concatenate([np.ones(rows_k.size), -np.ones(next_rows.size), -gpu_time]),
            (
                np.concatenate([rows_k, next_rows, job_rows]),
                np.concatenate([tail_col, tail_col[n_nodes:], x_idx]),
            ),
        ),
        shape=(n_buckets * n_nodes, n_vars),
    )
    starts = np.arange(n_buckets) * grid_s
    room = (np.maximum(deadline - starts, 0.0)[:, None] * gpus[None, :]).ravel()
    bounds = np.zeros((n_vars, 2))
    bounds[:, 1] = np.inf
    bounds[n_x + n_jobs :, 1] = room
    a_eq = sparse.vstack([done, tails]).tocsr()
    b_eq = np.concatenate([np.ones(n_jobs), np.zeros(n_buckets * n_nodes)])
    result = linprog(cost, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
    if result.status != 0:
        raise BoundError(f"capacity program: {result.message}")
    return float(result.fun) / n_jobs
