"""The example workloads of the quickstart (manifests/examples/) on the dev cluster: applied
as they are, next to a running operator with its webhook, every pod of every team is bound
by hybrid-scheduler, whether it names the scheduler or opts in by annotation or label."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chart_helpers import ROOT, collection_path, documents
from hybrid_lab.devcluster.apiserver import ApiServer
from hybrid_lab.devcluster.testing import DevCluster
from hybrid_lab.devcluster.workload import WaitTimeoutError, wait_for
from operator_helpers import SCHEDULER, local_webhook_args, running_operator

pytestmark = pytest.mark.e2e
EXAMPLES = ROOT / "manifests" / "examples"
DECISION = "hybrid-scheduler.io/decision"
WEBHOOK = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/hybrid-scheduler.io"


def _examples() -> list[dict[str, Any]]:
    return [o for f in sorted(EXAMPLES.glob("*.yaml")) for o in documents(f.read_text())]


def _expected_pods(objects: list[dict[str, Any]]) -> dict[str, int]:
    """Pods each namespace should run at once: bare pods, plus each Job's parallelism."""
    expected: dict[str, int] = {}
    for o in objects:
        if o["kind"] in ("Pod", "Job"):
            count = o["spec"].get("parallelism", 1) if o["kind"] == "Job" else 1
            namespace = o["metadata"]["namespace"]
            expected[namespace] = expected.get(namespace, 0) + count
    return expected


def _delete_namespaces(api: ApiServer, names: list[str]) -> None:
    for name in names:
        api.call("DELETE", f"/api/v1/namespaces/{name}", allow=(404,))
    for name in names:
        path = f"/api/v1/namespaces/{name}"

        def gone(path: str = path) -> bool | None:
            return True if api.request("GET", path).status_code == 404 else None

        wait_for(f"{name} to be deleted", gone, 120)


@pytest.fixture
def example_namespaces(dev_cluster: DevCluster) -> Iterator[list[str]]:
    names = [o["metadata"]["name"] for o in _examples() if o["kind"] == "Namespace"]
    _delete_namespaces(dev_cluster.admin, names)
    try:
        yield names
    finally:
        _delete_namespaces(dev_cluster.admin, names)
        dev_cluster.admin.call("DELETE", WEBHOOK, allow=(404,))


def test_the_example_workloads_are_bound(
    dev_cluster: DevCluster, example_namespaces: list[str], tmp_path: Path
) -> None:
    api = dev_cluster.admin
    args = (
        "--lease-name",
        f"examples-{uuid.uuid4().hex[:6]}",
        "--http-port",
        "0",
        *local_webhook_args(),
    )
    objects = _examples()
    expected = _expected_pods(objects)
    assert set(expected) == set(example_namespaces)
    with running_operator(dev_cluster, tmp_path / "operator.log", *args) as log:
        wait_for(
            "the webhook configuration",
            lambda: api.call("GET", WEBHOOK, allow=(404,)).get("webhooks"),
            30,
        )
        for obj in objects:  # what `kubectl apply -f manifests/examples/` creates
            path = collection_path(api, obj)
            api.create(path, obj)
            if obj["kind"] == "Namespace":
                account = f"/api/v1/namespaces/{obj['metadata']['name']}/serviceaccounts/default"

                def has_account(account: str = account) -> bool | None:
                    return True if api.request("GET", account).ok else None

                wait_for("the default service account", has_account, 60)

        def all_bound() -> dict[str, list[dict[str, Any]]] | None:
            found = {ns: api.items(f"/api/v1/namespaces/{ns}/pods") for ns in expected}
            counts = {ns: len(pods) for ns, pods in found.items()}
            every = [p for pods in found.values() for p in pods]
            bound = all(p["spec"].get("nodeName") for p in every)
            # The decision record follows the binding.
            recorded = all(DECISION in (p["metadata"].get("annotations") or {}) for p in every)
            return found if counts == expected and bound and recorded else None

        try:
            found = wait_for("every example pod to be bound", all_bound, 90)
        except WaitTimeoutError:
            pods = [p for ns in expected for p in api.items(f"/api/v1/namespaces/{ns}/pods")]
            state = [
                (p["metadata"]["name"], p["spec"]["schedulerName"], p["spec"].get("nodeName"))
                for p in pods
            ]
            pytest.fail(f"not every example pod was bound by us in 90 s: {state}")
        for pods in found.values():
            for pod in pods:
                assert pod["spec"]["schedulerName"] == SCHEDULER, pod["metadata"]["name"]
                assert (
                    json.loads(pod["metadata"]["annotations"][DECISION])["node"]
                    == pod["spec"]["nodeName"]
                )
        assert "Traceback" not in log.read_text()
