"""End-to-end checks of the peers on the dev cluster: scheduler-plugins' kube-scheduler
(a second scheduler with Coscheduling) and Kueue (admitting a queued ``batch/v1`` Job).

The peers are started in the session's cluster for this module (built first if the cache
lacks them) and stopped after it, Kueue's webhooks removed, so later tests see the
cluster as before.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest

from hybrid_lab.devcluster.apiserver import ApiServer
from hybrid_lab.devcluster.errors import DevClusterError
from hybrid_lab.devcluster.peers import SCHEDULER_NAME
from hybrid_lab.devcluster.testing import DevCluster, peers_running
from hybrid_lab.devcluster.workload import training_pod, wait_for

pytestmark = pytest.mark.e2e
PODGROUP_LABEL = "scheduling.x-k8s.io/pod-group"
PODGROUPS = "/apis/scheduling.x-k8s.io/v1alpha1/namespaces/{namespace}/podgroups"
KUEUE = "/apis/kueue.x-k8s.io/v1beta2"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"


@pytest.fixture(scope="module")
def peers(dev_cluster: DevCluster) -> Iterator[DevCluster]:
    try:
        with peers_running(dev_cluster) as running:
            yield running
    except DevClusterError as err:
        pytest.fail(f"peers: {err}", pytrace=False)


def small_pod(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    pod = training_pod(name, gpus=0, cpu="1", memory="1Gi", scheduler_name=SCHEDULER_NAME)
    pod["metadata"]["labels"].update(labels or {})
    return pod


def scheduled_by(api: ApiServer, namespace: str, pod: str) -> str | None:
    """The controller that reported the pod's ``Scheduled`` event, once there is one."""
    events = api.items(
        f"/apis/events.k8s.io/v1/namespaces/{namespace}/events",
        fieldSelector=f"regarding.name={pod},reason=Scheduled",
    )
    return str(events[0]["reportingController"]) if events else None


def failed_scheduling(api: ApiServer, namespace: str, pod: str) -> str | None:
    """The note of the pod's first ``FailedScheduling`` event from scheduler-plugins."""
    events = api.items(
        f"/apis/events.k8s.io/v1/namespaces/{namespace}/events",
        fieldSelector=f"regarding.name={pod},reason=FailedScheduling",
    )
    notes = [str(e.get("note", "")) for e in events if e["reportingController"] == SCHEDULER_NAME]
    return notes[0] if notes else None


def node_of(api: ApiServer, namespace: str, pod: str) -> str | None:
    node = api.get(f"/api/v1/namespaces/{namespace}/pods/{pod}")["spec"].get("nodeName")
    return str(node) if node else None


def test_scheduler_plugins_binds_a_pod_that_names_it(peers: DevCluster, namespace: str) -> None:
    api = peers.admin
    api.create(f"/api/v1/namespaces/{namespace}/pods", small_pod("alone"))
    wait_for("the pod to be bound", lambda: node_of(api, namespace, "alone"), 30)
    reporter = wait_for("its Scheduled event", lambda: scheduled_by(api, namespace, "alone"), 10)
    assert reporter == SCHEDULER_NAME


def _gang(api: ApiServer, namespace: str, min_member: int, pods: int) -> list[str]:
    group = f"gang-{min_member}"
    api.create(
        PODGROUPS.format(namespace=namespace),
        {
            "apiVersion": "scheduling.x-k8s.io/v1alpha1",
            "kind": "PodGroup",
            "metadata": {"name": group},
            "spec": {"minMember": min_member},
        },
    )
    names = [f"{group}-{index}" for index in range(pods)]
    for name in names:
        api.create(f"/api/v1/namespaces/{namespace}/pods", small_pod(name, {PODGROUP_LABEL: group}))
    return names


def test_a_full_pod_group_is_bound_and_a_short_one_is_not(
    peers: DevCluster, namespace: str
) -> None:
    api = peers.admin
    full = _gang(api, namespace, min_member=2, pods=2)
    short = _gang(api, namespace, min_member=3, pods=2)
    for name in full:
        wait_for(f"{name} to be bound", partial(node_of, api, namespace, name), 30)
    # The short group's pods are seen and refused by scheduler-plugins, not merely pending.
    for name in short:
        note = wait_for(
            f"{name} to be refused", partial(failed_scheduling, api, namespace, name), 30
        )
        assert "cannot find enough sibling pods" in note, note
        assert "minMember of group: 3" in note, note
    time.sleep(2)
    assert [node_of(api, namespace, name) for name in short] == [None, None]


def _queues(api: ApiServer, namespace: str) -> None:
    flavor = f"flavor-{namespace}"
    api.create(
        f"{KUEUE}/resourceflavors",
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ResourceFlavor",
            "metadata": {"name": flavor},
        },
    )
    quota = [{"name": "cpu", "nominalQuota": "8"}, {"name": "memory", "nominalQuota": "32Gi"}]
    api.create(
        f"{KUEUE}/clusterqueues",
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ClusterQueue",
            "metadata": {"name": f"cq-{namespace}"},
            "spec": {
                "namespaceSelector": {},
                "resourceGroups": [
                    {
                        "coveredResources": ["cpu", "memory"],
                        "flavors": [{"name": flavor, "resources": quota}],
                    }
                ],
            },
        },
    )
    api.create(
        f"{KUEUE}/namespaces/{namespace}/localqueues",
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "LocalQueue",
            "metadata": {"name": "team"},
            "spec": {"clusterQueue": f"cq-{namespace}"},
        },
    )


def test_kueue_admits_a_queued_job_whose_pod_the_default_scheduler_binds(
    peers: DevCluster, namespace: str
) -> None:
    api = peers.admin
    _queues(api, namespace)
    pod = training_pod("train", gpus=0, cpu="1", memory="1Gi")
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "queued", "labels": {QUEUE_LABEL: "team"}},
        "spec": {
            "suspend": True,
            "backoffLimit": 0,
            "template": {"metadata": {"labels": {}}, "spec": pod["spec"]},
        },
    }
    api.create(f"/apis/batch/v1/namespaces/{namespace}/jobs", job)
    jobs = f"/apis/batch/v1/namespaces/{namespace}/jobs/queued"
    wait_for(
        "Kueue to start the Job", lambda: api.get(jobs)["spec"]["suspend"] is False or None, 30
    )
    pods = f"/api/v1/namespaces/{namespace}/pods"

    def bound_pod() -> str | None:
        found = api.items(pods, labelSelector="job-name=queued")
        return found[0]["metadata"]["name"] if found and found[0]["spec"].get("nodeName") else None

    name = wait_for("the Job's pod to be bound", bound_pod, 30)
    reporter = wait_for("its Scheduled event", lambda: scheduled_by(api, namespace, name), 10)
    assert reporter == "default-scheduler"
    workloads = api.items(f"{KUEUE}/namespaces/{namespace}/workloads")
    assert [w["status"]["admission"]["clusterQueue"] for w in workloads] == [f"cq-{namespace}"]


def test_kueue_webhook_suspends_a_queued_job_created_running(
    peers: DevCluster, namespace: str
) -> None:
    api = peers.admin
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "eager", "labels": {QUEUE_LABEL: "absent"}},
        "spec": {
            "suspend": False,
            "template": {"spec": training_pod("t", gpus=0, cpu="1", memory="1Gi")["spec"]},
        },
    }
    # Kueue's mutating webhook, called by URL on the loopback, suspends it at creation.
    created = api.create(f"/apis/batch/v1/namespaces/{namespace}/jobs", job)
    assert created["spec"]["suspend"] is True
