"""The scheduler under test, started as a process of its own for one benchmark round.

Both schedulers get the same client limits (``qps``/``burst``), the admin identity and
no leader election. kube-scheduler is a second instance of the cluster's own binary
with a ``KubeSchedulerConfiguration`` whose only profile serves the round's scheduler
name; the operator is ``hybrid-scheduler run`` with that name. Processes are started
and stopped by PID through the dev cluster's process helpers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from hybrid_lab.devcluster import processes
from hybrid_lab.devcluster.build import find_binary
from hybrid_lab.devcluster.components import http_ok
from hybrid_lab.devcluster.ports import free_port
from hybrid_lab.devcluster.settings import LOOPBACK, ClusterSettings
from hybrid_lab.devcluster.state import ProcessRecord
from hybrid_lab.launch import operator_argv

KUBE_SCHEDULER = "kube-scheduler"
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Contender:
    """One scheduler to measure."""

    label: str
    """Name in the results (``kube-scheduler`` or ``hybrid-scheduler (policy)``)."""
    scheduler_name: str
    """The ``spec.schedulerName`` it serves in its round."""
    policy: str | None = None
    """Our policy; None for kube-scheduler."""
    batch_interval_s: float | None = None
    """Our pass interval for this contender; None uses the run's."""


@dataclass(frozen=True)
class ClientLimits:
    """What both schedulers may ask of the API server."""

    qps: float
    burst: int
    batch_interval_s: float
    batch_size: int


def start(
    contender: Contender, settings: ClusterSettings, limits: ClientLimits, workdir: Path
) -> ProcessRecord:
    """Start the contender; return its record once it runs (kube-scheduler: once ready)."""
    workdir.mkdir(parents=True, exist_ok=True)
    if contender.policy is None:
        return _start_kube_scheduler(contender, settings, limits, workdir)
    argv = operator_argv(
        settings.kubeconfig,
        "--scheduler-name",
        contender.scheduler_name,
        "--policy",
        contender.policy,
        "--no-leader-election",
        "--http-port",
        "0",
        "--batch-interval",
        f"{contender.batch_interval_s or limits.batch_interval_s:g}",
        "--batch-size",
        str(limits.batch_size),
        "--api-qps",
        f"{limits.qps:g}",
        "--api-burst",
        str(limits.burst),
    )
    return processes.start(contender.scheduler_name, argv, workdir)


def _start_kube_scheduler(
    contender: Contender, settings: ClusterSettings, limits: ClientLimits, workdir: Path
) -> ProcessRecord:
    config = {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": {
            "kubeconfig": str(settings.kubeconfig),
            "qps": limits.qps,
            "burst": limits.burst,
        },
        "leaderElection": {"leaderElect": False},
        "profiles": [{"schedulerName": contender.scheduler_name}],
    }
    path = workdir / f"{contender.scheduler_name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    argv = [
        str(find_binary(settings, KUBE_SCHEDULER)),
        f"--config={path}",
        f"--authentication-kubeconfig={settings.kubeconfig}",
        f"--authorization-kubeconfig={settings.kubeconfig}",
        f"--bind-address={LOOPBACK}",
        f"--secure-port={port}",
        f"--cert-dir={workdir / 'kube-scheduler-certs'}",
        "--v=1",
    ]
    record = processes.start(contender.scheduler_name, argv, workdir)
    try:
        probe = http_ok(f"https://{LOOPBACK}:{port}/readyz", verify=False)
        processes.wait_ready(record, probe, READY_TIMEOUT_S)
    except BaseException:
        stop(record)
        raise
    return record


def stop(record: ProcessRecord) -> None:
    """SIGTERM, then SIGKILL after a grace period, to exactly this process group."""
    processes.stop([record], STOP_TIMEOUT_S)
