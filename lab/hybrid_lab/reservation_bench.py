"""Pass-time benchmark of reservation and backfill: ``python -m hybrid_lab.reservation_bench``.

For each size (namespaces, pending pods, nodes) and seed it draws a cluster of 8-GPU
nodes filled to about 90 % with running pods (each started up to an hour ago with a
user's run-time estimate, half of them with a progress report), and a batch of
seed-paper-like pods (1-8 GPUs) spread unevenly over namespaces with weights 1-3. A first
pass makes the reservations; then every timed pass runs the whole reserving profile
(fair order, the timeline of predicted ends, the sticky reservations, backfill checks,
binpack scores, or with ``--scores dqn`` the shipped network's scores plus binpack as
``hybrid-reserve`` weighs them) on a fresh copy of the same cluster, with the reservations
held from the first pass. It prints the median and p95 pass time per size and mode, and
how many reservations and placements a pass made.
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from hybrid_lab.game_bench import POD_SHAPE_PROBABILITY, POD_SHAPES, bench_cluster
from hybrid_policy.domain import PendingPod
from hybrid_policy.dqn.scorer import load_scorer
from hybrid_policy.framework.plugins import ScorePlugin
from hybrid_policy.framework.snapshot import ClusterSnapshot, FloatArray
from hybrid_policy.plugins.scores import binpack_scorer
from hybrid_policy.policies import (
    HYBRID_BINPACK_WEIGHT,
    Policy,
    build_policy,
    reserving_policy,
)
from hybrid_policy.prediction.predictor import RuntimePredictor
from hybrid_policy.reservation import BackfillMode, ReservationSettings
from hybrid_policy.resources import CPU, GIB, GPU, MEMORY

#: (namespaces, pending pods, nodes) and the median pass time each must stay under (ms).
DEFAULT_SIZES = ((10, 200, 100), (50, 2000, 1000))
TARGET_MS = {(10, 200, 100): 20.0, (50, 2000, 1000): 250.0}
NOW_S = 3600.0


class Scores(StrEnum):
    """The node scores a timed pass uses."""

    BINPACK = "binpack"
    """Binpack alone."""
    DQN = "dqn"
    """The shipped network's scores plus binpack, weighed as ``hybrid-reserve`` does."""

    def scorers(self) -> list[tuple[ScorePlugin, float]]:
        """The weighted scorers of a pass."""
        if self is Scores.BINPACK:
            return [(binpack_scorer(), 1.0)]
        return [(load_scorer(), 1.0), (binpack_scorer(), HYBRID_BINPACK_WEIGHT)]


@dataclass(frozen=True)
class Drawn:
    """A cluster with running pods known to the policy's predictor, and a batch."""

    policy: Policy
    snapshot: ClusterSnapshot
    batch: list[PendingPod]


def bench_pod(rng: np.random.Generator, name: str, namespace: str, at_s: float) -> PendingPod:
    """A seed-paper-like pod (1-8 GPUs) with a log-normal run-time estimate."""
    gpus, cpu, mem = POD_SHAPES[rng.choice(len(POD_SHAPES), p=POD_SHAPE_PROBABILITY)]
    return PendingPod(
        namespace=namespace,
        name=name,
        uid=name,
        requests={GPU: gpus, CPU: cpu * gpus * 1000, MEMORY: mem * gpus * GIB},
        created_at_s=at_s,
        task_type="nlp" if cpu == 4 else "image-classification",
        expected_runtime_s=float(rng.lognormal(np.log(480.0), 0.8)),
    )


def draw(
    size: tuple[int, int, int], mode: BackfillMode, seed: int, scores: Scores = Scores.BINPACK
) -> Drawn:
    """One drawn cluster and batch for ``size``, with a reserving policy of ``mode``
    scoring nodes with ``scores``."""
    namespaces, pods, nodes = size
    rng = np.random.default_rng([seed, namespaces, pods, nodes])
    cluster, weights = bench_cluster(rng, namespaces, nodes)
    names = [ns.name for ns in weights]
    settings = ReservationSettings(mode=mode)
    policy = reserving_policy(f"bench-{mode.value}", scores.scorers(), settings)
    predictor = policy.predictor
    assert predictor is not None
    snapshot = ClusterSnapshot(cluster, weights, now_s=NOW_S)
    popularity = rng.dirichlet(np.ones(namespaces))
    fill_running(rng, snapshot, predictor, names, popularity)
    batch = [
        bench_pod(rng, f"p{i}", names[rng.choice(namespaces, p=popularity)], float(i))
        for i in range(pods)
    ]
    return Drawn(policy, snapshot, batch)


def fill_running(
    rng: np.random.Generator,
    snapshot: ClusterSnapshot,
    predictor: RuntimePredictor,
    names: Sequence[str],
    popularity: FloatArray,
) -> list[tuple[PendingPod, int, float]]:
    """Fill ``snapshot`` to about 90 % of its GPUs with running pods of the teams
    ``names`` (drawn by ``popularity``), each started up to an hour before ``NOW_S`` and
    known to ``predictor``, half with a progress report; returns each pod with its node
    row and when it started."""
    gpu = snapshot.index[GPU]
    total = float(snapshot.total_allocatable[gpu])
    started: list[tuple[PendingPod, int, float]] = []
    for i in range(int(total)):
        if snapshot.requested[:, gpu].sum() >= 0.9 * total:
            break
        pod = bench_pod(rng, f"r{i}", names[rng.choice(len(names), p=popularity)], 0.0)
        free = np.flatnonzero((snapshot.free >= snapshot.request_vector(pod)).all(axis=1))
        if free.size:
            row = int(rng.choice(free))
            snapshot.assume(pod, row)
            node = snapshot.nodes[row]
            since = float(rng.uniform(0.0, NOW_S))
            started.append((pod, row, since))
            predictor.started(pod, node.name, since, node.performance)
            if rng.random() < 0.5:
                predictor.progress(pod.uid, float(rng.uniform(0.05, 0.95)), NOW_S)
    return started


@dataclass(frozen=True)
class PassTimes:
    """Timed passes of one size and mode, and of plain ``binpack`` on the same cluster."""

    ms: list[float]
    binpack_ms: list[float]
    held: int
    placed: int


def time_passes(drawn: Drawn, repeats: int, rng: np.random.Generator) -> PassTimes:
    """A first pass (reservations made), then ``repeats`` timed passes on fresh copies,
    each followed by a plain ``binpack`` pass (queue order, no reservation) for reference."""
    profile = drawn.policy.profile
    plain = build_policy("binpack", rng).profile
    first = profile.schedule_batch(drawn.batch, copy.deepcopy(drawn.snapshot), rng)
    held = sum(d.nomination is not None for d in first)
    times: list[float] = []
    reference: list[float] = []
    placed = 0
    for _ in range(repeats):
        for pass_profile, out in ((profile, times), (plain, reference)):
            snapshot = copy.deepcopy(drawn.snapshot)
            tick = time.perf_counter()
            decisions = pass_profile.schedule_batch(drawn.batch, snapshot, rng, explain=False)
            out.append(1e3 * (time.perf_counter() - tick))
            if pass_profile is profile:
                placed = sum(d.placed for d in decisions)
    return PassTimes(times, reference, held, placed)


def parse_sizes(text: str) -> list[tuple[int, int, int]]:
    """``ns:pods:nodes,...`` as triples of positive numbers; ValueError names the bad one."""
    if not text:
        return list(DEFAULT_SIZES)
    out = []
    for spec in text.split(","):
        parts = spec.split(":")
        if len(parts) != 3 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
            raise ValueError(f"--sizes: {spec!r} is not namespaces:pods:nodes (positive)")
        ns, pods, nodes = (int(p) for p in parts)
        out.append((ns, pods, nodes))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print one line per size and mode."""
    parser = argparse.ArgumentParser(prog="python -m hybrid_lab.reservation_bench")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per seed")
    parser.add_argument("--sizes", default="", help="ns:pods:nodes,... (default: two sizes)")
    parser.add_argument(
        "--scores",
        choices=[s.value for s in Scores],
        default=Scores.BINPACK.value,
        help="node scores: binpack (default) or dqn (the shipped network's, plus binpack)",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    try:
        seeds = [int(v) for v in args.seeds.split(",")]
        sizes = parse_sizes(args.sizes)
    except ValueError as exc:
        parser.error(str(exc) if "--sizes" in str(exc) else f"--seeds: {args.seeds!r}")
    print(
        f"seeds {args.seeds}, {args.repeats} timed passes each; cluster about 90 % full; "
        f"{args.scores} scores"
    )
    print(
        "namespaces pods nodes mode         | pass ms median p95 | binpack ms median "
        "| held placed | target"
    )
    scores = Scores(args.scores)
    for size in sizes:
        for mode in (BackfillMode.EASY, BackfillMode.CONSERVATIVE):
            results = [
                time_passes(
                    draw(size, mode, seed, scores), args.repeats, np.random.default_rng(seed)
                )
                for seed in seeds
            ]
            ms = [t for r in results for t in r.ms]
            plain = [t for r in results for t in r.binpack_ms]
            held = sum(r.held for r in results) / len(seeds)
            placed = sum(r.placed for r in results) / len(seeds)
            target = TARGET_MS.get(size)
            verdict = "-" if target is None else f"< {target:g} ms: {np.median(ms) < target}"
            print(
                f"{size[0]:>10} {size[1]:>4} {size[2]:>5} {mode.value:<12} | "
                f"{np.median(ms):8.1f} {np.percentile(ms, 95):7.1f} | "
                f"{np.median(plain):17.1f} | {held:4.1f} {placed:6.1f} | {verdict}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
