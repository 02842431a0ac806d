"""The summary of one simulation run, typed, and its JSON form.

:func:`~hybrid_policy.report.summary.summarise` fills a :class:`RunSummary`; tables,
figures and training read its fields. Field names are the JSON keys ``simulate --json``
has always written (``utilization``, ``jct_s``, ...), so :meth:`RunSummary.to_json` gives
the same records and :meth:`RunSummary.from_json` reads every saved file, older ones too
(records written before the per-namespace slowdown have none). Numbers a run could not
measure are NaN here and null in JSON.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class RecordError(ValueError):
    """A run record that is not what ``simulate --json`` writes; names the field."""


@dataclass(frozen=True)
class Utilisation:
    """Time-average of allocated over allocatable, per resource."""

    gpu: float
    cpu: float
    memory: float


@dataclass(frozen=True)
class CompletionTimes:
    """Job completion times (completion minus submission), in seconds."""

    mean: float
    p50: float
    p95: float
    p99: float


@dataclass(frozen=True)
class WaitTimes:
    """Waits (first start minus submission), in seconds."""

    mean: float
    p95: float


@dataclass(frozen=True)
class Slowdowns:
    """Completion time over the run time on the fastest node."""

    mean: float
    #: The highest of the namespaces' mean slowdowns (NaN in records older than it).
    worst_namespace: float = math.nan


@dataclass(frozen=True)
class RunSummary:
    """Schedule quality of one run (definitions: docs/benchmarks.md)."""

    policy: str
    scenario: str
    seed: int
    workload: str
    jobs: int
    offered_load: float
    offered_load_by_resource: dict[str, float]
    utilization: Utilisation
    jct_s: CompletionTimes
    jct_by_task_type_s: dict[str, float]
    jct_by_namespace_s: dict[str, float]
    wait_s: WaitTimes
    slowdown: Slowdowns
    slowdown_by_namespace: dict[str, float]
    fastest_node_bound_jct_s: float
    throughput_jobs_per_h: float
    completed: int
    unfinished: int
    never_finished: int
    jain_fairness: float
    #: Allocated GPU-time over entitlement; None for a namespace entitled to nothing.
    namespace_share: dict[str, float | None]
    jobs_in_system_mean: float
    little_law_expected: float
    decision_ms_per_pod: float
    decision_ms_per_pass: float
    scheduling_passes: int
    preemptions: int
    events: int
    events_per_s: float
    wall_s: float
    end_time_s: float
    #: Run-time prediction errors per kind (``duration``, ``remaining``) and source
    #: (``progress``, ``user-estimate``, ``history``, ``prior``): ``count``,
    #: ``mean_abs_error_s``, ``median_abs_relative_error``, ``median_ratio``. Empty for
    #: policies that predict nothing (and in records older than it).
    prediction_error: dict[str, dict[str, dict[str, float]]] = dataclasses.field(
        default_factory=dict
    )
    #: Jobs that run as a gang of several pods (0 in records older than gangs).
    gang_jobs: int = 0
    #: GPU-hours held idle by bound pods of gangs not running yet (pod-by-pod placement).
    idle_gang_gpu_hours: float = 0.0
    #: Gangs partly bound when the run ended, and those of them deadlocked (never to
    #: start: counted in ``never_finished``, outside JCT). 0 in older records.
    partial_gangs: int = 0
    deadlocked_gangs: int = 0
    #: Times a job was stopped by the scheduler (preempted or moved), mean over jobs and
    #: the most any job was (0 in records older than preemption costs).
    preemptions_per_job: float = 0.0
    most_preemptions: int = 0
    #: Jobs by the number of times they were stopped (``"0"``, ``"1"``, ...).
    preemption_counts: dict[str, int] = dataclasses.field(default_factory=dict)
    #: GPU-hours of work thrown away by those stops (work since the last checkpoint).
    lost_gpu_hours: float = 0.0
    #: Jobs stopped by the preemption phase per ordered pair of teams (``team-b->team-a``:
    #: jobs of team-a stopped for team-b); the takes among them that were back and forth
    #: (and the shortest time such a take came after the take it answered, NaN if none),
    #: team reversals, and reversals at once (``sim/takes.py``). Empty, 0 and NaN in
    #: older records.
    preemptions_by_pair: dict[str, int] = dataclasses.field(default_factory=dict)
    back_and_forth: int = 0
    shortest_back_and_forth_s: float = math.nan
    team_reversals: int = 0
    team_reversals_at_once: int = 0

    def to_json(self) -> dict[str, Any]:
        """The record as ``simulate --json`` writes it (NaN stays NaN: the writer nulls it)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> RunSummary:
        """A saved record; :class:`RecordError` names a missing or malformed field."""
        r = _Reader(record, "")
        return cls(
            policy=r.text("policy"),
            scenario=r.text("scenario"),
            seed=r.whole("seed"),
            workload=r.text("workload"),
            jobs=r.whole("jobs"),
            offered_load=r.number("offered_load"),
            offered_load_by_resource=r.numbers("offered_load_by_resource"),
            utilization=Utilisation(**r.part("utilization").fields("gpu", "cpu", "memory")),
            jct_s=CompletionTimes(**r.part("jct_s").fields("mean", "p50", "p95", "p99")),
            jct_by_task_type_s=r.numbers("jct_by_task_type_s"),
            jct_by_namespace_s=r.numbers("jct_by_namespace_s"),
            wait_s=WaitTimes(**r.part("wait_s").fields("mean", "p95")),
            slowdown=Slowdowns(**r.part("slowdown").fields("mean", optional=("worst_namespace",))),
            slowdown_by_namespace=r.numbers("slowdown_by_namespace", optional=True),
            fastest_node_bound_jct_s=r.number("fastest_node_bound_jct_s"),
            throughput_jobs_per_h=r.number("throughput_jobs_per_h"),
            completed=r.whole("completed"),
            unfinished=r.whole("unfinished"),
            never_finished=r.whole("never_finished"),
            jain_fairness=r.number("jain_fairness"),
            namespace_share=r.shares("namespace_share"),
            jobs_in_system_mean=r.number("jobs_in_system_mean"),
            little_law_expected=r.number("little_law_expected"),
            decision_ms_per_pod=r.number("decision_ms_per_pod"),
            decision_ms_per_pass=r.number("decision_ms_per_pass"),
            scheduling_passes=r.whole("scheduling_passes"),
            preemptions=r.whole("preemptions"),
            events=r.whole("events"),
            events_per_s=r.number("events_per_s"),
            wall_s=r.number("wall_s"),
            end_time_s=r.number("end_time_s"),
            prediction_error=r.prediction_errors("prediction_error"),
            gang_jobs=r.whole("gang_jobs") if "gang_jobs" in record else 0,
            idle_gang_gpu_hours=(
                r.number("idle_gang_gpu_hours") if "idle_gang_gpu_hours" in record else 0.0
            ),
            partial_gangs=r.whole("partial_gangs") if "partial_gangs" in record else 0,
            deadlocked_gangs=r.whole("deadlocked_gangs") if "deadlocked_gangs" in record else 0,
            preemptions_per_job=(
                r.number("preemptions_per_job") if "preemptions_per_job" in record else 0.0
            ),
            most_preemptions=r.whole("most_preemptions") if "most_preemptions" in record else 0,
            preemption_counts={
                k: int(v) for k, v in r.numbers("preemption_counts", optional=True).items()
            },
            lost_gpu_hours=r.number("lost_gpu_hours") if "lost_gpu_hours" in record else 0.0,
            preemptions_by_pair=r.counts("preemptions_by_pair"),
            back_and_forth=r.whole("back_and_forth") if "back_and_forth" in record else 0,
            shortest_back_and_forth_s=(
                r.number("shortest_back_and_forth_s")
                if "shortest_back_and_forth_s" in record
                else math.nan
            ),
            team_reversals=r.whole("team_reversals") if "team_reversals" in record else 0,
            team_reversals_at_once=(
                r.whole("team_reversals_at_once") if "team_reversals_at_once" in record else 0
            ),
        )


_PREDICTION_ERROR_FIELDS = (
    "count",
    "mean_abs_error_s",
    "median_abs_relative_error",
    "median_ratio",
)


class _Reader:
    """Typed reads from one (part of a) JSON record, naming the field on failure."""

    def __init__(self, record: Mapping[str, Any], prefix: str) -> None:
        if not isinstance(record, Mapping):
            raise RecordError(f"{prefix.rstrip('.') or 'record'}: not a mapping ({record!r})")
        self.record, self.prefix = record, prefix

    def _raw(self, key: str) -> Any:
        if key not in self.record:
            raise RecordError(f"{self.prefix}{key}: missing")
        return self.record[key]

    def text(self, key: str) -> str:
        value = self._raw(key)
        if not isinstance(value, str):
            raise RecordError(f"{self.prefix}{key}: not a string ({value!r})")
        return value

    def whole(self, key: str) -> int:
        value = self._raw(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecordError(f"{self.prefix}{key}: not a whole number ({value!r})")
        return value

    def number(self, key: str) -> float:
        return _number(f"{self.prefix}{key}", self._raw(key))

    def part(self, key: str) -> _Reader:
        return _Reader(self._raw(key), f"{self.prefix}{key}.")

    def fields(self, *keys: str, optional: tuple[str, ...] = ()) -> dict[str, float]:
        out = {key: self.number(key) for key in keys}
        out.update({key: self.number(key) for key in optional if key in self.record})
        return out

    def numbers(self, key: str, optional: bool = False) -> dict[str, float]:
        if optional and key not in self.record:
            return {}
        part = self.part(key)
        return {str(name): part.number(name) for name in part.record}

    def counts(self, key: str) -> dict[str, int]:
        """Whole numbers by name; empty when the record has none (older records)."""
        if key not in self.record:
            return {}
        part = self.part(key)
        return {str(name): part.whole(name) for name in part.record}

    def prediction_errors(self, key: str) -> dict[str, dict[str, dict[str, float]]]:
        if key not in self.record:
            return {}
        kinds = self.part(key)
        return {
            str(kind): {
                str(source): kinds.part(kind).part(source).fields(*_PREDICTION_ERROR_FIELDS)
                for source in kinds.part(kind).record
            }
            for kind in kinds.record
        }

    def shares(self, key: str) -> dict[str, float | None]:
        part = self.part(key)
        return {
            str(name): None if value is None else part.number(name)
            for name, value in part.record.items()
        }


def _number(field: str, value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(f"{field}: not a number ({value!r})")
    return float(value)
