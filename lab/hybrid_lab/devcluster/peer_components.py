"""The peers' processes on the dev cluster, and the objects they need in it.

scheduler-plugins' kube-scheduler needs its CRDs (PodGroup, ElasticQuota) before it
starts; Kueue's manager needs its namespace and CRDs before, and its webhook
configurations once it serves them. With its internal certificate management off, Kueue
reads its metrics certificate from the fixed path ``/etc/kueue/metrics/certs``: the
manager runs in a private mount namespace (``unshare``) in which /etc is overlaid with a
directory holding our certificate at that path, so nothing on the host is written.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from hybrid_lab.devcluster import peers
from hybrid_lab.devcluster import pki as identities
from hybrid_lab.devcluster.apiserver import ApiServer
from hybrid_lab.devcluster.build import find_binary
from hybrid_lab.devcluster.components import Component, http_ok
from hybrid_lab.devcluster.errors import MissingToolError, StartupError
from hybrid_lab.devcluster.settings import LOOPBACK, ClusterSettings
from hybrid_operator import certificates

SCHEDULER_PLUGINS = "scheduler-plugins"
KUEUE = "kueue"
UNSHARE_HINT = "apt-get install --no-install-recommends util-linux"
#: Mounts ``$1`` over /etc (read-only, /etc below it), then runs the rest of the arguments.
ETC_OVERLAY = 'mount -t overlay overlay -o "lowerdir=$1:/etc" /etc && shift && exec "$@"'
KUEUE_METRICS_CERTS = Path("kueue", "metrics", "certs")
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
NAMESPACES = "/api/v1/namespaces"
ADMISSION = "/apis/admissionregistration.k8s.io/v1"
WEBHOOK_COLLECTIONS = {
    "MutatingWebhookConfiguration": f"{ADMISSION}/mutatingwebhookconfigurations",
    "ValidatingWebhookConfiguration": f"{ADMISSION}/validatingwebhookconfigurations",
}


def plan(settings: ClusterSettings) -> list[Component]:
    """The peers' processes, in start order."""
    return [scheduler_plugins(settings), kueue(settings)]


def required_ports(settings: ClusterSettings) -> dict[str, int]:
    """The ports the peers listen on, by purpose."""
    ports = settings.ports
    return {
        "scheduler-plugins": ports.scheduler_plugins,
        "kueue webhooks": ports.kueue_webhook,
        "kueue metrics": ports.kueue_metrics,
        "kueue health probes": ports.kueue_health,
    }


def unshare_binary() -> str:
    """The ``unshare`` executable Kueue is started with, or a clear error naming its package."""
    found = shutil.which("unshare")
    if found is None:
        raise MissingToolError(f"unshare is not installed; install it: {UNSHARE_HINT}")
    return found


def scheduler_plugins(settings: ClusterSettings) -> Component:
    """scheduler-plugins' kube-scheduler as a second scheduler (``schedulerName``
    ``scheduler-plugins``), configured by a file of ours."""
    kubeconfig = settings.state_dir / identities.SCHEDULER_PLUGINS.kubeconfig_name
    config = settings.state_dir / "scheduler-plugins.yaml"
    config.write_text(
        yaml.safe_dump(peers.scheduler_plugins_config(kubeconfig), sort_keys=False),
        encoding="utf-8",
    )
    port = settings.ports.scheduler_plugins
    argv = [
        str(find_binary(settings, SCHEDULER_PLUGINS)),
        f"--config={config}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={LOOPBACK}",
        f"--secure-port={port}",
        f"--cert-dir={settings.state_dir / 'scheduler-plugins'}",
        "--v=1",
    ]
    manifests = find_binary(settings, "scheduler-plugins-manifests")

    def install_crds() -> None:
        api = ApiServer.from_kubeconfig(settings.kubeconfig)
        apply_crds(api, load_documents(sorted(manifests.rglob("*.yaml"))), settings)

    return Component(
        SCHEDULER_PLUGINS,
        argv,
        http_ok(f"https://{LOOPBACK}:{port}/readyz", verify=False),
        before_start=install_crds,
    )


def kueue(settings: ClusterSettings) -> Component:
    """Kueue's manager out of the cluster, with a kubeconfig and our certificate."""
    directory = settings.state_dir / "kueue"
    cert_dir = directory / "certs"
    ca_bundle = kueue_certificate(cert_dir)
    metrics_certs = directory / "etc" / KUEUE_METRICS_CERTS
    metrics_certs.mkdir(parents=True, exist_ok=True)
    for name in ("tls.crt", "tls.key"):
        shutil.copyfile(cert_dir / name, metrics_certs / name)
    config = directory / "config.yaml"
    config.write_text(
        yaml.safe_dump(peers.kueue_config(settings.ports, cert_dir), sort_keys=False),
        encoding="utf-8",
    )
    unshare = [unshare_binary(), "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        unshare.append("--map-root-user")
    argv = [
        *unshare,
        "sh",
        "-c",
        ETC_OVERLAY,
        "kueue",
        str(directory / "etc"),
        str(find_binary(settings, KUEUE)),
        f"--config={config}",
        f"--kubeconfig={settings.state_dir / identities.KUEUE.kubeconfig_name}",
    ]
    manifests = find_binary(settings, "kueue-manifests")

    def install_crds() -> None:
        api = ApiServer.from_kubeconfig(settings.kubeconfig)
        api.create(NAMESPACES, namespace(peers.KUEUE_NAMESPACE), exist_ok=True)
        crd_dir = manifests / "config" / "components" / "crd"
        kustomization = yaml.safe_load((crd_dir / "kustomization.yaml").read_text("utf-8"))
        patch_files = [crd_dir / path for path in peers.enabled_patches(kustomization)]
        crds = peers.conversion_patched(
            load_documents(sorted((crd_dir / "bases").glob("*.yaml"))),
            load_documents(patch_files),
            settings.ports,
            ca_bundle,
        )
        apply_crds(api, crds, settings)

    def install_webhooks() -> None:
        api = ApiServer.from_kubeconfig(settings.kubeconfig)
        source = manifests / "config" / "components" / "webhook" / "manifests.yaml"
        documents = load_documents([source])
        for configuration in peers.loopback_webhooks(documents, settings.ports, ca_bundle):
            apply(api, WEBHOOK_COLLECTIONS[configuration["kind"]], configuration)

    return Component(
        KUEUE,
        argv,
        http_ok(f"http://{LOOPBACK}:{settings.ports.kueue_health}/readyz"),
        before_start=install_crds,
        after_ready=install_webhooks,
    )


def remove_webhooks(api: ApiServer) -> None:
    """Delete Kueue's webhook configurations (before its manager stops for good)."""
    for kind, collection in WEBHOOK_COLLECTIONS.items():
        name = kind.removesuffix("WebhookConfiguration").lower() + "-webhook-configuration"
        api.delete(f"{collection}/{peers.WEBHOOK_NAME_PREFIX}{name}")


def kueue_certificate(cert_dir: Path) -> bytes:
    """The CA bundle of Kueue's serving certificate for 127.0.0.1, issued once per ``up``
    (a restarted manager keeps it, so the webhook configurations stay valid)."""
    ca_file = cert_dir / "ca.crt"
    if ca_file.exists() and (cert_dir / "tls.crt").exists():
        return ca_file.read_bytes()
    issued = certificates.issue([LOOPBACK], cert_dir)
    ca_file.write_bytes(issued.ca_pem)
    return issued.ca_pem


def namespace(name: str) -> dict[str, Any]:
    """A Namespace object."""
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def load_documents(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Every YAML document of ``paths`` that is a mapping."""
    documents = []
    for path in paths:
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(document, dict):
                documents.append(document)
    return documents


def apply(api: ApiServer, collection: str, body: dict[str, Any]) -> None:
    """Create ``body`` in ``collection``, or replace the object of that name."""
    created = api.call("POST", collection, body, allow=(409,))
    if created.get("kind") != "Status":
        return
    path = f"{collection}/{body['metadata']['name']}"
    current = api.get(path)
    replacement = {**body, "metadata": {**body["metadata"]}}
    replacement["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    api.call("PUT", path, replacement)


def apply_crds(api: ApiServer, crds: list[dict[str, Any]], settings: ClusterSettings) -> None:
    """Apply ``crds`` and wait until the API server serves each of them."""
    for crd in crds:
        apply(api, CRDS, crd)
    wait_established(api, [crd["metadata"]["name"] for crd in crds], settings)


def wait_established(api: ApiServer, names: Iterable[str], settings: ClusterSettings) -> None:
    """Wait until the API server serves each CRD of ``names``."""
    deadline = time.monotonic() + settings.ready_timeout_seconds
    for name in names:
        while not _established(api.get(f"{CRDS}/{name}")):
            if time.monotonic() > deadline:
                raise StartupError(f"the CRD {name} was not established in time")
            time.sleep(0.2)


def _established(crd: dict[str, Any]) -> bool:
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)
