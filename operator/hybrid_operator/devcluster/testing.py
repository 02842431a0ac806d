"""Helpers for tests against the dev cluster (like ``kopf.testing``), used by tests/e2e.

:func:`session_cluster` brings a cluster up for a test session, or reuses one that is
already running and then leaves it running; :func:`training_pod` writes the pods that
kwok runs for a given time; :func:`wait_for` polls.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from hybrid_operator.devcluster import cluster, pki, scenario
from hybrid_operator.devcluster.apiserver import ApiServer
from hybrid_operator.devcluster.errors import DevClusterError
from hybrid_operator.devcluster.settings import ClusterSettings

T = TypeVar("T")


@dataclass(frozen=True)
class DevCluster:
    """Handles to a running dev cluster."""

    settings: ClusterSettings
    """Where it runs (ports, state directory)."""
    admin: ApiServer
    """Client with the admin identity (``system:masters``)."""

    def as_identity(self, identity: pki.Identity) -> ApiServer:
        """A client authenticated as one of the cluster's static identities."""
        return ApiServer.from_kubeconfig(self.settings.state_dir / identity.kubeconfig_name)


@contextmanager
def session_cluster(nodes: int) -> Iterator[DevCluster]:
    """A cluster with the default scheduler and Prometheus for the duration of the block."""
    settings = ClusterSettings(kube_scheduler=True, prometheus=True)
    existing = cluster.running_state(settings)
    if existing is not None:
        if not (existing.info.get("kube_scheduler") and existing.info.get("prometheus_enabled")):
            raise DevClusterError(
                "a dev cluster without --kube-scheduler --prometheus is "
                "running; stop it with 'hybrid-scheduler dev-cluster down'"
            )
        yield DevCluster(settings, ApiServer.from_kubeconfig(settings.kubeconfig))
        return
    cluster.up(settings, scenario.resolve(None, nodes), show_progress=False)
    try:
        yield DevCluster(settings, ApiServer.from_kubeconfig(settings.kubeconfig))
    finally:
        cluster.down(settings)


@contextmanager
def fresh_namespace(api: ApiServer, name: str, timeout_seconds: float = 30) -> Iterator[str]:
    """Create namespace ``name``, wait for its default service account, delete it after."""
    api.create(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    try:
        # Pods are refused until the controller manager has made the default service account.
        path = f"/api/v1/namespaces/{name}/serviceaccounts/default"
        wait_for(
            f"the default service account in {name}",
            lambda: True if api.call("GET", path, allow=(404,)).get("kind") else None,
            timeout_seconds,
        )
        yield name
    finally:
        api.delete(f"/api/v1/namespaces/{name}")


def recreate_namespaces(
    api: ApiServer, weights: dict[str, float], timeout_seconds: float = 120
) -> None:
    """Delete the namespaces if they exist, then create them with their weight annotations
    and wait for their default service accounts."""
    for name in weights:
        api.call("DELETE", f"/api/v1/namespaces/{name}", allow=(404,))
    for name, weight in weights.items():
        path = f"/api/v1/namespaces/{name}"

        def gone(path: str = path) -> bool | None:
            return True if api.request("GET", path).status_code == 404 else None

        wait_for(f"{name} to be deleted", gone, timeout_seconds)
        meta = {"name": name, "annotations": {"hybrid-scheduler.io/weight": f"{weight:g}"}}
        api.create(
            "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}
        )

        def account(path: str = f"{path}/serviceaccounts/default") -> bool | None:
            return True if api.request("GET", path).ok else None

        wait_for(f"{name}'s default service account", account, timeout_seconds)


def training_pod(
    name: str,
    *,
    gpus: int,
    cpu: str,
    memory: str,
    runtime: str | None = None,
    usage: str | None = None,
    task_type: str | None = None,
    node: str | None = None,
    scheduler_name: str | None = None,
) -> dict[str, Any]:
    """A simulated training pod: requests, run time and usage annotations, optional node."""
    annotations = {}
    if runtime is not None:
        annotations["hybrid-scheduler.io/sim-runtime"] = runtime
    if usage is not None:
        annotations["hybrid-scheduler.io/sim-usage"] = usage
    labels = {} if task_type is None else {"hybrid-scheduler.io/task-type": task_type}
    resources = {"cpu": cpu, "memory": memory, "nvidia.com/gpu": str(gpus)}
    spec: dict[str, Any] = {
        **({"schedulerName": scheduler_name} if scheduler_name else {}),
        "restartPolicy": "Never",
        "containers": [
            {
                "name": "train",
                "image": "example.invalid/train:1",
                "resources": {"requests": resources, "limits": {"nvidia.com/gpu": str(gpus)}},
            }
        ],
    }
    if node is not None:
        spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations, "labels": labels},
        "spec": spec,
    }


def wait_for(
    what: str, probe: Callable[[], T | None], timeout_seconds: float, interval_seconds: float = 0.25
) -> T:
    """Poll ``probe`` until it returns something other than None; fail after the timeout."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        time.sleep(interval_seconds)
    raise AssertionError(f"timed out after {timeout_seconds} s waiting for {what}")
