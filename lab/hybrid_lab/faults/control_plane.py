"""Faults of the control plane and of the way to it: the API server or etcd stopped, the
operator cut off from the API server (objects deleted meanwhile), a node deleted while
bindings to it are on their way, bindings that land without the operator hearing so."""

from __future__ import annotations

import contextlib
import time
from collections import Counter

from hybrid_lab.devcluster import cluster
from hybrid_lab.devcluster.errors import DevClusterError
from hybrid_lab.devcluster.workload import training_pod, wait_for
from hybrid_lab.faults.context import EXTRA_NODE_GPUS, FaultContext
from hybrid_lab.faults.proxy import BindingAttempt, CutMode, LostAnswer
from hybrid_lab.faults.workload import NAMESPACE_WEIGHTS, labelled


def no_fault(ctx: FaultContext) -> None:
    """No fault: the workload alone, for comparison."""
    ctx.note("the workload alone")


def apiserver_down(ctx: FaultContext) -> None:
    """kube-apiserver stopped in the middle of the bindings, then started again."""
    down = cluster.restart_component(ctx.rig.cluster, "kube-apiserver", ctx.plan.apiserver_down_s)
    ctx.note(f"kube-apiserver unavailable {down:.1f} s (stopped, then starting)")


def etcd_restart(ctx: FaultContext) -> None:
    """etcd stopped and started again (same data)."""
    down = cluster.restart_component(ctx.rig.cluster, "etcd", ctx.plan.etcd_down_s)
    ctx.note(f"etcd unavailable {down:.1f} s")


def prepare_gap(ctx: FaultContext) -> None:
    """An extra node, and pods that fit nowhere: both are deleted while the operator is
    cut off."""
    ctx.add_node(ctx.extra_node)
    namespace = next(iter(NAMESPACE_WEIGHTS))
    for i in range(ctx.plan.doomed_pods):
        body = training_pod(
            f"{ctx.fault}-doomed-{i}",
            gpus=EXTRA_NODE_GPUS * 2,
            cpu="1",
            memory="1Gi",
            scheduler_name=ctx.rig.settings.scheduler_name,
        )
        ctx.rig.admin.create(f"/api/v1/namespaces/{namespace}/pods", labelled(body, ctx.fault))


def _cut(ctx: FaultContext, mode: CutMode) -> None:
    rig, plan = ctx.rig, ctx.plan
    pods = rig.checker.pods_of([ctx.fault])
    doomed = [p for p in pods if "-doomed-" in p.name and not p.gone]
    running = [p for p in pods if p.node and p.phase == "Running" and p.node != ctx.extra_node]
    victims = running[: plan.doomed_pods]
    version = int(rig.admin.get("/api/v1/pods", limit="1")["metadata"]["resourceVersion"])
    started = time.monotonic()
    cut = rig.proxy.cut(mode, plan.cut_s, expired_below=version)
    for pod in (*doomed, *victims):
        rig.admin.delete(f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}")
        ctx.deleted.add(pod.uid)
    rig.admin.delete(f"/api/v1/nodes/{ctx.extra_node}")
    time.sleep(max(plan.cut_s - (time.monotonic() - started), 0.0))
    ctx.note(
        f"{cut} connections cut for {plan.cut_s:g} s; meanwhile deleted {len(doomed)} pending "
        f"pods, {len(victims)} running pods and node {ctx.extra_node}"
    )


def watch_disconnect(ctx: FaultContext) -> None:
    """The operator's connections (watches too) closed, new ones refused for a while."""
    _cut(ctx, CutMode.DISCONNECT)


def watch_expired(ctx: FaultContext) -> None:
    """The operator's watches ended with 410 Gone, connections refused for a while."""
    _cut(ctx, CutMode.EXPIRE)


def prepare_node(ctx: FaultContext) -> None:
    """The extra node the bindings will be on their way to."""
    ctx.add_node(ctx.extra_node)


def node_deleted_mid_binding(ctx: FaultContext) -> None:
    """A node deleted while bindings to it are held back (on their way) by the proxy."""
    rig, plan, node = ctx.rig, ctx.plan, ctx.extra_node
    rig.proxy.delay_bindings(plan.binding_delay_s)
    try:

        def held() -> int | None:
            return sum(1 for b in rig.proxy.held_bindings() if b.node == node) or None

        try:
            in_flight = wait_for(f"a binding to {node} on its way", held, 30, 0.05)
        except DevClusterError:
            in_flight = 0
        rig.admin.delete(f"/api/v1/nodes/{node}")
        time.sleep(plan.binding_delay_s + 0.5)
    finally:
        rig.proxy.delay_bindings(0)
    ctx.note(
        f"bindings held {plan.binding_delay_s:g} s each; {node} deleted with "
        f"{in_flight} bindings to it on their way"
    )


def apiserver_slow(ctx: FaultContext) -> None:
    """The API server slow, not down: every call of the operator's but its watches answered
    late, its Lease renewals too.

    The leader must keep its Lease and keep binding: a call this slow is well within what
    kube-scheduler's leader election tolerates (client-go gives a renewal's attempts the
    whole renew deadline).
    """
    rig, plan = ctx.rig, ctx.plan
    leader = rig.wait_leader(plan.leader_timeout_s)
    offset, slowed = leader.log_size(), rig.proxy.counters.slowed
    started = time.time()
    rig.proxy.slow_requests(plan.latency_s)
    try:
        time.sleep(plan.slow_s)
    finally:
        rig.proxy.slow_requests(0)
    ended = time.time()
    bound = [a for a in rig.proxy.attempts if started <= a.sent_at < ended and a.status == 201]
    lapses = [line for line in leader.text(offset).splitlines() if "stopped leading" in line]
    if lapses:
        ctx.violations.append(
            f"{leader.identity} stopped leading while every call took {plan.latency_s:g} s: "
            + lapses[0].split(": ", 1)[-1]
        )
    if not bound:
        ctx.violations.append(f"nothing was bound in the {plan.slow_s:g} s the API server was slow")
    ctx.note(
        f"every call but the watches {plan.latency_s:g} s late for {plan.slow_s:g} s "
        f"({rig.proxy.counters.slowed - slowed} calls); {leader.identity} "
        f"{'stopped leading' if lapses else 'led throughout'}; {len(bound)} bindings went "
        "through meanwhile"
    )


def binding_reply_lost(ctx: FaultContext) -> None:
    """Bindings whose answer never reaches the operator (its connection reset) though they
    reach the API server, at once or a moment later: the operator cannot tell whether they
    were committed.

    Each such pod must keep its room and, if the same replica sends it again, be sent to
    the same node (a new leader, which knows nothing of it, may decide it anew). Once
    bound, each gets one ``Scheduled`` Event, whichever of its bindings landed.
    """
    rig, plan = ctx.rig, ctx.plan
    first, started = len(rig.proxy.lost_answers), time.time()
    rig.proxy.lose_binding_answers(plan.lost_answers, plan.lost_answer_late_s)
    try:

        def all_lost() -> bool | None:
            return len(rig.proxy.lost_answers) - first >= plan.lost_answers or None

        try:
            wait_for(f"{plan.lost_answers} bindings to lose their answer", all_lost, 30, 0.05)
        except DevClusterError as exc:
            ctx.note(str(exc))
    finally:
        rig.proxy.lose_binding_answers(0)
    # The latest of them reaches the API server; the operator sends it again meanwhile.
    time.sleep(max(plan.lost_answer_late_s) + 1.0)
    lost = rig.proxy.lost_answers[first:]
    pods = {a.pod for a in lost}
    sent = [a for a in rig.proxy.attempts if a.sent_at >= started and a.pod in pods]
    ctx.violations.extend(decided_again(lost, sent))
    ctx.violations.extend(untold(ctx, pods))
    answers = Counter(a.status for a in sent)
    ctx.note(
        f"{len(lost)} bindings lost their answer, reaching the API server "
        f"{'/'.join(f'{s:g}' for s in plan.lost_answer_late_s)} s after the operator was cut "
        f"off; {len(sent) - len(lost)} sent again; answers to those pods' bindings: "
        + ", ".join(f"{status} x{n}" for status, n in sorted(answers.items()))
    )


#: How long the operator may take to tell a binding it found landed (passes and a post).
TOLD_WITHIN_S = 15.0


def untold(ctx: FaultContext, pods: set[str]) -> list[str]:
    """Pods (``namespace/name``) bound without exactly one ``Scheduled`` Event."""
    bound = [
        p for p in ctx.rig.checker.pods_of([ctx.fault])
        if p.node and f"{p.namespace}/{p.name}" in pods
    ]  # fmt: skip

    def counts() -> Counter[str]:
        return ctx.rig.checker.told({p.namespace for p in bound}, "Scheduled")

    def all_told() -> bool | None:
        return all(counts()[p.uid] for p in bound) or None

    with contextlib.suppress(DevClusterError):
        wait_for("every bound pod to be told Scheduled", all_told, TOLD_WITHIN_S, 0.5)
    told = counts()
    return [
        f"{p.namespace}/{p.name} bound to {p.node} with {told[p.uid]} Scheduled Events"
        for p in bound
        if told[p.uid] != 1
    ]


def decided_again(lost: list[LostAnswer], sent: list[BindingAttempt]) -> list[str]:
    """Bindings that a replica sent to another node for a pod whose binding by that same
    replica lost its answer."""
    first = {a.pod: a for a in lost}
    return [
        f"{a.pod} decided again by {a.instance}: sent to {a.node} after its binding to "
        f"{first[a.pod].node} lost its answer"
        for a in sent
        if a.instance == first[a.pod].instance and a.node != first[a.pod].node
    ]
