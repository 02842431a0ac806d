"""Pass-time benchmark with preemption: ``python -m hybrid_lab.preemption_bench``.

For each size (namespaces, pending pods, nodes) and seed it draws the cluster of
:mod:`hybrid_lab.reservation_bench` (8-GPU nodes about 90 % full with running pods the
predictor knows, a batch of seed-paper-like pods over teams of weights 1-3 and uneven
popularity, so some teams hold more than their share), with every running pod opted in,
checkpointing every 5 minutes, and one pending pod in ten of a higher priority. A timed
pass is what a preempting driver does after a pass: the reserving pass itself, then the
preemption phase on the pods it left waiting (the first four of each team in queue order),
with the feasibility masks, the running pods, the predictor's run times and the queue's
work ahead, as the simulator gives them (``sim/take_back.py``). Every pass runs on a fresh
copy of the cluster. It prints the median and p95 of the whole pass (wall time), its
median in CPU time of the process (which load from other processes leaves out; torch's
threads are counted in it), the phase's median alone, and how many plans and victims a
phase made, per policy and rule. The target is read on the wall-time median.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hybrid_lab.game_bench import bench_cluster
from hybrid_lab.reservation_bench import NOW_S, bench_pod, fill_running, parse_sizes
from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.cycle import BatchCycle
from hybrid_policy.framework.snapshot import ClusterSnapshot
from hybrid_policy.policies import Policy, build_policy
from hybrid_policy.preemption.model import RunningPod
from hybrid_policy.preemption.options import parse_settings
from hybrid_policy.preemption.phase import PreemptionSettings, plan_preemptions
from hybrid_policy.sim.queue_view import QueueReader
from hybrid_policy.sim.take_back import Predictions

#: (namespaces, pending pods, nodes) and the median pass time each must stay under (ms).
DEFAULT_SIZES = ((10, 200, 100),)
TARGET_MS = {(10, 200, 100): 30.0}
POLICIES = ("hybrid-reserve", "fair-easy")
#: The rules timed: the defaults, the rule measured on the evaluation seeds, every reason.
RULES = (
    "on",
    "reasons=wide,max_lost_s=30",
    "reasons=reclaim+priority+defragment+wide+shorten+shortest",
)
CHECKPOINT_S = 300.0
HIGH_PRIORITY = 100
PER_TEAM = 4


@dataclass(frozen=True)
class Drawn:
    """A cluster with opted-in running pods known to the policy, and a batch."""

    policy: Policy
    snapshot: ClusterSnapshot
    running: list[RunningPod]
    batch: list[PendingPod]


def draw(size: tuple[int, int, int], policy: str, seed: int) -> Drawn:
    """One drawn cluster and batch for ``size`` under ``policy`` (module docstring)."""
    namespaces, pods, nodes = size
    rng = np.random.default_rng([seed, namespaces, pods, nodes])
    cluster, weights = bench_cluster(rng, namespaces, nodes)
    names = [ns.name for ns in weights]
    built = build_policy(policy, np.random.default_rng(seed))
    assert built.predictor is not None, f"{policy} predicts no run times"
    snapshot = ClusterSnapshot(cluster, weights, now_s=NOW_S)
    popularity = rng.dirichlet(np.ones(namespaces))
    started = fill_running(rng, snapshot, built.predictor, names, popularity)
    running = [
        RunningPod(
            pod.namespace, pod.name, pod.uid, snapshot.nodes[row].name, pod.requests, since,
            pod.priority, opted_in=True, checkpoint_interval_s=CHECKPOINT_S,
        )
        for pod, row, since in started
    ]  # fmt: skip
    batch = []
    for i in range(pods):
        pod = bench_pod(rng, f"p{i}", names[rng.choice(namespaces, p=popularity)], float(i))
        if rng.random() < 0.1:
            pod = dataclasses.replace(pod, priority=HIGH_PRIORITY)
        batch.append(pod)
    return Drawn(built, snapshot, running, batch)


def left_waiting(decisions: Sequence[PendingPod], policy: Policy) -> list[PendingPod]:
    """The first :data:`PER_TEAM` pods of each team in queue order (pods alone)."""
    heads: dict[str, list[PendingPod]] = {}
    for pod in sorted(decisions, key=policy.profile.queue_sort.sort_key):
        team = heads.setdefault(pod.namespace, [])
        if len(team) < PER_TEAM:
            team.append(pod)
    return [pod for team in heads.values() for pod in team]


@dataclass(frozen=True)
class PassTimes:
    """Timed passes of one size, policy and rule: the whole pass and the phase alone."""

    ms: list[float]
    phase_ms: list[float]
    #: The whole pass in CPU time of this process (what other processes' load leaves out).
    cpu_ms: list[float]
    plans: int
    victims: int


def one_pass(drawn: Drawn, settings: PreemptionSettings, rng: np.random.Generator) -> PassTimes:
    """One pass and its phase on a fresh copy of the cluster, timed."""
    policy = drawn.policy
    snapshot = copy.deepcopy(drawn.snapshot)
    predictor = policy.predictor
    assert predictor is not None
    tick, cpu = time.perf_counter(), time.process_time()
    decisions = policy.profile.schedule_batch(drawn.batch, snapshot, rng, explain=False)
    mid = time.perf_counter()
    left = left_waiting([d.pod for d in decisions if not d.placed], policy)
    cycle = BatchCycle(policy.profile, snapshot, rng, explain=False)
    masks = {p.uid: cycle.nodes_but_for_room(p) for p in left}
    waiting = [d.pod for d in decisions if not d.placed]
    queue = QueueReader().view(
        policy.profile.arbitrator,
        lambda: sorted(waiting, key=policy.profile.queue_sort.sort_key),
        predictor,
        float(snapshot.performance.mean()),
        NOW_S,
    )
    pending_since = {p.uid: p.created_at_s for p in drawn.batch}
    plans = plan_preemptions(
        snapshot, left, masks, drawn.running, pending_since, NOW_S, settings,
        Predictions(predictor, NOW_S), queue=queue,
    )  # fmt: skip
    end, cpu_end = time.perf_counter(), time.process_time()
    victims = sum(len(p.victims) for p in plans)
    return PassTimes(
        [1e3 * (end - tick)], [1e3 * (end - mid)], [1e3 * (cpu_end - cpu)], len(plans), victims
    )


def time_passes(drawn: Drawn, rule: str, repeats: int, rng: np.random.Generator) -> PassTimes:
    """A warm-up pass (reservations made), then ``repeats`` timed passes."""
    settings = parse_settings(rule)
    drawn.policy.profile.arbitrator.use_wall_clock(False)
    one_pass(drawn, settings, rng)
    runs = [one_pass(drawn, settings, rng) for _ in range(repeats)]
    return PassTimes(
        [t for r in runs for t in r.ms],
        [t for r in runs for t in r.phase_ms],
        [t for r in runs for t in r.cpu_ms],
        runs[-1].plans,
        runs[-1].victims,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print one line per size, policy and rule."""
    parser = argparse.ArgumentParser(prog="python -m hybrid_lab.preemption_bench")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per seed")
    parser.add_argument("--sizes", default="", help="ns:pods:nodes,... (default: 10:200:100)")
    parser.add_argument(
        "--policies",
        default=",".join(POLICIES),
        help=f"comma-separated (default {','.join(POLICIES)})",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    try:
        seeds = [int(v) for v in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds: {args.seeds!r}")
    try:
        sizes = parse_sizes(args.sizes) if args.sizes else list(DEFAULT_SIZES)
    except ValueError as exc:
        parser.error(str(exc))
    policies = args.policies.split(",")
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        parser.error(f"--policies: {','.join(unknown)} (each one of {', '.join(POLICIES)})")
    print(
        f"seeds {args.seeds}, {args.repeats} timed passes each; cluster about 90 % full, "
        "every running pod opted in"
    )
    print(
        "ns pods nodes policy         rule                         | pass ms median p95 "
        "| CPU ms median | phase ms median | plans victims | target"
    )
    for size in sizes:
        for policy in policies:
            for rule in RULES:
                results = [
                    time_passes(draw(size, policy, s), rule, args.repeats, np.random.default_rng(s))
                    for s in seeds
                ]
                ms = [t for r in results for t in r.ms]
                phase = [t for r in results for t in r.phase_ms]
                cpu = [t for r in results for t in r.cpu_ms]
                plans = sum(r.plans for r in results) / len(seeds)
                victims = sum(r.victims for r in results) / len(seeds)
                target = TARGET_MS.get(size)
                verdict = "-" if target is None else f"< {target:g} ms: {np.median(ms) < target}"
                short = rule if len(rule) <= 28 else "all reasons"
                print(
                    f"{size[0]:>2} {size[1]:>4} {size[2]:>5} {policy:<14} {short:<28} | "
                    f"{np.median(ms):8.1f} {np.percentile(ms, 95):6.1f} | {np.median(cpu):13.1f} | "
                    f"{np.median(phase):15.1f} | {plans:5.1f} {victims:7.1f} | {verdict}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
