"""Helpers for the operator's e2e tests: run it as a process, submit pods, read results."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from hybrid_lab.devcluster.testing import DevCluster
from hybrid_lab.devcluster.workload import training_pod, wait_for
from hybrid_lab.launch import operator_argv

SCHEDULER = "hybrid-scheduler"


@contextmanager
def running_operator(
    dev_cluster: DevCluster, log: Path, *extra: str, start_s: float = 30
) -> Iterator[Path]:
    """The operator as its own process against the dev cluster, stopped afterwards."""
    with operator_process(dev_cluster, log, *extra, start_s=start_s):
        yield log


@contextmanager
def operator_process(
    dev_cluster: DevCluster, log: Path, *extra: str, start_s: float = 30
) -> Iterator[subprocess.Popen[bytes]]:
    """The operator process itself (to be killed by the test if it likes), once it has
    listed the cluster (within ``start_s`` seconds)."""
    command = operator_argv(dev_cluster.settings.kubeconfig, "--batch-interval", "0.5", *extra)
    with log.open("w") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(
            "the operator to list the cluster", lambda: "listed" in log.read_text() or None, start_s
        )
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def local_webhook_args() -> tuple[str, ...]:
    """Flags that serve the admission webhook on a free loopback port."""
    return (
        "--webhook",
        "--webhook-host",
        "127.0.0.1",
        "--webhook-addr",
        "127.0.0.1",
        "--webhook-port",
        str(free_port()),
    )


def decision(api: Any, pods: str, name: str) -> dict[str, Any]:
    raw = wait_for(
        f"the decision record on {name}",
        lambda: (api.get(f"{pods}/{name}")["metadata"].get("annotations") or {}).get(
            "hybrid-scheduler.io/decision"
        ),
        30,
    )
    record: dict[str, Any] = json.loads(raw)
    return record


def submit(
    api: Any, pods: str, name: str, gpus: int, scheduler: str = SCHEDULER, **kw: str
) -> None:
    spec = {"cpu": "1", "memory": "1Gi", "runtime": "1s", **kw}
    api.create(pods, training_pod(name, gpus=gpus, scheduler_name=scheduler, **spec))


def bound_node(api: Any, pods: str, name: str) -> str:
    node: str = wait_for(
        f"{name} to be bound", lambda: api.get(f"{pods}/{name}")["spec"].get("nodeName"), 30
    )
    return node


def events(api: Any, namespace: str, name: str) -> list[dict[str, Any]]:
    selector = f"involvedObject.name={name}"
    return list(api.items(f"/api/v1/namespaces/{namespace}/events", fieldSelector=selector))


def weighted_namespace(api: Any, namespace: str, weight: str) -> None:
    body = api.get(f"/api/v1/namespaces/{namespace}")
    body["metadata"].setdefault("annotations", {})["hybrid-scheduler.io/weight"] = weight
    api.call("PUT", f"/api/v1/namespaces/{namespace}", body)


def instance_args(name: str, *extra: str) -> tuple[str, ...]:
    """Flags for an operator of its own: scheduler name, Lease, no HTTP port."""
    return ("--scheduler-name", name, "--lease-name", name, "--http-port", "0", *extra)


def metric_value(url: str, sample: str) -> float:
    """One sample's value on a /metrics page (``name{labels}`` as exposed); 0 when absent."""
    session = requests.Session()
    session.trust_env = False
    text = session.get(url, timeout=5).text
    found = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def follow_watch(
    api: Any,
    path: str,
    params: dict[str, str],
    stop: threading.Event,
    observe: Callable[[dict[str, Any]], None],
) -> None:
    """Hand each object a watch of ``path`` shows to ``observe`` until ``stop`` is set (at
    the next event); a stream cut once ``stop`` is set, as at the end of a test with no
    event since, ends quietly."""
    try:
        with api.stream(path, {"watch": "true", **params}) as response:
            for line in response.iter_lines():
                if stop.is_set():
                    return
                if line:
                    observe(json.loads(line)["object"])
    except requests.RequestException:
        if not stop.is_set():
            raise  # the stream broke while the test still watched
