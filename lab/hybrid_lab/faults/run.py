"""Running the faults one after another on a :class:`~hybrid_lab.faults.rig.FaultRig`.

For each fault: its ``prepare``; the workload starts to flow (or bursts); once a share of
it is bound the fault is injected and lasts as long as it lasts; then **recovery** is the
time from the end of the fault (or of the workload's creation, if later) until every pod
of the fault is bound or pending with a stated reason and the leader's pending gauge
equals the API server's count. The run then waits for the workload to drain (or until
the GPUs would have run it all), undoes what the fault left behind, deletes the fault's
pods and sends a **capacity probe**: one pod per empty node, each as big as the smallest
of them, which an operator that lost no capacity binds at once. Last, the violations the
checker saw during the fault make its :class:`~hybrid_lab.faults.verdict.FaultResult`.
Replicas that crashed are started again, and after a fault that broke anything both
replicas are restarted, so that the next fault starts clean.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence

from hybrid_lab.devcluster.errors import DevClusterError
from hybrid_lab.devcluster.workload import training_pod, wait_for
from hybrid_lab.faults.context import Fault, FaultContext
from hybrid_lab.faults.plan import FaultPlan
from hybrid_lab.faults.records import PodRecord, Violation
from hybrid_lab.faults.rig import FaultRig
from hybrid_lab.faults.verdict import FaultResult, PodsState, look
from hybrid_lab.faults.workload import (
    NAMESPACE_WEIGHTS,
    PodFlow,
    WorkloadShape,
    delete_fault_pods,
    fault_pods,
    labelled,
)
from hybrid_policy.resources import GPU

POLL_S = 0.5
#: Between the fault's pods being gone and the probe: time for the watch to tell (s).
PROBE_AFTER_S = 1.0
#: Pods pending with room for them in two looks this far apart wait for nothing (s).
WAITING_S = 3.0
#: Distinct error lines of the operators' logs noted per fault.
LOG_LINES = 6
CLEANUP_TIMEOUT_S = 60.0
Echo = Callable[[str], None]


def run_faults(
    rig: FaultRig, faults: Sequence[Fault], plan: FaultPlan, echo: Echo
) -> list[FaultResult]:
    """Every fault in turn; a line per fault as it ends."""
    results = []
    for fault in faults:
        echo(f"{fault.name}: {fault.summary}")
        started = time.monotonic()
        result = run_and_reset(rig, fault, plan)
        results.append(result)
        verdict = "; ".join(result.violations) or "every invariant held"
        echo(f"{fault.name}: {verdict} ({time.monotonic() - started:.0f} s)")
    return results


def run_and_reset(rig: FaultRig, fault: Fault, plan: FaultPlan) -> FaultResult:
    """One fault; then, if it broke anything, both replicas start afresh."""
    result = run_fault(rig, fault, plan)
    if result.violations:
        rig.restart_replicas()
    return result


def run_fault(rig: FaultRig, fault: Fault, plan: FaultPlan) -> FaultResult:
    """One fault from its workload to its verdict."""
    ctx = FaultContext(rig, plan, fault.name)
    started = time.time()
    offsets = {r.identity: r.log_size() for r in rig.replicas}
    crashes_before = {r.identity: len(r.crashes) for r in rig.replicas}
    if fault.prepare is not None:
        fault.prepare(ctx)
    shape = WorkloadShape(
        plan.burst if fault.burst else plan.pods,
        0.0 if fault.burst else plan.flow_s,
        plan.runtime_s,
        plan.seed,
    )
    pods = fault_pods(fault.name, shape, rig.settings.scheduler_name)
    flow = PodFlow(rig.admin, pods, shape.flow_s).start()
    _wait_trigger(rig, ctx, max(1, round(plan.trigger_share * shape.pods)), flow)
    try:
        fault.inject(ctx)
    except DevClusterError as exc:
        ctx.note(f"the fault itself failed: {exc}")
    flow.wait(plan.recovery_timeout_s)
    # Recovery counts from the end of the fault, or of the pods' creation if that is later.
    ended = time.monotonic()
    settled_at = _wait(ctx, ended + plan.recovery_timeout_s, lambda s: s.settled)
    final, waiting = _final_look(ctx, ended + plan.recovery_timeout_s + _work_s(ctx, shape))
    _clean_up(ctx)
    # The probe runs on an empty cluster: whatever the fault's pods still hold is let go.
    _delete_pods(rig, [fault.name])
    time.sleep(PROBE_AFTER_S)
    probes, stuck = _capacity_probe(ctx)
    crashes = _crashes(rig, crashes_before)
    ctx.notes += _log_problems(rig, offsets)
    if flow.failed:
        ctx.note(f"{len(flow.failed)} pods could not be created: {flow.failed[0]}")
    result = _result(ctx, fault, final, started, crashes, probes, stuck)
    result.waiting = len(waiting)
    result.stray_requests, result.refused_stray_requests = _stray_requests(ctx, started)
    result.fault_violations = ctx.violations
    result.recovery_s = None if settled_at is None else max(settled_at - ended, 0.0)
    _delete_pods(rig, [f"{fault.name}-probe"])
    return result


def _wait_trigger(rig: FaultRig, ctx: FaultContext, bound: int, flow: PodFlow) -> None:
    deadline = time.monotonic() + ctx.plan.flow_s + ctx.plan.recovery_timeout_s
    while time.monotonic() < deadline:
        if sum(1 for p in rig.checker.pods_of([ctx.fault]) if p.node) >= bound:
            return
        if flow.done and not flow.created:
            break
        time.sleep(0.1)
    ctx.note(f"fewer than {bound} pods were bound before the fault; injected it anyway")


def _look(ctx: FaultContext) -> PodsState:
    # A node the fault added does not count as room: the operator may rightly refuse it.
    return look(ctx.rig, ctx.fault, frozenset({ctx.extra_node}))


def _wait(ctx: FaultContext, deadline: float, done: Callable[[PodsState], bool]) -> float | None:
    """Poll until ``done``; return the moment (monotonic) or None at the deadline."""
    while time.monotonic() < deadline:
        if done(_look(ctx)):
            return time.monotonic()
        time.sleep(POLL_S)
    return None


def _work_s(ctx: FaultContext, shape: WorkloadShape) -> float:
    """How long the cluster's GPUs need to run the workload once, seconds."""
    with ctx.rig.checker.view() as ledger:
        gpus = sum(
            ledger.nodes[n].allocatable.get(GPU, 0)
            for n in ledger.live_nodes()
            if n != ctx.extra_node
        )
    mean_gpus = 1 + shape.two_gpu_share
    return shape.pods * mean_gpus * sum(shape.runtime_s) / 2 / max(gpus, 1)


def _final_look(ctx: FaultContext, deadline: float) -> tuple[PodsState, list[PodRecord]]:
    """The state once the workload drained (or at the deadline), and the pods that wait
    though a node has room for them, in two looks :data:`WAITING_S` apart (one look may
    catch a node freed a moment ago)."""
    state = _look(ctx)
    if not state.drained:
        _wait(ctx, deadline, lambda s: s.drained)
        state = _look(ctx)
    if not state.fitting:
        return state, []
    time.sleep(WAITING_S)
    still = {p.uid for p in _look(ctx).fitting}
    return state, [p for p in state.fitting if p.uid in still]


def _clean_up(ctx: FaultContext) -> None:
    for cleanup in ctx.cleanups:
        try:
            cleanup()
        except DevClusterError as exc:
            ctx.note(f"cleaning up failed: {exc}")

    def node_gone() -> bool | None:
        with ctx.rig.checker.view() as ledger:
            return ctx.extra_node not in ledger.live_nodes() or None

    try:
        wait_for("the checker to see the extra node go", node_gone, 30)
    except DevClusterError as exc:
        ctx.note(str(exc))


def _capacity_probe(ctx: FaultContext) -> tuple[int, int]:
    """One pod per node without GPU pods, as big as the smallest such node's GPUs; return
    how many were sent and how many stayed pending."""
    rig = ctx.rig
    with rig.checker.view() as ledger:
        free = [
            ledger.nodes[n].allocatable.get(GPU, 0)
            for n in ledger.live_nodes()
            if ledger.used(n).get(GPU, 0) == 0 and ledger.nodes[n].allocatable.get(GPU, 0) > 0
        ]
    if not free:
        ctx.note("no empty node for the capacity probe")
        return 0, 0
    label = f"{ctx.fault}-probe"
    namespace = next(iter(NAMESPACE_WEIGHTS))
    for i in range(len(free)):
        body = training_pod(
            f"{label}-{i}",
            gpus=min(free),
            cpu="1",
            memory="1Gi",
            runtime="1s",
            scheduler_name=rig.settings.scheduler_name,
        )
        rig.admin.create(f"/api/v1/namespaces/{namespace}/pods", labelled(body, label))

    def unbound() -> int:
        return len(free) - sum(1 for p in rig.checker.pods_of([label]) if p.node)

    deadline = time.monotonic() + ctx.plan.probe_timeout_s
    while unbound() and time.monotonic() < deadline:
        time.sleep(POLL_S)
    return len(free), unbound()


def _stray_requests(ctx: FaultContext, started: float) -> tuple[list[str], list[str]]:
    """Binding requests that reached the API server from a replica that did not lead:
    (those it accepted, those it refused).

    A replica frozen between its last leadership check and the send goes on to send after
    it resumes, however late: nothing in the process can recall a request already decided
    on, and a Binding carries no precondition on the Lease. What the scheduler owes is that
    no such request takes effect; a refused one (409: the new leader bound the pod first)
    is listed, not counted."""
    with ctx.rig.checker.view() as ledger:
        slack = ledger.slack_s
        stray = [
            a
            for a in ctx.rig.proxy.attempts
            if a.sent_at >= started
            and a.status
            and a.instance is not None
            and a.instance not in (ledger.leader_at(a.sent_at), ledger.leader_at(a.sent_at - slack))
        ]
        lines = [
            (
                200 <= a.status < 300,
                f"{a.pod} to {a.node} by {a.instance} "
                f"(answer {a.status}, leader {ledger.leader_at(a.sent_at) or 'nobody'})",
            )
            for a in stray
        ]
    return [line for ok, line in lines if ok], [line for ok, line in lines if not ok]


def _crashes(rig: FaultRig, before: dict[str, int]) -> list[str]:
    for replica in rig.replicas:
        replica.check()
    crashes = [
        f"{r.identity} exited with status {code}"
        for r in rig.replicas
        for code in r.crashes[before.get(r.identity, 0) :]
    ]
    rig.revive_crashed()
    return crashes


def _log_problems(rig: FaultRig, offsets: dict[str, int]) -> list[str]:
    counts: Counter[str] = Counter()
    for replica in rig.replicas:
        problems = replica.problems(offsets.get(replica.identity, 0))
        # kopf retrying its own requests while the API server is away is expected.
        counts.update(p[:160] for p in problems if "will retry" not in p)
    return [f"operator log, {n}x: {line}" for line, n in counts.most_common(LOG_LINES)]


def _result(
    ctx: FaultContext,
    fault: Fault,
    final: PodsState,
    started: float,
    crashes: list[str],
    probes: int,
    stuck: int,
) -> FaultResult:
    def since(items: list[Violation]) -> list[str]:
        return [v.what for v in items if v.seen_at >= started]

    # When each successful binding request went out, as the proxy saw it.
    sent = {a.pod: a.sent_at for a in ctx.rig.proxy.attempts if 200 <= a.status < 300}
    with ctx.rig.checker.view() as ledger:
        overcommits, doubles = since(ledger.overcommits), since(ledger.double_bindings)
        late, landed = ledger.bindings_to_missing_nodes(sent)
        stale, lost = since(ledger.stale_bindings(sent)), since(late)
    return FaultResult(
        fault=fault.name,
        summary=fault.summary,
        pods=final.pods,
        bound=final.bound,
        pending_with_reason=len(final.pending) - len(final.unexplained),
        stranded=[f"{p.namespace}/{p.name}" for p in final.unexplained],
        waiting=0,
        gauge=final.gauge,
        api_pending=final.api_pending,
        probes=probes,
        stuck=stuck,
        overcommits=overcommits,
        double_bindings=doubles,
        stale_bindings=stale,
        lost_bindings=lost,
        landed_after_deletion=since(landed),
        crashes=crashes,
        recovery_s=None,
        notes=ctx.notes,
    )


def _delete_pods(rig: FaultRig, labels: list[str]) -> None:
    delete_fault_pods(rig.admin, labels)

    def gone() -> bool | None:
        return not any(not p.gone for p in rig.checker.pods_of(labels)) or None

    wait_for("the fault's pods to be deleted", gone, CLEANUP_TIMEOUT_S)
