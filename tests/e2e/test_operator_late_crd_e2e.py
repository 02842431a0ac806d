"""A PodGroup CRD installed after the operator started, on the dev cluster: the operator
starts without it, notices it at a reconciling listing, binds the pods of PodGroups
created afterwards whole, without a restart, and still stops promptly."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hybrid_lab.devcluster.apiserver import ApiServer
from hybrid_lab.devcluster.testing import DevCluster
from hybrid_lab.devcluster.workload import training_pod, wait_for
from operator_helpers import SCHEDULER, bound_node, operator_process

pytestmark = pytest.mark.e2e
CRD_FILE = (
    Path(__file__).parents[2] / "helm/hybrid-scheduler/crds/scheduling.x-k8s.io_podgroups.yaml"
)
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
CRD_NAME = "podgroups.scheduling.x-k8s.io"
SERVED = "/apis/scheduling.x-k8s.io/v1alpha1/podgroups"
GROUP_LABEL = "scheduling.x-k8s.io/pod-group"
RESYNC_S = 2
#: A few reconciling listings, and the bindings after them.
FEW_RESYNCS_S = 10 * RESYNC_S
#: How long the operator may take to stop, its own PodGroup watch open.
STOP_S = 10


def _served(api: ApiServer) -> bool:
    return api.request("GET", SERVED).status_code == 200


def _install(api: ApiServer) -> None:
    api.create(CRDS, yaml.safe_load(CRD_FILE.read_text()), exist_ok=True)
    wait_for("PodGroups to be served", lambda: _served(api) or None, 30)


@pytest.fixture
def without_crd(dev_cluster: DevCluster) -> Iterator[ApiServer]:
    """No PodGroup CRD while the test starts; it is left as it was found afterwards."""
    api = dev_cluster.admin
    found = api.call("GET", f"{CRDS}/{CRD_NAME}", allow=(404,))
    was_there = found.get("kind") == "CustomResourceDefinition"
    api.delete(f"{CRDS}/{CRD_NAME}")
    wait_for("PodGroups to be no longer served", lambda: (not _served(api)) or None, 60)
    yield api
    if was_there:
        _install(api)
    else:
        api.delete(f"{CRDS}/{CRD_NAME}")


def _group(namespace: str, name: str, api: ApiServer) -> None:
    body = {
        "apiVersion": "scheduling.x-k8s.io/v1alpha1",
        "kind": "PodGroup",
        "metadata": {"name": name},
        "spec": {"minMember": 2},
    }
    api.create(f"/apis/scheduling.x-k8s.io/v1alpha1/namespaces/{namespace}/podgroups", body)


def _member(name: str, group: str) -> dict[str, Any]:
    pod = training_pod(name, gpus=1, cpu="1", memory="1Gi", runtime="30s", scheduler_name=SCHEDULER)
    pod["metadata"]["labels"][GROUP_LABEL] = group
    return pod


def test_podgroups_of_a_crd_installed_after_start_are_watched_without_a_restart(
    dev_cluster: DevCluster, namespace: str, without_crd: ApiServer, tmp_path: Path
) -> None:
    api = without_crd
    pods = f"/api/v1/namespaces/{namespace}/pods"
    log = tmp_path / "operator.log"
    flags = ("--policy", "binpack-gang", "--resync-interval", str(RESYNC_S), "--http-port", "0")
    with operator_process(dev_cluster, log, *flags) as process:
        assert "PodGroup CRD (podgroups.scheduling.x-k8s.io) is not installed" in log.read_text()
        # A pod that names a PodGroup waits while PodGroups cannot be read.
        api.create(pods, _member("early-0", "early"))
        _install(api)
        _group(namespace, "early", api)
        api.create(pods, _member("early-1", "early"))
        for i in range(2):
            bound_node(api, pods, f"early-{i}")
        wait_for(
            "the operator to notice the CRD",
            lambda: "the PodGroup CRD is installed now" in log.read_text() or None,
            FEW_RESYNCS_S,
        )
        # A PodGroup created once the operator's own watch runs comes by its stream.
        _group(namespace, "later", api)
        for i in range(2):
            api.create(pods, _member(f"later-{i}", "later"))
        for i in range(2):
            bound_node(api, pods, f"later-{i}")
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(timeout=STOP_S) is not None  # the watch's thread did not hold it
    text = log.read_text()
    assert text.count("the PodGroup CRD is installed now: watching PodGroups") == 1
    assert "Traceback" not in text
