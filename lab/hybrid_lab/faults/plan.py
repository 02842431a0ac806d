"""How big and how long: the workload and the faults' durations, for the command (the
defaults) and for the e2e tests (:meth:`FaultPlan.small`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class FaultPlan:
    """Sizes and durations of one run of the faults."""

    pods: int = 300
    """Pods flowing through each fault."""
    burst: int = 2000
    """Pods of the burst the restart fault creates at once."""
    seed: int = 0
    """Seed of the workload (GPUs per pod, run times)."""
    flow_s: float = 20.0
    """Seconds over which each fault's pods are created."""
    runtime_s: tuple[float, float] = (2.0, 5.0)
    """Run time of each pod, drawn from this range (seconds)."""
    trigger_share: float = 0.15
    """The fault starts once this share of its pods is bound."""
    apiserver_down_s: float = 15.0
    """How long kube-apiserver stays stopped (seconds)."""
    etcd_down_s: float = 5.0
    """How long etcd stays stopped (seconds)."""
    cut_s: float = 5.0
    """How long the operator stays cut off from the API server (seconds)."""
    doomed_pods: int = 3
    """Pending and running pods deleted while the operator is cut off (each)."""
    binding_delay_s: float = 3.0
    """How long the proxy holds each binding back while a node is deleted (seconds)."""
    slow_s: float = 15.0
    """How long the API server answers late in the apiserver-slow fault (seconds)."""
    latency_s: float = 0.7
    """How late it answers each call then: more than the half retry period that once
    timed a Lease call out, less than a quarter of the rig's renew deadline (seconds)."""
    lost_answers: int = 6
    """Bindings whose answer the proxy loses in the binding-reply-lost fault."""
    lost_answer_late_s: tuple[float, ...] = (0.0, 0.5, 2.5)
    """How long after its client was cut off each of those bindings reaches the API
    server, in turn: at once (committed before the operator can list), after the listing
    the operator makes at once (which shows the pod still pending), and after the first
    back-off (1 s), so the operator's second Binding goes first (seconds)."""
    frozen_after_takeover_s: float = 2.0
    """The frozen leader stays frozen this long after the takeover, and is watched this
    long after it resumes (seconds)."""
    leader_timeout_s: float = 30.0
    """Longest wait for a leader or a takeover (seconds)."""
    prometheus_phase_s: float = 4.0
    """How long each bad Prometheus answer lasts (seconds)."""
    crafted_watch_s: float = 5.0
    """How long the crafted objects are watched before the fault counts as over (s)."""
    restart_after_s: float = 1.0
    """How long the killed operator stays down before it is started again (seconds)."""
    watch_lag_s: float = 10.0
    """How late the watches show bindings in the lagging takeover: longer than the Lease,
    so the successor has not seen the former leader's latest bindings (seconds)."""
    lag_before_kill_s: float = 2.0
    """How long the leader binds with the bindings lagging before it is killed (s)."""
    recovery_timeout_s: float = 120.0
    """Longest wait, after a fault, for every pod to be bound or to have a reason (s)."""
    probe_timeout_s: float = 20.0
    """Longest wait for the capacity probe's pods to be bound (seconds)."""

    @classmethod
    def small(cls, seed: int = 0) -> FaultPlan:
        """The e2e tests' plan: the same faults, smaller and shorter."""
        return cls(
            pods=60,
            burst=200,
            seed=seed,
            flow_s=5.0,
            runtime_s=(1.0, 2.0),
            apiserver_down_s=10.0,
            etcd_down_s=3.0,
            cut_s=3.0,
            slow_s=6.0,
            binding_delay_s=2.0,
            prometheus_phase_s=2.5,
            crafted_watch_s=3.0,
            recovery_timeout_s=60.0,
            probe_timeout_s=10.0,
        )

    def with_sizes(self, pods: int | None, burst: int | None, seed: int | None) -> FaultPlan:
        """This plan with the sizes the command line gives."""
        return dataclasses.replace(
            self,
            pods=self.pods if pods is None else pods,
            burst=self.burst if burst is None else burst,
            seed=self.seed if seed is None else seed,
        )
