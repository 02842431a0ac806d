"""Faults of the operator and what it reads: the leader frozen, the leader killed in a
burst or while the watches show bindings late, Prometheus killed or lying, objects crafted
to hurt."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import requests

from hybrid_lab.devcluster import nodes, pki
from hybrid_lab.devcluster.apiserver import ApiServer
from hybrid_lab.devcluster.scenario import NodeSpec
from hybrid_lab.devcluster.workload import training_pod, wait_for
from hybrid_lab.faults.context import EXTRA_NODE_GPUS, FaultContext
from hybrid_lab.faults.prometheus import PrometheusAnswer
from hybrid_lab.faults.workload import (
    NAMESPACE_WEIGHTS,
    PodFlow,
    WorkloadShape,
    fault_pods,
    labelled,
)

HUGE = "1e400"
CONFLICT_RETRIES = 5
STALENESS = "hybrid_scheduler_metrics_staleness_seconds"


def leader_frozen(ctx: FaultContext) -> None:
    """The leader frozen (SIGSTOP) until the other replica takes over, then resumed."""
    rig, plan = ctx.rig, ctx.plan
    leader = rig.wait_leader(plan.leader_timeout_s)
    frozen_at = time.monotonic()
    leader.freeze()
    try:

        def successor() -> str | None:
            now = rig.leader()
            return now.identity if now is not None and now is not leader else None

        taken = wait_for("another replica to take over", successor, plan.leader_timeout_s, 0.1)
        took_s = time.monotonic() - frozen_at
        time.sleep(plan.frozen_after_takeover_s)
    finally:
        leader.resume()
    ctx.note(
        f"{leader.identity} frozen {time.monotonic() - frozen_at:.1f} s; "
        f"{taken} took over after {took_s:.1f} s"
    )
    time.sleep(plan.frozen_after_takeover_s)


def restart_burst(ctx: FaultContext) -> None:
    """The leader killed (SIGKILL) in the middle of a burst, started again a moment later."""
    rig = ctx.rig
    leader = rig.wait_leader(ctx.plan.leader_timeout_s)
    leader.kill()
    time.sleep(ctx.plan.restart_after_s)
    started = time.monotonic()
    leader.start()
    ctx.note(
        f"{leader.identity} killed, down {ctx.plan.restart_after_s:g} s, "
        f"listed again {time.monotonic() - started:.1f} s after its start"
    )


def lagging_takeover(ctx: FaultContext) -> None:
    """The watches showing bindings late (completions and new pods on time), the leader
    killed while it binds: the replica that takes over has not seen its latest bindings."""
    rig, plan = ctx.rig, ctx.plan
    leader = rig.wait_leader(plan.leader_timeout_s)
    lagged_before = rig.proxy.counters.lagged
    rig.proxy.lag_bindings(plan.watch_lag_s)
    lagging_since = time.time()
    try:
        time.sleep(plan.lag_before_kill_s)
        leader.kill()
        killed_at = time.monotonic()
        unseen = [
            a for a in rig.proxy.attempts if a.sent_at >= lagging_since and 200 <= a.status < 300
        ]

        def successor() -> str | None:
            now = rig.leader()
            return now.identity if now is not None and now is not leader else None

        taken = wait_for("another replica to take over", successor, plan.leader_timeout_s, 0.1)
        took_s = time.monotonic() - killed_at
        # The successor schedules while bindings still reach it late.
        time.sleep(max(plan.watch_lag_s - took_s, 0.0))
    finally:
        rig.proxy.lag_bindings(0)
        leader.start()
    lagged = rig.proxy.counters.lagged - lagged_before
    after = [a for a in rig.proxy.attempts if a.sent_at >= lagging_since and a.status == 409]
    ctx.note(
        f"bindings shown {plan.watch_lag_s:g} s late ({lagged} watch events held back); "
        f"{leader.identity} bound {len(unseen)} pods in the {plan.lag_before_kill_s:g} s "
        f"before it was killed; {taken} took over after {took_s:.1f} s; "
        f"{len(after)} bindings found their pod bound already"
    )


def prometheus_bad(ctx: FaultContext) -> None:
    """Prometheus killed, then answering garbage, future and stale samples in turn."""
    rig, plan = ctx.rig, ctx.plan
    fake, phase_s = rig.prometheus, plan.prometheus_phase_s
    shape = WorkloadShape(max(4, plan.pods // 4), phase_s / 2, plan.runtime_s, plan.seed)

    def phase(what: str, action: Callable[[], object]) -> None:
        started = time.time()
        action()
        # Pods of the phase's own, so that every answer is scheduled with.
        pods = fault_pods(ctx.fault, shape, rig.settings.scheduler_name, f"{ctx.fault}-{what}")
        PodFlow(rig.admin, pods, shape.flow_s).start()
        time.sleep(phase_s)
        with rig.checker.view() as ledger:
            seen = [
                b for b in ledger.bindings.values() if b.seen_at >= started and b.fault == ctx.fault
            ]
        states = sorted({(b.metrics or "no record")[:60] for b in seen})
        leader = rig.leader()
        age = None if leader is None else leader.metrics(STALENESS).get(STALENESS)
        shown = "unknown" if age is None else f"{age:.1f} s"
        ctx.note(
            f"{what} {phase_s:g} s: {len(seen)} bindings, metrics age on the leader {shown}; "
            f"decision records say: {' | '.join(states)}"
        )
        # -1 is the gauge's "no sample in use"; below it, samples stamped in the future.
        if age is not None and age < -1:
            ctx.violations.append(f"samples from the future in use (metrics age {age:.0f} s)")

    ctx.cleanups.append(lambda: setattr(fake, "answer", PrometheusAnswer.HEALTHY))
    phase("killed", fake.kill)
    fake.start()
    for answer in (PrometheusAnswer.GARBAGE, PrometheusAnswer.FUTURE, PrometheusAnswer.STALE):
        phase(answer.value, functools.partial(setattr, fake, "answer", answer))
    fake.answer = PrometheusAnswer.HEALTHY


def crafted_pods(ctx: FaultContext) -> dict[str, dict[str, Any]]:
    """Pods with absurd quantities and annotations the API server accepts."""
    scheduler = ctx.rig.settings.scheduler_name

    def pod(suffix: str, cpu: str = "1", memory: str = "1Gi") -> dict[str, Any]:
        body = training_pod(
            f"{ctx.fault}-{suffix}",
            gpus=1,
            cpu=cpu,
            memory=memory,
            runtime="1s",
            scheduler_name=scheduler,
        )
        return labelled(body, ctx.fault)

    huge_gpus = pod("gpu-huge")
    container = huge_gpus["spec"]["containers"][0]["resources"]
    container["requests"]["nvidia.com/gpu"] = container["limits"]["nvidia.com/gpu"] = HUGE
    odd = pod("odd-annotations")
    odd["metadata"]["annotations"].update(
        {"hybrid-scheduler.io/weight": "-inf", "hybrid-scheduler.io/expected-runtime": "forever"}
    )
    return {
        "cpu 1e400": pod("cpu-huge", cpu=HUGE),
        "memory 1e400": pod("memory-huge", memory=HUGE),
        "nvidia.com/gpu 1e400": huge_gpus,
        "weight -inf, expected-runtime forever": odd,
    }


def _huge_gpus(kubelet: ApiServer, name: str) -> requests.Response:
    """Write 1e400 GPUs into the node's status (again if kwok wrote it in between)."""
    for _ in range(CONFLICT_RETRIES):
        node = kubelet.get(f"/api/v1/nodes/{name}")
        for field in ("capacity", "allocatable"):
            node["status"][field]["nvidia.com/gpu"] = HUGE
        answer = kubelet.request("PUT", f"/api/v1/nodes/{name}/status", node)
        if answer.status_code != 409:
            break
    return answer


def crafted_objects(ctx: FaultContext) -> None:
    """Pods with 1e400 requests and absurd annotations, and a node with 1e400 GPUs, made
    by a developer and by a kubelet's identity."""
    state_dir = ctx.rig.cluster.state_dir
    developer = ApiServer.from_kubeconfig(state_dir / pki.DEVELOPER.kubeconfig_name)
    kubelet = ApiServer.from_kubeconfig(state_dir / pki.KWOK.kubeconfig_name)
    namespace = next(iter(NAMESPACE_WEIGHTS))
    verdicts = []
    for what, body in crafted_pods(ctx).items():
        answer = developer.request("POST", f"/api/v1/namespaces/{namespace}/pods", body)
        verdicts.append(f"{what}: {'accepted' if answer.ok else answer.status_code}")
    name = ctx.extra_node
    spec = NodeSpec(name, gpus=EXTRA_NODE_GPUS, cpu=64, memory_gib=512, performance=90)
    kubelet.create("/api/v1/nodes", nodes.node_manifest(spec))
    ctx.cleanups.append(lambda: ctx.rig.admin.delete(f"/api/v1/nodes/{name}"))
    answer = _huge_gpus(kubelet, name)
    verdicts.append(
        f"node {name} with nvidia.com/gpu {HUGE}: {'accepted' if answer.ok else answer.status_code}"
    )
    ctx.note("; ".join(verdicts))
    time.sleep(ctx.plan.crafted_watch_s)
