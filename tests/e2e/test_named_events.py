"""The real API server and named Events: the ``Scheduled`` Event a replica posts again
after its first post's answer was lost (``tests/unit/test_scheduled_event_retry.py``)
is refused as already there (409), which the client counts as posted, so the pod is told
once."""

from __future__ import annotations

import pytest

from hybrid_lab.devcluster.testing import DevCluster
from hybrid_operator.k8s.api import KubeApi, load_client

pytestmark = pytest.mark.e2e


def test_a_named_event_posted_twice_is_one_event(dev_cluster: DevCluster, namespace: str) -> None:
    api = KubeApi(load_client(str(dev_cluster.settings.kubeconfig)), "event-check")
    ref = {"kind": "Pod", "namespace": namespace, "name": "p", "uid": "uid-p"}
    name = "p.scheduled.0123456789abcdef"
    api.event(ref, "Scheduled", "first", name=name)
    api.event(ref, "Scheduled", "again", name=name)  # answered 409: counted as posted
    api.event(ref, "Reserved", "unnamed")
    api.event(ref, "Reserved", "unnamed")
    events = dev_cluster.admin.items(f"/api/v1/namespaces/{namespace}/events")
    scheduled = [e for e in events if e["reason"] == "Scheduled"]
    assert [(e["metadata"]["name"], e["message"]) for e in scheduled] == [(name, "first")]
    assert len([e for e in events if e["reason"] == "Reserved"]) == 2
