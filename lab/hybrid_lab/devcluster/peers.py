"""Configuration of the peers: scheduler-plugins' kube-scheduler and Kueue's manager.

Pure functions from settings and upstream manifests to the files and objects the dev
cluster gives the peers; :mod:`hybrid_lab.devcluster.peer_components` runs them. Each
setting follows the peer's own install where the loopback allows:

* scheduler-plugins runs as a second scheduler the way its ``as-a-second-scheduler``
  chart composes it: one profile with Coscheduling and CapacityScheduling added at every
  extension point (the chart's node-topology plugins need CRDs no kwok node reports),
  PrioritySort replaced by Coscheduling's queue sort, a 10 s permit wait, no leader
  election.
* Kueue gets the ``batch/job`` integration, fair sharing with its two preemption
  strategies, kube-scheduler's API client limits (50 queries a second, bursts of 100),
  no leader election, and our own certificate for 127.0.0.1 instead of its
  internal certificate management; its webhooks (from the module's kustomize sources)
  are called by URL on the loopback, and the on-demand visibility server, an aggregated
  API that needs a Service, is off.
"""

from __future__ import annotations

import copy
from base64 import b64encode
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hybrid_lab.devcluster.settings import LOOPBACK, Ports

SCHEDULER_NAME = "scheduler-plugins"
"""The ``schedulerName`` a pod names to be placed by scheduler-plugins."""
PERMIT_WAITING_SECONDS = 10
"""How long Coscheduling holds the pods of a group at Permit (the chart's setting)."""
KUEUE_NAMESPACE = "kueue-system"
KUEUE_FRAMEWORKS = ("batch/job",)
FAIR_SHARING_STRATEGIES = ("LessThanOrEqualToFinalShare", "LessThanInitialShare")
#: Kueue's API client limits: kube-scheduler's defaults, which every compared scheduler
#: gets (Kueue's own are 20 and 30).
KUEUE_CLIENT_QPS = 50
KUEUE_CLIENT_BURST = 100
WEBHOOK_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
#: The names kustomize gives the webhook configurations in Kueue's own install.
WEBHOOK_NAME_PREFIX = "kueue-"
#: The namespaces Kueue's install keeps out of its pod, deployment and statefulset webhooks.
UNMANAGED_NAMESPACES = ("kube-system", KUEUE_NAMESPACE)
WORKLOAD_WEBHOOKS = frozenset(
    f"{prefix}{kind}.kb.io" for prefix in "mv" for kind in ("pod", "deployment", "statefulset")
)


def scheduler_plugins_config(kubeconfig: Path) -> dict[str, Any]:
    """The KubeSchedulerConfiguration of scheduler-plugins' kube-scheduler."""
    return {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "leaderElection": {"leaderElect": False},
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "profiles": [
            {
                "schedulerName": SCHEDULER_NAME,
                "plugins": {
                    "multiPoint": {
                        "enabled": [{"name": "Coscheduling"}, {"name": "CapacityScheduling"}],
                        "disabled": [{"name": "PrioritySort"}],
                    }
                },
                "pluginConfig": [
                    {
                        "name": "Coscheduling",
                        "args": {"permitWaitingTimeSeconds": PERMIT_WAITING_SECONDS},
                    }
                ],
            }
        ],
    }


def kueue_config(ports: Ports, cert_dir: Path) -> dict[str, Any]:
    """Kueue's Configuration: loopback ports, our certificate, Jobs and fair sharing."""
    return {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "namespace": KUEUE_NAMESPACE,
        "health": {"healthProbeBindAddress": f"{LOOPBACK}:{ports.kueue_health}"},
        "metrics": {"bindAddress": f"{LOOPBACK}:{ports.kueue_metrics}"},
        "webhook": {"host": LOOPBACK, "port": ports.kueue_webhook, "certDir": str(cert_dir)},
        "leaderElection": {"leaderElect": False},
        "clientConnection": {"qps": KUEUE_CLIENT_QPS, "burst": KUEUE_CLIENT_BURST},
        "internalCertManagement": {"enable": False},
        "integrations": {"frameworks": list(KUEUE_FRAMEWORKS)},
        "fairSharing": {"preemptionStrategies": list(FAIR_SHARING_STRATEGIES)},
        "featureGates": {"VisibilityOnDemand": False},
    }


def webhook_url(ports: Ports, path: str) -> str:
    """The loopback URL of one of Kueue's webhook paths."""
    return f"https://{LOOPBACK}:{ports.kueue_webhook}{path}"


def _by_url(client_config: dict[str, Any], ports: Ports, ca_bundle: bytes) -> dict[str, Any]:
    """A ``clientConfig`` naming a Service, rewritten to the loopback URL of its path."""
    service = client_config.get("service")
    if not isinstance(service, dict) or "path" not in service:
        raise ValueError(f"clientConfig without a service path: {client_config!r}")
    return {
        "url": webhook_url(ports, str(service["path"])),
        "caBundle": b64encode(ca_bundle).decode("ascii"),
    }


def loopback_webhooks(
    documents: Iterable[Any], ports: Ports, ca_bundle: bytes
) -> list[dict[str, Any]]:
    """Kueue's webhook configurations, called by URL on the loopback with ``ca_bundle``.

    Named as Kueue's install names them, with its namespace selector on the pod,
    deployment and statefulset webhooks; anything but a webhook configuration is skipped.
    """
    configurations = []
    for document in documents:
        if not isinstance(document, dict) or document.get("kind") not in WEBHOOK_KINDS:
            continue
        configuration = copy.deepcopy(document)
        metadata = configuration["metadata"]
        metadata["name"] = WEBHOOK_NAME_PREFIX + metadata["name"]
        for webhook in configuration.get("webhooks", []):
            webhook["clientConfig"] = _by_url(webhook["clientConfig"], ports, ca_bundle)
            if webhook["name"] in WORKLOAD_WEBHOOKS:
                webhook["namespaceSelector"] = {
                    "matchExpressions": [
                        {
                            "key": "kubernetes.io/metadata.name",
                            "operator": "NotIn",
                            "values": list(UNMANAGED_NAMESPACES),
                        }
                    ]
                }
        configurations.append(configuration)
    return configurations


def conversion_patched(
    crds: Iterable[dict[str, Any]],
    patches: Iterable[dict[str, Any]],
    ports: Ports,
    ca_bundle: bytes,
) -> list[dict[str, Any]]:
    """The CRDs with the conversion webhook of each patch (by CRD name) called by URL."""
    conversions = {}
    for patch in patches:
        conversion = copy.deepcopy(patch["spec"]["conversion"])
        webhook = conversion["webhook"]
        webhook["clientConfig"] = _by_url(webhook["clientConfig"], ports, ca_bundle)
        conversions[patch["metadata"]["name"]] = conversion
    patched = []
    for crd in crds:
        crd = copy.deepcopy(crd)
        if crd["metadata"]["name"] in conversions:
            crd["spec"]["conversion"] = conversions[crd["metadata"]["name"]]
        patched.append(crd)
    return patched


def enabled_patches(kustomization: dict[str, Any]) -> list[str]:
    """The patch files a kustomization applies (commented-out ones are not in the YAML)."""
    return [str(entry["path"]) for entry in kustomization.get("patches", []) if "path" in entry]
