"""Workloads on the dev cluster: namespaces, the simulated training pods kwok runs,
PyTorchJobs for training-operator, waiting.

Shared by the demo, the cluster benchmark and the e2e tests. :func:`wait_for` raises
:class:`WaitTimeoutError`, a :class:`~hybrid_lab.devcluster.errors.DevClusterError`, so a
command reports a cluster that never reached a state as one line, and a real assertion
error is never mistaken for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from hybrid_lab.devcluster.apiserver import ApiServer
from hybrid_lab.devcluster.errors import DevClusterError

T = TypeVar("T")


class WaitTimeoutError(DevClusterError):
    """The cluster did not reach a state in time."""


@contextmanager
def fresh_namespace(
    api: ApiServer,
    name: str,
    timeout_seconds: float = 30,
    labels: dict[str, str] | None = None,
) -> Iterator[str]:
    """Create namespace ``name`` (with ``labels``), wait for its default service account,
    delete it after."""
    meta: dict[str, object] = {"name": name, "labels": labels or {}}
    api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": meta})
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


PYTORCHJOBS = "/apis/kubeflow.org/v1/namespaces/{namespace}/pytorchjobs"
"""The PyTorchJob collection of a namespace (training-operator's CRD)."""


def pytorch_job(
    name: str,
    *,
    workers: int,
    gpus: int,
    runtime: str,
    scheduler_name: str,
    cpu: str = "1",
    memory: str = "1Gi",
) -> dict[str, Any]:
    """A PyTorchJob of one master and ``workers`` workers, each a simulated training pod
    of ``gpus`` GPUs that kwok runs for ``runtime``, placed by ``scheduler_name``."""
    pod = training_pod(
        name, gpus=gpus, cpu=cpu, memory=memory, runtime=runtime, scheduler_name=scheduler_name
    )
    spec = pod["spec"]
    # The replica spec owns the restart policy; the operator expects a container "pytorch".
    del spec["restartPolicy"]
    spec["containers"][0]["name"] = "pytorch"
    template = {"metadata": {"annotations": pod["metadata"]["annotations"]}, "spec": spec}
    replicas = {"Master": 1, "Worker": workers}
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name},
        "spec": {
            "pytorchReplicaSpecs": {
                role: {"replicas": count, "restartPolicy": "Never", "template": template}
                for role, count in replicas.items()
            }
        },
    }


def job_succeeded(job: dict[str, Any]) -> bool:
    """Whether a PyTorchJob's status has the condition ``Succeeded``."""
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Succeeded" and c.get("status") == "True" for c in conditions)


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
    raise WaitTimeoutError(f"timed out after {timeout_seconds} s waiting for {what}")
