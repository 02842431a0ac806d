"""The decision record on a bound pod, read back and checked against the pod's binding.

The scheduler writes the record (annotation ``hybrid-scheduler.io/decision``) with the
Binding, so the API server sets it in the same write as ``spec.nodeName`` and the
``PodScheduled=True`` condition. Anyone allowed to update the pod can also write that
annotation, so a record is only evidence when it agrees with the binding:
:func:`parse_record` turns the JSON into a :class:`DecisionRecord` or says what is wrong
with it, and :func:`binding_problems` lists every way the record and the pod disagree.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hybrid_operator.k8s.views import DECISION_ANNOTATION as DECISION_ANNOTATION

#: How far the record's time may be from the API server's binding time, in seconds (the
#: two clocks, and the wait for the rate limiter before the binding call).
CLOCK_SLACK_S = 60.0


class RecordError(ValueError):
    """A decision record that cannot be read; ``problems`` says why, one item each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class RunnerUp:
    """A node the decision passed over, with its score."""

    node: str
    score: float


@dataclass(frozen=True)
class DecisionRecord:
    """What the scheduler says it decided for a pod."""

    policy: str
    path: str
    node: str
    score: float | None
    runners_up: tuple[RunnerUp, ...]
    namespace_share: float | None
    #: The replica that decided (its identity; empty if it had none).
    instance: str
    #: The scheduler name it served (``spec.schedulerName`` of its pods); None in records
    #: that do not say.
    scheduler: str | None
    #: When it decided, seconds since the epoch (the operator's clock).
    at: float
    metrics: str | None = None


class _Fields:
    """Typed reads from the record's JSON object, collecting every problem."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.problems: list[str] = []

    def text(self, key: str, required: bool = True, empty: bool = False) -> str | None:
        value = self.data.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not (value or empty):
            self.problems.append(f"{key}: must be a non-empty string (got {value!r})")
            return None
        return value

    def number(self, key: str, required: bool = False) -> float | None:
        value = self.data.get(key)
        if value is None and not required:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problems.append(f"{key}: must be a number (got {value!r})")
            return None
        return float(value)

    def runners_up(self) -> tuple[RunnerUp, ...]:
        raw = self.data.get("runnersUp", [])
        if not isinstance(raw, list):
            self.problems.append(f"runnersUp: must be a list (got {raw!r})")
            return ()
        out = []
        for i, item in enumerate(raw):
            node = item.get("node") if isinstance(item, dict) else None
            score = item.get("score") if isinstance(item, dict) else None
            if not isinstance(node, str) or isinstance(score, bool):
                self.problems.append(f"runnersUp[{i}]: must be {{node, score}} (got {item!r})")
            elif not isinstance(score, int | float):
                self.problems.append(f"runnersUp[{i}].score: must be a number (got {score!r})")
            else:
                out.append(RunnerUp(node, float(score)))
        return tuple(out)


def parse_record(raw: str) -> DecisionRecord:
    """The record in annotation value ``raw``, or :class:`RecordError` listing the problems."""
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise RecordError([f"not JSON ({exc})"]) from None
    if not isinstance(data, dict):
        raise RecordError([f"not a JSON object (got {type(data).__name__})"])
    fields = _Fields(data)
    policy, path = fields.text("policy"), fields.text("path")
    node, instance = fields.text("node"), fields.text("instance", empty=True)
    scheduler, metrics = fields.text("scheduler", False), fields.text("metrics", False)
    at = fields.number("at", required=True)
    score, share = fields.number("score"), fields.number("namespaceShare")
    runners_up = fields.runners_up()
    if fields.problems:
        raise RecordError(fields.problems)
    assert policy and path and node and instance is not None and at is not None
    return DecisionRecord(
        policy, path, node, score, runners_up, share, instance, scheduler, at, metrics
    )


def _time(value: object) -> float | None:
    """A Kubernetes timestamp (RFC 3339) as seconds since the epoch, None if absent."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def _scheduled_at(status: Mapping[str, Any]) -> float | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "True":
            return _time(condition.get("lastTransitionTime"))
    return None


def _annotation_writers(metadata: Mapping[str, Any]) -> list[str]:
    """Managers that wrote the record by updating the pod (not with the binding)."""
    writers = []
    for entry in metadata.get("managedFields") or []:
        owned = (entry.get("fieldsV1") or {}).get("f:metadata", {}).get("f:annotations", {})
        if f"f:{DECISION_ANNOTATION}" in owned and entry.get("subresource") != "binding":
            writers.append(f"{entry.get('manager', '?')} ({entry.get('operation', '?')})")
    return writers


def binding_problems(record: DecisionRecord, pod: Mapping[str, Any]) -> list[str]:
    """Every way ``record`` disagrees with ``pod`` (the API server's JSON); empty if none."""
    metadata, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    node, scheduler = spec.get("nodeName"), spec.get("schedulerName")
    problems = []
    if not node:
        problems.append(f"the pod is not bound, yet the record places it on {record.node}")
    elif node != record.node:
        problems.append(f"the record names node {record.node}, the pod is bound to {node}")
    if record.scheduler is None:
        problems.append("the record does not name the scheduler that wrote it")
    elif record.scheduler != scheduler:
        problems.append(
            f"the record was written by scheduler {record.scheduler}, "
            f"the pod's spec.schedulerName is {scheduler}"
        )
    created = _time(metadata.get("creationTimestamp"))
    if created is not None and record.at < created - CLOCK_SLACK_S:
        problems.append("the record's time is before the pod was created")
    if node:
        bound_at = _scheduled_at(pod.get("status") or {})
        if bound_at is None:
            problems.append("the pod has no PodScheduled=True condition to date its binding")
        elif abs(record.at - bound_at) > CLOCK_SLACK_S:
            gap = record.at - bound_at
            problems.append(f"the record's time is {gap:+.0f} s from the pod's PodScheduled time")
    writers = _annotation_writers(metadata)
    if writers:
        problems.append(f"the record was written by an update of the pod: {', '.join(writers)}")
    return problems
