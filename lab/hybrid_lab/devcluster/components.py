"""The command lines and readiness checks of each dev-cluster process.

Everything listens on 127.0.0.1 only. The order of :func:`plan` is the start order;
stopping goes backwards.
"""

from __future__ import annotations

import shutil
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

import requests
import urllib3

from hybrid_lab.devcluster import pki as identities
from hybrid_lab.devcluster.build import find_binary
from hybrid_lab.devcluster.errors import MissingToolError
from hybrid_lab.devcluster.pki import Pki
from hybrid_lab.devcluster.settings import LOOPBACK, ClusterSettings

KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node=fake"
PROMETHEUS_PACKAGE_HINT = "apt-get install --no-install-recommends prometheus"


@dataclass(frozen=True)
class Component:
    """One process of the cluster."""

    name: str
    """Name used for its log file and in messages."""
    argv: list[str]
    """Command line."""
    probe: Callable[[], bool]
    """Returns True once the process serves requests."""
    before_start: Callable[[], None] | None = None
    """Creates what the process needs in the cluster before it starts (CRDs), if anything."""
    after_ready: Callable[[], None] | None = None
    """Creates what needs the process serving (webhook configurations), if anything."""


def http_ok(url: str, verify: bool | str = True, expect: str | None = None) -> Callable[[], bool]:
    """A probe that is true when ``url`` answers 200 (and contains ``expect``)."""

    def probe() -> bool:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
                response = requests.get(url, verify=verify, timeout=2)
        except requests.RequestException:
            return False
        return response.status_code == 200 and (expect is None or expect in response.text)

    return probe


def plan(settings: ClusterSettings, pki: Pki) -> list[Component]:
    """The processes ``up`` starts, in order."""
    components = [etcd(settings), apiserver(settings, pki), controller_manager(settings, pki)]
    if settings.kube_scheduler:
        components.append(scheduler(settings))
    components.append(kwok(settings))
    if settings.prometheus:
        components += [exporter(settings), prometheus(settings)]
    return components


def etcd(settings: ClusterSettings) -> Component:
    """Single-member etcd, without fsync (test data only)."""
    ports = settings.ports
    client = f"http://{LOOPBACK}:{ports.etcd_client}"
    peer = f"http://{LOOPBACK}:{ports.etcd_peer}"
    argv = [
        str(find_binary(settings, "etcd")),
        "--name=dev",
        f"--data-dir={settings.state_dir / 'etcd'}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=dev={peer}",
        "--unsafe-no-fsync",
        "--quota-backend-bytes=8589934592",
        "--log-level=warn",
    ]
    return Component("etcd", argv, http_ok(f"{client}/health", expect="true"))


def apiserver(settings: ClusterSettings, pki: Pki) -> Component:
    """kube-apiserver with RBAC and static tokens; a loopback advertise address needs
    ``--endpoint-reconciler-type=none``."""
    argv = [
        str(find_binary(settings, "kube-apiserver")),
        f"--etcd-servers=http://{LOOPBACK}:{settings.ports.etcd_client}",
        f"--bind-address={LOOPBACK}",
        f"--advertise-address={LOOPBACK}",
        f"--secure-port={settings.ports.apiserver}",
        "--endpoint-reconciler-type=none",
        f"--tls-cert-file={pki.serving_cert}",
        f"--tls-private-key-file={pki.serving_key}",
        f"--client-ca-file={pki.ca_cert}",
        f"--token-auth-file={pki.token_file}",
        "--authorization-mode=RBAC",
        "--service-cluster-ip-range=10.96.0.0/16",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki.sa_pub}",
        f"--service-account-signing-key-file={pki.sa_key}",
        "--allow-privileged=true",
        "--max-requests-inflight=2000",
        "--max-mutating-requests-inflight=1000",
        "--v=1",
    ]
    return Component(
        "kube-apiserver", argv, http_ok(f"{settings.server_url}/readyz", verify=str(pki.ca_cert))
    )


def _control_plane_argv(
    settings: ClusterSettings, binary: str, identity: identities.Identity, port: int
) -> list[str]:
    """The flags kube-controller-manager and kube-scheduler share: one kubeconfig for the
    API server and for delegated authn/authz, a loopback secure port, no leader election."""
    kubeconfig = settings.state_dir / identity.kubeconfig_name
    return [
        str(find_binary(settings, binary)),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={LOOPBACK}",
        f"--secure-port={port}",
        "--leader-elect=false",
    ]


def controller_manager(settings: ClusterSettings, pki: Pki) -> Component:
    """kube-controller-manager: service accounts, namespace deletion, GC, Jobs, node health."""
    port = settings.ports.controller_manager
    argv = [
        *_control_plane_argv(
            settings, "kube-controller-manager", identities.CONTROLLER_MANAGER, port
        ),
        "--use-service-account-credentials",
        f"--service-account-private-key-file={pki.sa_key}",
        f"--root-ca-file={pki.ca_cert}",
        f"--cert-dir={settings.state_dir / 'controller-manager'}",
        "--kube-api-qps=500",
        "--kube-api-burst=1000",
        "--v=1",
    ]
    return Component(
        "kube-controller-manager", argv, http_ok(f"https://{LOOPBACK}:{port}/healthz", verify=False)
    )


def scheduler(settings: ClusterSettings) -> Component:
    """The real default scheduler, the baseline beside ours."""
    port = settings.ports.scheduler
    argv = [
        *_control_plane_argv(settings, "kube-scheduler", identities.SCHEDULER, port),
        f"--cert-dir={settings.state_dir / 'scheduler'}",
        "--v=1",
    ]
    return Component(
        "kube-scheduler", argv, http_ok(f"https://{LOOPBACK}:{port}/readyz", verify=False)
    )


def kwok(settings: ClusterSettings) -> Component:
    """kwok, managing only the nodes annotated ``kwok.x-k8s.io/node=fake``."""
    kubeconfig = settings.state_dir / identities.KWOK.kubeconfig_name
    stages = settings.state_dir / "kwok-stages.yaml"
    source = resources.files("hybrid_lab.devcluster") / "assets" / "kwok" / "stages.yaml"
    stages.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    address = f"{LOOPBACK}:{settings.ports.kwok}"
    argv = [
        str(find_binary(settings, "kwok")),
        f"--kubeconfig={kubeconfig}",
        f"--config={stages}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}",
        "--node-lease-duration-seconds=40",
        "--cidr=10.244.0.0/16",
        f"--server-address={address}",
    ]
    return Component("kwok", argv, http_ok(f"http://{address}/healthz"))


def exporter(settings: ClusterSettings) -> Component:
    """Our utilisation exporter (DCGM, kubelet and kube-state-metrics series per node)."""
    port = settings.ports.exporter
    argv = [
        sys.executable,
        "-m",
        "hybrid_lab.devcluster.exporter",
        f"--kubeconfig={settings.kubeconfig}",
        f"--port={port}",
    ]
    return Component("utilisation-exporter", argv, http_ok(f"http://{LOOPBACK}:{port}/metrics"))


def prometheus(settings: ClusterSettings) -> Component:
    """Prometheus from the Debian package, scraping the exporter every few seconds."""
    return prometheus_on(
        settings,
        settings.ports.prometheus,
        settings.state_dir / "prometheus",
        settings.state_dir / "prometheus.yml",
    )


def prometheus_on(
    settings: ClusterSettings, port: int, data_dir: Path, config: Path, name: str = "prometheus"
) -> Component:
    """A Prometheus on ``port`` scraping the cluster's exporter, keeping its data in
    ``data_dir`` (the cluster's own, or a second one that a test may stop)."""
    binary = prometheus_binary()
    template = resources.files("hybrid_lab.devcluster") / "assets" / "prometheus"
    text = (template / "prometheus.yml.template").read_text(encoding="utf-8")
    config.write_text(
        Template(text).substitute(
            scrape_interval=settings.scrape_interval_seconds,
            exporter_address=f"{LOOPBACK}:{settings.ports.exporter}",
        ),
        encoding="utf-8",
    )
    argv = [
        str(binary),
        f"--config.file={config}",
        f"--web.listen-address={LOOPBACK}:{port}",
        f"--storage.tsdb.path={data_dir}",
        "--storage.tsdb.retention.time=1d",
        "--log.level=warn",
    ]
    return Component(name, argv, http_ok(f"http://{LOOPBACK}:{port}/-/ready"))


def prometheus_binary() -> Path:
    """The Debian ``prometheus`` executable, or a clear error naming the package."""
    found = shutil.which("prometheus")
    if found is None:
        raise MissingToolError(
            f"prometheus is not installed; install the Debian package: {PROMETHEUS_PACKAGE_HINT}"
        )
    return Path(found)
