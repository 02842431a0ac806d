"""One round per scheduler: the same Jobs at the same scaled times, on the same nodes.

A round deletes what an interrupted run may have left, starts (or finds) the scheduler's
processes, creates its team namespaces (weights annotated) and the scheduler's objects
(ElasticQuotas, Kueue's queues), replays the stream (each Job created when due, its
PodGroup first), and waits until every Job finished or ``timeout_s`` after the last
arrival (a deadlock then shows as Jobs left). It ends by deleting everything of the
round and waiting until no pod, namespace or Kueue queue of it is left. Every wait has a
timeout; a scheduler that cannot run is skipped with its reason.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hybrid_lab.clusterbench.apimetrics import CallKey, request_totals, scheduler_calls
from hybrid_lab.clusterbench.compare import configs
from hybrid_lab.clusterbench.compare.configs import SchedulerKind
from hybrid_lab.clusterbench.compare.jobwatch import PodSeen, RoundWatch
from hybrid_lab.clusterbench.compare.metrics import JobOutcome, RoundMetrics, round_metrics
from hybrid_lab.clusterbench.compare.processes import ProcessUsage, UsageSampler
from hybrid_lab.clusterbench.compare.schedulers import RoundProcesses, start_round
from hybrid_lab.clusterbench.compare.stream import (
    ROUND_LABEL,
    StreamJob,
    Team,
    manifests,
    namespace_manifest,
    namespace_name,
)
from hybrid_lab.clusterbench.schedulers import ClientLimits
from hybrid_lab.devcluster.apiserver import ApiServer
from hybrid_lab.devcluster.errors import ClusterApiError, DevClusterError
from hybrid_lab.devcluster.settings import ClusterSettings
from hybrid_lab.devcluster.workload import wait_for

Say = Callable[[str], None]
CREATORS = 8
SETUP_TIMEOUT_S = 120.0
POLL_S = 0.5


@dataclass(frozen=True)
class RoundSetup:
    """What every round shares."""

    stream: Sequence[StreamJob]
    teams: Sequence[Team]
    capacity: dict[str, int]
    """The kwok nodes' allocatable, summed (policy-core units)."""
    window_s: float
    timeout_s: float
    limits: ClientLimits
    policy: str
    """Our operator's policy."""
    workdir: Path


@dataclass
class RoundResult:
    """What was measured for one scheduler (or why it was not)."""

    scheduler: SchedulerKind
    metrics: RoundMetrics | None = None
    usage: ProcessUsage | None = None
    calls_per_pod: dict[str, float] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)
    skipped: str | None = None
    stopped: str | None = None
    """Why the round stopped before every Job finished (a timeout, a dead scheduler)."""


def run_rounds(
    api: ApiServer,
    settings: ClusterSettings,
    kinds: Sequence[SchedulerKind],
    setup: RoundSetup,
    say: Say,
) -> list[RoundResult]:
    """Each scheduler's round, one after the other."""
    results = []
    for kind in kinds:
        say(f"== {kind.value}")
        result = RoundResult(kind)
        try:
            _round(api, settings, kind, setup, result, say)
        except DevClusterError as exc:
            if result.metrics is None:
                result.skipped = str(exc)
                say(f"   skipped: {exc}")
            else:  # measured, then the clean-up failed
                result.stopped = "; ".join(filter(None, [result.stopped, str(exc)]))
                say(f"   {exc}")
        results.append(result)
    return results


def _round(
    api: ApiServer,
    settings: ClusterSettings,
    kind: SchedulerKind,
    setup: RoundSetup,
    result: RoundResult,
    say: Say,
) -> None:
    round_name = kind.value
    processes: RoundProcesses | None = None
    try:
        cleanup(api, kind, setup.teams, setup.timeout_s)  # what an interrupted run left
        processes = start_round(kind, settings, setup.limits, setup.workdir, setup.policy)
        result.logs = processes.logs
        _create_objects(api, kind, setup)
        _measure(api, kind, setup, processes, result, say)
    finally:
        if processes is not None:
            processes.stop()
        say(f"   cleaning up round {round_name} ...")
        cleanup(api, kind, setup.teams, setup.timeout_s)


def _create_objects(api: ApiServer, kind: SchedulerKind, setup: RoundSetup) -> None:
    round_name = kind.value
    for team in setup.teams:
        api.create("/api/v1/namespaces", namespace_manifest(round_name, team))
        namespace = namespace_name(round_name, team.name)
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/default"

        def account(path: str = path) -> bool | None:
            return True if api.request("GET", path).ok else None

        wait_for(f"the default service account of {namespace}", account, SETUP_TIMEOUT_S)
    if kind is SchedulerKind.SCHEDULER_PLUGINS:
        for quota in configs.elastic_quotas(round_name, setup.teams, setup.capacity):
            namespace = quota["metadata"]["namespace"]
            api.create(configs.ELASTIC_QUOTA_PATH.format(namespace=namespace), quota)
    if kind is SchedulerKind.KUEUE:
        for path, body in configs.kueue_objects(round_name, setup.teams, setup.capacity):
            api.create(path, body)


def _measure(
    api: ApiServer,
    kind: SchedulerKind,
    setup: RoundSetup,
    processes: RoundProcesses,
    result: RoundResult,
    say: Say,
) -> None:
    watch = RoundWatch(api, kind.value).start()
    before = request_totals(api)
    sampler = UsageSampler([r.pid for r in processes.measured])
    origin = time.monotonic() + 1.0
    created: dict[str, float] = {}
    try:
        _replay(api, kind, setup.stream, origin, created, say)
        result.stopped = _wait_done(watch, setup, origin, created, processes, say)
    finally:
        end = time.monotonic()
        result.usage = sampler.stop()
        watch.stop()
    seen = watch.snapshot()
    outcomes = job_outcomes(setup.stream, created, seen, origin)
    result.metrics = round_metrics(
        outcomes, setup.teams, setup.capacity.get("nvidia.com/gpu", 0), end - origin, setup.window_s
    )
    result.calls_per_pod = calls_per_pod(before, request_totals(api), result.metrics.pods_bound)
    say(
        f"   {result.metrics.finished}/{result.metrics.jobs} jobs finished, mean JCT "
        f"{result.metrics.jct_mean_s:.1f} s, Jain {result.metrics.jain:.3f}"
    )


def _replay(
    api: ApiServer,
    kind: SchedulerKind,
    stream: Sequence[StreamJob],
    origin: float,
    created: dict[str, float],
    say: Say,
) -> None:
    """Create every Job when it is due (its PodGroup first); note when each was acknowledged."""
    expression = configs.expression(kind)
    say(f"   replaying {len(stream)} jobs over {stream[-1].submit_s if stream else 0:.0f} s ...")

    def create(job: StreamJob) -> None:
        for body in manifests(job, kind.value, expression):
            namespace = body["metadata"]["namespace"]
            collection = _collection(body, namespace)
            api.create(collection, body)
        created[job.name] = time.monotonic()

    with ThreadPoolExecutor(max_workers=CREATORS) as pool:
        futures = []
        for job in stream:
            pause = origin + job.submit_s - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            futures.append(pool.submit(create, job))
        for future in futures:
            future.result()


def _collection(body: dict[str, Any], namespace: str) -> str:
    if body["kind"] == "PodGroup":
        return f"/apis/scheduling.x-k8s.io/v1alpha1/namespaces/{namespace}/podgroups"
    return f"/apis/batch/v1/namespaces/{namespace}/jobs"


def job_outcomes(
    stream: Sequence[StreamJob],
    created: dict[str, float],
    seen: dict[str, PodSeen],
    origin: float,
) -> list[JobOutcome]:
    """Each Job's creation and pods, times moved to the round's origin."""

    def shifted(at: float | None) -> float | None:
        return None if at is None else at - origin

    pods: dict[str, list[PodSeen]] = {}
    for pod in seen.values():
        moved = PodSeen(pod.job, shifted(pod.bound_s), shifted(pod.end_s), pod.succeeded)
        pods.setdefault(pod.job, []).append(moved)
    return [
        JobOutcome(job, shifted(created.get(job.name)), tuple(pods.get(job.name, [])))
        for job in stream
    ]


def _wait_done(
    watch: RoundWatch,
    setup: RoundSetup,
    origin: float,
    created: dict[str, float],
    processes: RoundProcesses,
    say: Say,
) -> str | None:
    """Wait until every Job finished; why it stopped earlier, if it did."""
    last_arrival = setup.stream[-1].submit_s if setup.stream else 0.0
    deadline = origin + last_arrival + setup.timeout_s
    reported = 0.0
    while True:
        outcomes = job_outcomes(setup.stream, created, watch.snapshot(), origin)
        left = sum(1 for o in outcomes if o.finished_s is None)
        if left == 0:
            return None
        dead = processes.dead()
        if dead is not None:
            say(f"   {dead.name} exited; see its log {dead.log_path}")
            return f"{dead.name} exited with {left} jobs left (log: {dead.log_path})"
        now = time.monotonic()
        if now > deadline:
            say(f"   timed out with {left} jobs left")
            return f"timed out {setup.timeout_s:.0f} s after the last arrival, {left} jobs left"
        if now - reported > 10:
            say(f"   {len(outcomes) - left}/{len(outcomes)} jobs finished")
            reported = now
        time.sleep(POLL_S)


def calls_per_pod(before: Counter[CallKey], after: Counter[CallKey], pods: int) -> dict[str, float]:
    """The scheduler's calls per bound pod, and every write to the API server per pod
    (the Job controller's, kwok's and Kueue's included, the same stream in every round)."""
    calls: dict[str, float] = dict(scheduler_calls(before, after))
    diff = after.copy()
    diff.subtract(before)
    calls["all_writes"] = sum(
        n for key, n in diff.items() if key.verb in ("POST", "PUT", "PATCH", "DELETE")
    )
    return {k: round(v / pods, 2) if pods else float("nan") for k, v in calls.items()}


def cleanup(api: ApiServer, kind: SchedulerKind, teams: Sequence[Team], timeout_s: float) -> None:
    """Delete the round's namespaces (their Jobs, pods and queues go with them) and its
    cluster-wide Kueue objects, then wait until no pod of it is left."""
    round_name = kind.value
    for team in teams:
        api.call(
            "DELETE", f"/api/v1/namespaces/{namespace_name(round_name, team.name)}", allow=(404,)
        )
    selector = f"{ROUND_LABEL}={round_name}"
    for path, name in _kueue_leftovers(api, selector):
        api.call("DELETE", f"{path}/{name}", allow=(404,))

    def empty() -> bool | None:
        pods = api.items("/api/v1/pods", labelSelector=selector)
        spaces = api.items("/api/v1/namespaces", labelSelector=selector)
        return True if not (pods or spaces or _kueue_leftovers(api, selector)) else None

    wait_for(f"round {round_name}'s pods and namespaces to be gone", empty, timeout_s, 1.0)


def _kueue_leftovers(api: ApiServer, selector: str) -> list[tuple[str, str]]:
    """(collection, name) of the round's ClusterQueues and ResourceFlavors (none when
    Kueue's CRDs are absent)."""
    found: list[tuple[str, str]] = []
    for plural in ("clusterqueues", "resourceflavors"):
        path = f"{configs.KUEUE_API}/{plural}"
        try:
            items = api.items(path, labelSelector=selector)
        except ClusterApiError:
            continue  # Kueue's CRDs are not installed: nothing of it to delete
        found.extend((path, str(item["metadata"]["name"])) for item in items)
    return found
