"""Terminal tables in the shape of the seed paper's Table 2, with spread over seeds."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hybrid_policy.report.record import RunSummary
from hybrid_policy.report.stats import mean_ci95

Record = RunSummary
Getter = Callable[[Record], float]


def _cell(records: Sequence[Record], get: Getter, scale: float = 1.0, digits: int = 1) -> str:
    mean, half = mean_ci95([get(r) * scale for r in records])
    if mean != mean:  # NaN
        return "-"
    if len(records) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ±{half:.{digits}f}"


def _render(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = "  ".join(
        h.ljust(w) if i == 0 else h.rjust(w)
        for i, (h, w) in enumerate(zip(header, widths, strict=True))
    )
    rule = "  ".join("-" * w for w in widths)
    body = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    return "\n".join([line, rule, *body])


def group(records: Sequence[Record]) -> dict[tuple[str, str], list[Record]]:
    """Records by (workload level, policy), in first-seen order."""
    out: dict[tuple[str, str], list[Record]] = {}
    for r in records:
        out.setdefault((r.workload, r.policy), []).append(r)
    return out


def task_types(records: Sequence[Record]) -> list[str]:
    """Every task type that appears in the records."""
    seen: list[str] = []
    for r in records:
        seen.extend(t for t in r.jct_by_task_type_s if t not in seen)
    return seen


def _task_jct(task: str) -> Getter:
    def get(record: Record) -> float:
        return record.jct_by_task_type_s.get(task, float("nan"))

    return get


def table2(records: Sequence[Record]) -> str:
    """Utilisation and mean completion time per task type, one block per workload level."""
    tasks = task_types(records)
    header = [
        "policy",
        "offered",
        "GPU util %",
        "CPU util %",
        "mem util %",
        *(f"JCT {t} min" for t in tasks),
        "JCT mean min",
    ]
    blocks = []
    grouped = group(records)
    for level in dict.fromkeys(r.workload for r in records):
        rows = []
        for (lvl, policy), rs in grouped.items():
            if lvl != level:
                continue
            rows.append(
                [
                    policy,
                    _cell(rs, lambda r: r.offered_load, 1.0, 2),
                    _cell(rs, lambda r: r.utilization.gpu, 100.0),
                    _cell(rs, lambda r: r.utilization.cpu, 100.0),
                    _cell(rs, lambda r: r.utilization.memory, 100.0),
                    *(_cell(rs, _task_jct(t), 1 / 60) for t in tasks),
                    _cell(rs, lambda r: r.jct_s.mean, 1 / 60),
                ]
            )
        seeds = len(next(rs for (lvl, _), rs in grouped.items() if lvl == level))
        blocks.append(
            f"workload {level} ({seeds} seed{'s' if seeds > 1 else ''}, mean ±95% CI)\n"
            + _render(header, rows)
        )
    return "\n\n".join(blocks)


def queueing_table(records: Sequence[Record]) -> str:
    """Tail latency, waiting, throughput, unfinished work, fairness and decision cost."""
    header = [
        "workload",
        "policy",
        "JCT p95 min",
        "wait min",
        "jobs/h",
        "unfinished",
        "Jain",
        "worst-ns slowdown",
        "decide ms/pod",
        "events/s",
        "run s",
    ]
    rows = [
        [
            level,
            policy,
            _cell(rs, lambda r: r.jct_s.p95, 1 / 60),
            _cell(rs, lambda r: r.wait_s.mean, 1 / 60, 2),
            _cell(rs, lambda r: r.throughput_jobs_per_h),
            _cell(rs, lambda r: r.unfinished, 1.0, 0),
            _cell(rs, lambda r: r.jain_fairness, 1.0, 3),
            _cell(rs, lambda r: r.slowdown.worst_namespace, 1.0, 2),
            _cell(rs, lambda r: r.decision_ms_per_pod, 1.0, 3),
            _cell(rs, lambda r: r.events_per_s, 1.0, 0),
            _cell(rs, lambda r: r.wall_s, 1.0, 2),
        ]
        for (level, policy), rs in group(records).items()
    ]
    return _render(header, rows)


def namespace_table(records: Sequence[Record]) -> str:
    """Per namespace: share of its weighted fair entitlement and mean completion time."""
    namespaces: list[str] = []
    for r in records:
        namespaces.extend(ns for ns in r.namespace_share if ns not in namespaces)
    header = [
        "workload",
        "policy",
        *(f"share {ns}" for ns in namespaces),
        *(f"JCT {ns} min" for ns in namespaces),
    ]
    rows = []
    for (level, policy), rs in group(records).items():
        shares = [_cell(rs, _namespace_share(ns), 1.0, 3) for ns in namespaces]
        jcts = [_cell(rs, _namespace_jct(ns), 1 / 60) for ns in namespaces]
        rows.append([level, policy, *shares, *jcts])
    return _render(header, rows)


def _namespace_share(namespace: str) -> Getter:
    def get(record: Record) -> float:
        value = record.namespace_share.get(namespace)
        return float("nan") if value is None else value

    return get


def _namespace_jct(namespace: str) -> Getter:
    def get(record: Record) -> float:
        return record.jct_by_namespace_s.get(namespace, float("nan"))

    return get


def prediction_table(records: Sequence[Record]) -> str:
    """Run-time prediction errors per kind and source, for policies that predict ("" when
    none does): predictions per run, mean absolute error, median relative error, median
    ratio of predicted to actual."""
    header = [
        "workload",
        "policy",
        "predicted",
        "source",
        "count/run",
        "MAE min",
        "median |rel err|",
        "median pred/actual",
    ]
    rows = []
    for (level, policy), rs in group(records).items():
        kinds = {(k, s) for r in rs for k, by in r.prediction_error.items() for s in by}
        for kind, source in sorted(kinds):
            rows.append(
                [
                    level,
                    policy,
                    kind,
                    source,
                    _cell(rs, _prediction(kind, source, "count"), 1.0, 0),
                    _cell(rs, _prediction(kind, source, "mean_abs_error_s"), 1 / 60, 2),
                    _cell(rs, _prediction(kind, source, "median_abs_relative_error"), 1.0, 2),
                    _cell(rs, _prediction(kind, source, "median_ratio"), 1.0, 2),
                ]
            )
    return _render(header, rows) if rows else ""


def _prediction(kind: str, source: str, field: str) -> Getter:
    def get(record: Record) -> float:
        return record.prediction_error.get(kind, {}).get(source, {}).get(field, float("nan"))

    return get


def gang_table(records: Sequence[Record]) -> str:
    """Gang jobs, the gangs deadlocked when the run ended, and the GPU-hours bound pods held
    idle waiting for the rest of their gang ("" when no run has gangs)."""
    if not any(r.gang_jobs for r in records):
        return ""
    header = ["workload", "policy", "gang jobs", "deadlocked", "idle gang GPU-h"]
    rows = [
        [
            level,
            policy,
            _cell(rs, lambda r: float(r.gang_jobs), 1.0, 0),
            _cell(rs, lambda r: float(r.deadlocked_gangs), 1.0, 0),
            _cell(rs, lambda r: r.idle_gang_gpu_hours, 1.0, 1),
        ]
        for (level, policy), rs in group(records).items()
    ]
    return _render(header, rows)


def preemption_table(records: Sequence[Record]) -> str:
    """Preemptions per job (mean, and the most any job had), the GPU-hours of work they
    threw away, the takes that were back and forth (and the shortest gap over the
    records), team reversals and those at once, then the jobs stopped per ordered pair
    of teams ("" when no run stopped a job)."""
    if not any(r.most_preemptions for r in records):
        return ""
    header = [
        "workload",
        "policy",
        "preemptions/job",
        "most on one job",
        "lost GPU-h",
        "back-and-forth",
        "shortest gap min",
        "reversals",
        "at once",
    ]
    rows = [
        [
            level,
            policy,
            _cell(rs, lambda r: r.preemptions_per_job, 1.0, 3),
            _cell(rs, lambda r: float(r.most_preemptions), 1.0, 0),
            _cell(rs, lambda r: r.lost_gpu_hours, 1.0, 1),
            _cell(rs, lambda r: float(r.back_and_forth), 1.0, 1),
            _min_cell(rs, lambda r: r.shortest_back_and_forth_s, 1 / 60),
            _cell(rs, lambda r: float(r.team_reversals), 1.0, 1),
            _cell(rs, lambda r: float(r.team_reversals_at_once), 1.0, 1),
        ]
        for (level, policy), rs in group(records).items()
    ]
    pairs = _pair_rows(records)
    if not pairs:
        return _render(header, rows)
    pair_header = ["workload", "policy", "preemptor->victim", "jobs stopped/run"]
    return _render(header, rows) + "\n\n" + _render(pair_header, pairs)


def _min_cell(records: Sequence[Record], get: Getter, scale: float) -> str:
    """The smallest value over the records ("-" when none has one)."""
    values = [get(r) * scale for r in records if get(r) == get(r)]
    return f"{min(values):.1f}" if values else "-"


def _pair_rows(records: Sequence[Record]) -> list[list[str]]:
    """One row per (level, policy) and ordered pair of teams with a take in some run."""
    rows: list[list[str]] = []
    for (level, policy), rs in group(records).items():
        pairs = sorted({pair for r in rs for pair in r.preemptions_by_pair})
        rows.extend([level, policy, pair, _cell(rs, _pair(pair), 1.0, 1)] for pair in pairs)
    return rows


def _pair(pair: str) -> Getter:
    def get(record: Record) -> float:
        return float(record.preemptions_by_pair.get(pair, 0))

    return get
