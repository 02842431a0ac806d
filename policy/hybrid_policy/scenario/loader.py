"""Loading scenarios: the built-in ``seed-paper`` definition and YAML files.

Both go through the same validation, so the built-in scenario is checked like any file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from hybrid_policy.resources import CPU, GPU, MEMORY
from hybrid_policy.scenario.fields import FieldReader, ScenarioError, check_number
from hybrid_policy.scenario.model import (
    DEFAULT_USAGE,
    BurstSpec,
    GangSpec,
    MetricsSpec,
    NamespaceSpec,
    NodeGroup,
    PreemptionCostSpec,
    ProgressSpec,
    RuntimeDistribution,
    Scenario,
    TaskType,
    TraceSpec,
    UserEstimateSpec,
    WideJobs,
)

#: The seed paper's Table 1, made precise (see docs/scenarios.md).
SEED_PAPER: dict[str, Any] = {
    "name": "seed-paper",
    "seed": 7,
    "horizon_hours": 100,
    "nodes": [
        {"count": 10, "gpus": 8, "cpu": 64, "memory_gib": 512, "performance": [50, 100]},
    ],
    "namespaces": [
        {"name": "team-a", "weight": 1, "job_share": 0.4},
        {"name": "team-b", "weight": 1, "job_share": 0.3},
        {"name": "team-c", "weight": 2, "job_share": 0.2},
        {"name": "team-d", "weight": 1, "job_share": 0.1},
    ],
    "task_types": [
        {
            "name": "image-classification",
            "share": 0.5,
            "gpus": {1: 0.6, 2: 0.3, 4: 0.1},
            "cpu_per_gpu": 6,
            "memory_gib_per_gpu": 32,
            "runtime_minutes": {"median": 6, "mean": 8},
            "usage": {"gpu": 0.85, "cpu": 0.6, "memory": 0.7},
        },
        {
            "name": "nlp",
            "share": 0.5,
            "gpus": {2: 0.5, 4: 0.35, 8: 0.15},
            "cpu_per_gpu": 4,
            "memory_gib_per_gpu": 64,
            "runtime_minutes": {"median": 8, "mean": 11},
            "usage": {"gpu": 0.9, "cpu": 0.5, "memory": 0.8},
        },
    ],
    "workloads": {"light": 0.55, "medium": 0.75, "heavy": 0.95},
}

BUILTIN: dict[str, dict[str, Any]] = {"seed-paper": SEED_PAPER}

_TOP = {
    "name",
    "seed",
    "horizon_hours",
    "nodes",
    "namespaces",
    "task_types",
    "workloads",
    "trace",
    "metrics",
    "user_estimates",
    "progress",
    "gangs",
    "preemption",
    "bursts",
    "schedule_interval_s",
    "batch_size",
}
_USAGE_KEYS = {"gpu": GPU, "cpu": CPU, "memory": MEMORY}
_SHARE_TOLERANCE = 1e-6


def load_scenario(spec: str) -> Scenario:
    """A built-in scenario by name, or a YAML file by path."""
    if spec in BUILTIN:
        return parse_scenario(BUILTIN[spec], f"builtin:{spec}")
    path = Path(spec)
    if not path.is_file():
        known = ", ".join(BUILTIN)
        raise ScenarioError(spec, "", f"no such scenario file (built-in scenarios: {known})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ScenarioError(str(path), "", f"not valid YAML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(str(path), "", f"not a UTF-8 text file ({exc.reason})") from None
    except OSError as exc:
        raise ScenarioError(str(path), "", f"cannot read: {exc.strerror or exc}") from None
    return parse_scenario(data, str(path), base_dir=path.parent)


def parse_scenario(data: object, source: str, base_dir: Path | None = None) -> Scenario:
    """Validate a parsed scenario document."""
    top = FieldReader(source, data)
    top.check_keys(_TOP)
    # Fields are read in the order a scenario file lists them, so the first problem in
    # the file is the one reported.
    name = top.string("name")
    trace = _trace(top, base_dir) if top.has("trace") else None
    seed = top.integer("seed", 0, minimum=0)
    horizon_hours = top.number("horizon_hours", 0.0 if trace else None, minimum=0.0)
    nodes = tuple(_node_group(r) for r in top.children("nodes"))
    has_namespaces = top.has("namespaces") or trace is None
    namespaces = _namespaces(top, shares_required=trace is None) if has_namespaces else ()
    task_types = _task_types(top, for_trace=trace is not None)
    workloads = _workloads(top) if trace is None else {"trace": 1.0}
    if trace is not None and top.has("gangs"):
        raise ScenarioError(source, "gangs", "applies to generated workloads, not to a trace")
    if top.has("bursts") and (trace is not None or top.has("gangs")):
        other = "a trace" if trace is not None else "gangs"
        raise ScenarioError(source, "bursts", f"applies to single-pod jobs drawn, not to {other}")
    return Scenario(
        name=name,
        seed=seed,
        horizon_hours=horizon_hours,
        nodes=nodes,
        namespaces=namespaces,
        task_types=task_types,
        workloads=workloads,
        trace=trace,
        metrics=_metrics(top) if top.has("metrics") else MetricsSpec(),
        user_estimates=_user_estimates(top) if top.has("user_estimates") else None,
        progress=_progress(top) if top.has("progress") else ProgressSpec(),
        gangs=_gangs(top) if top.has("gangs") else None,
        preemption=_preemption(top) if top.has("preemption") else PreemptionCostSpec(),
        bursts=_bursts(top) if top.has("bursts") else None,
        schedule_interval_s=top.number("schedule_interval_s", 0.0, minimum=0.0),
        batch_size=top.integer("batch_size", 0, minimum=0),
        source=source,
    )


def _node_group(r: FieldReader) -> NodeGroup:
    r.check_keys(
        {"count", "gpus", "cpu", "memory_gib", "performance", "max_pods", "labels", "name_prefix"}
    )
    perf: tuple[float, float] = (100.0, 100.0)
    if r.has("performance"):
        raw = r.raw("performance")
        values = raw if isinstance(raw, list) else [raw, raw]
        if len(values) != 2:
            raise ScenarioError(
                r.source, f"{r.path}.performance", "must be [low, high] or a number", raw
            )
        lo, hi = (
            check_number(r.source, f"{r.path}.performance", v, minimum=0, exclusive_minimum=True)
            for v in values
        )
        if lo > hi:
            raise ScenarioError(r.source, f"{r.path}.performance", "low must not exceed high", raw)
        perf = (lo, hi)
    labels = r.raw("labels", {})
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise ScenarioError(r.source, f"{r.path}.labels", "must map names to strings", labels)
    return NodeGroup(
        count=r.integer("count", minimum=1),
        gpus=r.integer("gpus", minimum=0),
        cpu=r.number("cpu", minimum=0, exclusive_minimum=True),
        memory_gib=r.number("memory_gib", minimum=0, exclusive_minimum=True),
        performance=perf,
        max_pods=r.integer("max_pods", 110, minimum=1),
        labels={str(k): v for k, v in labels.items()},
        name_prefix=r.string("name_prefix", "node"),
    )


def _namespaces(top: FieldReader, shares_required: bool) -> tuple[NamespaceSpec, ...]:
    out = []
    for r in top.children("namespaces"):
        r.check_keys({"name", "weight", "job_share"})
        out.append(
            NamespaceSpec(
                name=r.string("name"),
                weight=r.number("weight", 1.0, minimum=0, exclusive_minimum=True),
                job_share=r.number("job_share", 0.0, minimum=0.0, maximum=1.0),
            )
        )
    if shares_required:
        _check_shares(top.source, "namespaces[*].job_share", [n.job_share for n in out])
    names = [n.name for n in out]
    if len(set(names)) != len(names):
        raise ScenarioError(top.source, "namespaces", "names must be unique", names)
    return tuple(out)


def _task_types(top: FieldReader, for_trace: bool) -> tuple[TaskType, ...]:
    """Task types; a trace scenario needs only their per-GPU CPU, memory and usage,
    since the trace gives GPU counts and run times."""
    out = []
    readers = top.children("task_types")
    for r in readers:
        r.check_keys(
            {
                "name",
                "share",
                "gpus",
                "cpu_per_gpu",
                "memory_gib_per_gpu",
                "runtime_minutes",
                "usage",
            }
        )
        gpus_raw = r.raw("gpus", {1: 1.0} if for_trace else None)
        if not isinstance(gpus_raw, dict) or not gpus_raw:
            raise ScenarioError(
                r.source, f"{r.path}.gpus", "must map GPU counts to probabilities", gpus_raw
            )
        gpus: dict[int, float] = {}
        for count, prob in gpus_raw.items():
            field = f"{r.path}.gpus.{count}"
            n = check_number(r.source, field, count, minimum=0)
            if n != int(n):
                raise ScenarioError(r.source, field, "GPU count must be a whole number", count)
            gpus[int(n)] = check_number(r.source, field, prob, minimum=0.0, maximum=1.0)
        _check_shares(r.source, f"{r.path}.gpus", list(gpus.values()))
        if for_trace and not r.has("runtime_minutes"):
            median = mean = 1.0
        else:
            rt = r.child("runtime_minutes")
            rt.check_keys({"median", "mean"})
            median = rt.number("median", minimum=0, exclusive_minimum=True)
            mean = rt.number("mean", median, minimum=median)
        usage = dict(DEFAULT_USAGE)
        if r.has("usage"):
            u = r.child("usage")
            u.check_keys(set(_USAGE_KEYS))
            for key, resource in _USAGE_KEYS.items():
                usage[resource] = u.number(key, DEFAULT_USAGE[resource], minimum=0.0, maximum=1.0)
        out.append(
            TaskType(
                name=r.string("name"),
                share=r.number(
                    "share", 1.0 / len(readers) if for_trace else None, minimum=0.0, maximum=1.0
                ),
                gpus=gpus,
                cpu_per_gpu=r.number("cpu_per_gpu", minimum=0.0),
                memory_gib_per_gpu=r.number("memory_gib_per_gpu", minimum=0.0),
                runtime=RuntimeDistribution(median, mean),
                usage=usage,
            )
        )
    _check_shares(top.source, "task_types[*].share", [t.share for t in out])
    return tuple(out)


def _workloads(top: FieldReader) -> dict[str, float]:
    raw = top.raw("workloads")
    if not isinstance(raw, dict) or not raw:
        raise ScenarioError(top.source, "workloads", "must map level names to offered loads", raw)
    return {
        str(name): check_number(
            top.source, f"workloads.{name}", v, minimum=0, exclusive_minimum=True
        )
        for name, v in raw.items()
    }


def _trace(top: FieldReader, base_dir: Path | None) -> TraceSpec:
    r = top.child("trace")
    r.check_keys({"path", "format", "start", "end", "target_load", "max_jobs", "wide_jobs"})
    fmt = r.string("format", "canonical")
    if fmt not in {"canonical", "philly"}:
        raise ScenarioError(r.source, "trace.format", "must be 'canonical' or 'philly'", fmt)
    wide = r.string("wide_jobs", WideJobs.DROP.value)
    if wide not in {w.value for w in WideJobs}:
        raise ScenarioError(r.source, "trace.wide_jobs", "must be 'drop' or 'gang'", wide)
    path = Path(r.string("path"))
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    return TraceSpec(
        path=str(path),
        format=fmt,
        wide_jobs=WideJobs(wide),
        start=str(r.raw("start")) if r.has("start") else None,
        end=str(r.raw("end")) if r.has("end") else None,
        target_load=r.number("target_load", minimum=0, exclusive_minimum=True)
        if r.has("target_load")
        else None,
        max_jobs=r.integer("max_jobs", minimum=1) if r.has("max_jobs") else None,
    )


def _metrics(top: FieldReader) -> MetricsSpec:
    r = top.child("metrics")
    r.check_keys({"scrape_interval_s", "delay_s", "noise"})
    return MetricsSpec(
        scrape_interval_s=r.number("scrape_interval_s", 15.0, minimum=0, exclusive_minimum=True),
        delay_s=r.number("delay_s", 30.0, minimum=0.0),
        noise=r.number("noise", 0.02, minimum=0.0, maximum=1.0),
    )


def _user_estimates(top: FieldReader) -> UserEstimateSpec:
    r = top.child("user_estimates")
    r.check_keys({"sigma", "bias", "coverage"})
    return UserEstimateSpec(
        sigma=r.number("sigma", 0.5, minimum=0.0),
        bias=r.number("bias", 1.0, minimum=0.0, exclusive_minimum=True),
        coverage=r.number("coverage", 1.0, minimum=0.0, maximum=1.0),
    )


def _progress(top: FieldReader) -> ProgressSpec:
    r = top.child("progress")
    r.check_keys({"interval_s", "warmup_s", "noise"})
    return ProgressSpec(
        interval_s=r.number("interval_s", 60.0, minimum=0.0),
        warmup_s=r.number("warmup_s", 60.0, minimum=0.0),
        noise=r.number("noise", 0.05, minimum=0.0, maximum=1.0),
    )


def _preemption(top: FieldReader) -> PreemptionCostSpec:
    r = top.child("preemption")
    r.check_keys({"opt_in", "checkpoint_interval_minutes", "restart_overhead_s"})
    interval: float | None = 0.0
    if r.has("checkpoint_interval_minutes"):
        raw = r.raw("checkpoint_interval_minutes")
        field = f"{r.path}.checkpoint_interval_minutes"
        if isinstance(raw, str) and raw.strip().lower() == "none":
            interval = None
        elif isinstance(raw, str):
            raise ScenarioError(r.source, field, "must be a number of minutes or 'none'", raw)
        else:
            interval = check_number(r.source, field, raw, minimum=0.0) * 60.0
    return PreemptionCostSpec(
        opt_in=r.number("opt_in", 1.0, minimum=0.0, maximum=1.0),
        checkpoint_interval_s=interval,
        restart_overhead_s=r.number("restart_overhead_s", 0.0, minimum=0.0),
    )


def _bursts(top: FieldReader) -> BurstSpec:
    r = top.child("bursts")
    r.check_keys({"period_minutes", "spread_minutes"})
    period = r.number("period_minutes", minimum=0, exclusive_minimum=True) * 60.0
    spread = r.number("spread_minutes", 0.0, minimum=0.0) * 60.0
    if spread > period:
        raise ScenarioError(
            r.source, f"{r.path}.spread_minutes", "must not exceed period_minutes", spread / 60.0
        )
    return BurstSpec(period_s=period, spread_s=spread)


def _gangs(top: FieldReader) -> GangSpec:
    r = top.child("gangs")
    r.check_keys({"share", "members", "gpus_per_pod"})
    raw = r.raw("members")
    if not isinstance(raw, dict) or not raw:
        raise ScenarioError(
            r.source, f"{r.path}.members", "must map pod counts to probabilities", raw
        )
    members: dict[int, float] = {}
    for count, prob in raw.items():
        field = f"{r.path}.members.{count}"
        n = check_number(r.source, field, count, minimum=2)
        if n != int(n):
            raise ScenarioError(r.source, field, "pod count must be a whole number", count)
        members[int(n)] = check_number(r.source, field, prob, minimum=0.0, maximum=1.0)
    _check_shares(r.source, f"{r.path}.members", list(members.values()))
    gpus = r.number("gpus_per_pod", 8, minimum=1)
    if gpus != int(gpus):
        raise ScenarioError(r.source, f"{r.path}.gpus_per_pod", "must be a whole number", gpus)
    return GangSpec(
        share=r.number("share", minimum=0.0, maximum=1.0),
        members=members,
        gpus_per_pod=int(gpus),
    )


def _check_shares(source: str, field: str, shares: list[float]) -> None:
    total = math.fsum(shares)
    if abs(total - 1.0) > _SHARE_TOLERANCE and total > 0:
        raise ScenarioError(source, field, "must add up to 1", round(total, 6))
    if total == 0:
        raise ScenarioError(source, field, "must add up to 1", 0)
