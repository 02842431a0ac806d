"""A fake of the operator's API calls that records what the scheduling loop asks for."""

import asyncio
import json
import threading
from collections.abc import Callable, Mapping
from typing import Any

from hybrid_operator.k8s.api import BindOutcome, BindResult, StoredMap, WriteConflictError
from hybrid_operator.k8s.preempt import DeleteOutcome, DeleteResult
from hybrid_policy.domain import PendingPod


class Gate:
    """Holds a call on its way (as the rate limit or a slow answer would) until the test
    lets it go."""

    def __init__(self) -> None:
        #: Set once a call waits at the gate.
        self.waiting = threading.Event()
        #: Set by the test to let every call through.
        self.go = threading.Event()

    def hold(self) -> None:
        """In the API thread: wait here (at most 10 s) unless the gate is open."""
        if not self.go.is_set():
            self.waiting.set()
            self.go.wait(timeout=10)

    async def reached(self) -> None:
        """On the loop: until a call waits at the gate."""
        while not self.waiting.is_set():
            await asyncio.sleep(0.01)


class FakeApi:
    def __init__(self) -> None:
        self.binds: list[tuple[str, str]] = []
        self.events: list[tuple[str, str, str, bool]] = []
        #: Names of the Events posted under a name of their own.
        self.event_names: set[str] = set()
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
        #: ConfigMaps by (namespace, name): their data and resourceVersion.
        self.config_maps: dict[tuple[str, str], StoredMap] = {}
        #: ConfigMap calls in order: ("read" | "write", namespace/name).
        self.config_map_calls: list[tuple[str, str]] = []
        #: What the next ConfigMap reads and writes raise, in turn (then they succeed).
        self.read_failures: list[Exception] = []
        self.write_failures: list[Exception] = []
        #: Called before each ConfigMap write is applied (another writer, in a test).
        self.before_write: Callable[[], None] | None = None

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
                # The decision record is JSON; other annotations are plain text.
                stored = json.loads(value) if value.startswith("{") else value
                self.annotations.setdefault(pod.key, {})[key] = stored
        return BindResult(outcome, "test")

    def event(
        self,
        involved: dict[str, str],
        reason: str,
        message: str,
        warning: bool = False,
        name: str | None = None,
    ) -> None:
        if name is not None:
            if name in self.event_names:
                return  # as the API server answers 409: posted already
            self.event_names.add(name)
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

    def read_config_map(self, namespace: str, name: str) -> StoredMap | None:
        self.config_map_calls.append(("read", f"{namespace}/{name}"))
        if self.read_failures:
            raise self.read_failures.pop(0)
        return self.config_maps.get((namespace, name))

    def write_config_map(
        self, namespace: str, name: str, data: Mapping[str, str], version: str | None
    ) -> str:
        self.config_map_calls.append(("write", f"{namespace}/{name}"))
        if self.write_failures:
            raise self.write_failures.pop(0)
        if self.before_write is not None:
            self.before_write()
        stored = self.config_maps.get((namespace, name))
        if (stored.version if stored else None) != version:
            raise WriteConflictError(409, "the object has been modified")
        return self.put_config_map(namespace, name, dict(data))

    def put_config_map(self, namespace: str, name: str, data: dict[str, object]) -> str:
        """Store a ConfigMap as another writer would; returns its new resourceVersion."""
        stored = self.config_maps.get((namespace, name))
        version = str(int(stored.version) + 1) if stored else "1"
        self.config_maps[(namespace, name)] = StoredMap(data, version)
        return version
