"""The operator under stress on the dev cluster: killed in the middle of its work and
restarted, its Prometheus stopped mid-run, and namespaces with different weights
contending for the same GPUs."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from hybrid_lab.devcluster import components, processes
from hybrid_lab.devcluster.state import ProcessRecord
from hybrid_lab.devcluster.testing import DevCluster
from hybrid_lab.devcluster.workload import recreate_namespaces, training_pod, wait_for
from hybrid_operator.scheduler import MAX_PASSES_IN_FLIGHT
from operator_helpers import (
    decision,
    events,
    free_port,
    instance_args,
    metric_value,
    operator_process,
    running_operator,
    submit,
)

pytestmark = pytest.mark.e2e


def _pods(api: Any, namespace: str) -> list[dict[str, Any]]:
    return list(api.items(f"/api/v1/namespaces/{namespace}/pods"))


def test_killed_mid_batch_and_restarted_every_pod_is_bound_once(
    dev_cluster: DevCluster, namespace: str, tmp_path: Path
) -> None:
    api = dev_cluster.admin
    name = "hybrid-scheduler-restart"
    args = instance_args(name, "--batch-size", "5")
    pods = f"/api/v1/namespaces/{namespace}/pods"
    for i in range(30):
        api.create(
            pods,
            training_pod(
                f"p-{i}", gpus=1, cpu="1", memory="1Gi", runtime="3s", scheduler_name=name
            ),
        )
    first_id, second_id = "restart-first", "restart-second"
    with operator_process(
        dev_cluster, tmp_path / "first.log", *args, "--identity", first_id
    ) as first:

        def some_bound() -> bool | None:
            bound = sum(1 for p in _pods(api, namespace) if p["spec"].get("nodeName"))
            return True if 0 < bound < 30 else None

        wait_for("a few bindings", some_bound, 30)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    with running_operator(dev_cluster, tmp_path / "second.log", *args, "--identity", second_id):

        def all_succeeded() -> bool | None:
            return (
                True
                if all(p["status"].get("phase") == "Succeeded" for p in _pods(api, namespace))
                else None
            )

        wait_for("every pod to succeed", all_succeeded, 120)
    bound_by: dict[str, list[str]] = {first_id: [], second_id: []}
    reported_by_first = 0
    for pod in _pods(api, namespace):
        name = pod["metadata"]["name"]
        # One binding: the record written with it names the node the pod runs on and the
        # replica that bound it.
        record = json.loads(pod["metadata"]["annotations"]["hybrid-scheduler.io/decision"])
        assert record["node"] == pod["spec"]["nodeName"], name
        bound_by[record["instance"]].append(name)
        scheduled = [
            e["reportingInstance"]
            for e in events(api, namespace, name)
            if e["reason"] == "Scheduled"
        ]
        if record["instance"] == second_id:
            assert scheduled == [second_id], f"{name} was reported bound as {scheduled}"
        else:
            # The restarted replica never reports a binding it did not make; the killed
            # one may have died between its binding and its Event.
            assert scheduled in ([], [first_id]), f"{name} was reported bound as {scheduled}"
            reported_by_first += len(scheduled)
    assert len(bound_by[first_id]) + len(bound_by[second_id]) == 30
    assert bound_by[first_id] and bound_by[second_id]
    # Only the passes the killed replica had in flight can miss their Events.
    in_flight = MAX_PASSES_IN_FLIGHT * 5
    assert reported_by_first >= len(bound_by[first_id]) - in_flight
    assert "Traceback" not in (tmp_path / "second.log").read_text()


def test_gpu_shares_under_contention_follow_the_weights(
    dev_cluster: DevCluster, tmp_path: Path
) -> None:
    api = dev_cluster.admin
    name = "hybrid-scheduler-drf"
    total = sum(
        int(n["status"]["allocatable"]["nvidia.com/gpu"])
        for n in api.items("/api/v1/nodes", labelSelector="type=kwok")
    )
    teams = {"e2e-light": 1.0, "e2e-heavy": 3.0}
    recreate_namespaces(api, teams)
    try:
        # Both teams ask for the whole cluster, one GPU per pod, for longer than the test.
        for team in teams:
            for i in range(total):
                api.create(
                    f"/api/v1/namespaces/{team}/pods",
                    training_pod(
                        f"g-{i}", gpus=1, cpu="1", memory="1Gi", runtime="300s", scheduler_name=name
                    ),
                )
        args = instance_args(name, "--policy", "drf")
        with running_operator(dev_cluster, tmp_path / "operator.log", *args):

            def held() -> dict[str, int] | None:
                counts = {
                    t: sum(1 for p in _pods(api, t) if p["spec"].get("nodeName")) for t in teams
                }
                return counts if sum(counts.values()) == total else None

            counts = wait_for("the cluster to fill up", held, 60)
        # Weighted dominant-resource fairness: 1 : 3 of the GPUs, to within one pod.
        assert abs(counts["e2e-light"] - total / 4) <= 1
        assert abs(counts["e2e-heavy"] - 3 * total / 4) <= 1
    finally:
        for team in teams:
            api.call("DELETE", f"/api/v1/namespaces/{team}", allow=(404,))


@contextmanager
def second_prometheus(
    dev_cluster: DevCluster, workdir: Path
) -> Iterator[tuple[str, ProcessRecord]]:
    """A Prometheus of the test's own, scraping the cluster's exporter like the cluster's
    Prometheus (which other tests use and must keep running)."""
    port = free_port()
    data = workdir / "prometheus-data"
    component = components.prometheus_on(
        dev_cluster.settings, port, data, workdir / "prometheus.yml", name="prometheus-second"
    )
    record = processes.start(component.name, component.argv, workdir)
    try:
        processes.wait_ready(record, component.probe, 60)
        yield f"http://127.0.0.1:{port}", record
    finally:
        processes.stop([record], 10)


def _gpus_running_per_node(api: Any) -> dict[str, int]:
    used: dict[str, int] = {}
    for pod in api.items("/api/v1/pods", fieldSelector="status.phase=Running"):
        node = pod["spec"].get("nodeName")
        for container in pod["spec"]["containers"]:
            gpus = int(
                (container.get("resources") or {}).get("requests", {}).get("nvidia.com/gpu", 0)
            )
            used[node] = used.get(node, 0) + gpus
    return used


FALLBACKS = 'hybrid_scheduler_fallbacks_total{reason="metrics-unavailable"}'


def test_prometheus_stopped_mid_run_scheduling_goes_on_and_says_so(
    dev_cluster: DevCluster, namespace: str, tmp_path: Path
) -> None:
    api = dev_cluster.admin
    pods = f"/api/v1/namespaces/{namespace}/pods"
    name = "hybrid-scheduler-prom-stop"
    http_port = free_port()
    metrics_url = f"http://127.0.0.1:{http_port}/metrics"
    capacity = {
        n["metadata"]["name"]: int(n["status"]["allocatable"]["nvidia.com/gpu"])
        for n in api.items("/api/v1/nodes", labelSelector="type=kwok")
    }
    overcommitted: list[dict[str, int]] = []

    def check_capacity() -> None:
        used = _gpus_running_per_node(api)
        if any(used[n] > capacity.get(n, 0) for n in used):
            overcommitted.append(used)

    with second_prometheus(dev_cluster, tmp_path) as (url, prometheus):
        args = instance_args(
            name,
            "--policy",
            "load-aware",
            "--prometheus-url",
            url,
            "--metrics-refresh",
            "1",
            "--http-host",
            "127.0.0.1",
            "--http-port",
            str(http_port),
        )
        with running_operator(dev_cluster, tmp_path / "operator.log", *args) as log:
            wait_for("live utilisation", lambda: "Prometheus: live" in log.read_text() or None, 30)
            for i in range(3):
                submit(api, pods, f"before-{i}", 2, scheduler=name, runtime="2s")
            before = [decision(api, pods, f"before-{i}") for i in range(3)]
            assert [r["metrics"] for r in before] == ["live"] * 3
            assert metric_value(metrics_url, FALLBACKS) == 0
            # Stopped without warning, as a crashed or evicted Prometheus would be.
            seen = len(log.read_text())  # earlier lines may say unavailable (before a scrape)
            os.kill(prometheus.pid, signal.SIGKILL)
            wait_for(
                "the fallback in the log",
                lambda: "Prometheus: unavailable" in log.read_text()[seen:] or None,
                30,
            )
            # More than fits at once: four 8-GPU pods and four 4-GPU pods on four nodes.
            for i in range(8):
                gpus = 8 if i % 2 else 4
                submit(api, pods, f"after-{i}", gpus, scheduler=name, cpu="4", runtime="3s")

            def all_succeeded() -> bool | None:
                check_capacity()
                items = [p for p in api.items(pods) if p["metadata"]["name"].startswith("after-")]
                done = len(items) == 8 and all(
                    p["status"].get("phase") == "Succeeded" for p in items
                )
                return True if done else None

            wait_for("every pod submitted after the stop to succeed", all_succeeded, 120, 0.5)
            after = [decision(api, pods, f"after-{i}") for i in range(8)]
            fallbacks = metric_value(metrics_url, FALLBACKS)
            text = log.read_text()
    assert overcommitted == []
    for i, record in enumerate(after):
        assert record["metrics"].startswith("unavailable ("), record
        assert record["node"] == api.get(f"{pods}/after-{i}")["spec"]["nodeName"]
        scheduled = [e for e in events(api, namespace, f"after-{i}") if e["reason"] == "Scheduled"]
        assert len(scheduled) == 1
    assert fallbacks >= 1
    assert "scheduling on requests alone where metrics are missing" in text
    assert "Traceback" not in text
    # The record is compact JSON written with the binding itself.
    raw = api.get(f"{pods}/after-0")["metadata"]["annotations"]["hybrid-scheduler.io/decision"]
    assert json.loads(raw)["policy"] == "load-aware"
