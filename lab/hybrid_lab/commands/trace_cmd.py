"""``hybrid-scheduler trace``: convert public traces into the canonical job CSV.

``trace convert-philly`` reads the Philly trace (one row per job, virtual cluster as the
tenant), keeps a time window, leaves out jobs wider than one node, and says how many jobs
and how much GPU-time that removed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from hybrid_operator.commands.arguments import UsageError, output_file, positive_int
from hybrid_policy.scenario.fields import ScenarioError
from hybrid_policy.scenario.traces import convert_philly, write_canonical


def register(subparsers: Any) -> None:
    """Add the ``trace`` sub-command and its verbs."""
    p: argparse.ArgumentParser = subparsers.add_parser("trace", help="convert job traces")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    philly = verbs.add_parser("convert-philly", help="Philly trace -> canonical job CSV")
    philly.add_argument(
        "--input",
        type=Path,
        required=True,
        help="philly.csv (timestamp,duration,num_gpus,...,cluster)",
    )
    philly.add_argument("--output", type=output_file, required=True, help="canonical CSV to write")
    philly.add_argument("--start", help="keep jobs submitted at or after this ISO date/time")
    philly.add_argument("--end", help="keep jobs submitted before this ISO date/time")
    philly.add_argument(
        "--max-gpus-per-job",
        type=positive_int,
        default=8,
        help="wider jobs are left out (default 8)",
    )
    philly.set_defaults(handler=convert)


def convert(args: argparse.Namespace) -> int:
    """Convert and report."""
    try:
        rows, report = convert_philly(args.input, args.start, args.end, args.max_gpus_per_job)
    except ScenarioError as exc:
        print(f"hybrid-scheduler trace convert-philly: {exc}", file=sys.stderr)
        return 2
    try:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        written = write_canonical(args.output, rows)
    except OSError as exc:
        raise UsageError(f"--output: cannot write {args.output}: {exc.strerror or exc}") from None
    print(report.summary())
    print(f"wrote {written} jobs to {args.output}")
    return 0
