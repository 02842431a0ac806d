"""Solve-time benchmark of the game: ``python -m hybrid_lab.game_bench``.

For each size (namespaces, pending pods, nodes) and seed it draws a cluster of 8-GPU
nodes, partly loaded, and a batch of seed-paper-like pods (image classification 1/2/4
GPUs, NLP 2/4/8 GPUs) spread unevenly over namespaces with weights 1-3, builds the
ContentionProblem through a real scheduling cycle (the ``game`` policy's scorers), and
times :meth:`PotentialProgram.solve` twice: cold (the pattern is new, cvxpy compiles) and
warm (same pattern, new Parameter values: held shares and weights redrawn, as when the
same classes and candidates meet again). It prints median and p95 per size, the solver
statuses, the unilateral-deviation gap on the first seeds, and writes a scaling plot.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from hybrid_policy.domain import Namespace, NodeInfo, PendingPod
from hybrid_policy.framework.cycle import BatchCycle
from hybrid_policy.framework.paths import FallbackReason, SolverPath
from hybrid_policy.framework.snapshot import ClusterSnapshot
from hybrid_policy.game.arbiter import GameArbitrator
from hybrid_policy.game.deviation import deviation_gap
from hybrid_policy.game.problem import ContentionProblem, build_problem
from hybrid_policy.game.program import Equilibrium, GameSettings, PotentialProgram, game_path
from hybrid_policy.policies import build_policy
from hybrid_policy.resources import CPU, GIB, GPU, MEMORY

#: (namespaces, pending pods, nodes)
DEFAULT_SIZES = ((5, 100, 50), (10, 200, 100), (20, 500, 250), (30, 1000, 500), (50, 2000, 1000))
#: (GPUs, CPU cores per GPU, memory GiB per GPU) of the seed-paper task types.
POD_SHAPES = ((1, 6, 32), (2, 6, 32), (4, 6, 32), (2, 4, 64), (4, 4, 64), (8, 4, 64))
POD_SHAPE_PROBABILITY = (0.3, 0.15, 0.05, 0.25, 0.175, 0.075)


@dataclass(frozen=True)
class SizeResult:
    """Timings of one size over its seeds."""

    namespaces: int
    pods: int
    nodes: int
    cold_ms: list[float]
    warm_ms: list[float]
    statuses: list[str]
    gaps: list[float]
    slots: list[int]


def bench_cluster(
    rng: np.random.Generator, namespaces: int, nodes: int
) -> tuple[list[NodeInfo], list[Namespace]]:
    """The benchmarks' cluster: ``nodes`` 8-GPU nodes of performance 50-100, and
    ``namespaces`` teams of weights 1-3, drawn from ``rng`` (in that order)."""
    cluster = [
        NodeInfo(f"n{i}", {CPU: 64_000, MEMORY: 512 * GIB, GPU: 8}, performance=50 + 50 * r)
        for i, r in enumerate(rng.random(nodes))
    ]
    names = [f"team-{i:02d}" for i in range(namespaces)]
    return cluster, [Namespace(n, float(rng.integers(1, 4))) for n in names]


def draw_cycle(
    namespaces: int, pods: int, nodes: int, seed: int
) -> tuple[BatchCycle, list[PendingPod]]:
    """A partly loaded cluster and a batch; returns the cycle and the batch."""
    rng = np.random.default_rng([seed, namespaces, pods, nodes])
    cluster, weights = bench_cluster(rng, namespaces, nodes)
    names = [ns.name for ns in weights]
    policy = build_policy("game", rng)
    snapshot = ClusterSnapshot(cluster, weights)
    popularity = rng.dirichlet(np.ones(namespaces))
    running = int(nodes * 2)  # about half the GPUs busy before the pass
    batch: list[PendingPod] = []
    for i in range(running + pods):
        gpus, cpu, mem = POD_SHAPES[rng.choice(len(POD_SHAPES), p=POD_SHAPE_PROBABILITY)]
        pod = PendingPod(
            namespace=names[rng.choice(namespaces, p=popularity)],
            name=f"p{i}",
            uid=f"p{i}",
            requests={GPU: gpus, CPU: cpu * gpus * 1000, MEMORY: mem * gpus * GIB},
            created_at_s=float(i),
        )
        if i < running:
            free = np.flatnonzero((snapshot.free >= snapshot.request_vector(pod)).all(axis=1))
            if free.size:
                snapshot.assume(pod, int(rng.choice(free)))
        else:
            batch.append(pod)
    return BatchCycle(policy.profile, snapshot, rng, explain=False), batch


def contention_problem(namespaces: int, pods: int, nodes: int, seed: int) -> ContentionProblem:
    """The ContentionProblem of one drawn pass."""
    cycle, batch = draw_cycle(namespaces, pods, nodes, seed)
    classes = GameArbitrator().pod_classes(batch, cycle)
    return build_problem(classes, cycle.snapshot, 100.0)


def run_size(
    size: tuple[int, int, int],
    seeds: Sequence[int],
    gap_seeds: int,
    settings: GameSettings,
    repeats: int = 1,
) -> SizeResult:
    """Cold and warm solves for every seed of one size, each timed ``repeats`` times (a
    cold solve on a fresh program every time); statuses are those of the first repeat."""
    namespaces, pods, nodes = size
    result = SizeResult(namespaces, pods, nodes, [], [], [], [], [])
    for k, seed in enumerate(seeds):
        problem = contention_problem(namespaces, pods, nodes, seed)
        rng = np.random.default_rng(seed)
        again = replace(
            problem,
            held_share=problem.held_share * rng.uniform(0.5, 1.5, problem.held_share.size),
            weights=rng.integers(1, 4, problem.weights.size).astype(float),
        )
        runs = [_cold_then_warm(settings, problem, again) for _ in range(repeats)]
        result.cold_ms.extend(1e3 * cold.solve_seconds for cold, _ in runs)
        result.warm_ms.extend(1e3 * warm.solve_seconds for _, warm in runs)
        cold, warm = runs[0]
        result.statuses.extend([cold.status, warm.status])
        result.slots.append(problem.slot_class.size)
        if k < gap_seeds and cold.solved:
            gap = deviation_gap(problem, cold.allocation, settings)
            result.gaps.append(gap.worst)
            result.statuses.extend(f"best-response-{s}" for s in gap.statuses if s != "optimal")
    return result


def _cold_then_warm(
    settings: GameSettings, problem: ContentionProblem, again: ContentionProblem
) -> tuple[Equilibrium, Equilibrium]:
    """A fresh program solves ``problem`` (compiling it), then re-solves ``again`` (same
    pattern, new values); each result carries its own wall time."""
    program = PotentialProgram(settings)
    return _solve(program, problem), _solve(program, again)


def _solve(program: PotentialProgram, problem: ContentionProblem) -> Equilibrium:
    """Solve, turning a solver exception into a status (the arbitrator falls back)."""
    tick = time.perf_counter()
    try:
        return program.solve(problem)
    except Exception as exc:  # counted, as the arbitrator counts it
        empty = np.zeros(problem.slot_class.size)
        seconds = time.perf_counter() - tick
        error = type(exc).__name__
        path = game_path(SolverPath.FALLBACK, FallbackReason.ERROR, error)
        return Equilibrium(empty, f"error-{error}", seconds, path)


def scaling_figure(results: Sequence[SizeResult], path: Path) -> Path:
    """Median and p95 solve time against pending pods, cold and warm, log-log."""
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    pods = [r.pods for r in results]
    for label, series, marker in (
        ("cold (compile + solve)", "cold_ms", "o"),
        ("warm", "warm_ms", "s"),
    ):
        values = [np.asarray(getattr(r, series)) for r in results]
        ax.plot(pods, [np.median(v) for v in values], marker=marker, label=f"{label}, median")
        ax.plot(
            pods,
            [np.percentile(v, 95) for v in values],
            ls="--",
            marker=marker,
            alpha=0.5,
            label=f"{label}, p95",
        )
    for target_pods, target_ms in ((200, 20.0), (2000, 250.0)):
        ax.plot([target_pods], [target_ms], marker="x", color="red", ms=10)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("pending pods (namespaces, nodes grow with them)")
    ax.set_ylabel("solve time (ms)")
    ax.set_title("Potential-game solve time (x: targets)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print one line per size."""
    parser = argparse.ArgumentParser(prog="python -m hybrid_lab.game_bench")
    parser.add_argument("--seeds", default="0-9", help="seed range a-b or list (default 0-9)")
    parser.add_argument("--gap-seeds", type=int, default=2, help="seeds per size with gap check")
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed solves per seed, cold and warm (default 3)"
    )
    parser.add_argument("--plot", default="docs/figures/game-solve-time.png")
    parser.add_argument("--sizes", default="", help="ns:pods:nodes,... (default: five sizes)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    if "-" in args.seeds:
        low, high = (int(v) for v in args.seeds.split("-"))
        seeds = list(range(low, high + 1))
    else:
        seeds = [int(v) for v in args.seeds.split(",")]
    sizes: list[tuple[int, int, int]] = list(DEFAULT_SIZES)
    if args.sizes:
        sizes = []
        for spec in args.sizes.split(","):
            ns, pods, nodes = (int(v) for v in spec.split(":"))
            sizes.append((ns, pods, nodes))
    settings = GameSettings(time_budget_s=10.0)
    seed_text = f"seeds {seeds[0]}-{seeds[-1]} ({len(seeds)})"
    print(f"{seed_text}, {args.repeats} timed solves each, {settings}")
    print("namespaces pods nodes slots | cold ms median p95 | warm ms median p95 | statuses | gap")
    results = []
    for size in sizes:
        r = run_size(size, seeds, args.gap_seeds, settings, args.repeats)
        results.append(r)
        statuses = ",".join(f"{s}x{r.statuses.count(s)}" for s in sorted(set(r.statuses)))
        gap = f"{max(r.gaps):.1e} (worst of {len(r.gaps)})" if r.gaps else "-"
        print(
            f"{r.namespaces:>10} {r.pods:>4} {r.nodes:>5} {int(np.median(r.slots)):>5} | "
            f"{np.median(r.cold_ms):7.1f} {np.percentile(r.cold_ms, 95):7.1f} | "
            f"{np.median(r.warm_ms):7.1f} {np.percentile(r.warm_ms, 95):7.1f} | {statuses} | {gap}",
            flush=True,
        )
    print(f"plot: {scaling_figure(results, Path(args.plot))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
