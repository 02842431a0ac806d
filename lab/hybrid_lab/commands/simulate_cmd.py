"""``hybrid-scheduler simulate``: replay a scenario through policies and report.

Prints the seed paper's Table 2 shape plus queueing and fairness figures, and optionally
writes every run as JSON and the two figures as PNG. Bad scenarios, traces and policy
names stop with one line naming the file, field and value (exit 2).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from hybrid_lab.matrix import run_matrix
from hybrid_lab.plots import completion_figure, fairness_figure, utilisation_figure
from hybrid_operator.commands.arguments import UsageError, output_dir, output_file, write_output
from hybrid_policy.policies import ModelOptions, UnknownPolicyError, parse_policy_list
from hybrid_policy.prediction.model import PredictionSource, describe_sources, parse_sources
from hybrid_policy.preemption.options import parse_cost, parse_settings, settings_help
from hybrid_policy.report.record import RunSummary
from hybrid_policy.report.table import (
    gang_table,
    namespace_table,
    prediction_table,
    preemption_table,
    queueing_table,
    table2,
)
from hybrid_policy.reservation import ReservationSettings
from hybrid_policy.scenario.fields import ScenarioError
from hybrid_policy.scenario.loader import load_scenario
from hybrid_policy.scenario.model import PreemptionCostSpec, Scenario
from hybrid_policy.scenario.workload import with_trace_path

DEFAULT_POLICIES = "kube-default,binpack,load-aware,drf,random,srtf-oracle"


def register(subparsers: Any) -> None:
    """Add the ``simulate`` sub-command."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "simulate",
        help="replay a scenario through scheduling policies and report schedule quality",
        description=__doc__,
    )
    add_workload_arguments(p)
    p.add_argument(
        "--policies", default=DEFAULT_POLICIES, help=f"comma-separated (default {DEFAULT_POLICIES})"
    )
    p.add_argument(
        "--model",
        type=Path,
        help="DQN checkpoint for dqn, hybrid and hybrid-reserve (default: the shipped one)",
    )
    p.add_argument(
        "--predictor-sources",
        default="all",
        help="run-time prediction sources the predicting policies (fair-*, hybrid-reserve) "
        "may use: 'all' or comma-separated among progress, user-estimate, history, prior; "
        "their records are then named e.g. hybrid-reserve[history] (default all)",
    )
    p.add_argument(
        "--reservation",
        type=reservation_overrides,
        help="changes to the reserving policies' settings (fair-*, hybrid-reserve), "
        "comma-separated KEY=VALUE among mode (none, reserve, easy, conservative), "
        "max_reservations, max_wait_s (none: no ageing), switch_margin_s, backfill_factor; "
        "their records are then named e.g. fair-easy[max_wait_s=none]",
    )
    p.add_argument(
        "--preemption",
        type=preemption_settings,
        help="let every policy take back opted-in pods after each pass (docs/preemption.md): "
        f"'on', or comma-separated KEY=VALUE among {settings_help()}; records are then "
        "named e.g. hybrid-reserve[preempt]",
    )
    p.add_argument(
        "--preemption-cost",
        type=preemption_cost,
        help="what a preemption costs, in place of the scenario's: comma-separated KEY=VALUE "
        "among opt_in (share of jobs, 0-1), checkpoint_interval_minutes (or none), "
        "restart_overhead_s",
    )
    p.add_argument("--json", type=output_file, help="write every run's record to this JSON file")
    p.add_argument("--plots", type=output_dir, help="write PNG figures into this directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def preemption_settings(text: str) -> str:
    """``--preemption``, checked (argparse names the flag and the problem, exit 2)."""
    try:
        parse_settings(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def preemption_cost(text: str) -> str:
    """``--preemption-cost``, checked (argparse names the flag and the problem, exit 2)."""
    try:
        parse_cost(text, PreemptionCostSpec())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def reservation_overrides(text: str) -> str:
    """``--reservation``, checked against the default settings (argparse names the flag
    and the problem, exit status 2)."""
    try:
        ReservationSettings().overridden(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def predictor_sources(text: str) -> frozenset[PredictionSource] | None:
    """The sources ``--predictor-sources`` names; None for ``all`` (the records keep their
    policy names)."""
    try:
        sources = parse_sources(text)
    except ValueError as exc:
        raise ScenarioError("--predictor-sources", "", str(exc)) from None
    return None if describe_sources(sources) == "all" else sources


def add_workload_arguments(p: argparse.ArgumentParser) -> None:
    """``--scenario``, ``--trace``, ``--workload`` and ``--seeds``: which runs to make."""
    p.add_argument(
        "--scenario", default="seed-paper", help="built-in name (seed-paper) or a YAML file"
    )
    p.add_argument("--trace", help="replay this trace file instead of the scenario's own")
    p.add_argument(
        "--workload", default="all", help="workload level, comma-separated levels, or 'all'"
    )
    p.add_argument(
        "--seeds", default="10,11,12,13,14", help="comma-separated run seeds (default 10-14)"
    )


def read_workload_arguments(args: argparse.Namespace) -> tuple[Scenario, list[str], list[int]]:
    """The scenario, levels and seeds that :func:`add_workload_arguments` asked for."""
    scenario = load_scenario(args.scenario)
    if args.trace:
        scenario = with_trace_path(scenario, args.trace)
    return scenario, workload_levels(scenario, args.workload), whole_numbers("--seeds", args.seeds)


def workload_levels(scenario: Scenario, text: str) -> list[str]:
    """The levels named by ``--workload`` (comma-separated, or ``all``), each checked."""
    levels = list(scenario.workloads) if text == "all" else [w.strip() for w in text.split(",")]
    check_levels(scenario, levels)
    return levels


def check_levels(scenario: Scenario, levels: list[str]) -> None:
    """Raise :class:`ScenarioError` naming the first of ``levels`` that ``scenario`` lacks."""
    for level in levels:
        if level not in scenario.workloads:
            known = ", ".join(scenario.workloads)
            message = f"no level {level!r} (known: {known})"
            raise ScenarioError(scenario.source, "workloads", message)


def whole_numbers(flag: str, text: str, minimum: int = 0) -> list[int]:
    """Comma-separated whole numbers >= ``minimum`` given to ``flag`` (seeds, node counts)."""
    try:
        values = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ScenarioError(flag, "", "must be comma-separated whole numbers", text) from None
    if not values or any(v < minimum for v in values):
        raise ScenarioError(flag, "", f"must be comma-separated whole numbers >= {minimum}", text)
    return values


def _model(path: Path | None) -> ModelOptions | None:
    """Model options for ``--model``, the checkpoint checked before any run starts."""
    if path is None:
        return None
    from hybrid_policy.dqn.checkpoint import CheckpointError, load_checkpoint  # imports torch

    try:
        load_checkpoint(path)
    except CheckpointError as exc:
        raise ScenarioError("--model", "", str(exc)) from None
    return ModelOptions(path=path)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark matrix and report it."""
    try:
        policies = parse_policy_list(args.policies)
        scenario, levels, seeds = read_workload_arguments(args)
        if args.preemption_cost:
            cost = parse_cost(args.preemption_cost, scenario.preemption)
            scenario = dataclasses.replace(scenario, preemption=cost)
        model = _model(args.model)
        sources = predictor_sources(args.predictor_sources)
        notes: list[str] = []
        started = time.perf_counter()
        records = run_matrix(
            scenario,
            levels,
            policies,
            seeds,
            show_progress=not args.quiet and sys.stderr.isatty(),
            notes=notes,
            model=model,
            sources=sources,
            reservation=args.reservation,
            preemption=args.preemption,
        )
    except (ScenarioError, UnknownPolicyError) as exc:
        print(f"hybrid-scheduler simulate: {exc}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - started
    seed_list = ",".join(map(str, seeds))
    print(f"scenario {scenario.name} ({scenario.source}); seeds {seed_list}; ", end="")
    print(f"{len(records)} runs in {elapsed:.1f} s")
    for note in notes:
        print(f"  {note}")
    print_tables(records)
    if args.json:
        payload = {
            "scenario": scenario.name,
            "source": scenario.source,
            "seeds": seeds,
            "policies": policies,
            "workloads": levels,
            "notes": notes,
            "runs": [r.to_json() for r in records],
        }
        text = json.dumps(_finite(payload), indent=1, allow_nan=False) + "\n"
        write_output("--json", args.json, text)
        print(f"\nwrote {args.json}")
    if args.plots:
        write_figures(records, args.plots)
    return 0


def print_tables(records: list[RunSummary]) -> None:
    """Table 2's shape, then queueing and fairness, then per-namespace figures, then the
    run-time prediction errors of policies that predict."""
    for table in (
        table2,
        queueing_table,
        namespace_table,
        prediction_table,
        gang_table,
        preemption_table,
    ):
        text = table(records)
        if text:
            print()
            print(text)


def write_figures(records: list[RunSummary], directory: Path) -> None:
    """The figures of ``records`` as PNG files in ``directory``, each path printed."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for path in (
            utilisation_figure(records, directory / "utilisation.png"),
            completion_figure(records, directory / "completion_time.png"),
            fairness_figure(records, directory / "fairness.png"),
        ):
            print(f"wrote {path}")
    except OSError as exc:
        raise UsageError(f"--plots: cannot write into {directory}: {exc.strerror or exc}") from None


def _finite(value: Any) -> Any:
    """The same structure with NaN and infinities as null (strict JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
