"""A fake of the operator's API calls that records what the scheduling loop asks for."""

import json
from collections.abc import Callable, Mapping
from typing import Any

from hybrid_operator.k8s.api import BindOutcome, BindResult
from hybrid_operator.k8s.preempt import DeleteOutcome, DeleteResult
from hybrid_policy.domain import PendingPod


class FakeApi:
    def __init__(self) -> None:
        self.binds: list[tuple[str, str]] = []
        self.events: list[tuple[str, str, str, bool]] = []
        self.unschedulable: list[str] = []
        self.annotations: dict[str, dict[str, Any]] = {}
        self.outcomes: dict[str, BindOutcome] = {}
        self.patches = 0
        self.called_off: list[tuple[str, str]] = []
        #: Labels of the namespaces the API server knows (others cannot be read).
        self.namespace_labels: dict[str, dict[str, str]] = {}
        self.namespace_reads: list[str] = []
        #: ``status.nominatedNodeName`` writes: (pod key, node or None when cleared).
        self.nominations: list[tuple[str, str | None]] = []
        #: PodGroup status patches: (namespace/name, status).
        self.group_status: list[tuple[str, dict[str, Any]]] = []
        #: Preemption calls in order: ("condition" | "delete" | "nominate", pod key, detail).
        self.calls: list[tuple[str, str, str]] = []
        #: Deletions that fail, by pod name, and with which outcome.
        self.delete_outcomes: dict[str, DeleteOutcome] = {}

    def bind(
        self,
        pod: PendingPod,
        node: str,
        annotations: Mapping[str, str] | None = None,
        still_wanted: Callable[[], bool] | None = None,
    ) -> BindResult:
        if still_wanted is not None and not still_wanted():
            self.called_off.append((pod.key, node))
            return BindResult(BindOutcome.CANCELLED, "test")
        self.binds.append((pod.key, node))
        outcome = self.outcomes.get(pod.name, BindOutcome.BOUND)
        if outcome is BindOutcome.BOUND:
            for key, value in (annotations or {}).items():
                self.annotations.setdefault(pod.key, {})[key] = json.loads(value)
        return BindResult(outcome, "test")

    def event(
        self, involved: dict[str, str], reason: str, message: str, warning: bool = False
    ) -> None:
        self.events.append((involved["name"], reason, message, warning))

    def mark_unschedulable(self, pod: PendingPod, message: str) -> None:
        self.patches += 1
        self.unschedulable.append(pod.key)

    def annotate(self, pod: PendingPod, key: str, record: dict[str, Any]) -> None:
        self.patches += 1
        self.annotations.setdefault(pod.key, {})[key] = record

    def read_namespace_labels(self, name: str) -> dict[str, str]:
        self.namespace_reads.append(name)
        if name not in self.namespace_labels:
            raise LookupError(f"namespaces {name!r} not found")
        return self.namespace_labels[name]

    def nominate(self, pod: PendingPod, node: str | None, message: str | None = None) -> None:
        self.patches += 1
        self.nominations.append((pod.key, node))
        self.calls.append(("nominate", pod.key, node or ""))

    def mark_disruption_target(self, namespace: str, name: str, message: str) -> None:
        self.patches += 1
        self.calls.append(("condition", f"{namespace}/{name}", message))

    def delete_pod(self, namespace: str, name: str, uid: str) -> DeleteResult:
        self.calls.append(("delete", f"{namespace}/{name}", uid))
        outcome = self.delete_outcomes.get(name, DeleteOutcome.DELETED)
        return DeleteResult(outcome, "test")

    def patch_pod_group_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.group_status.append((f"{namespace}/{name}", status))
