"""Settings of the dev cluster: component versions, loopback ports and directories.

Defaults live here and nowhere else. Directories can be moved with environment variables
(``HYBRID_SCHEDULER_CACHE_DIR``, ``HYBRID_SCHEDULER_DEV_CLUSTER_DIR``) and every default
port shifted by ``HYBRID_SCHEDULER_DEV_CLUSTER_PORT_OFFSET``, or set with command-line
flags, so that CI and parallel checkouts do not collide.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from hybrid_lab.devcluster.errors import InputError

CACHE_DIR_ENV = "HYBRID_SCHEDULER_CACHE_DIR"
STATE_DIR_ENV = "HYBRID_SCHEDULER_DEV_CLUSTER_DIR"
PORT_OFFSET_ENV = "HYBRID_SCHEDULER_DEV_CLUSTER_PORT_OFFSET"
LOOPBACK = "127.0.0.1"


def default_cache_dir() -> Path:
    """Return the build cache: ``$HYBRID_SCHEDULER_CACHE_DIR`` or ~/.cache/hybrid-scheduler."""
    env = os.environ.get(CACHE_DIR_ENV)
    return Path(env) if env else Path.home() / ".cache" / "hybrid-scheduler"


def default_state_dir() -> Path:
    """Return the runtime state directory (PKI, kubeconfig, logs, PID file)."""
    env = os.environ.get(STATE_DIR_ENV)
    if env:
        return Path(env)
    return Path.home() / ".local" / "state" / "hybrid-scheduler" / "dev-cluster"


@dataclass(frozen=True)
class Versions:
    """Upstream versions built into the cache; each gets its own cache directory."""

    kubernetes: str = "v1.34.4"
    """kube-apiserver, kube-controller-manager and kube-scheduler (k8s.io/kubernetes tag)."""
    etcd: str = "v3.6.16"
    """etcd server (go.etcd.io/etcd/server/v3); the API server needs >= 3.5.13."""
    kwok: str = "v0.8.0"
    """kwok, which plays the kubelet of every simulated node."""
    helm: str = "v3.21.4"
    """helm, for chart lint and render tests (no cluster needed)."""
    kind: str = "v0.30.0"
    """sigs.k8s.io/kind, whose v1alpha4 types check kind-config.yaml (kind-config-check)."""
    prometheus_operator: str = "v0.85.0"
    """prometheus-operator module, whose ServiceMonitor CRD validates the chart's."""
    scheduler_plugins: str = "v0.34.7"
    """sigs.k8s.io/scheduler-plugins: its kube-scheduler with Coscheduling (a peer)."""
    kueue: str = "v0.17.0"
    """sigs.k8s.io/kueue: its manager, which admits queued Jobs (a peer)."""
    training_operator: str = "v1.8.1"
    """github.com/kubeflow/training-operator: its PyTorchJob controller (a job controller)."""

    @property
    def staging(self) -> str:
        """Version of the published k8s.io staging modules matching ``kubernetes``."""
        return "v0." + self.kubernetes.removeprefix("v1.")


@dataclass(frozen=True)
class Ports:
    """TCP ports on 127.0.0.1; every one is checked free before anything starts."""

    apiserver: int = 16443
    """kube-apiserver HTTPS (default 16443)."""
    etcd_client: int = 12379
    """etcd client URL (default 12379)."""
    etcd_peer: int = 12380
    """etcd peer URL, single member (default 12380)."""
    controller_manager: int = 16257
    """kube-controller-manager secure health port (default 16257)."""
    scheduler: int = 16259
    """kube-scheduler secure health port (default 16259)."""
    kwok: int = 16247
    """kwok's own HTTP server (health, metrics) (default 16247)."""
    prometheus: int = 19090
    """Prometheus web and query API (default 19090)."""
    exporter: int = 19400
    """Our utilisation exporter, DCGM port number plus 10000 (default 19400)."""
    scheduler_plugins: int = 16261
    """scheduler-plugins' kube-scheduler secure health port (default 16261)."""
    kueue_webhook: int = 19443
    """Kueue's admission and conversion webhooks, HTTPS (default 19443)."""
    kueue_metrics: int = 19444
    """Kueue's metrics, HTTPS (default 19444)."""
    kueue_health: int = 19445
    """Kueue's health and readiness probes, HTTP (default 19445)."""
    training_operator_metrics: int = 19446
    """training-operator's metrics, HTTP (default 19446)."""
    training_operator_health: int = 19447
    """training-operator's health and readiness probes, HTTP (default 19447)."""
    training_operator_webhook: int = 19448
    """training-operator's webhook server, HTTPS; it binds every address (default 19448)."""


def default_ports() -> Ports:
    """The default ports, each shifted by ``$HYBRID_SCHEDULER_DEV_CLUSTER_PORT_OFFSET``."""
    raw = os.environ.get(PORT_OFFSET_ENV, "0").strip() or "0"
    try:
        offset = int(raw)
    except ValueError:
        raise InputError(f"{PORT_OFFSET_ENV}={raw!r} is not an integer") from None
    base = Ports()
    shifted = {name: port + offset for name, port in dataclasses.asdict(base).items()}
    if not all(1024 <= port < 65536 for port in shifted.values()):
        raise InputError(f"{PORT_OFFSET_ENV}={offset} moves a port outside 1024-65535")
    return Ports(**shifted)


@dataclass(frozen=True)
class ClusterSettings:
    """Everything ``dev-cluster up`` needs besides the node list."""

    state_dir: Path = field(default_factory=default_state_dir)
    """Runtime state: PKI, kubeconfigs, logs, PID file (default see default_state_dir)."""
    cache_dir: Path = field(default_factory=default_cache_dir)
    """Built binaries and Go caches (default ~/.cache/hybrid-scheduler)."""
    versions: Versions = field(default_factory=Versions)
    """Component versions to build and run."""
    ports: Ports = field(default_factory=default_ports)
    """Loopback ports (default see default_ports)."""
    kube_scheduler: bool = False
    """Start the real default scheduler beside our own (default off)."""
    prometheus: bool = False
    """Start Prometheus and the utilisation exporter (default off)."""
    peers: bool = False
    """Build and start the peers: scheduler-plugins' scheduler and Kueue (default off)."""
    job_controllers: bool = False
    """Build and start the job controllers: training-operator's PyTorchJobs (default off)."""
    ready_timeout_seconds: float = 120.0
    """How long each component may take to become ready (seconds, default 120)."""
    stop_timeout_seconds: float = 10.0
    """Grace period between SIGTERM and SIGKILL when stopping (seconds, default 10)."""
    scrape_interval_seconds: int = 5
    """Prometheus scrape interval, short so tests are quick (seconds, default 5)."""

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig printed by ``up``."""
        return self.state_dir / "kubeconfig"

    @property
    def server_url(self) -> str:
        """HTTPS address of the API server."""
        return f"https://{LOOPBACK}:{self.ports.apiserver}"

    @property
    def prometheus_url(self) -> str:
        """HTTP address of Prometheus."""
        return f"http://{LOOPBACK}:{self.ports.prometheus}"

    def bin_dir(self, component: str, version: str) -> Path:
        """Directory of one built component, e.g. ``bin/kubernetes-v1.34.4``."""
        return self.cache_dir / "bin" / f"{component}-{version}"
