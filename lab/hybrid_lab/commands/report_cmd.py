"""``hybrid-scheduler report``: tables and figures of saved runs, without running them again.

Reads one or more JSON files written by ``simulate --json``, keeps the first record of
each (workload, policy, seed) so that files sharing a baseline can be combined, and prints
the same tables as ``simulate``; ``--plots`` writes its figures plus fairness against
completion time. A missing or malformed file, or a run without a field the report reads,
stops with one line naming the file, the run and the field (exit 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from hybrid_lab.commands.simulate_cmd import print_tables, write_figures
from hybrid_operator.commands.arguments import output_dir
from hybrid_policy.report.record import RecordError, RunSummary


class ReportError(ValueError):
    """A results file that cannot be read as ``simulate --json`` output."""


def register(subparsers: Any) -> None:
    """Add the ``report`` sub-command."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "report", help="tables and figures of runs saved by 'simulate --json'", description=__doc__
    )
    p.add_argument("--json", type=Path, nargs="+", required=True, help="simulate --json files")
    p.add_argument("--workload", default="all", help="levels to keep, comma-separated, or 'all'")
    p.add_argument("--policies", default="", help="policies to keep, comma-separated (all)")
    p.add_argument("--plots", type=output_dir, help="write PNG figures into this directory")
    p.set_defaults(handler=run)


def load_records(paths: list[Path]) -> list[RunSummary]:
    """Every run of ``paths``, the first one of each (workload, policy, seed)."""
    seen: set[tuple[str, str, int]] = set()
    records: list[RunSummary] = []
    for path in paths:
        for record in _runs(path):
            key = (record.workload, record.policy, record.seed)
            if key not in seen:
                seen.add(key)
                records.append(record)
    return records


def _runs(path: Path) -> list[RunSummary]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path}: not JSON ({exc})") from None
    except OSError as exc:
        raise ReportError(f"{path}: cannot read: {exc.strerror or exc}") from None
    runs = data.get("runs") if isinstance(data, dict) else None
    if not isinstance(runs, list):
        raise ReportError(f"{path}: not the output of 'simulate --json' (no runs)")
    out = []
    for i, run in enumerate(runs):
        try:
            out.append(RunSummary.from_json(run))
        except RecordError as exc:
            raise ReportError(f"{path}: runs[{i}].{exc}") from None
    return out


def run(args: argparse.Namespace) -> int:
    """Print the tables and write the figures."""
    try:
        records = load_records(args.json)
    except ReportError as exc:
        print(f"hybrid-scheduler report: {exc}", file=sys.stderr)
        return 2
    if args.workload != "all":
        levels = {w.strip() for w in args.workload.split(",")}
        records = [r for r in records if r.workload in levels]
    if args.policies:
        wanted = {p.strip() for p in args.policies.split(",")}
        records = [r for r in records if r.policy in wanted]
    if not records:
        print("hybrid-scheduler report: no runs left after --workload/--policies", file=sys.stderr)
        return 2
    print(f"{len(records)} runs from {', '.join(str(p) for p in args.json)}")
    print_tables(records)
    if args.plots:
        write_figures(records, args.plots)
    return 0
