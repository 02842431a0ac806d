"""``up``, ``down`` and ``status`` of the dev cluster.

``up`` checks everything it can before starting anything (an existing cluster, required
tools, free ports), builds missing binaries, then starts the processes one by one, saving
the PID file after each, so that any failure (or Ctrl-C) stops exactly what was started.
:func:`stop_component`, :func:`start_component` and :func:`restart_component` take one
process of a running cluster down and bring it back with the same command line (fault
injection: an API server or etcd outage).
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import yaml
from tqdm import tqdm

from hybrid_lab.devcluster import (
    build,
    components,
    job_controllers,
    nodes,
    peer_components,
    pki,
    processes,
    state,
)
from hybrid_lab.devcluster.apiserver import ApiServer
from hybrid_lab.devcluster.errors import (
    AlreadyRunningError,
    DevClusterError,
    NotRunningError,
    StartupError,
)
from hybrid_lab.devcluster.ports import require_free
from hybrid_lab.devcluster.scenario import NodeSpec
from hybrid_lab.devcluster.settings import ClusterSettings
from hybrid_lab.devcluster.state import ClusterState


@dataclass(frozen=True)
class UpResult:
    """What ``up`` reports."""

    kubeconfig: str
    """Admin kubeconfig path."""
    seconds: float
    """Wall time from start to a ready cluster, builds included (seconds)."""
    built: list[str]
    """Binaries that had to be built first."""


def required_ports(settings: ClusterSettings) -> dict[str, int]:
    """The ports this configuration listens on, by purpose."""
    ports = settings.ports
    wanted = {
        "etcd clients": ports.etcd_client,
        "etcd peers": ports.etcd_peer,
        "kube-apiserver": ports.apiserver,
        "kube-controller-manager": ports.controller_manager,
        "kwok": ports.kwok,
    }
    if settings.kube_scheduler:
        wanted["kube-scheduler"] = ports.scheduler
    if settings.prometheus:
        wanted["utilisation exporter"] = ports.exporter
        wanted["prometheus"] = ports.prometheus
    if settings.peers:
        wanted.update(peer_components.required_ports(settings))
    if settings.job_controllers:
        wanted.update(job_controllers.required_ports(settings))
    return wanted


def running_state(settings: ClusterSettings) -> ClusterState | None:
    """The PID file if at least one of its processes still runs, else None."""
    current = state.load(settings.state_dir)
    if current is None or not state.running(current):
        return None
    return current


def up(
    settings: ClusterSettings, node_specs: Sequence[NodeSpec], show_progress: bool = True
) -> UpResult:
    """Build what is missing and start a ready cluster with ``node_specs``."""
    started_at = time.monotonic()
    if running_state(settings) is not None:
        raise AlreadyRunningError(
            f"a dev cluster is already running (state in {settings.state_dir}); "
            f"its admin kubeconfig is {settings.kubeconfig}; stop it first with "
            "'hybrid-scheduler dev-cluster down'"
        )
    state.remove(settings.state_dir)
    if settings.prometheus:
        components.prometheus_binary()
    if settings.peers or settings.job_controllers:
        peer_components.unshare_binary()
    require_free(required_ports(settings))
    built = build.build_missing(settings, show_progress)
    _reset_runtime_dirs(settings)
    cluster_pki = pki.create_pki(settings.state_dir / "pki")
    pki.write_tokens_and_kubeconfigs(cluster_pki, settings.state_dir, settings.server_url)
    current = ClusterState()
    try:
        _start_all(settings, cluster_pki, node_specs, current, show_progress)
    except BaseException:
        processes.stop(current.processes, settings.stop_timeout_seconds)
        state.remove(settings.state_dir)
        raise
    seconds = time.monotonic() - started_at
    current.info.update(
        {
            "kubeconfig": str(settings.kubeconfig),
            "apiserver": settings.server_url,
            "prometheus": settings.prometheus_url if settings.prometheus else None,
            "nodes": len(node_specs),
            "kube_scheduler": settings.kube_scheduler,
            "prometheus_enabled": settings.prometheus,
            "peers": settings.peers,
            "job_controllers": settings.job_controllers,
            "up_seconds": round(seconds, 1),
        }
    )
    state.save(settings.state_dir, current)
    return UpResult(str(settings.kubeconfig), seconds, [step.binary for step in built])


def _reset_runtime_dirs(settings: ClusterSettings) -> None:
    # Each ``up`` starts from an empty etcd and Prometheus; logs of the last run are replaced.
    for name in ("etcd", "prometheus", "logs", "kueue", build.TRAINING_OPERATOR):
        shutil.rmtree(settings.state_dir / name, ignore_errors=True)
    settings.state_dir.mkdir(parents=True, exist_ok=True)


def _start_all(
    settings: ClusterSettings,
    cluster_pki: pki.Pki,
    node_specs: Sequence[NodeSpec],
    current: ClusterState,
    show_progress: bool,
) -> None:
    plan = full_plan(settings, cluster_pki)
    with tqdm(total=len(plan), desc="starting", unit="process", disable=not show_progress) as bar:
        for component in plan:
            bar.set_postfix_str(component.name)
            start_one(settings, component, current)
            bar.update(1)
            if component.name == "kwok":
                _create_cluster_objects(settings, node_specs, show_progress)


def full_plan(settings: ClusterSettings, cluster_pki: pki.Pki) -> list[components.Component]:
    """Every process of this configuration, in start order (peers, then job controllers)."""
    plan = components.plan(settings, cluster_pki)
    if settings.peers:
        plan += peer_components.plan(settings)
    if settings.job_controllers:
        plan += job_controllers.plan(settings)
    return plan


def start_one(
    settings: ClusterSettings,
    component: components.Component,
    current: ClusterState,
    replaces: state.ProcessRecord | None = None,
) -> None:
    """Start one process, recorded in the PID file at once (in place of ``replaces``)."""
    _prepare(component.name, component.before_start)
    record = processes.start(component.name, component.argv, settings.state_dir / "logs")
    if replaces is None:
        current.processes.append(record)
    else:
        current.processes[current.processes.index(replaces)] = record
    state.save(settings.state_dir, current)
    processes.wait_ready(record, component.probe, settings.ready_timeout_seconds)
    _prepare(component.name, component.after_ready)


def _prepare(name: str, step: Callable[[], None] | None) -> None:
    """Run a component's set-up step; a bad or missing manifest becomes one line."""
    if step is None:
        return
    try:
        step()
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError) as err:
        raise StartupError(f"cannot set up {name}: {type(err).__name__}: {err}") from err


def _create_cluster_objects(
    settings: ClusterSettings, node_specs: Sequence[NodeSpec], show_progress: bool
) -> None:
    api = ApiServer.from_kubeconfig(settings.kubeconfig)
    nodes.bind_test_identities(api)
    with tqdm(
        total=len(node_specs),
        desc="creating nodes",
        unit="node",
        leave=False,
        disable=not show_progress,
    ) as bar:
        nodes.create_nodes(api, node_specs, bar.update)
    with tqdm(
        total=len(node_specs),
        desc="nodes ready",
        unit="node",
        leave=False,
        disable=not show_progress,
    ) as bar:
        nodes.wait_nodes_ready(api, node_specs, settings.ready_timeout_seconds, bar.update)
    nodes.wait_default_service_account(api, settings.ready_timeout_seconds)


def down(settings: ClusterSettings) -> list[str]:
    """Stop exactly the processes ``up`` recorded; return their names in stop order."""
    current = state.load(settings.state_dir)
    if current is None:
        raise NotRunningError(f"no dev cluster is running (no state in {settings.state_dir})")
    alive = state.running(current)
    stopped = processes.stop(current.processes, settings.stop_timeout_seconds)
    state.remove(settings.state_dir)
    if not alive:
        raise NotRunningError(
            f"no dev cluster is running (removed a stale state file in {settings.state_dir})"
        )
    return stopped


def stop_component(settings: ClusterSettings, name: str) -> None:
    """Stop one process of the running cluster (e.g. ``kube-apiserver``); its record stays
    in the PID file until :func:`start_component` replaces it."""
    _, record = _component_record(settings, name)
    if not state.is_alive(record):
        raise DevClusterError(f"{name} of the dev cluster is not running")
    processes.stop([record], settings.stop_timeout_seconds)


def start_component(settings: ClusterSettings, name: str) -> float:
    """Start one stopped process again with the command line ``up`` gave it, wait until
    it is ready, record its new PID; return the seconds it took to become ready."""
    current, record = _component_record(settings, name)
    if state.is_alive(record):
        raise DevClusterError(f"{name} of the dev cluster is already running")
    # The plan of the cluster as it was started, whatever optional parts ``settings`` names.
    as_started = dataclasses.replace(
        settings,
        kube_scheduler=bool(current.info.get("kube_scheduler")),
        prometheus=bool(current.info.get("prometheus_enabled")),
        peers=bool(current.info.get("peers")),
        job_controllers=bool(current.info.get("job_controllers")),
    )
    plan = full_plan(as_started, pki.Pki(settings.state_dir / "pki"))
    component = next((c for c in plan if c.name == name), None)
    if component is None:
        raise DevClusterError(f"{name} is not a process 'up' starts; it cannot be restarted")
    started_at = time.monotonic()
    start_one(settings, component, current, replaces=record)
    return time.monotonic() - started_at


def restart_component(settings: ClusterSettings, name: str, down_s: float) -> float:
    """Stop one process, keep it down for ``down_s`` seconds, start it again; return the
    seconds it was unavailable (down time plus time to become ready)."""
    stopped_at = time.monotonic()
    stop_component(settings, name)
    time.sleep(max(down_s - (time.monotonic() - stopped_at), 0.0))
    start_component(settings, name)
    return time.monotonic() - stopped_at


def _component_record(
    settings: ClusterSettings, name: str
) -> tuple[ClusterState, state.ProcessRecord]:
    current = state.load(settings.state_dir)
    if current is None:
        raise NotRunningError(f"no dev cluster is running (no state in {settings.state_dir})")
    for record in current.processes:
        if record.name == name:
            return current, record
    known = ", ".join(r.name for r in current.processes)
    raise DevClusterError(f"the dev cluster has no process {name!r} (it has {known})")


def status_lines(settings: ClusterSettings) -> tuple[bool, list[str]]:
    """Whether every recorded process runs, and lines describing the cluster."""
    current = state.load(settings.state_dir)
    if current is None:
        return False, [f"no dev cluster is running (no state in {settings.state_dir})"]
    lines = []
    healthy = True
    total_bytes = 0
    for record in current.processes:
        alive = state.is_alive(record)
        healthy = healthy and alive
        word = "running" if alive else "STOPPED"
        rss = state.resident_bytes(record.pid) if alive else 0
        total_bytes += rss
        lines.append(
            f"{record.name:<24} pid {record.pid:<8} {word:<8} "
            f"rss {rss / 2**20:7.0f} MiB  log {record.log_path}"
        )
    lines.append(f"resident memory of all processes: {total_bytes / 2**20:.0f} MiB")
    for key, value in current.info.items():
        if value is not None:
            lines.append(f"{key}: {value}")
    if not healthy:
        lines.append(
            "some processes are gone; run 'hybrid-scheduler dev-cluster down' and 'up' again"
        )
    return healthy, lines


def describe_error(err: DevClusterError) -> str:
    """The one-line message for an error."""
    return " ".join(str(err).split())
