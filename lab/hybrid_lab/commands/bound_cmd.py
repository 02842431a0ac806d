"""``hybrid-scheduler bound``: lower bounds on mean completion time for a scenario's runs.

For each (level, seed) it prints what no scheduler can beat on that workload: every job on
the fastest node, and the capacity bound of :mod:`hybrid_policy.report.bound` (free
preemption, migration and GPU sharing, but node speeds and GPU counts as they are). Put
next to a target on mean completion time, it says whether the target is reachable. A bad
scenario, trace, level, seed or output path is one line and exit status 2; a bound the
solver cannot compute, exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from typing import Any

from tqdm import tqdm

from hybrid_lab.commands.simulate_cmd import add_workload_arguments, read_workload_arguments
from hybrid_operator.commands.arguments import output_file, write_output
from hybrid_policy.report.bound import BoundError, capacity_bound
from hybrid_policy.report.stats import mean_ci95
from hybrid_policy.scenario.fields import ScenarioError
from hybrid_policy.scenario.workload import prepare_workload


def register(subparsers: Any) -> None:
    """Add the ``bound`` sub-command."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "bound",
        help="lower bounds on mean completion time that no scheduler can beat",
        description=__doc__,
    )
    add_workload_arguments(p)
    p.add_argument("--json", type=output_file, help="write every bound to this JSON file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Compute and print the bounds."""
    try:
        scenario, levels, seeds = read_workload_arguments(args)
    except ScenarioError as exc:
        print(f"hybrid-scheduler bound: {exc}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    pairs = [(level, seed) for level in levels for seed in seeds]
    show = not args.quiet and sys.stderr.isatty()
    for level, seed in tqdm(pairs, desc="bounding", unit="run", disable=not show, leave=False):
        try:
            workload = prepare_workload(scenario, level, seed)
            if not workload.jobs:
                raise ScenarioError(scenario.source, "", "no jobs to bound (horizon too short?)")
        except ScenarioError as exc:
            print(f"hybrid-scheduler bound: {level} seed {seed}: {exc}", file=sys.stderr)
            return 2
        try:
            bound = capacity_bound(workload)
        except BoundError as exc:
            print(f"hybrid-scheduler bound: {level} seed {seed}: {exc}", file=sys.stderr)
            return 1
        rows.append({"workload": level, "seed": seed, **asdict(bound)})
    elapsed = time.perf_counter() - started
    print(f"scenario {scenario.name} ({scenario.source}); {len(rows)} runs in {elapsed:.1f} s")
    print("lower bounds on mean JCT (min), any scheduler, even preemptive with free migration")
    print()
    print(_table(rows, levels))
    if args.json:
        payload = {"scenario": scenario.name, "source": scenario.source, "bounds": rows}
        write_output("--json", args.json, json.dumps(payload, indent=1) + "\n")
        print(f"\nwrote {args.json}")
    return 0


def _table(rows: list[dict[str, Any]], levels: list[str]) -> str:
    lines = [
        "| workload | seeds | jobs | fastest node | capacity | capacity per seed |",
        "|---|---|---|---|---|---|",
    ]
    for level in levels:
        mine = [r for r in rows if r["workload"] == level]
        fast = [r["fastest_node_s"] / 60.0 for r in mine]
        cap = [r["capacity_s"] / 60.0 for r in mine]
        jobs = sum(int(r["jobs"]) for r in mine) / len(mine)
        per_seed = " / ".join(f"{c:.2f}" for c in cap)
        seeds = ",".join(str(r["seed"]) for r in mine)
        lines.append(f"| {level} | {seeds} | {jobs:.0f} | {_ci(fast)} | {_ci(cap)} | {per_seed} |")
    return "\n".join(lines)


def _ci(values: list[float]) -> str:
    mean, half = mean_ci95(values)
    return f"{mean:.2f} ±{half:.2f}"
