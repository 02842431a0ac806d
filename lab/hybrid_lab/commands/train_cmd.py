"""``hybrid-scheduler train`` and ``hybrid-scheduler dqn-bench``: the DQN scorer's commands.

Thin wrappers: the work is in :mod:`hybrid_policy.dqn`. torch is imported only when one
of these commands runs. Every flag is checked before any work starts (training and
validation seeds apart and off the evaluation seeds, positive step counts, a writable
checkpoint path): a bad one is one line naming it, exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from hybrid_lab.commands.simulate_cmd import check_levels, whole_numbers
from hybrid_lab.discipline import Discipline
from hybrid_operator.commands.arguments import (
    non_negative_int,
    output_file,
    positive_float,
    positive_int,
)
from hybrid_policy.scenario.fields import ScenarioError
from hybrid_policy.scenario.loader import load_scenario
from hybrid_policy.scenario.workload import with_trace_path

EVALUATION_SEEDS = range(10, 15)


def register(subparsers: Any) -> None:
    """Add the ``train`` and ``dqn-bench`` sub-commands."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "train", help="train the DQN node scorer in the simulator", description=__doc__
    )
    p.add_argument(
        "--scenario",
        action="append",
        help="built-in name or a YAML file; repeat to train on several in turn "
        "(default seed-paper)",
    )
    p.add_argument("--trace", help="replay this trace file instead of the trace scenarios' own")
    p.add_argument(
        "--trace-window-days",
        type=positive_float,
        default=7.0,
        help="trace scenarios are cut into windows this long, one episode each (default 7)",
    )
    p.add_argument("--levels", default="medium,heavy", help="workload levels to train on")
    p.add_argument("--train-seeds", default="0,1,2,3,4,5,6,7,8", help="comma-separated")
    p.add_argument("--validation-seeds", default="9", help="picks the best network")
    p.add_argument("--steps", type=positive_int, required=True, help="pods placed while learning")
    p.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of the network and exploration"
    )
    p.add_argument("--out", type=output_file, required=True, help="checkpoint path (.pt)")
    p.add_argument(
        "--eval-every", type=positive_int, default=10_000, help="steps between evaluations"
    )
    p.add_argument(
        "--warm-start-steps", type=non_negative_int, default=5_000, help="binpack-led steps"
    )
    p.add_argument("--drop-features", default="", help="feature groups to hide (ablation)")
    p.add_argument("--horizon-hours", type=positive_float, help="shorten the arrival window")
    p.add_argument(
        "--discipline",
        choices=[d.value for d in Discipline],
        default=Discipline.DQN.value,
        help="policy the network learns and is validated inside: dqn (the DQN alone) or "
        "reserve (hybrid-reserve: fair order, reservation, backfill, DQN + binpack scores)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run_train)
    b: argparse.ArgumentParser = subparsers.add_parser(
        "dqn-bench", help="time the DQN scorer on one pod and N nodes (single thread)"
    )
    b.add_argument("--nodes", default="100,5000", help="comma-separated cluster sizes")
    b.add_argument("--repeats", type=positive_int, default=300, help="calls timed per size")
    b.add_argument("--checkpoint", type=Path, help="default: the shipped model")
    b.set_defaults(handler=run_bench)


def run_train(args: argparse.Namespace) -> int:
    """Train and report where the outputs are."""
    from hybrid_lab.training import TrainConfig, train, with_horizon

    try:
        scenarios = [load_scenario(spec) for spec in args.scenario or ["seed-paper"]]
        if args.trace:
            scenarios = [
                with_trace_path(sc, args.trace) if sc.trace is not None else sc for sc in scenarios
            ]
        train_seeds = whole_numbers("--train-seeds", args.train_seeds)
        val_seeds = whole_numbers("--validation-seeds", args.validation_seeds)
        for flag, seeds in (("--train-seeds", train_seeds), ("--validation-seeds", val_seeds)):
            for seed in seeds:
                if seed in EVALUATION_SEEDS:
                    raise ScenarioError(flag, "", "seeds 10-14 are evaluation seeds", seed)
        shared = sorted(set(train_seeds) & set(val_seeds))
        if shared:
            raise ScenarioError(
                "--validation-seeds",
                "",
                "must not repeat a training seed",
                ",".join(map(str, shared)),
            )
        levels = [x.strip() for x in args.levels.split(",") if x.strip()]
        for scenario in scenarios:
            if scenario.trace is None:
                check_levels(scenario, levels)
        from hybrid_policy.features import FEATURE_GROUPS

        dropped = [g.strip() for g in args.drop_features.split(",") if g.strip()]
        for group in dropped:
            if group not in FEATURE_GROUPS:
                known = ", ".join(FEATURE_GROUPS)
                raise ScenarioError("--drop-features", "", f"no group {group!r} ({known})")
    except ScenarioError as exc:
        print(f"hybrid-scheduler train: {exc}", file=sys.stderr)
        return 2
    config = TrainConfig(
        scenarios=[with_horizon(sc, args.horizon_hours) for sc in scenarios],
        levels=levels,
        train_seeds=train_seeds,
        validation_seeds=val_seeds,
        steps=args.steps,
        seed=args.seed,
        out=args.out,
        eval_every=args.eval_every,
        warm_start_steps=args.warm_start_steps,
        drop_groups=dropped,
        show_progress=not args.quiet and sys.stderr.isatty(),
        trace_window_days=args.trace_window_days,
        discipline=Discipline(args.discipline),
    )
    try:
        result = train(config)
    except ScenarioError as exc:
        print(f"hybrid-scheduler train: {exc}", file=sys.stderr)
        return 2
    print(f"trained {result.steps} steps in {result.wall_s:.0f} s")
    for name, jct in result.best_validation_jct_min.items():
        baselines = ", ".join(f"{k} {v:.2f}" for k, v in result.baseline_jct_min[name].items())
        print(f"best validation mean JCT, {name}: {jct:.2f} min ({baselines})")
    for path in (result.checkpoint, result.log_csv, result.curve_png):
        print(f"wrote {path}")
    return 0


def run_bench(args: argparse.Namespace) -> int:
    """Print p50/p95 scoring latency per cluster size."""
    from hybrid_lab.dqn_bench import time_scoring
    from hybrid_policy.dqn.checkpoint import (
        CheckpointError,
        default_checkpoint_path,
        load_checkpoint,
    )

    path = args.checkpoint or default_checkpoint_path()
    try:
        network = load_checkpoint(path).network
        sizes = whole_numbers("--nodes", args.nodes, minimum=1)
    except (CheckpointError, ScenarioError) as exc:
        print(f"hybrid-scheduler dqn-bench: {exc}", file=sys.stderr)
        return 2
    print(f"DQN scorer {path}, one pod, all nodes feasible, 1 thread, {args.repeats} calls")
    print("| nodes | p50 ms | p95 ms |")
    print("|---|---|---|")
    for n in sizes:
        t = time_scoring(network, n, args.repeats)
        print(f"| {n} | {t.p50_ms:.3f} | {t.p95_ms:.3f} |")
    return 0
