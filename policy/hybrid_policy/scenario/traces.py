"""Job traces: the canonical job CSV, and the converter from the Philly trace.

The canonical CSV has one row per job:
``submit_time_s, duration_s, gpus, cpu_millicores, memory_bytes, namespace, task_type``;
the last four may be empty and then come from the scenario (per-GPU CPU and memory of the
task type, namespace ``default``). Durations are run times at node performance 100.

Philly jobs wider than one node (16 to 128 GPUs) are left out by default, and the
converter reports how many jobs (and how much GPU-time) that removes; with the trace's
``wide_jobs: gang`` they are kept, and a job wider than the widest node becomes a gang of
whole-node pods (``docs/gangs.md``).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from hybrid_policy.resources import CPU, GPU, MEMORY
from hybrid_policy.scenario.fields import ScenarioError, check_number
from hybrid_policy.scenario.jobs import Job, task_requests
from hybrid_policy.scenario.model import DEFAULT_USAGE, Scenario, TaskType, WideJobs

CANONICAL_COLUMNS = (
    "submit_time_s",
    "duration_s",
    "gpus",
    "cpu_millicores",
    "memory_bytes",
    "namespace",
    "task_type",
)
_REQUIRED = ("submit_time_s", "duration_s", "gpus")
PHILLY_COLUMNS = ("timestamp", "duration", "num_gpus", "cluster")


@dataclass(frozen=True)
class CanonicalRow:
    """One job of a canonical trace, before scenario defaults are applied."""

    submit_time_s: float
    duration_s: float
    gpus: int
    cpu_millicores: int | None = None
    memory_bytes: int | None = None
    namespace: str = ""
    task_type: str = ""


def _open_csv(path: Path, required: Sequence[str]) -> tuple[csv.DictReader[str], Iterable[str]]:
    if not path.is_file():
        raise ScenarioError(str(path), "", "trace file not found")
    try:
        handle = io.StringIO(path.read_text(encoding="utf-8"), newline="")
    except UnicodeDecodeError as exc:
        raise ScenarioError(str(path), "", f"not a UTF-8 text file ({exc.reason})") from None
    except OSError as exc:
        raise ScenarioError(str(path), "", f"cannot read: {exc.strerror or exc}") from None
    reader = csv.DictReader(handle)
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in required if c not in header]
    if missing:
        handle.close()
        raise ScenarioError(
            str(path), "header", f"missing column(s) {', '.join(missing)}", ",".join(header)
        )
    reader.fieldnames = header
    return reader, handle


def read_canonical(path: Path) -> list[CanonicalRow]:
    """Parse and validate a canonical job CSV."""
    reader, handle = _open_csv(path, _REQUIRED)
    with handle:  # type: ignore[attr-defined]
        rows = [
            _canonical_row(f"{path}: line {line}", raw) for line, raw in enumerate(reader, start=2)
        ]
    if not rows:
        raise ScenarioError(str(path), "", "trace has no jobs")
    return rows


def _canonical_row(src: str, raw: dict[str, str | None]) -> CanonicalRow:
    def text(col: str) -> str:
        return (raw.get(col) or "").strip()

    def optional(col: str) -> int | None:
        value = text(col)
        return None if value == "" else int(check_number(src, col, value, minimum=0))

    gpus = check_number(src, "gpus", text("gpus"), minimum=0)
    if gpus != int(gpus):
        raise ScenarioError(src, "gpus", "must be a whole number", text("gpus"))
    return CanonicalRow(
        submit_time_s=check_number(src, "submit_time_s", text("submit_time_s"), minimum=0),
        duration_s=check_number(
            src, "duration_s", text("duration_s"), minimum=0, exclusive_minimum=True
        ),
        gpus=int(gpus),
        cpu_millicores=optional("cpu_millicores"),
        memory_bytes=optional("memory_bytes"),
        namespace=text("namespace"),
        task_type=text("task_type"),
    )


def write_canonical(path: Path, rows: Iterable[CanonicalRow]) -> int:
    """Write rows as a canonical job CSV; returns how many were written."""
    count = 0
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CANONICAL_COLUMNS)
        for r in rows:
            writer.writerow(
                [
                    f"{r.submit_time_s:g}",
                    f"{r.duration_s:g}",
                    r.gpus,
                    "" if r.cpu_millicores is None else r.cpu_millicores,
                    "" if r.memory_bytes is None else r.memory_bytes,
                    r.namespace,
                    r.task_type,
                ]
            )
            count += 1
    return count


def jobs_from_rows(rows: Sequence[CanonicalRow], scenario: Scenario) -> list[Job]:
    """Turn trace rows into jobs, filling CPU, memory and namespace from the scenario; with
    ``wide_jobs: gang``, a job wider than the widest node becomes a gang of pods of at
    most a node's GPUs each."""
    ordered = sorted(rows, key=lambda r: r.submit_time_s)
    start = ordered[0].submit_time_s if ordered else 0.0
    widest = max((g.gpus for g in scenario.nodes), default=0)
    gangs = scenario.trace is not None and scenario.trace.wide_jobs is WideJobs.GANG
    jobs = []
    for i, r in enumerate(ordered):
        task = _task_for(scenario, r.task_type)
        members = math.ceil(r.gpus / widest) if gangs and widest and r.gpus > widest else 1
        gpus = math.ceil(r.gpus / members)
        requests = task_requests(task, gpus) if task else {GPU: gpus}
        if r.cpu_millicores is not None:
            requests[CPU] = r.cpu_millicores
        if r.memory_bytes is not None:
            requests[MEMORY] = r.memory_bytes
        jobs.append(
            Job(
                job_id=i,
                submit_s=r.submit_time_s - start,
                runtime_s=r.duration_s,
                requests=requests,
                namespace=r.namespace or "default",
                task_type=r.task_type or (task.name if task else "default"),
                usage=task.usage if task else DEFAULT_USAGE,
                members=members,
            )
        )
    return jobs


def _task_for(scenario: Scenario, name: str) -> TaskType | None:
    if name:
        found = scenario.task_type(name)
        if found is not None:
            return found
    return scenario.task_types[0] if scenario.task_types else None


@dataclass
class PhillyConversion:
    """What converting the Philly trace kept, changed and left out."""

    read: int = 0
    kept: int = 0
    outside_window: int = 0
    zero_duration: int = 0
    wider_than_node: int = 0
    wide_gpu_seconds: float = 0.0
    kept_gpu_seconds: float = 0.0
    #: Whether jobs wider than one node were kept (as gangs) rather than left out.
    wide_kept: bool = False

    def summary(self) -> str:
        """One paragraph for the terminal."""
        total = self.wide_gpu_seconds + self.kept_gpu_seconds
        share = self.wide_gpu_seconds / total if total else 0.0
        if self.wide_kept:
            return (
                f"read {self.read} jobs; kept {self.kept}, of which {self.wider_than_node} "
                f"wider than one node as gangs ({share:.1%} of the window's GPU-time); left "
                f"out {self.outside_window} outside the window, {self.zero_duration} with "
                "zero duration"
            )
        return (
            f"read {self.read} jobs; kept {self.kept}; left out {self.outside_window} outside the "
            f"window, {self.zero_duration} with zero duration, {self.wider_than_node} wider than "
            f"one node ({share:.1%} of the window's GPU-time)"
        )


def _parse_time(source: str, field: str, text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise ScenarioError(source, field, "must be an ISO date or datetime", text) from None


def convert_philly(
    path: Path,
    start: str | None = None,
    end: str | None = None,
    max_gpus_per_job: int = 8,
    keep_wide: bool = False,
) -> tuple[list[CanonicalRow], PhillyConversion]:
    """Read the Philly trace; keep jobs submitted in [start, end) that fit on one node
    (all of them with ``keep_wide``: the wider ones become gangs when replayed).

    Submit times become seconds after ``start`` (or after the first kept job); the
    virtual cluster becomes namespace ``vc-<hash>``.
    """
    lo = _parse_time("--start", "start", start) if start else None
    hi = _parse_time("--end", "end", end) if end else None
    reader, handle = _open_csv(path, PHILLY_COLUMNS)
    report = PhillyConversion(wide_kept=keep_wide)
    kept: list[tuple[datetime, float, int, str]] = []
    with handle:  # type: ignore[attr-defined]
        for line, raw in enumerate(reader, start=2):
            src = f"{path}: line {line}"
            report.read += 1
            when = _parse_time(src, "timestamp", raw["timestamp"] or "")
            if (lo and when < lo) or (hi and when >= hi):
                report.outside_window += 1
                continue
            duration = check_number(src, "duration", raw["duration"], minimum=0)
            gpus_f = check_number(src, "num_gpus", raw["num_gpus"], minimum=0)
            gpus = int(gpus_f)
            if duration <= 0:
                report.zero_duration += 1
                continue
            if gpus > max_gpus_per_job:
                report.wider_than_node += 1
                report.wide_gpu_seconds += gpus * duration
                if not keep_wide:
                    continue
            else:
                report.kept_gpu_seconds += gpus * duration
            kept.append((when, duration, gpus, (raw["cluster"] or "").strip()))
    if not kept:
        raise ScenarioError(str(path), "", "no jobs left after filtering (check --start/--end)")
    kept.sort(key=lambda k: k[0])
    origin = lo or kept[0][0]
    rows = [
        CanonicalRow(
            submit_time_s=(when - origin).total_seconds(),
            duration_s=duration,
            gpus=gpus,
            namespace=f"vc-{cluster}" if cluster else "",
        )
        for when, duration, gpus, cluster in kept
    ]
    report.kept = len(rows)
    return rows, report


def nodes_for_load(
    rows: Sequence[CanonicalRow], gpus_per_node: int, target_load: float, performance: float
) -> int:
    """Node count that makes the trace's offered GPU load ``target_load``."""
    if gpus_per_node <= 0:
        raise ScenarioError(
            "trace", "nodes[0].gpus", "sizing for a load needs GPUs per node", gpus_per_node
        )
    times = [r.submit_time_s for r in rows]
    window = max(times) - min(times)
    work = math.fsum(r.gpus * r.duration_s for r in rows) * 100.0 / performance
    if window <= 0 or work <= 0:
        raise ScenarioError("trace", "trace", "too short to size a cluster for a load")
    return max(1, math.ceil(work / (target_load * window * gpus_per_node)))
