"""API calls counted by the API server itself, from its ``apiserver_request_total``.

Reading the counter before and after a phase in which only one scheduler (and kwok)
acts gives the calls that scheduler made per pod, whatever client library it uses:
bindings, Events (``events`` in the core group or ``events.k8s.io``) and pod patches
(not ``pods/status``, which kwok writes as the kubelet would).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from hybrid_lab.devcluster.apiserver import ApiServer


@dataclass(frozen=True)
class CallKey:
    """One kind of request."""

    verb: str
    resource: str
    subresource: str
    group: str


def request_totals(api: ApiServer) -> Counter[CallKey]:
    """Every ``apiserver_request_total`` series, summed over codes and scopes."""
    response = api.request("GET", "/metrics")
    response.raise_for_status()
    totals: Counter[CallKey] = Counter()
    for family in text_string_to_metric_families(response.text):
        if family.name != "apiserver_request":
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            labels = sample.labels
            key = CallKey(
                labels.get("verb", ""),
                labels.get("resource", ""),
                labels.get("subresource", ""),
                labels.get("group", ""),
            )
            totals[key] += int(sample.value)
    return totals


def scheduler_calls(before: Counter[CallKey], after: Counter[CallKey]) -> dict[str, int]:
    """The calls a scheduler makes on a pod's behalf, between two readings."""
    diff = after.copy()
    diff.subtract(before)
    out = {"bindings": 0, "events": 0, "pod_patches": 0, "pod_status_patches": 0}
    for key, count in diff.items():
        if key.resource == "pods" and key.subresource == "binding" and key.verb == "POST":
            out["bindings"] += count
        elif key.resource == "events" and key.verb in ("POST", "PATCH", "PUT"):
            out["events"] += count
        elif key.resource == "pods" and key.subresource == "" and key.verb in ("PATCH", "PUT"):
            out["pod_patches"] += count
        elif (
            key.resource == "pods" and key.subresource == "status" and key.verb in ("PATCH", "PUT")
        ):
            out["pod_status_patches"] += count
    return out
