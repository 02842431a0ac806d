"""The benchmark's rounds: a burst of pending pods, then a steady arrival, per scheduler.

For each contender, in a namespace of its own on the same nodes:

* **Burst**: ``burst_pods`` pods are created first, naming a scheduler that does not run
  yet; then the scheduler under test starts, and a watch times every binding. Pods bound
  per second is measured from the first binding to the last (and, less kindly, from the
  moment the process was started, so start-up and the initial list count too).
* **Steady**: with the scheduler running and the burst's pods finished, pods arrive at
  ``rate_per_s`` for ``duration_s``; each pod's latency runs from the moment the API server
  acknowledged its creation to the moment the watch shows ``spec.nodeName``.

API calls per pod come from the API server's own request counters over each phase.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from hybrid_lab.clusterbench.apimetrics import request_totals, scheduler_calls
from hybrid_lab.clusterbench.schedulers import ClientLimits, Contender, start, stop
from hybrid_lab.clusterbench.watch import PodWatch
from hybrid_lab.devcluster.apiserver import ApiServer
from hybrid_lab.devcluster.errors import DevClusterError
from hybrid_lab.devcluster.settings import ClusterSettings
from hybrid_lab.devcluster.workload import fresh_namespace, training_pod, wait_for

NAMESPACE_PREFIX = "cluster-bench-"


@dataclass(frozen=True)
class BenchParams:
    """What one run measures (every field is printed and saved with the results)."""

    burst_pods: int = 5000
    """Pods pending before the scheduler starts."""
    rate_per_s: float = 50.0
    """Steady arrival rate, pods per second."""
    duration_s: float = 120.0
    """How long pods arrive at that rate, seconds."""
    gpus: int = 1
    """``nvidia.com/gpu`` each pod requests."""
    cpu: str = "100m"
    """CPU each pod requests."""
    memory: str = "256Mi"
    """Memory each pod requests."""
    runtime_s: int = 10
    """How long kwok runs each pod once bound, seconds (frees the nodes between phases)."""
    limits: ClientLimits = field(
        default_factory=lambda: ClientLimits(
            qps=50.0, burst=100, batch_interval_s=1.0, batch_size=500
        )
    )
    """API client limits of both schedulers, and our operator's batching."""
    seed: int = 0
    """Seed of our operator's random tie-breaking (kube-scheduler has none to set)."""
    creators: int = 8
    """Threads creating pods."""
    timeout_s: float = 900.0
    """Longest any one wait may take, seconds."""

    @property
    def steady_pods(self) -> int:
        """Pods the steady phase sends."""
        return round(self.rate_per_s * self.duration_s)


@dataclass
class BurstResult:
    """A scheduler's burst phase."""

    pods: int
    bound: int
    create_s: float
    start_to_first_bind_s: float
    first_to_last_bind_s: float
    pods_per_s: float
    pods_per_s_from_start: float
    per_second_min: float
    per_second_median: float
    per_second_max: float
    node_changes: int
    calls: dict[str, Any]


@dataclass
class SteadyResult:
    """A scheduler's steady phase."""

    pods: int
    bound: int
    offered_per_s: float
    max_submit_lag_s: float
    latency_p50_s: float
    latency_p99_s: float
    latency_max_s: float
    latency_mean_s: float
    node_changes: int
    calls: dict[str, Any]


@dataclass
class RoundResult:
    """Everything measured for one contender."""

    label: str
    scheduler_name: str
    policy: str | None
    burst: BurstResult | None = None
    steady: SteadyResult | None = None
    log: str = ""
    #: Why a phase did not finish (a timeout), if it did not.
    error: str | None = None


Say = Callable[[str], None]


def run_rounds(
    api: ApiServer,
    settings: ClusterSettings,
    contenders: list[Contender],
    params: BenchParams,
    workdir: Path,
    say: Say,
    progress: bool = True,
) -> list[RoundResult]:
    """Every contender's burst and steady phase, one after the other."""
    results = []
    for contender in contenders:
        say(f"== {contender.label}")
        result = RoundResult(contender.label, contender.scheduler_name, contender.policy)
        try:
            _round(result, api, settings, contender, params, workdir, say, progress)
        except (TimeoutError, DevClusterError) as exc:
            result.error = str(exc)
            say(f"   stopped: {exc}")
        results.append(result)
    return results


def _round(
    result: RoundResult,
    api: ApiServer,
    settings: ClusterSettings,
    contender: Contender,
    params: BenchParams,
    workdir: Path,
    say: Say,
    progress: bool,
) -> None:
    namespace = NAMESPACE_PREFIX + contender.scheduler_name
    with fresh_namespace(api, namespace, timeout_seconds=120):
        watch = PodWatch(api, namespace).start()
        record = None
        try:
            created_s = _create_burst(api, namespace, contender, params, progress)
            _wait_count(watch, "added", params.burst_pods, "seen by the watch", params, progress)
            before = request_totals(api)
            started = time.monotonic()
            record = start(contender, settings, params.limits, workdir)
            result.log = record.log_path
            _wait_count(watch, "bound", params.burst_pods, "bound (burst)", params, progress)
            _wait_count(watch, "done", params.burst_pods, "finished", params, progress)
            result.burst = _burst_result(
                watch, params, started, created_s, scheduler_calls(before, request_totals(api))
            )
            say(_burst_line(result.burst))
            before = request_totals(api)
            acks = _steady_arrivals(api, namespace, contender, params, progress)
            total = params.burst_pods + len(acks)
            _wait_count(watch, "bound", total, "bound (steady)", params, progress)
            _wait_count(watch, "done", total, "finished", params, progress)
            result.steady = _steady_result(
                watch, acks, params, scheduler_calls(before, request_totals(api))
            )
            say(_steady_line(result.steady))
        finally:
            if record is not None:
                stop(record)
            watch.stop()
        say(f"   deleting namespace {namespace} ...")
    _wait_gone(api, namespace, params)


def _create_burst(
    api: ApiServer, namespace: str, contender: Contender, params: BenchParams, progress: bool
) -> float:
    path = f"/api/v1/namespaces/{namespace}/pods"
    started = time.monotonic()
    with (
        tqdm(
            total=params.burst_pods, desc="   creating (burst)", unit="pod", disable=not progress
        ) as bar,
        ThreadPoolExecutor(max_workers=params.creators) as pool,
    ):

        def create(i: int) -> None:
            api.create(path, _pod(f"burst-{i:05d}", contender, params))
            bar.update(1)

        futures = [pool.submit(create, i) for i in range(params.burst_pods)]
        _finish(pool, futures)
    return time.monotonic() - started


def _finish(pool: ThreadPoolExecutor, futures: list[Future[None]]) -> None:
    """Wait for every future; on an error or Ctrl-C, drop the ones not started yet."""
    try:
        for future in futures:
            future.result()
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise


def _pod(name: str, contender: Contender, params: BenchParams) -> dict[str, Any]:
    return training_pod(
        name,
        gpus=params.gpus,
        cpu=params.cpu,
        memory=params.memory,
        runtime=f"{params.runtime_s}s",
        scheduler_name=contender.scheduler_name,
    )


def _steady_arrivals(
    api: ApiServer, namespace: str, contender: Contender, params: BenchParams, progress: bool
) -> dict[str, tuple[float, float]]:
    """Send pods on a fixed schedule; per pod, (lag behind schedule, acknowledged at)."""
    path = f"/api/v1/namespaces/{namespace}/pods"
    acks: dict[str, tuple[float, float]] = {}
    origin = time.monotonic() + 0.5
    with (
        tqdm(
            total=params.steady_pods, desc="   arriving (steady)", unit="pod", disable=not progress
        ) as bar,
        ThreadPoolExecutor(max_workers=params.creators) as pool,
    ):

        def create(i: int, due: float) -> None:
            name = f"steady-{i:05d}"
            lag = time.monotonic() - due
            api.create(path, _pod(name, contender, params))
            acks[name] = (lag, time.monotonic())
            bar.update(1)

        futures = []
        try:
            for i in range(params.steady_pods):
                due = origin + i / params.rate_per_s
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                futures.append(pool.submit(create, i, due))
        finally:
            _finish(pool, futures)
    return acks


def _wait_count(
    watch: PodWatch, what: str, target: int, desc: str, params: BenchParams, progress: bool
) -> None:
    deadline = time.monotonic() + params.timeout_s
    with tqdm(total=target, desc=f"   {desc}", unit="pod", disable=not progress) as bar:
        while True:
            seen = watch.count(what)
            bar.update(seen - bar.n)
            if seen >= target:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"only {seen} of {target} pods {desc} after {params.timeout_s:.0f} s"
                )
            time.sleep(0.2)


def _wait_gone(api: ApiServer, namespace: str, params: BenchParams) -> None:
    path = f"/api/v1/namespaces/{namespace}"
    wait_for(
        f"namespace {namespace} to be deleted",
        lambda: True if api.request("GET", path).status_code == 404 else None,
        params.timeout_s,
        1.0,
    )


def _burst_result(
    watch: PodWatch,
    params: BenchParams,
    started: float,
    create_s: float,
    calls: dict[str, int],
) -> BurstResult:
    pods = {k: v for k, v in watch.snapshot().items() if k.startswith("burst-")}
    bound = sorted(v.bound_s for v in pods.values() if v.bound_s is not None)
    first, last = bound[0], bound[-1]
    span = max(last - first, 1e-9)
    # Pods bound in each whole second from the first binding (the last partial second
    # is left out).
    seconds = int(span)
    per_second = (
        np.histogram(bound, bins=seconds, range=(first, first + seconds))[0]
        if seconds
        else np.array([len(bound)])
    )
    return BurstResult(
        pods=len(pods),
        bound=len(bound),
        create_s=round(create_s, 2),
        start_to_first_bind_s=round(first - started, 3),
        first_to_last_bind_s=round(span, 3),
        pods_per_s=round((len(bound) - 1) / span, 1),
        pods_per_s_from_start=round(len(bound) / max(last - started, 1e-9), 1),
        per_second_min=float(per_second.min()),
        per_second_median=float(np.median(per_second)),
        per_second_max=float(per_second.max()),
        node_changes=sum(v.node_changes for v in pods.values()),
        calls=_per_pod(calls, len(bound)),
    )


def _steady_result(
    watch: PodWatch,
    acks: dict[str, tuple[float, float]],
    params: BenchParams,
    calls: dict[str, int],
) -> SteadyResult:
    pods = watch.snapshot()
    latencies = np.array(
        [
            max(pods[name].bound_s - ack, 0.0)  # type: ignore[operator]
            for name, (_, ack) in acks.items()
            if pods.get(name) is not None and pods[name].bound_s is not None
        ]
    )
    sent = sorted(ack for _, ack in acks.values())
    offered = (len(sent) - 1) / max(sent[-1] - sent[0], 1e-9) if len(sent) > 1 else math.nan
    return SteadyResult(
        pods=len(acks),
        bound=len(latencies),
        offered_per_s=round(offered, 1),
        max_submit_lag_s=round(max(lag for lag, _ in acks.values()), 3),
        latency_p50_s=round(float(np.percentile(latencies, 50)), 3),
        latency_p99_s=round(float(np.percentile(latencies, 99)), 3),
        latency_max_s=round(float(latencies.max()), 3),
        latency_mean_s=round(float(latencies.mean()), 3),
        node_changes=sum(pods[n].node_changes for n in acks if n in pods),
        calls=_per_pod(calls, len(acks)),
    )


def _per_pod(calls: dict[str, int], pods: int) -> dict[str, Any]:
    out: dict[str, Any] = dict(calls)
    out["per_pod"] = {k: round(v / max(pods, 1), 2) for k, v in calls.items()}
    return out


def _burst_line(b: BurstResult) -> str:
    return (
        f"   burst: {b.bound}/{b.pods} bound, {b.pods_per_s:.1f} pods/s first to last binding "
        f"({b.first_to_last_bind_s:.1f} s; per second min {b.per_second_min:.0f}, median "
        f"{b.per_second_median:.0f}, max {b.per_second_max:.0f}), {b.pods_per_s_from_start:.1f} "
        f"pods/s from process start"
    )


def _steady_line(s: SteadyResult) -> str:
    return (
        f"   steady: {s.bound}/{s.pods} bound at {s.offered_per_s:.1f} pods/s offered; "
        f"pending to bound p50 {s.latency_p50_s:.3f} s, p99 {s.latency_p99_s:.3f} s, "
        f"max {s.latency_max_s:.3f} s"
    )


def table(results: list[RoundResult]) -> str:
    """The results side by side, one row per scheduler."""
    head = (
        "scheduler",
        "burst pods/s",
        "per-second min/median/max",
        "from start",
        "steady p50 (s)",
        "p99 (s)",
        "max (s)",
        "calls/pod (bind, event, patch)",
    )
    rows = [head]
    for r in results:
        b, s = r.burst, r.steady
        calls: dict[str, Any] = b.calls["per_pod"] if b else {}
        rows.append(
            (
                r.label,
                f"{b.pods_per_s:.1f}" if b else "-",
                f"{b.per_second_min:.0f}/{b.per_second_median:.0f}/{b.per_second_max:.0f}"
                if b
                else "-",
                f"{b.pods_per_s_from_start:.1f}" if b else "-",
                f"{s.latency_p50_s:.3f}" if s else "-",
                f"{s.latency_p99_s:.3f}" if s else "-",
                f"{s.latency_max_s:.3f}" if s else "-",
                f"{calls.get('bindings', 0):.2f}, {calls.get('events', 0):.2f}, "
                f"{calls.get('pod_patches', 0):.2f}"
                if b
                else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def as_json(
    params: BenchParams, environment: dict[str, Any], results: list[RoundResult]
) -> dict[str, Any]:
    """Parameters, environment and results, for ``--json``."""
    return {
        "params": {**asdict(params), "steady_pods": params.steady_pods},
        "environment": {**environment, "cpu_count": os.cpu_count()},
        "results": [asdict(r) for r in results],
    }
