"""Training progress from Prometheus: the fraction of its work each running pod has done.

The convention: a gauge (by default ``hybrid_scheduler_training_progress``; any PromQL
with the same shape through ``progress_query``) labelled ``namespace`` and ``pod``, whose
value is the fraction of the pod's work done, 0..1. The operator reads it once per pass
(in a worker thread, before the pass decides) and tells the run-time predictor, which
extrapolates a running pod's time left from those reports. A series is aged by the
scrape time of its sample (``timestamp()`` of the query), else by the query's evaluation
time. A series outside 0..1, not a number, naming no pod, or older than the staleness
bound is ignored and counted (``hybrid_scheduler_progress_ignored_total{reason}``); a
query that fails is logged once until it answers again, and scheduling goes on.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from hybrid_operator.utilisation import PromClient

log = logging.getLogger("hybrid_scheduler")
DEFAULT_PROGRESS_QUERY = "hybrid_scheduler_training_progress"
PodKey = tuple[str, str]


class IgnoredReason(Enum):
    """Why one progress series was not used."""

    NOT_A_NUMBER = "not-a-number"
    OUT_OF_RANGE = "out-of-range"
    NO_POD = "no-pod-label"
    STALE = "stale"


@dataclass(frozen=True)
class ProgressReport:
    """One pod's reported fraction done, and when it was measured."""

    namespace: str
    pod: str
    fraction: float
    at_s: float


def _series(answer: Any) -> list[tuple[PodKey, float, object]]:
    """(namespace, pod), evaluation time and raw value of every series of an answer."""
    out: list[tuple[PodKey, float, object]] = []
    for raw in answer if isinstance(answer, list) else []:
        series: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        labels = series.get("metric")
        metric: Mapping[str, Any] = labels if isinstance(labels, Mapping) else {}
        key = (str(metric.get("namespace") or ""), str(metric.get("pod") or ""))
        pair = series.get("value")
        if isinstance(pair, list | tuple) and len(pair) == 2:
            out.append((key, _number(pair[0]), pair[1]))
        else:
            out.append((key, math.nan, pair))
    return out


def _number(raw: object) -> float:
    try:
        return float(str(raw))
    except ValueError:
        return math.nan


class ProgressReader:
    """Reads the progress query and keeps what can be used."""

    def __init__(
        self,
        client: PromClient,
        query: str = DEFAULT_PROGRESS_QUERY,
        staleness_s: float = 120.0,
        clock: Callable[[], float] = time.time,
        on_ignored: Callable[[IgnoredReason], None] = lambda _: None,
    ) -> None:
        self.client = client
        self.query = query
        self.staleness_s = staleness_s
        self.clock = clock
        self.on_ignored = on_ignored
        self.failing = False

    def read(self) -> list[ProgressReport]:
        """Every usable report of one answer; none when the query fails."""
        now = self.clock()
        try:
            answer = self.client.custom_query(self.query)
        except Exception as exc:  # unreachable, slow, garbage: predictions go on without
            if not self.failing:
                log.warning("Prometheus: cannot read training progress: %s", exc)
            self.failing = True
            return []
        self.failing = False
        times = self._times(answer)
        reports = []
        for key, evaluated_at, raw in _series(answer):
            value, at = _number(raw), times.get(key, evaluated_at)
            reason = self._problem(key, value, at, now)
            if reason is not None:
                self.on_ignored(reason)
                continue
            reports.append(ProgressReport(key[0], key[1], value, at))
        return reports

    def _times(self, answer: Any) -> dict[PodKey, float]:
        """When each series was scraped (asked only when there are series); none known
        when that query fails (the series are then aged from the evaluation time)."""
        if not answer:
            return {}
        try:
            times = self.client.custom_query(f"timestamp({self.query})")
        except Exception:  # the values still count
            return {}
        return {key: _number(raw) for key, _, raw in _series(times)}

    def _problem(self, key: PodKey, value: float, at: float, now: float) -> IgnoredReason | None:
        if not key[0] or not key[1]:
            return IgnoredReason.NO_POD
        if not math.isfinite(value):
            return IgnoredReason.NOT_A_NUMBER
        if not 0.0 <= value <= 1.0:
            return IgnoredReason.OUT_OF_RANGE
        if not math.isfinite(at) or now - at > self.staleness_s:
            return IgnoredReason.STALE
        return None
