"""End-to-end checks of the operator on the dev cluster: it binds pods that name it, next
to the real default scheduler, counts every pod on a node, and explains itself."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from hybrid_lab.devcluster.testing import DevCluster
from hybrid_lab.devcluster.workload import fresh_namespace, training_pod, wait_for
from hybrid_operator.decision_record import DECISION_ANNOTATION
from operator_helpers import (
    SCHEDULER,
    bound_node,
    decision,
    events,
    free_port,
    instance_args,
    local_webhook_args,
    operator_process,
    running_operator,
    submit,
    weighted_namespace,
)

pytestmark = pytest.mark.e2e
HTTP_PORT = free_port()


@pytest.fixture(scope="module")
def operator_log(
    dev_cluster: DevCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    args = ("--http-host", "127.0.0.1", "--http-port", str(HTTP_PORT))
    with running_operator(dev_cluster, log, *args) as running:
        yield running


@pytest.mark.parametrize(
    ("prometheus", "expected"),
    [("live", "live"), ("http://127.0.0.1:1", "unavailable")],
)
def test_live_utilisation_from_prometheus_and_the_fallback(
    dev_cluster: DevCluster, namespace: str, tmp_path: Path, prometheus: str, expected: str
) -> None:
    api = dev_cluster.admin
    pods = f"/api/v1/namespaces/{namespace}/pods"
    url = dev_cluster.settings.prometheus_url if prometheus == "live" else prometheus
    name = f"hybrid-scheduler-{expected}"
    args = instance_args(
        name, "--policy", "load-aware", "--prometheus-url", url, "--metrics-refresh", "2"
    )
    with running_operator(dev_cluster, tmp_path / "operator.log", *args) as log:
        wait_for(
            "a metrics refresh", lambda: f"Prometheus: {expected}" in log.read_text() or None, 30
        )
        submit(api, pods, "measured", 1, scheduler=name, runtime="2s")
        record = decision(api, pods, "measured")
    assert record["policy"] == "load-aware"
    assert record["metrics"].startswith(expected)
    assert record["node"] == api.get(f"{pods}/measured")["spec"]["nodeName"]


def test_pods_that_name_the_operator_are_bound_and_complete_without_overcommit(
    dev_cluster: DevCluster, namespace: str, operator_log: Path
) -> None:
    api = dev_cluster.admin
    pods = f"/api/v1/namespaces/{namespace}/pods"
    # 4 nodes x 8 GPUs: six 8-GPU pods can only run four at a time.
    for i in range(6):
        submit(api, pods, f"train-{i}", 8, cpu="4", memory="32Gi", runtime="3s")
    nodes_seen: dict[str, set[str]] = {}
    overcommit: list[str] = []

    def all_done() -> bool | None:
        items = list(api.items(pods))
        running: dict[str, int] = {}
        for pod in items:
            if pod["status"].get("phase") == "Running":
                node = pod["spec"]["nodeName"]
                running[node] = running.get(node, 0) + 1
                nodes_seen.setdefault(node, set()).add(pod["metadata"]["name"])
        overcommit.extend(n for n, count in running.items() if count > 1)
        return True if all(p["status"].get("phase") == "Succeeded" for p in items) else None

    wait_for("every pod to succeed", all_done, 90)
    assert overcommit == []
    for i in range(6):
        pod = api.get(f"{pods}/train-{i}")
        record = json.loads(pod["metadata"]["annotations"]["hybrid-scheduler.io/decision"])
        assert record["node"] == pod["spec"]["nodeName"]
        assert record["policy"] == "kube-default"
        scheduled = [e for e in events(api, namespace, f"train-{i}") if e["reason"] == "Scheduled"]
        assert len(scheduled) == 1
        assert scheduled[0]["reportingComponent"] == SCHEDULER
        assert scheduled[0]["message"].startswith(
            f"Successfully assigned {namespace}/train-{i} to "
        )
    assert "Traceback" not in operator_log.read_text()


def test_pods_for_the_default_scheduler_are_left_alone_but_counted(
    dev_cluster: DevCluster, namespace: str, operator_log: Path
) -> None:
    api = dev_cluster.admin
    pods = f"/api/v1/namespaces/{namespace}/pods"
    nodes = sorted(
        n["metadata"]["name"] for n in api.items("/api/v1/nodes", labelSelector="type=kwok")
    )
    assert len(nodes) >= 2
    # Fill every node but one through the default scheduler's path (a pod with nodeName).
    for i, node in enumerate(nodes[:-1]):
        api.create(
            pods,
            training_pod(f"other-{i}", gpus=8, cpu="4", memory="32Gi", runtime="60s", node=node),
        )
    submit(api, pods, "ours", 8, cpu="4", memory="32Gi", runtime="2s")
    bound = wait_for(
        "our pod to be bound", lambda: api.get(f"{pods}/ours")["spec"].get("nodeName"), 30
    )
    assert bound == nodes[-1]
    others = [api.get(f"{pods}/other-{i}") for i in range(len(nodes) - 1)]
    assert all(
        "hybrid-scheduler.io/decision" not in (p["metadata"].get("annotations") or {})
        for p in others
    )


def test_unschedulable_pods_get_failed_scheduling_and_the_condition(
    dev_cluster: DevCluster, namespace: str, operator_log: Path
) -> None:
    api = dev_cluster.admin
    pods = f"/api/v1/namespaces/{namespace}/pods"
    submit(api, pods, "too-big", 16, cpu="4", memory="32Gi", runtime="2s")

    def failed() -> dict[str, Any] | None:
        found = [e for e in events(api, namespace, "too-big") if e["reason"] == "FailedScheduling"]
        return found[0] if found else None

    event = wait_for("a FailedScheduling event", failed, 30)
    assert event["type"] == "Warning"
    assert "Insufficient nvidia.com/gpu" in event["message"]
    assert event["message"].startswith("0/")

    def condition() -> dict[str, Any] | None:
        # Set right after the Event: read until it is there.
        conditions = api.get(f"{pods}/too-big")["status"].get("conditions") or []
        scheduled = [c for c in conditions if c["type"] == "PodScheduled"]
        return scheduled[0] if scheduled else None

    scheduled = wait_for("the PodScheduled condition", condition, 30)
    assert scheduled["status"] == "False"
    assert scheduled["reason"] == "Unschedulable"


def test_bad_namespace_weight_is_an_event_not_a_crash(
    dev_cluster: DevCluster, namespace: str, operator_log: Path
) -> None:
    api = dev_cluster.admin
    weighted_namespace(api, namespace, "abc")

    def invalid() -> dict[str, Any] | None:
        found = [e for e in events(api, "default", namespace) if e["reason"] == "InvalidField"]
        found += [e for e in events(api, namespace, namespace) if e["reason"] == "InvalidField"]
        return found[0] if found else None

    event = wait_for("an InvalidField event on the namespace", invalid, 30)
    assert "hybrid-scheduler.io/weight" in event["message"]
    assert "'abc'" in event["message"]
    # The operator still schedules after the bad annotation.
    pods = f"/api/v1/namespaces/{namespace}/pods"
    submit(api, pods, "after", 1)
    bound_node(api, pods, "after")


def _explain(dev_cluster: DevCluster, key: str) -> subprocess.CompletedProcess[str]:
    kubeconfig = str(dev_cluster.settings.kubeconfig)
    return subprocess.run(
        [sys.executable, "-m", "hybrid_operator.cli", "explain", key, "--kubeconfig", kubeconfig],
        capture_output=True,
        text=True,
    )


def test_explain_prints_the_decision(
    dev_cluster: DevCluster, namespace: str, operator_log: Path
) -> None:
    api = dev_cluster.admin
    pods = f"/api/v1/namespaces/{namespace}/pods"
    submit(api, pods, "explained", 2, cpu="2", memory="8Gi")
    node = bound_node(api, pods, "explained")
    wait_for(
        "the decision record",
        lambda: (api.get(f"{pods}/explained")["metadata"].get("annotations") or {}).get(
            DECISION_ANNOTATION
        ),
        30,
    )
    shown = _explain(dev_cluster, f"{namespace}/explained")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert f"node:            {node}" in shown.stdout
    assert "policy (path):   kube-default (sequential)" in shown.stdout
    assert "runners-up:" in shown.stdout
    # Written with the binding: node, scheduler, times and writer all agree.
    assert "binding:         the record matches the pod's binding" in shown.stdout
    # A record written by updating the pod (as its owner may) is shown as unverified.
    pod = api.get(f"{pods}/explained")
    annotations = pod["metadata"]["annotations"]
    forged = {**json.loads(annotations[DECISION_ANNOTATION]), "node": "elsewhere"}
    annotations[DECISION_ANNOTATION] = json.dumps(forged)
    api.call("PUT", f"{pods}/explained", pod)
    unverified = _explain(dev_cluster, f"{namespace}/explained")
    assert unverified.returncode == 1, unverified.stderr
    lines = unverified.stdout.splitlines()
    assert "binding:         UNVERIFIED: the record does not match the pod's binding" in lines
    assert f"  - the record names node elsewhere, the pod is bound to {node}" in lines
    writers = [line for line in lines if "written by an update of the pod" in line]
    assert len(writers) == 1 and "python-requests" in writers[0]
    missing = _explain(dev_cluster, f"{namespace}/nope")
    assert missing.returncode == 1
    assert "404" in missing.stderr


def test_metrics_liveness_and_readiness(
    dev_cluster: DevCluster, namespace: str, operator_log: Path
) -> None:
    api = dev_cluster.admin
    pods = f"/api/v1/namespaces/{namespace}/pods"
    submit(api, pods, "counted", 1)
    bound_node(api, pods, "counted")
    base = f"http://127.0.0.1:{HTTP_PORT}"
    session = requests.Session()
    session.trust_env = False
    assert session.get(f"{base}/healthz", timeout=5).status_code == 200
    assert session.get(f"{base}/readyz", timeout=5).status_code == 200
    text = session.get(f"{base}/metrics", timeout=5).text
    assert 'hybrid_scheduler_schedule_attempts_total{result="bound"}' in text
    assert "hybrid_scheduler_pending_to_bound_seconds_count" in text
    assert "hybrid_scheduler_jain_index" in text


def _scheduled(api: Any, namespace: str, pod: str) -> Callable[[], bool | None]:
    """A probe: whether ``pod`` has its Scheduled Event yet."""

    def probe() -> bool | None:
        return any(e["reason"] == "Scheduled" for e in events(api, namespace, pod)) or None

    return probe


def test_a_standby_replica_takes_over_and_no_pod_is_bound_twice(
    dev_cluster: DevCluster, namespace: str, tmp_path: Path
) -> None:
    api = dev_cluster.admin
    pods = f"/api/v1/namespaces/{namespace}/pods"
    name = "hybrid-scheduler-ha"
    common = instance_args(
        name, "--lease-duration", "6", "--renew-deadline", "4", "--retry-period", "1"
    )
    with (
        operator_process(dev_cluster, tmp_path / "a.log", *common, "--identity", "replica-a") as a,
        operator_process(dev_cluster, tmp_path / "b.log", *common, "--identity", "replica-b") as b,
    ):
        logs = {"replica-a": (a, tmp_path / "a.log"), "replica-b": (b, tmp_path / "b.log")}

        def leader() -> str | None:
            return next(
                (who for who, (_, log) in logs.items() if f"{who} now leads" in log.read_text()),
                None,
            )

        first = wait_for("a leader", leader, 30)
        for i in range(3):
            submit(api, pods, f"before-{i}", 1, scheduler=name)
        records = [decision(api, pods, f"before-{i}") for i in range(3)]
        assert {r["instance"] for r in records} == {first}
        # Kill it once it has told of them: a kill between a binding and its Event would
        # lose the Event, which is no part of this test.
        for i in range(3):
            wait_for(
                f"the Scheduled Event of before-{i}", _scheduled(api, namespace, f"before-{i}"), 30
            )
        process = logs[first][0]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        killed = time.monotonic()
        for i in range(3):
            submit(api, pods, f"after-{i}", 1, scheduler=name)
        for i in range(3):
            bound_node(api, pods, f"after-{i}")
        takeover_s = time.monotonic() - killed
        records = [decision(api, pods, f"after-{i}") for i in range(3)]
        assert {r["instance"] for r in records} == set(logs) - {first}
        assert takeover_s < 30.0
    for pod in [f"before-{i}" for i in range(3)] + [f"after-{i}" for i in range(3)]:
        scheduled = [e for e in events(api, namespace, pod) if e["reason"] == "Scheduled"]
        assert len(scheduled) == 1, pod


def test_webhook_opt_in_by_annotation_or_namespace_label(
    dev_cluster: DevCluster, namespace: str, tmp_path: Path
) -> None:
    api = dev_cluster.admin
    pods = f"/api/v1/namespaces/{namespace}/pods"
    name = "hybrid-scheduler-webhook"
    args = instance_args(name, *local_webhook_args())
    configuration = (
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/hybrid-scheduler.io"
    )
    try:
        with running_operator(dev_cluster, tmp_path / "operator.log", *args) as log:
            wait_for(
                "the webhook configuration",
                lambda: api.call("GET", configuration, allow=(404,)).get("webhooks"),
                30,
            )
            webhook = api.get(configuration)["webhooks"][0]
            assert webhook["failurePolicy"] == "Ignore"
            plain = training_pod("plain", gpus=1, cpu="1", memory="1Gi", runtime="1s")
            api.create(pods, plain)
            annotated = training_pod("annotated", gpus=1, cpu="1", memory="1Gi", runtime="1s")
            annotated["metadata"]["annotations"]["hybrid-scheduler.io/enabled"] = "true"
            api.create(pods, annotated)
            assert api.get(f"{pods}/plain")["spec"]["schedulerName"] == "default-scheduler"
            assert api.get(f"{pods}/annotated")["spec"]["schedulerName"] == name
            assert decision(api, pods, "annotated")["node"] == bound_node(api, pods, "annotated")
            body = api.get(f"/api/v1/namespaces/{namespace}")
            body["metadata"].setdefault("labels", {})["hybrid-scheduler.io/enabled"] = "true"
            api.call("PUT", f"/api/v1/namespaces/{namespace}", body)
            attempts = iter(range(100))

            def labelled_pod_is_ours() -> bool | None:
                # The label reaches the operator through its watch; until then new pods
                # keep the default scheduler, so try with fresh pods.
                pod = f"labelled-{next(attempts)}"
                api.create(pods, training_pod(pod, gpus=1, cpu="1", memory="1Gi", runtime="1s"))
                return api.get(f"{pods}/{pod}")["spec"]["schedulerName"] == name or None

            wait_for("a pod in the labelled namespace to be ours", labelled_pod_is_ours, 30)
            own = training_pod(
                "own", gpus=1, cpu="1", memory="1Gi", runtime="1s", scheduler_name="my-scheduler"
            )
            api.create(pods, own)
            assert api.get(f"{pods}/own")["spec"]["schedulerName"] == "my-scheduler"
            assert "Traceback" not in log.read_text()
    finally:
        api.call("DELETE", configuration, allow=(404,))


def test_the_webhook_opts_in_pods_created_with_their_labelled_namespace(
    dev_cluster: DevCluster, tmp_path: Path
) -> None:
    # `kubectl apply -f` of a folder creates a labelled namespace and its pods at once. A
    # pass (which applies the watch's events) only every 30 s: the pods come long before
    # the operator's cache shows the namespace.
    api = dev_cluster.admin
    name = "hybrid-scheduler-fresh"
    args = instance_args(name, "--batch-interval", "30", *local_webhook_args())
    configuration = (
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/hybrid-scheduler.io"
    )
    labels = {"hybrid-scheduler.io/enabled": "true"}
    try:
        with running_operator(dev_cluster, tmp_path / "operator.log", *args) as log:
            wait_for(
                "the webhook configuration",
                lambda: api.call("GET", configuration, allow=(404,)).get("webhooks"),
                30,
            )
            namespace = f"e2e-fresh-{uuid.uuid4().hex[:8]}"
            with fresh_namespace(api, namespace, labels=labels):
                pods = f"/api/v1/namespaces/{namespace}/pods"
                api.create(pods, training_pod("first", gpus=1, cpu="1", memory="1Gi"))
                assert api.get(f"{pods}/first")["spec"]["schedulerName"] == name
            assert "Traceback" not in log.read_text()
    finally:
        api.call("DELETE", configuration, allow=(404,))


def test_shadow_mode_records_what_it_would_have_done(
    dev_cluster: DevCluster, namespace: str, tmp_path: Path
) -> None:
    api = dev_cluster.admin
    pods = f"/api/v1/namespaces/{namespace}/pods"
    name = "hybrid-scheduler-shadow"
    args = instance_args(name, "--shadow-of", "default-scheduler")
    created: list[str] = []

    def recorded() -> tuple[str, str] | None:
        # Only pods seen pending are judged: one created before the operator's watch has
        # started is already bound when the watch first lists it. Try with fresh pods.
        for pod in created:
            raw = (api.get(f"{pods}/{pod}")["metadata"].get("annotations") or {}).get(
                "hybrid-scheduler.io/shadow"
            )
            if raw:
                return pod, raw
        pod = f"by-default-{len(created)}"
        api.create(pods, training_pod(pod, gpus=2, cpu="2", memory="4Gi", runtime="2s"))
        created.append(pod)
        return None

    with running_operator(dev_cluster, tmp_path / "operator.log", *args):
        pod, raw = wait_for("a shadow record", recorded, 45, interval_seconds=3.0)
        actual = bound_node(api, pods, pod)
    record = json.loads(raw)
    assert record["actual"] == actual
    assert record["wouldBe"] in {
        n["metadata"]["name"] for n in api.items("/api/v1/nodes", labelSelector="type=kwok")
    }
    assert record["agree"] == (record["wouldBe"] == actual)
    for pod in created:
        annotations = api.get(f"{pods}/{pod}")["metadata"].get("annotations") or {}
        assert "hybrid-scheduler.io/decision" not in annotations


@pytest.mark.parametrize("policy", ["dqn", "game", "hybrid"])
def test_learned_and_game_policies_schedule_on_the_cluster(
    dev_cluster: DevCluster, namespace: str, tmp_path: Path, policy: str
) -> None:
    api = dev_cluster.admin
    pods = f"/api/v1/namespaces/{namespace}/pods"
    name = f"hybrid-scheduler-{policy}"
    args = instance_args(name, "--policy", policy)
    with running_operator(dev_cluster, tmp_path / "operator.log", *args) as log:
        for i, gpus in enumerate((1, 2, 4, 8)):
            submit(api, pods, f"{policy}-{i}", gpus, scheduler=name)
        records = [decision(api, pods, f"{policy}-{i}") for i in range(4)]
        assert "Traceback" not in log.read_text()
    assert {r["policy"] for r in records} == {policy}
    for i, record in enumerate(records):
        assert record["node"] == bound_node(api, pods, f"{policy}-{i}")
