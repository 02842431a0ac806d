"""The processes of each compared scheduler during its round.

kube-scheduler, and the kube-scheduler that places the pods Kueue admits, are second
instances of the cluster's binary started for the round (default profile, the round's
scheduler name), as the operator is (``hybrid-scheduler run``). scheduler-plugins and
Kueue's manager are the dev cluster's peers (``up --peers``): found in its state, and
started (:func:`start_peers`) only in a cluster the command started itself. Those
started here are ready (``/readyz``) before the stream starts, so no round's Jobs wait
for its scheduler to start. A peer that is missing or dead, or a process that fails to
start, is :class:`SchedulerUnavailableError` naming its log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hybrid_lab.clusterbench.compare.configs import SchedulerKind, round_scheduler_name
from hybrid_lab.clusterbench.schedulers import (
    READY_TIMEOUT_S,
    ClientLimits,
    Contender,
    start,
    stop,
)
from hybrid_lab.devcluster import build, cluster, peer_components
from hybrid_lab.devcluster.components import http_ok
from hybrid_lab.devcluster.errors import DevClusterError
from hybrid_lab.devcluster.ports import free_port, require_free
from hybrid_lab.devcluster.processes import start as start_process
from hybrid_lab.devcluster.processes import wait_ready
from hybrid_lab.devcluster.settings import LOOPBACK, ClusterSettings
from hybrid_lab.devcluster.state import ProcessRecord, is_alive, save
from hybrid_lab.launch import operator_argv

PEER_PROCESSES = {
    SchedulerKind.SCHEDULER_PLUGINS: peer_components.SCHEDULER_PLUGINS,
    SchedulerKind.KUEUE: peer_components.KUEUE,
}


class SchedulerUnavailableError(DevClusterError):
    """A scheduler of the comparison could not run: not started, or dead."""


@dataclass
class RoundProcesses:
    """The processes measured in a round; ``started`` are stopped after it."""

    measured: list[ProcessRecord] = field(default_factory=list)
    started: list[ProcessRecord] = field(default_factory=list)

    @property
    def logs(self) -> list[str]:
        """Their log files."""
        return [r.log_path for r in self.measured]

    def dead(self) -> ProcessRecord | None:
        """The first measured process that is no longer running, if any."""
        return next((r for r in self.measured if not is_alive(r)), None)

    def stop(self) -> None:
        """Stop what this round started (peers keep running)."""
        for record in self.started:
            stop(record)
        self.started.clear()


def start_peers(settings: ClusterSettings, show_progress: bool) -> list[str]:
    """Start the peers in the running cluster (built first if missing), each on its own:
    a line per peer that could not be built or started (its round is then skipped,
    naming its log), instead of no cluster at all."""
    current = cluster.running_state(settings)
    if current is None:
        return ["no dev cluster is running"]
    try:
        peer_components.unshare_binary()
        require_free(peer_components.required_ports(settings))
        build.build_missing(settings, show_progress)
    except DevClusterError as exc:
        return [f"the peers were not started: {exc}"]
    problems = []
    for make in (peer_components.scheduler_plugins, peer_components.kueue):
        try:
            cluster.start_one(settings, make(settings), current)
        except DevClusterError as exc:
            problems.append(str(exc))
    current.info["peers"] = True
    save(settings.state_dir, current)
    return problems


def peer_record(settings: ClusterSettings, kind: SchedulerKind) -> ProcessRecord:
    """The running peer process of ``kind``, or an error saying how to get it."""
    name = PEER_PROCESSES[kind]
    current = cluster.running_state(settings)
    records = [r for r in (current.processes if current else []) if r.name == name]
    if not records:
        raise SchedulerUnavailableError(
            f"{name} is not running in the dev cluster; start it with "
            "'hybrid-scheduler dev-cluster up --peers'"
        )
    if not is_alive(records[-1]):
        raise SchedulerUnavailableError(f"{name} has exited; see its log {records[-1].log_path}")
    return records[-1]


def _start(
    processes: RoundProcesses,
    contender: Contender,
    settings: ClusterSettings,
    limits: ClientLimits,
    workdir: Path,
) -> None:
    try:
        record = start(contender, settings, limits, workdir)
    except DevClusterError as exc:
        log = workdir / f"{contender.scheduler_name}.log"
        raise SchedulerUnavailableError(
            f"{contender.label} did not start: {exc} (log: {log})"
        ) from exc
    processes.started.append(record)
    processes.measured.append(record)


def _start_operator(
    processes: RoundProcesses,
    name: str,
    policy: str,
    settings: ClusterSettings,
    limits: ClientLimits,
    workdir: Path,
) -> None:
    """Our operator, ready (``/readyz``: the cluster listed) before the stream starts, as
    kube-scheduler is."""
    port = free_port()
    argv = operator_argv(
        settings.kubeconfig,
        *("--scheduler-name", name, "--policy", policy, "--no-leader-election"),
        *("--http-host", LOOPBACK, "--http-port", str(port)),
        *("--batch-interval", f"{limits.batch_interval_s:g}"),
        *("--batch-size", str(limits.batch_size)),
        *("--api-qps", f"{limits.qps:g}", "--api-burst", str(limits.burst)),
    )
    workdir.mkdir(parents=True, exist_ok=True)
    record = start_process(name, argv, workdir)
    processes.started.append(record)
    processes.measured.append(record)
    try:
        wait_ready(record, http_ok(f"http://{LOOPBACK}:{port}/readyz"), READY_TIMEOUT_S)
    except DevClusterError as exc:
        raise SchedulerUnavailableError(
            f"hybrid-scheduler ({policy}) did not become ready: {exc} (log: {record.log_path})"
        ) from exc


def start_round(
    kind: SchedulerKind,
    settings: ClusterSettings,
    limits: ClientLimits,
    workdir: Path,
    policy: str,
) -> RoundProcesses:
    """The processes of ``kind``'s round, those of ours started."""
    processes = RoundProcesses()
    name = round_scheduler_name(kind)
    try:
        if kind in PEER_PROCESSES:
            processes.measured.append(peer_record(settings, kind))
        if kind in (SchedulerKind.KUBE_SCHEDULER, SchedulerKind.KUEUE):
            _start(processes, Contender("kube-scheduler", name), settings, limits, workdir)
        if kind is SchedulerKind.HYBRID:
            _start_operator(processes, name, policy, settings, limits, workdir)
    except BaseException:
        processes.stop()
        raise
    return processes
