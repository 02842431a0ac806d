"""Pass-time benchmark of gangs under the fair policies: ``python -m hybrid_lab.gang_bench``.

For each size (namespaces, gangs, pods per gang, nodes) and seed it draws the
reservation benchmark's cluster (8-GPU nodes filled to about 90 % with running pods known
to the policy's predictor) and a batch of gangs of one pod shape each (1-8 GPUs, the
seed-paper mix), spread unevenly over namespaces with weights 1-3. A first pass warms the
policy (the game compiles its program, the reserving arbitrator makes its reservations);
then every timed pass runs the whole profile (gangs screened and served as units, the
game or the fair order with reservations, settle_gangs) on a fresh copy of the cluster.
It prints the median and p95 pass time per size and policy, and how many gangs a pass
placed and held reservations for.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hybrid_lab.game_bench import POD_SHAPE_PROBABILITY, POD_SHAPES, bench_cluster
from hybrid_lab.reservation_bench import NOW_S
from hybrid_policy.domain import Gang, PendingPod
from hybrid_policy.framework.snapshot import ClusterSnapshot
from hybrid_policy.policies import Policy, build_policy
from hybrid_policy.resources import CPU, GIB, GPU, MEMORY

#: Timed by default; the others may be asked for, as references without the DQN.
POLICIES = ("hybrid", "hybrid-reserve")
REFERENCES = ("game", "fair-easy", "binpack-gang")
#: (namespaces, gangs, pods per gang, nodes).
DEFAULT_SIZE = (10, 40, 5, 100)
TARGET_MS = 20.0


@dataclass(frozen=True)
class Drawn:
    """A cluster with running pods known to the policy's predictor, and a batch of gangs."""

    policy: Policy
    snapshot: ClusterSnapshot
    batch: list[PendingPod]


def _shape(rng: np.random.Generator) -> tuple[int, int, int]:
    gpus, cpu, mem = POD_SHAPES[rng.choice(len(POD_SHAPES), p=POD_SHAPE_PROBABILITY)]
    return gpus, cpu, mem


def _pod(
    name: str, namespace: str, shape: tuple[int, int, int], at_s: float, runtime_s: float
) -> PendingPod:
    gpus, cpu, mem = shape
    return PendingPod(
        namespace=namespace,
        name=name,
        uid=name,
        requests={GPU: gpus, CPU: cpu * gpus * 1000, MEMORY: mem * gpus * GIB},
        created_at_s=at_s,
        task_type="nlp" if cpu == 4 else "image-classification",
        expected_runtime_s=runtime_s,
    )


def draw(size: tuple[int, int, int, int], policy: str, seed: int) -> Drawn:
    """One drawn cluster and batch of gangs for ``size``, with policy ``policy``."""
    namespaces, gangs, members, nodes = size
    rng = np.random.default_rng([seed, namespaces, gangs, members, nodes])
    cluster, weights = bench_cluster(rng, namespaces, nodes)
    names = [ns.name for ns in weights]
    built = build_policy(policy, np.random.default_rng(seed))
    snapshot = ClusterSnapshot(cluster, weights, now_s=NOW_S)
    popularity = rng.dirichlet(np.ones(namespaces))
    gpu = snapshot.index[GPU]
    for i in range(nodes * 8):
        if snapshot.requested[:, gpu].sum() >= 0.9 * nodes * 8:
            break
        runtime = float(rng.lognormal(np.log(480.0), 0.8))
        namespace = names[rng.choice(namespaces, p=popularity)]
        pod = _pod(f"r{i}", namespace, _shape(rng), 0.0, runtime)
        free = np.flatnonzero((snapshot.free >= snapshot.request_vector(pod)).all(axis=1))
        if free.size:
            row = int(rng.choice(free))
            snapshot.assume(pod, row)
            if built.predictor is not None:
                since = float(rng.uniform(0.0, NOW_S))
                built.predictor.started(pod, cluster[row].name, since, cluster[row].performance)
    batch = []
    for g in range(gangs):
        namespace = names[rng.choice(namespaces, p=popularity)]
        shape, runtime = _shape(rng), float(rng.lognormal(np.log(480.0), 0.8))
        gang = Gang(f"g{g}", members)
        for k in range(members):
            pod = _pod(f"g{g}-{k}", namespace, shape, float(g), runtime)
            batch.append(dataclasses.replace(pod, gang=gang))
    return Drawn(built, snapshot, batch)


@dataclass(frozen=True)
class PassTimes:
    """Timed passes of one size and policy: times, gangs placed and gangs holding nodes."""

    ms: list[float]
    placed: int
    held: int


def time_passes(drawn: Drawn, repeats: int, rng: np.random.Generator) -> PassTimes:
    """A first pass (warm-up: compile, reservations made), then ``repeats`` timed passes
    on fresh copies of the cluster."""
    profile = drawn.policy.profile
    profile.arbitrator.use_wall_clock(False)
    profile.schedule_batch(drawn.batch, copy.deepcopy(drawn.snapshot), rng)
    times: list[float] = []
    placed = held = 0
    for _ in range(repeats):
        snapshot = copy.deepcopy(drawn.snapshot)
        tick = time.perf_counter()
        decisions = profile.schedule_batch(drawn.batch, snapshot, rng, explain=False)
        times.append(1e3 * (time.perf_counter() - tick))
        placed = len({d.pod.gang_key for d in decisions if d.placed})
        held = len({d.pod.gang_key for d in decisions if d.nomination is not None})
    return PassTimes(times, placed, held)


def _size(text: str) -> tuple[int, int, int, int]:
    """``ns:gangs:members:nodes`` as positive numbers; ValueError names the bad text."""
    parts = text.split(":")
    if len(parts) != 4 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"--size: {text!r} is not namespaces:gangs:members:nodes (positive)")
    ns, gangs, members, nodes = (int(p) for p in parts)
    return ns, gangs, members, nodes


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print one line per policy."""
    parser = argparse.ArgumentParser(prog="python -m hybrid_lab.gang_bench")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per seed")
    parser.add_argument(
        "--size", default=":".join(map(str, DEFAULT_SIZE)), help="ns:gangs:members:nodes"
    )
    parser.add_argument(
        "--policies",
        default=",".join(POLICIES),
        help=f"comma-separated among {', '.join((*POLICIES, *REFERENCES))} (default "
        f"{','.join(POLICIES)})",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    try:
        seeds = [int(v) for v in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds: {args.seeds!r}")
    try:
        size = _size(args.size)
    except ValueError as exc:
        parser.error(str(exc))
    policies = args.policies.split(",")
    unknown = [p for p in policies if p not in (*POLICIES, *REFERENCES)]
    if unknown:
        known = ", ".join((*POLICIES, *REFERENCES))
        parser.error(f"--policies: {','.join(unknown)} (each one of {known})")
    ns, gangs, members, nodes = size
    print(
        f"{ns} namespaces, {gangs} gangs of {members} pods ({gangs * members} pending), "
        f"{nodes} nodes about 90 % full; seeds {args.seeds}, {args.repeats} timed passes each"
    )
    print("policy          | pass ms median p95 | gangs placed held | target")
    for policy in policies:
        results = [
            time_passes(draw(size, policy, seed), args.repeats, np.random.default_rng(seed))
            for seed in seeds
        ]
        ms = [t for r in results for t in r.ms]
        placed = sum(r.placed for r in results) / len(seeds)
        held = sum(r.held for r in results) / len(seeds)
        verdict = f"< {TARGET_MS:g} ms: {np.median(ms) < TARGET_MS}"
        print(
            f"{policy:<15} | {np.median(ms):8.1f} {np.percentile(ms, 95):7.1f} | "
            f"{placed:12.1f} {held:4.1f} | {verdict}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
