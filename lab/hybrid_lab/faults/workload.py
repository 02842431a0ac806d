"""The workload that flows while a fault hits: small kwok training pods in three weighted
namespaces, created at a steady rate (or all at once for a burst) by a background flow.

Every pod carries the ``hybrid-scheduler.io/fault`` label naming its fault, so the checker
can tell the pods of one fault from another's, and cleaning up is one call per namespace.
Creation goes on through an API server outage: a refused create is retried until the
flow's deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hybrid_lab.devcluster.apiserver import ApiServer
from hybrid_lab.devcluster.errors import DevClusterError
from hybrid_lab.devcluster.workload import training_pod, wait_for
from hybrid_lab.faults.records import FAULT_LABEL

#: The namespaces and their fair-share weights.
NAMESPACE_WEIGHTS = {"faults-light": 1.0, "faults-middle": 2.0, "faults-heavy": 4.0}
WEIGHT_ANNOTATION = "hybrid-scheduler.io/weight"
RETRY_S = 0.5


@dataclass(frozen=True)
class WorkloadShape:
    """What flows during one fault."""

    pods: int
    """Pods created."""
    flow_s: float
    """Seconds over which they are created (0: as fast as possible)."""
    runtime_s: tuple[float, float]
    """Each pod runs for a time drawn uniformly from this range once bound (seconds)."""
    seed: int
    """Seed of the draws (GPUs per pod, run time)."""
    two_gpu_share: float = 0.25
    """Fraction of pods asking for two GPUs (the others ask for one)."""


@dataclass(frozen=True)
class FaultPod:
    """One pod to create."""

    namespace: str
    body: dict[str, Any]


def labelled(body: dict[str, Any], fault: str) -> dict[str, Any]:
    """``body`` with the fault label added."""
    body["metadata"].setdefault("labels", {})[FAULT_LABEL] = fault
    return body


def fault_pods(
    fault: str, shape: WorkloadShape, scheduler_name: str, prefix: str | None = None
) -> list[FaultPod]:
    """The pods of one fault's workload, spread over the namespaces in turn, named
    ``<prefix>-<i>`` (the prefix is the fault's name unless given)."""
    rng = np.random.default_rng(shape.seed)
    namespaces = list(NAMESPACE_WEIGHTS)
    out = []
    for i in range(shape.pods):
        gpus = 2 if rng.random() < shape.two_gpu_share else 1
        runtime = rng.uniform(*shape.runtime_s)
        body = training_pod(
            f"{prefix or fault}-{i:04d}",
            gpus=gpus,
            cpu="1",
            memory="2Gi",
            runtime=f"{runtime:.1f}s",
            scheduler_name=scheduler_name,
        )
        out.append(FaultPod(namespaces[i % len(namespaces)], labelled(body, fault)))
    return out


@dataclass
class PodFlow:
    """Creates pods in a background thread, evenly over ``flow_s`` seconds."""

    api: ApiServer
    pods: Sequence[FaultPod]
    flow_s: float
    deadline_s: float = 300.0
    threads: int = 8
    created: int = 0
    failed: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-flow", daemon=True)

    def start(self) -> PodFlow:
        """Begin creating."""
        self._thread.start()
        return self

    @property
    def done(self) -> bool:
        """Whether every pod was created (or given up on)."""
        return self._done.is_set()

    def wait(self, timeout_s: float) -> bool:
        """Wait until every pod was created; False on timeout."""
        return self._done.wait(timeout_s)

    def _run(self) -> None:
        started = time.monotonic()
        deadline = started + self.deadline_s
        interval = self.flow_s / max(len(self.pods), 1)
        try:
            with ThreadPoolExecutor(self.threads, thread_name_prefix="fault-create") as pool:
                for i, pod in enumerate(self.pods):
                    pause = started + i * interval - time.monotonic()
                    if pause > 0:
                        time.sleep(pause)
                    pool.submit(self._create, pod, deadline)
        finally:
            self._done.set()

    def _create(self, pod: FaultPod, deadline: float) -> None:
        path = f"/api/v1/namespaces/{pod.namespace}/pods"
        while True:
            try:
                self.api.create(path, pod.body, exist_ok=True)
            except DevClusterError as exc:
                if time.monotonic() > deadline:
                    with self._lock:
                        self.failed.append(f"{pod.body['metadata']['name']}: {exc}")
                    return
                time.sleep(RETRY_S)
                continue
            with self._lock:
                self.created += 1
            return


def ensure_namespaces(api: ApiServer, weights: dict[str, float]) -> None:
    """The namespaces with their weights, emptied of fault pods a run may have left, each
    with its default service account."""
    for name, weight in weights.items():
        meta = {"name": name, "annotations": {WEIGHT_ANNOTATION: f"{weight:g}"}}
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}
        if api.create("/api/v1/namespaces", body, exist_ok=True).get("code") == 409:
            current = api.get(f"/api/v1/namespaces/{name}")
            current["metadata"].setdefault("annotations", {})[WEIGHT_ANNOTATION] = f"{weight:g}"
            api.call("PUT", f"/api/v1/namespaces/{name}", current)
        api.call(
            "DELETE",
            f"/api/v1/namespaces/{name}/pods",
            params={"labelSelector": FAULT_LABEL, "gracePeriodSeconds": "0"},
        )
        account = f"/api/v1/namespaces/{name}/serviceaccounts/default"

        def has_account(path: str = account) -> bool | None:
            return api.request("GET", path).ok or None

        wait_for(f"{name}'s default service account", has_account, 60)


def delete_fault_pods(api: ApiServer, faults: Sequence[str]) -> None:
    """Delete every pod labelled with one of ``faults``, in every fault namespace."""
    selector = f"{FAULT_LABEL} in ({','.join(faults)})"
    for namespace in NAMESPACE_WEIGHTS:
        api.call(
            "DELETE",
            f"/api/v1/namespaces/{namespace}/pods",
            params={"labelSelector": selector, "gracePeriodSeconds": "0"},
        )
