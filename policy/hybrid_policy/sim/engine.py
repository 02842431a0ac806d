"""The event loop: arrivals, scheduling passes, completions.

The simulator owns only the edges: the clock, arrivals, the utilisation signal and the
binder (a bind starts the job; a gang job starts when the last of its pods is bound, and
runs at the pace of its slowest node). Decisions come from the policy's
:class:`~hybrid_policy.framework.profile.SchedulingProfile`, the same code the operator
runs. A pod's run time on a node of performance ``p`` is ``runtime * 100 / p``.

A pass runs after every event (all events at one instant first), or on a fixed interval.
Like kube-scheduler, a pod that fits nowhere is parked until capacity is freed. A gang's
pods bound before the last one hold their GPUs idle (a pod-by-pod policy can do that; a
gang-aware one never does): the run reports those GPU-seconds, and the gangs still
partly bound when it ends, with those deadlocked (:mod:`.deadlock`). With preemption
on, each pass ends with the preemption phase (:mod:`.take_back`). Arrivals stop at the
horizon; the run then drains, up to ``drain_factor`` horizons, so that every job's
completion time counts.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from hybrid_policy.domain import Gang, Namespace, PendingPod
from hybrid_policy.framework.cycle import BatchCycle
from hybrid_policy.framework.snapshot import ClusterSnapshot, FloatArray
from hybrid_policy.policies import Policy
from hybrid_policy.resources import GPU
from hybrid_policy.scenario.jobs import Job
from hybrid_policy.scenario.workload import Workload
from hybrid_policy.sim.accounting import Accounting
from hybrid_policy.sim.deadlock import stuck_gangs
from hybrid_policy.sim.information import PredictionFeed, user_estimates
from hybrid_policy.sim.preemption_cost import PreemptionCosts
from hybrid_policy.sim.queue_view import QueueReader
from hybrid_policy.sim.result import RunResult
from hybrid_policy.sim.signal import UtilisationSignal
from hybrid_policy.sim.take_back import preemptors, take_back
from hybrid_policy.sim.takes import TakeLedger
from hybrid_policy.sim.waiting import WaitingPods

ARRIVAL, COMPLETION, TICK, WAKE = 0, 1, 2, 3
FAIRNESS_WINDOW_S = 3600.0

Progress = Callable[[float], None]


@dataclass(slots=True)
class Running:
    """A job that is running: the node of each of its pods, since when, and its pace."""

    nodes: tuple[int, ...]
    since_s: float
    #: The slowest of its nodes' performance: a gang runs at that pace.
    performance: float


class Simulation:
    """One run of one policy over one workload."""

    def __init__(
        self,
        workload: Workload,
        policy: Policy,
        seed: int,
        drain_factor: float = 4.0,
        progress: Progress | None = None,
    ) -> None:
        self.workload = workload
        self.policy = policy
        self.profile = policy.profile
        # A decision that depends on wall time (a solver's time budget) would make replays
        # of one seed differ.
        self.profile.arbitrator.use_wall_clock(False)
        self.rng = np.random.default_rng([seed, 0x73696D])
        scenario = workload.scenario
        self.jobs = workload.jobs
        ns_names = [n.name for n in scenario.namespaces]
        for job in self.jobs:
            if job.namespace not in ns_names:
                ns_names.append(job.namespace)
        self.ns_index = {name: i for i, name in enumerate(ns_names)}
        weights = {n.name: n.weight for n in scenario.namespaces}
        self.namespaces = [Namespace(n, weights.get(n, 1.0)) for n in ns_names]
        self.snapshot = ClusterSnapshot(workload.nodes, self.namespaces)
        self.signal = UtilisationSignal(self.snapshot, scenario.metrics, self.rng)
        self.waiting = WaitingPods(self.profile.queue_sort.sort_key)
        self.accounting = Accounting(
            len(self.snapshot.resources), len(ns_names), workload.horizon_s, FAIRNESS_WINDOW_S
        )
        self.interval_s = scenario.schedule_interval_s
        self.batch_limit = scenario.batch_size or None
        self.stop_s = workload.horizon_s * drain_factor if workload.horizon_s > 0 else float("inf")
        self.progress = progress
        n = len(self.jobs)
        #: What each job's user estimated its run time to be (None: no estimate).
        self.estimates = user_estimates(self.jobs, scenario.user_estimates, seed)
        self.feed = (
            PredictionFeed(policy.predictor, scenario, seed)
            if policy.predictor is not None
            else None
        )
        self.costs = PreemptionCosts(scenario.preemption, n, seed)
        #: Who took from whom, and the ping-pong among the takes (:mod:`.takes`).
        self.takes = TakeLedger([job.namespace for job in self.jobs])
        #: When each waiting pod became pending this time (arrival, or its preemption).
        self.pending_since: dict[str, float] = {}
        #: What the preemption phase reads of the queue (work ahead, overdue reservations).
        self.queue_reader = QueueReader()
        #: Times a pass is due because a waiting pod may preempt from then on.
        self._wakes: set[float] = set()
        self.start_s = np.full(n, np.nan)
        self.end_s = np.full(n, np.nan)
        #: Every pod of every job; ``job_of`` and ``pods_of`` map pods and jobs.
        self.pods: list[PendingPod] = []
        self.job_of: list[int] = []
        self.pods_of: list[list[int]] = []
        for j, (job, estimate) in enumerate(zip(self.jobs, self.estimates, strict=True)):
            self.pods_of.append([])
            for pod in self._job_pods(job, estimate):
                self.pods_of[j].append(len(self.pods))
                self.pods.append(pod)
                self.job_of.append(j)
        self.by_uid = {p.uid: i for i, p in enumerate(self.pods)}
        self.usage: list[FloatArray] = [
            self._usage_vector(self.jobs[j], p) for j, p in zip(self.job_of, self.pods, strict=True)
        ]
        #: Node row of each bound pod of a job that is not running yet (gang members).
        self.bound: dict[int, int] = {}
        #: GPUs held right now, and GPU-seconds held so far, by bound pods of jobs that
        #: are not running yet.
        self.idle_gang_gpus = 0.0
        self.idle_gang_gpu_s = 0.0
        self._idle_since_s = 0.0
        #: Work left per job, in seconds at performance 100 (updated when a pod stops).
        self.remaining_work_s = np.array([j.runtime_s for j in self.jobs])
        #: Bumped whenever a job's pod starts or stops, so stale completions are ignored.
        self.version = np.zeros(n, dtype=np.int64)
        self.running: dict[int, Running] = {}
        #: Requests of the waiting pods, summed (the queue context scorers may read).
        self.pending_demand: FloatArray = np.zeros(len(self.snapshot.resources))
        self.events: list[tuple[float, int, int, int, int]] = []
        self._seq = 0
        self._plan: ClusterSnapshot | None = None
        self.decision_seconds = 0.0
        self.pods_decided = self.pods_placed = self.passes = self.event_count = self.preemptions = 0

    def _job_pods(self, job: Job, estimate: float | None) -> list[PendingPod]:
        """The job's pods (a gang's named ``-0``, ``-1``, ...); only a clairvoyant policy is
        told the true run time."""
        name, uid = f"{job.task_type}-{job.job_id}", f"job-{job.job_id}"
        runtime = job.runtime_s if self.policy.clairvoyant else estimate
        if not job.is_gang:
            return [self._pod(job, name, uid, runtime, None)]
        gang = Gang(name, job.members)
        return [
            self._pod(job, f"{name}-{k}", f"{uid}-{k}", runtime, gang) for k in range(job.members)
        ]

    @staticmethod
    def _pod(job: Job, name: str, uid: str, runtime: float | None, gang: Gang | None) -> PendingPod:
        return PendingPod(
            namespace=job.namespace,
            name=name,
            uid=uid,
            requests=job.requests,
            created_at_s=job.submit_s,
            task_type=job.task_type,
            expected_runtime_s=runtime,
            gang=gang,
        )

    def _usage_vector(self, job: Job, pod: PendingPod) -> FloatArray:
        vec = self.snapshot.request_vector(pod).copy()
        for name, frac in job.usage.items():
            i = self.snapshot.index.get(name)
            if i is not None:
                vec[i] *= frac
        return vec

    def _push(self, at_s: float, kind: int, job: int, version: int = 0) -> None:
        self._seq += 1
        heapq.heappush(self.events, (at_s, kind, self._seq, job, version))

    def run(self) -> RunResult:
        """Replay the workload; returns the per-job times and integrals."""
        wall = time.perf_counter()
        for i, job in enumerate(self.jobs):
            self._push(job.submit_s, ARRIVAL, i)
        if self.interval_s > 0:
            self._push(self.interval_s, TICK, -1)
        now = 0.0
        while self.events:
            now = self.events[0][0]
            if now > self.stop_s:
                break
            self.accounting.advance(now)
            self._idle_until(now)
            changed = False
            while self.events and self.events[0][0] == now:
                changed |= self._handle(*heapq.heappop(self.events))
            if changed and self.interval_s == 0:
                self._schedule(now)
            if self.progress is not None:
                self.progress(now)
            if (
                self.interval_s > 0
                and not self.running
                and not self.waiting
                and not self._arrivals_left()
            ):
                break
        self.accounting.advance(now)
        self._idle_until(now)
        return self._result(now, time.perf_counter() - wall)

    def wake_at(self, at_s: float) -> None:
        """Run a pass at ``at_s`` (when a waiting pod may preempt from then on)."""
        if at_s not in self._wakes:
            self._wakes.add(at_s)
            self._push(at_s, WAKE, -1)

    def _idle_until(self, now_s: float) -> None:
        self.idle_gang_gpu_s += self.idle_gang_gpus * (now_s - self._idle_since_s)
        self._idle_since_s = now_s

    def _arrivals_left(self) -> bool:
        return any(kind == ARRIVAL for _, kind, *_ in self.events)

    def _handle(self, at_s: float, kind: int, _seq: int, job: int, version: int) -> bool:
        """Apply one event; False for a completion made stale by a preemption or move."""
        if kind == COMPLETION and (job not in self.running or self.version[job] != version):
            return False
        self.event_count += 1
        if kind in (ARRIVAL, COMPLETION):
            self.takes.moved()
        if kind == ARRIVAL:
            self.requeue(job, at_s)
            self.accounting.arrive(self.ns_index[self.jobs[job].namespace], self.jobs[job].gpus)
        elif kind == COMPLETION:
            if self.feed is not None:
                for p in self.pods_of[job]:
                    self.feed.finished(self.pods[p].uid, at_s)
            self.stop(job, at_s)
            self.end_s[job] = at_s
            self.accounting.leave(self.ns_index[self.jobs[job].namespace], self.jobs[job].gpus)
        elif kind == TICK:
            self._schedule(at_s)
            if self.events or self.waiting or self.running:
                self._push(at_s + self.interval_s, TICK, -1)
        else:
            self._wakes.discard(at_s)  # WAKE: a pass, when a pod may preempt from now on
        return True

    def requeue(self, job: int, now_s: float) -> None:
        """The job's pods wait (again) from ``now_s``."""
        for p in self.pods_of[job]:
            pod = self.pods[p]
            self.waiting.add(pod)
            self.pending_demand += self.snapshot.request_vector(pod)
            self.pending_since[pod.uid] = now_s

    def _schedule(self, now_s: float) -> None:
        if self.policy.preemptive:
            self._replan(now_s)
            return
        if not self.waiting:
            return
        snap = self.snapshot
        if self.feed is not None and self.feed.due(now_s):
            self.feed.report(now_s, self._running_times())
        probe = BatchCycle(self.profile, snap, self.rng, explain=False)
        batch = self.waiting.candidates(probe.fit_count, self.policy.queue_heads)
        if not batch:
            return
        if self.batch_limit is not None and len(batch) > self.batch_limit:
            batch = sorted(batch, key=self.profile.queue_sort.sort_key)[: self.batch_limit]
        snap.now_s = now_s
        snap.queue.pending_pods = len(self.waiting)
        snap.queue.pending_demand = self.pending_demand
        if self.profile.needs_utilisation:
            self.signal.refresh(snap, now_s)
        tick = time.perf_counter()
        decisions = self.profile.schedule_batch(batch, snap, self.rng, explain=False)
        self.decision_seconds += time.perf_counter() - tick
        self.pods_decided += len(batch)
        self.passes += 1
        placed = [d for d in decisions if d.placed]
        if placed:
            self.takes.moved()
        self.waiting.remove(d.pod for d in placed)
        for d in placed:
            self.pending_demand -= snap.request_vector(d.pod)
        for d in placed:
            self.bind(self.by_uid[d.pod.uid], d.node_row, now_s)
        self.pods_placed += len(placed)
        if self.policy.preemption is not None and self.waiting:
            take_back(self, preemptors(self), now_s)

    def bind(self, pod: int, node: int, now_s: float) -> None:
        """A pod is bound: its job starts once every pod of the job is bound."""
        job = self.job_of[pod]
        members = self.pods_of[job]
        if len(members) == 1:
            self._start(job, (node,), now_s)
            return
        self.bound[pod] = node
        gpus = float(self.snapshot.request_vector(self.pods[pod])[self.gpu_column])
        if all(p in self.bound for p in members):
            nodes = tuple(self.bound.pop(p) for p in members)
            self.idle_gang_gpus -= gpus * (len(members) - 1)
            self._start(job, nodes, now_s)
        else:
            self.idle_gang_gpus += gpus

    @property
    def gpu_column(self) -> int:
        """The snapshot's column of GPUs."""
        return self.snapshot.index[GPU]

    def _start(self, job: int, nodes: tuple[int, ...], now_s: float) -> None:
        """Start ``job`` with its pods on ``nodes`` (in the order of ``pods_of[job]``)."""
        spec = self.jobs[job]
        remaining = float(self.remaining_work_s[job])
        self.version[job] += 1
        version = int(self.version[job])
        perf = float(min(self.snapshot.performance[list(nodes)]))
        self.running[job] = Running(nodes, now_s, perf)
        self.takes.started(job)
        if np.isnan(self.start_s[job]):
            self.start_s[job] = now_s
        self._push(now_s + remaining * 100.0 / perf, COMPLETION, job, version)
        ns = self.ns_index[spec.namespace]
        for p, node in zip(self.pods_of[job], nodes, strict=True):
            pod = self.pods[p]
            if self.feed is not None:
                name = self.snapshot.nodes[node].name
                self.feed.started(pod, name, perf, remaining * 100.0 / perf, now_s)
            request = self.snapshot.request_vector(pod)
            self.accounting.start(ns, float(request[self.gpu_column]), request)
            self.signal.change(now_s, node, self.usage[p], request)

    def stop(self, job: int, now_s: float, preempted: bool = False) -> Running:
        """Stop ``job``'s pods; a preempted job keeps only the work up to its last
        checkpoint and owes the restart overhead."""
        run = self.running.pop(job)
        ns = self.ns_index[self.jobs[job].namespace]
        for p, node in zip(self.pods_of[job], run.nodes, strict=True):
            pod = self.pods[p]
            self.snapshot.forget(pod)
            request = self.snapshot.request_vector(pod)
            self.accounting.stop(ns, float(request[self.gpu_column]), request)
            self.signal.change(now_s, node, -self.usage[p], None)
        ran, overhead = now_s - run.since_s, 0.0
        if preempted:
            ran, overhead = self.costs.charge(job, ran, float(self.jobs[job].gpus))
        done = ran * run.performance / 100.0
        self.remaining_work_s[job] = max(self.remaining_work_s[job] - done, 0.0) + overhead
        return run

    def _replan(self, now_s: float) -> None:
        """Preemptive policies: plan every job in the system anew on an empty cluster,
        then stop, move or start only the pods whose node changed."""
        plan = self._planning_snapshot()
        running = [self.pods[p] for job in self.running for p in self.pods_of[job]]
        batch = [
            replace(pod, expected_runtime_s=self._remaining(self._job(pod), now_s))
            if self.policy.clairvoyant
            else pod
            for pod in (*self.waiting.all(), *running)
        ]
        plan.now_s = now_s
        tick = time.perf_counter()
        decisions = self.profile.schedule_batch(batch, plan, self.rng, explain=False)
        self.decision_seconds += time.perf_counter() - tick
        self.pods_decided += len(batch)
        self.passes += 1
        row_of = {self.by_uid[d.pod.uid]: d.node_row for d in decisions if d.placed}
        target: dict[int, tuple[int, ...]] = {}
        for pod in row_of:
            job = self.job_of[pod]
            if job not in target and all(p in row_of for p in self.pods_of[job]):
                target[job] = tuple(row_of[p] for p in self.pods_of[job])
        moved = set()
        for job in [j for j, run in self.running.items() if target.get(j) != run.nodes]:
            self.stop(job, now_s, preempted=True)
            self.version[job] += 1
            if job in target:
                moved.add(job)
            else:
                self.preemptions += 1
                for p in self.pods_of[job]:
                    self.waiting.add(self.pods[p])
                    self.pending_since[self.pods[p].uid] = now_s
        starting = [(job, nodes) for job, nodes in target.items() if job not in self.running]
        self.waiting.remove(
            self.pods[p] for job, _ in starting if job not in moved for p in self.pods_of[job]
        )
        for job, nodes in starting:
            for p, node in zip(self.pods_of[job], nodes, strict=True):
                self.snapshot.assume(self.pods[p], node)
            self._start(job, nodes, now_s)
        self.pods_placed += sum(len(self.pods_of[job]) for job, _ in starting)

    def _job(self, pod: PendingPod) -> int:
        return self.job_of[self.by_uid[pod.uid]]

    def _running_times(self) -> dict[str, tuple[float, float]]:
        """Each running pod's start and true run time on its node (progress reports only)."""
        return {
            self.pods[p].uid: (
                run.since_s,
                float(self.remaining_work_s[job]) * 100.0 / run.performance,
            )
            for job, run in self.running.items()
            for p in self.pods_of[job]
        }

    def _remaining(self, job: int, now_s: float) -> float:
        run = self.running.get(job)
        left = float(self.remaining_work_s[job])
        if run is not None:
            left -= (now_s - run.since_s) * run.performance / 100.0
        return max(left, 0.0)

    def _planning_snapshot(self) -> ClusterSnapshot:
        """An empty copy of the cluster, reused between passes (its filter caches too)."""
        plan = self._plan
        if plan is None:
            plan = self._plan = ClusterSnapshot(self.workload.nodes, self.namespaces)
        plan.clear_placements()
        return plan

    def _result(self, end_s: float, wall_s: float) -> RunResult:
        scenario = self.workload.scenario
        snap = self.snapshot
        fastest = float(snap.performance.max()) if len(snap) else 100.0
        runtime = np.array([j.runtime_s for j in self.jobs])
        gpus = np.array([float(j.gpus) for j in self.jobs])
        task_names = sorted({j.task_type for j in self.jobs})
        task_index = {t: i for i, t in enumerate(task_names)}
        capacity = snap.total_allocatable
        stuck = stuck_gangs(snap, self.pods, self.bound, self.pods_of, self.job_of)
        return RunResult(
            policy=self.policy.name,
            scenario=scenario.name,
            level=self.workload.level,
            seed=self.workload.seed,
            horizon_s=self.workload.horizon_s,
            namespaces=[n.name for n in self.namespaces],
            namespace_weights=[n.weight for n in self.namespaces],
            task_types=task_names,
            resources=snap.resources,
            capacity=capacity,
            submit_s=np.array([j.submit_s for j in self.jobs]),
            start_s=self.start_s,
            end_s=self.end_s,
            runtime_s=runtime,
            fastest_runtime_s=runtime * 100.0 / fastest,
            gpus=gpus,
            namespace_of=np.array([self.ns_index[j.namespace] for j in self.jobs], dtype=np.int64),
            task_type_of=np.array([task_index[j.task_type] for j in self.jobs], dtype=np.int64),
            allocated_integral=self.accounting.allocated_integral,
            in_system_integral=self.accounting.in_system_integral,
            window_s=self.accounting.window_s,
            window_allocated=self.accounting.window_allocated,
            window_demand=self.accounting.window_demand,
            offered_load=offered_load(self.workload, snap),
            decision_seconds=self.decision_seconds,
            pods_decided=self.pods_decided,
            pods_placed=self.pods_placed,
            passes=self.passes,
            events=self.event_count,
            preemptions=self.preemptions,
            wall_seconds=wall_s,
            end_time_s=end_s,
            prediction_errors=self.feed.error_table() if self.feed is not None else {},
            members=np.array([j.members for j in self.jobs], dtype=np.int64),
            idle_gang_gpu_s=self.idle_gang_gpu_s,
            partial_gangs=stuck.partial,
            deadlocked_gangs=stuck.deadlocked,
            stops_per_job=self.costs.count.copy(),
            lost_gpu_s=self.costs.lost_gpu_s,
            takes=self.takes.tally(),
        )


def offered_load(workload: Workload, snapshot: ClusterSnapshot) -> dict[str, float]:
    """Demanded resource-time at mean performance over capacity-time of the arrival window."""
    from hybrid_policy.scenario.jobs import mean_performance

    perf = mean_performance(workload.nodes)
    capacity = snapshot.total_allocatable
    window = workload.horizon_s
    out: dict[str, float] = {}
    for name, key in (("gpu", GPU), ("cpu", "cpu"), ("memory", "memory")):
        col = snapshot.index[key]
        demand = (
            sum(j.requests.get(key, 0) * j.members * j.runtime_s for j in workload.jobs)
            * 100.0
            / perf
        )
        out[name] = demand / (capacity[col] * window) if capacity[col] > 0 and window > 0 else 0.0
    return out
