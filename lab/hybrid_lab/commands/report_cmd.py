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
import math
import sys
from enum import Enum
from pathlib import Path
from typing import Any

from hybrid_lab.commands.simulate_cmd import print_tables, write_figures
from hybrid_operator.commands.arguments import output_dir
from hybrid_policy.report.table import Record


class ReportError(ValueError):
    """A results file that cannot be read as ``simulate --json`` output."""


class Kind(Enum):
    """What a field of a saved run must hold."""

    TEXT = "a string"
    WHOLE = "a whole number"
    #: A number, or null (``simulate --json`` writes NaN as null).
    NUMBER = "a number or null"
    #: A mapping of names to numbers or nulls.
    NUMBERS = "a mapping of names to numbers"


#: Every field the tables and figures read from a run, nested mappings as dicts.
FIELDS: dict[str, Kind | dict[str, Kind]] = {
    "workload": Kind.TEXT,
    "policy": Kind.TEXT,
    "seed": Kind.WHOLE,
    "offered_load": Kind.NUMBER,
    "utilization": dict.fromkeys(("gpu", "cpu", "memory"), Kind.NUMBER),
    "jct_s": dict.fromkeys(("mean", "p95"), Kind.NUMBER),
    "wait_s": {"mean": Kind.NUMBER},
    "jct_by_task_type_s": Kind.NUMBERS,
    "jct_by_namespace_s": Kind.NUMBERS,
    "namespace_share": Kind.NUMBERS,
    "slowdown": Kind.NUMBERS,
    **dict.fromkeys(
        (
            "throughput_jobs_per_h",
            "unfinished",
            "jain_fairness",
            "decision_ms_per_pod",
            "events_per_s",
            "wall_s",
        ),
        Kind.NUMBER,
    ),
}


def _number(value: object) -> float | None:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _checked(where: str, value: object, kind: Kind) -> Any:
    """``value`` as ``kind`` (nulls as NaN), or :class:`ReportError` naming ``where``."""
    if kind is Kind.NUMBERS and isinstance(value, dict):
        numbers = {str(k): _number(v) for k, v in value.items()}
        if None not in numbers.values():
            return numbers
    elif kind is Kind.NUMBER and (number := _number(value)) is not None:
        return number
    elif (kind is Kind.WHOLE and isinstance(value, int) and not isinstance(value, bool)) or (
        kind is Kind.TEXT and isinstance(value, str)
    ):
        return value
    raise ReportError(f"{where}: must be {kind.value} (got {value!r})")


def checked_run(where: str, run: object) -> Record:
    """A saved run with every field the report reads checked, NaN for nulls."""
    if not isinstance(run, dict):
        raise ReportError(f"{where}: must be a run record (got {run!r})")
    out = dict(run)
    for key, kind in FIELDS.items():
        if key not in run:
            raise ReportError(f"{where}.{key}: missing")
        if isinstance(kind, Kind):
            out[key] = _checked(f"{where}.{key}", run[key], kind)
            continue
        inner = run[key]
        if not isinstance(inner, dict):
            raise ReportError(f"{where}.{key}: must be a mapping (got {inner!r})")
        out[key] = dict(inner)
        for name, sub in kind.items():
            if name not in inner:
                raise ReportError(f"{where}.{key}.{name}: missing")
            out[key][name] = _checked(f"{where}.{key}.{name}", inner[name], sub)
    return out


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


def _runs(path: Path) -> list[Record]:
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
    return [checked_run(f"{path}: runs[{i}]", run) for i, run in enumerate(runs)]


def load_records(paths: list[Path]) -> list[Record]:
    """Every run of ``paths``, the first one of each (workload, policy, seed)."""
    seen: set[tuple[str, str, int]] = set()
    records: list[Record] = []
    for path in paths:
        for record in _runs(path):
            key = (record["workload"], record["policy"], record["seed"])
            if key not in seen:
                seen.add(key)
                records.append(record)
    return records


def run(args: argparse.Namespace) -> int:
    """Print the tables and write the figures."""
    try:
        records = load_records(args.json)
    except ReportError as exc:
        print(f"hybrid-scheduler report: {exc}", file=sys.stderr)
        return 2
    if args.workload != "all":
        levels = {w.strip() for w in args.workload.split(",")}
        records = [r for r in records if r["workload"] in levels]
    if args.policies:
        wanted = {p.strip() for p in args.policies.split(",")}
        records = [r for r in records if r["policy"] in wanted]
    if not records:
        print("hybrid-scheduler report: no runs left after --workload/--policies", file=sys.stderr)
        return 2
    print(f"{len(records)} runs from {', '.join(str(p) for p in args.json)}")
    print_tables(records)
    if args.plots:
        write_figures(records, args.plots)
    return 0
