"""The job controllers (``--job-controllers``): Kubeflow's training-operator, out of cluster.

training-operator v1.8.1 creates a PyTorchJob's pods and, with
``--gang-scheduler-name=hybrid-scheduler``, a scheduler-plugins PodGroup for them (the
gang our scheduler must bind whole). It expects to run in a pod of namespace ``kubeflow``:
its certificate rotator writes the serving certificate into the Secret
``training-operator-webhook-cert``, injects the CA into two
ValidatingWebhookConfigurations, and starts the controllers only once the certificate
files are "mounted" in ``/tmp/k8s-webhook-server/serving-certs`` (a constant of its
``pkg/cert``; the webhook server reads the same files under ``$TMPDIR``). Here:

* before it starts: its PyTorchJob CRD (server-side apply: too large for client-side), the
  chart's PodGroup CRD when absent, the namespace, the empty Secret and the two webhook
  configurations with ``webhooks: []`` (the API server could not call an out-of-cluster
  webhook through a Service anyway);
* it runs in a private mount namespace where ``/tmp/k8s-webhook-server`` is this
  cluster's own directory (two clusters on one machine never share the files), with
  ``TMPDIR=/tmp``;
* while it starts, the readiness probe copies the Secret's certificate into that
  directory, as the kubelet would mount it, then waits for its ``/readyz``.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hybrid_lab.devcluster import peer_components
from hybrid_lab.devcluster.apiserver import ApiServer
from hybrid_lab.devcluster.build import (
    TRAINING_OPERATOR,
    TRAINING_OPERATOR_BINARY,
    TRAINING_OPERATOR_MANIFESTS,
    find_binary,
)
from hybrid_lab.devcluster.components import Component, http_ok
from hybrid_lab.devcluster.errors import DevClusterError, StartupError
from hybrid_lab.devcluster.settings import LOOPBACK, ClusterSettings

GANG_SCHEDULER_NAME = "hybrid-scheduler"
"""The ``schedulerName`` training-operator gives the pods of a gang (and its PodGroup)."""
NAMESPACE = "kubeflow"
CERT_SECRET = "training-operator-webhook-cert"
WEBHOOK_CONFIGURATIONS = (
    "validating-webhook-configuration",
    "validator.training-operator.kubeflow.org",
)
#: Where the rotator and the webhook server look for the serving certificate.
CERT_MOUNT = "/tmp/k8s-webhook-server"
SERVING_CERTS = "serving-certs"
CERT_FILES = ("tls.crt", "tls.key", "ca.crt")
PYTORCHJOB_CRD = Path("manifests", "base", "crds", "kubeflow.org_pytorchjobs.yaml")
#: The PodGroup CRD of our chart (this file lies in lab/hybrid_lab/devcluster/).
PODGROUP_CRD = (
    Path(__file__).resolve().parents[3]
    / "helm"
    / "hybrid-scheduler"
    / "crds"
    / "scheduling.x-k8s.io_podgroups.yaml"
)
FIELD_MANAGER = "hybrid-scheduler-dev-cluster"
#: Bind-mounts ``$1`` over ``$2`` (created if absent), then runs the rest with TMPDIR=/tmp.
PRIVATE_CERT_DIR = 'mkdir -p "$2" && mount --bind "$1" "$2" && shift 2 && exec env TMPDIR=/tmp "$@"'
SECRETS = f"/api/v1/namespaces/{NAMESPACE}/secrets"
VALIDATING_WEBHOOKS = peer_components.WEBHOOK_COLLECTIONS["ValidatingWebhookConfiguration"]


def plan(settings: ClusterSettings) -> list[Component]:
    """The job controllers' processes, in start order."""
    return [training_operator(settings)]


def required_ports(settings: ClusterSettings) -> dict[str, int]:
    """The ports the job controllers listen on, by purpose."""
    ports = settings.ports
    return {
        "training-operator metrics": ports.training_operator_metrics,
        "training-operator health probes": ports.training_operator_health,
        "training-operator webhooks": ports.training_operator_webhook,
    }


def cert_dir(settings: ClusterSettings) -> Path:
    """This cluster's directory seen as ``/tmp/k8s-webhook-server`` by training-operator."""
    return settings.state_dir / TRAINING_OPERATOR / "k8s-webhook-server"


def training_operator(settings: ClusterSettings) -> Component:
    """training-operator's PyTorchJob controller, gangs for ``hybrid-scheduler``."""
    directory = cert_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    unshare = [peer_components.unshare_binary(), "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        unshare.append("--map-root-user")
    ports = settings.ports
    argv = [
        *unshare,
        "sh",
        "-c",
        PRIVATE_CERT_DIR,
        TRAINING_OPERATOR,
        str(directory),
        CERT_MOUNT,
        str(find_binary(settings, TRAINING_OPERATOR_BINARY)),
        f"--kubeconfig={settings.kubeconfig}",
        "--enable-scheme=pytorchjob",
        f"--gang-scheduler-name={GANG_SCHEDULER_NAME}",
        f"--metrics-bind-address={LOOPBACK}:{ports.training_operator_metrics}",
        f"--health-probe-bind-address={LOOPBACK}:{ports.training_operator_health}",
        f"--webhook-server-port={ports.training_operator_webhook}",
    ]
    crd = find_binary(settings, TRAINING_OPERATOR_MANIFESTS) / PYTORCHJOB_CRD

    def install() -> None:
        install_prerequisites(ApiServer.from_kubeconfig(settings.kubeconfig), crd, settings)

    handover = CertificateHandOver(
        lambda: ApiServer.from_kubeconfig(settings.kubeconfig),
        directory / SERVING_CERTS,
        http_ok(f"http://{LOOPBACK}:{ports.training_operator_health}/readyz"),
    )
    return Component(TRAINING_OPERATOR, argv, handover, before_start=install)


def install_prerequisites(api: ApiServer, pytorchjob_crd: Path, settings: ClusterSettings) -> None:
    """The CRDs, namespace, Secret and webhook configurations training-operator needs."""
    [crd] = peer_components.load_documents([pytorchjob_crd])
    api.apply_server_side(peer_components.CRDS, crd, FIELD_MANAGER)
    if not PODGROUP_CRD.exists():
        raise StartupError(f"the PodGroup CRD of the chart is missing: {PODGROUP_CRD}")
    [podgroups] = peer_components.load_documents([PODGROUP_CRD])
    api.create(peer_components.CRDS, podgroups, exist_ok=True)
    names = [crd["metadata"]["name"], podgroups["metadata"]["name"]]
    peer_components.wait_established(api, names, settings)
    api.create(peer_components.NAMESPACES, peer_components.namespace(NAMESPACE), exist_ok=True)
    api.create(SECRETS, cert_secret(), exist_ok=True)
    for name in WEBHOOK_CONFIGURATIONS:
        api.create(VALIDATING_WEBHOOKS, empty_webhook_configuration(name), exist_ok=True)


def cert_secret() -> dict[str, Any]:
    """The empty Secret the certificate rotator fills."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": CERT_SECRET, "namespace": NAMESPACE},
    }


def empty_webhook_configuration(name: str) -> dict[str, Any]:
    """A ValidatingWebhookConfiguration without webhooks, for the rotator to inject into."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [],
    }


class CertificateHandOver:
    """The readiness probe: once the rotator has written the Secret, copies its
    certificate files into ``target`` (once), then asks ``ready``."""

    def __init__(
        self, connect: Callable[[], ApiServer], target: Path, ready: Callable[[], bool]
    ) -> None:
        self._connect = connect
        self._target = target
        self._ready = ready
        self.handed_over = False

    def __call__(self) -> bool:
        """Whether training-operator is ready (after handing over its certificate)."""
        if not self.handed_over:
            try:
                self.handed_over = self._copy()
            except DevClusterError:
                return False
        return self.handed_over and self._ready()

    def _copy(self) -> bool:
        secret = self._connect().call("GET", f"{SECRETS}/{CERT_SECRET}", allow=(404,))
        data = secret.get("data") or {}
        if not all(data.get(name) for name in CERT_FILES):
            return False
        self._target.mkdir(parents=True, exist_ok=True)
        for name in CERT_FILES:
            # Written aside and renamed: the rotator must never see half a tls.crt.
            partial = self._target / f".{name}.partial"
            partial.write_bytes(base64.b64decode(data[name]))
            partial.replace(self._target / name)
        return True
