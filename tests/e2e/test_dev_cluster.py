"""End-to-end checks of the dev cluster: real API server, default scheduler, kwok, Prometheus."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import pytest
import requests

from hybrid_lab.devcluster import pki
from hybrid_lab.devcluster.testing import DevCluster
from hybrid_lab.devcluster.workload import training_pod, wait_for
from hybrid_operator.promql import utilisation_queries
from hybrid_operator.utilisation import UtilisationCollector, connect

pytestmark = pytest.mark.e2e
CPU_RATE_WINDOW = "20s"


def test_default_scheduler_pod_runs_then_succeeds_after_its_runtime(
    dev_cluster: DevCluster, namespace: str
) -> None:
    api = dev_cluster.admin
    pods = f"/api/v1/namespaces/{namespace}/pods"
    api.create(pods, training_pod("train", gpus=1, cpu="2", memory="8Gi", runtime="4s"))

    def phase_is(wanted: str) -> dict[str, Any] | None:
        pod = api.get(f"{pods}/train")
        return pod if pod["status"].get("phase") == wanted else None

    running = wait_for("Running", lambda: phase_is("Running"), 30)
    running_seen = time.monotonic()
    node = api.get(f"/api/v1/nodes/{running['spec']['nodeName']}")
    assert node["metadata"]["labels"]["type"] == "kwok"
    assert node["metadata"]["labels"]["hybrid-scheduler.io/performance"].isdigit()
    scheduled = [c for c in running["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert [c["status"] for c in scheduled] == ["True"]
    wait_for("Succeeded", lambda: phase_is("Succeeded"), 30)
    # Running was seen at most one poll after it began; 4 s must pass before Succeeded.
    assert time.monotonic() - running_seen >= 3.0


def test_prometheus_utilisation_follows_the_pods_on_each_node(
    dev_cluster: DevCluster, namespace: str
) -> None:
    api = dev_cluster.admin
    nodes = sorted(
        n["metadata"]["name"] for n in api.items("/api/v1/nodes", labelSelector="type=kwok")
    )
    busy = {
        p["spec"].get("nodeName")
        for p in api.items("/api/v1/pods", fieldSelector="status.phase=Running")
    }
    idle = [name for name in nodes if name not in busy]
    assert len(idle) >= 3, "the test needs three nodes without running pods"
    first, second, empty = idle[:3]
    pods = f"/api/v1/namespaces/{namespace}/pods"
    api.create(
        pods,
        training_pod(
            "half", gpus=4, cpu="16", memory="128Gi", node=first, usage="gpu=0.5,cpu=0.5,memory=0.5"
        ),
    )
    api.create(
        pods, training_pod("nlp", gpus=8, cpu="32", memory="256Gi", node=second, task_type="nlp")
    )
    expected = {
        first: {"gpu": 4 * 0.5 / 8, "cpu": 16 * 0.5 / 64, "memory": 128 * 0.5 / 512},
        second: {"gpu": 0.9, "cpu": 32 * 0.5 / 64, "memory": 256 * 0.8 / 512},
        empty: {"gpu": 0.0, "cpu": 0.0, "memory": 0.0},
    }
    queries = utilisation_queries(window=CPU_RATE_WINDOW)

    def matches() -> bool | None:
        answers = {
            resource: _per_node(dev_cluster.settings.prometheus_url, query)
            for resource, query in queries.items()
        }
        if any(set(values) != set(nodes) for values in answers.values()):
            return None
        for node, wanted in expected.items():
            for resource, value in wanted.items():
                if abs(answers[resource][node] - value) > 0.01:
                    return None
        return True

    wait_for("Prometheus to show the placed pods", matches, 90)

    api.delete(f"{pods}/half")
    expected = {first: {"gpu": 0.0, "memory": 0.0}}
    queries = {resource: queries[resource] for resource in ("gpu", "memory")}
    wait_for("Prometheus to drop the deleted pod", matches, 30)


def test_the_collector_reads_every_node_aged_by_its_scrape_time(dev_cluster: DevCluster) -> None:
    kwok = dev_cluster.admin.items("/api/v1/nodes", labelSelector="type=kwok")
    nodes = {n["metadata"]["name"] for n in kwok}
    # The default queries and their sample-time queries, against the real Prometheus.
    collector = UtilisationCollector(connect(dev_cluster.settings.prometheus_url, 5.0))

    def every_node_live() -> dict[str, tuple[dict[str, float], float]] | None:
        collector.refresh()
        fresh = collector.fresh()
        return fresh if collector.status.live and nodes <= set(fresh) else None

    fresh = wait_for("live utilisation for every node", every_node_live, 90)
    for node in nodes:
        fractions, age_s = fresh[node]
        assert set(fractions) == {"cpu", "memory", "nvidia.com/gpu"}, node
        assert 0.0 <= age_s < collector.staleness_s, node


def _per_node(prometheus_url: str, query: str) -> dict[str, float]:
    response = requests.get(f"{prometheus_url}/api/v1/query", params={"query": query}, timeout=10)
    response.raise_for_status()
    result = response.json()["data"]["result"]
    return {next(iter(r["metric"].values())): float(r["value"][1]) for r in result}


def test_rbac_restricts_the_non_admin_identities(dev_cluster: DevCluster, namespace: str) -> None:
    viewer = dev_cluster.as_identity(pki.VIEWER)
    developer = dev_cluster.as_identity(pki.DEVELOPER)
    pods = f"/api/v1/namespaces/{namespace}/pods"
    pod = training_pod("rbac", gpus=0, cpu="1", memory="1Gi", runtime="1s")
    assert viewer.request("GET", pods).status_code == 200
    assert viewer.request("POST", pods, pod).status_code == 403
    assert viewer.request("GET", "/api/v1/nodes").status_code == 403
    assert viewer.request("GET", f"/api/v1/namespaces/{namespace}/secrets").status_code == 403
    assert developer.request("POST", pods, pod).status_code == 201
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "intruder"}}
    assert developer.request("POST", "/api/v1/nodes", node).status_code == 403
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "escalate"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "cluster-admin",
        },
        "subjects": [{"kind": "User", "name": "developer"}],
    }
    assert (
        developer.request(
            "POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding
        ).status_code
        == 403
    )


def test_up_again_says_the_cluster_runs(dev_cluster: DevCluster) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hybrid_operator.cli",
            "dev-cluster",
            "up",
            "--quiet",
            "--state-dir",
            str(dev_cluster.settings.state_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "a dev cluster is already running" in result.stderr
    assert "Traceback" not in result.stderr
    status = subprocess.run(
        [
            sys.executable,
            "-m",
            "hybrid_operator.cli",
            "dev-cluster",
            "status",
            "--state-dir",
            str(dev_cluster.settings.state_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert status.returncode == 0
    for name in (
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
        "utilisation-exporter",
        "prometheus",
    ):
        assert f"{name} " in status.stdout
