"""The run-time predictor: fed by a driver, answering for pending and running pods.

The driver tells it when a pod starts (on which node, of what performance), what fraction
of its work a running pod reports done, and when a pod finishes; it answers

- :meth:`RuntimePredictor.duration`: a pending pod's run time at performance 100, from
  the user's estimate, else the history of its job class, else its task type's prior;
- :meth:`RuntimePredictor.remaining`: a running pod's time left, from its progress
  reports (a least-squares fit of fraction against elapsed time), else its predicted
  duration minus the time it has run.

``PredictorSettings.sources`` may restrict it to some of these sources (the ablation by
source, docs/benchmarks.md); a question none of them answers gets the fixed default.

It reads nothing else: no run time it was not told, no completion later than the query.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hybrid_policy.domain import PendingPod
from hybrid_policy.prediction.history import RuntimeHistory
from hybrid_policy.prediction.model import (
    SELECTABLE_SOURCES,
    Prediction,
    PredictionSource,
    RunningPod,
)


@dataclass(frozen=True)
class PredictorSettings:
    """How the predictor weighs what it was told."""

    #: Completions kept per job class.
    history_window: int = 20
    #: Completions a class needs before its history is used.
    history_min_samples: int = 3
    #: Run time at performance 100 assumed for a task type without a prior (seconds).
    default_prior_s: float = 600.0
    #: A pod that has run past its predicted duration is given this fraction of the
    #: time it has run as time left (run times have long tails).
    overdue_ratio: float = 0.5
    #: The least time left a running pod is ever predicted to have (seconds).
    floor_s: float = 1.0
    #: The sources it may use (all by default); a question none of them answers gets
    #: ``default_prior_s`` (source ``DEFAULT``).
    sources: frozenset[PredictionSource] = frozenset(SELECTABLE_SOURCES)

    def __post_init__(self) -> None:
        if self.default_prior_s <= 0 or self.floor_s <= 0 or self.overdue_ratio < 0:
            raise ValueError(f"predictor settings: times must be positive ({self})")
        if not self.sources or PredictionSource.DEFAULT in self.sources:
            raise ValueError(f"predictor settings: sources must name some of {SELECTABLE_SOURCES}")


class RuntimePredictor:
    """Predicted run times from starts, progress reports and completions."""

    def __init__(
        self, settings: PredictorSettings | None = None, priors: Mapping[str, float] | None = None
    ) -> None:
        self.settings = settings or PredictorSettings()
        #: Prior run time at performance 100 per task type, in seconds.
        self.priors: dict[str, float] = dict(priors or {})
        self.history = RuntimeHistory(
            self.settings.history_window, self.settings.history_min_samples
        )
        #: Running pods by UID.
        self.running: dict[str, RunningPod] = {}

    def set_prior(self, task_type: str, work_s: float) -> None:
        """The prior run time (at performance 100) of pods of ``task_type``."""
        if work_s <= 0:
            raise ValueError(f"prior of task type {task_type!r}: must be > 0 (got {work_s})")
        self.priors[task_type] = work_s

    # What the driver reports.

    def started(self, pod: PendingPod, node: str, at_s: float, performance: float) -> None:
        """``pod`` started on ``node`` (of ``performance``) at ``at_s``."""
        self.running[pod.uid] = RunningPod(pod, node, at_s, max(performance, 1e-9))

    def progress(self, uid: str, fraction: float, at_s: float) -> None:
        """The running pod ``uid`` reported ``fraction`` (0..1) of its work done at ``at_s``;
        reports of unknown pods and reports at the start instant are ignored."""
        run = self.running.get(uid)
        if run is None:
            return
        elapsed = at_s - run.started_at_s
        if elapsed <= 0:
            return
        run.progress_ee += elapsed * elapsed
        run.progress_ef += elapsed * min(max(fraction, 0.0), 1.0)
        run.progress_reports += 1

    def finished(self, uid: str, at_s: float) -> None:
        """The running pod ``uid`` completed at ``at_s``: its work joins the history."""
        run = self.running.pop(uid, None)
        if run is None:
            return
        work = (at_s - run.started_at_s) * run.performance / 100.0
        if work > 0:
            self.history.record(run.pod, at_s, work)

    def stopped(self, uid: str) -> None:
        """The running pod ``uid`` stopped without completing (deleted, preempted)."""
        self.running.pop(uid, None)

    # What policies ask.

    def duration(self, pod: PendingPod, now_s: float) -> Prediction:
        """``pod``'s run time at performance 100, as known at ``now_s``."""
        sources = self.settings.sources
        estimate = pod.expected_runtime_s
        if PredictionSource.USER_ESTIMATE in sources and estimate is not None and estimate > 0:
            return Prediction(estimate, PredictionSource.USER_ESTIMATE)
        if PredictionSource.HISTORY in sources:
            mean = self.history.mean_work(pod, now_s)
            if mean is not None:
                return Prediction(mean, PredictionSource.HISTORY)
        default = self.settings.default_prior_s
        if PredictionSource.PRIOR in sources:
            return Prediction(self.priors.get(pod.task_type or "", default), PredictionSource.PRIOR)
        return Prediction(default, PredictionSource.DEFAULT)

    def duration_on(self, pod: PendingPod, performance: float, now_s: float) -> Prediction:
        """``pod``'s run time on a node of ``performance``."""
        return self.duration(pod, now_s).scaled(100.0 / max(performance, 1e-9))

    def remaining(self, uid: str, now_s: float) -> Prediction:
        """Time left to the running pod ``uid`` at ``now_s`` (a KeyError if not running)."""
        run = self.running[uid]
        elapsed = max(now_s - run.started_at_s, 0.0)
        floor = self.settings.floor_s
        if run.progress_ef > 0 and PredictionSource.PROGRESS in self.settings.sources:
            total = run.progress_ee / run.progress_ef
            return Prediction(max(total - elapsed, floor), PredictionSource.PROGRESS)
        total_pred = self.duration_on(run.pod, run.performance, now_s)
        left = max(total_pred.seconds - elapsed, self.settings.overdue_ratio * elapsed, floor)
        return Prediction(left, total_pred.source)
