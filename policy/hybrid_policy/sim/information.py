"""What the simulator lets a policy know about run times, and how wrong its predictions were.

No policy but a clairvoyant one (``srtf-oracle``) is given a job's true run time. The
others see only what a cluster would show:

- a user's estimate on the pod (``expected_runtime_s``), when the scenario has
  ``user_estimates``: the true run time times ``bias * exp(sigma * Z)``;
- for policies with a :class:`~hybrid_policy.prediction.RuntimePredictor`: starts and
  completions as they happen, and each running pod's fraction done, reported every
  ``progress.interval_s`` after ``progress.warmup_s`` with Gaussian noise.

:class:`PredictionFeed` feeds the predictor and scores it against the truth: each pod's
predicted duration when it starts, and each running pod's predicted time left at every
progress report, per prediction source.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from hybrid_policy.domain import PendingPod
from hybrid_policy.prediction.model import PredictionSource
from hybrid_policy.prediction.predictor import RuntimePredictor
from hybrid_policy.scenario.jobs import Job
from hybrid_policy.scenario.model import Scenario, UserEstimateSpec

#: Kinds of prediction scored: a pending pod's duration (at its start), a running pod's
#: time left (at each progress report).
DURATION, REMAINING = "duration", "remaining"
ErrorTable = dict[str, dict[str, dict[str, float]]]


def user_estimates(
    jobs: Sequence[Job], spec: UserEstimateSpec | None, seed: int
) -> list[float | None]:
    """The estimate each job's user gave (None: no estimate), drawn with its own stream."""
    if spec is None:
        return [None] * len(jobs)
    rng = np.random.default_rng([seed, 0x757365])
    factors = spec.bias * np.exp(spec.sigma * rng.standard_normal(len(jobs)))
    given = rng.random(len(jobs)) < spec.coverage
    return [
        float(job.runtime_s * f) if g else None
        for job, f, g in zip(jobs, factors, given, strict=True)
    ]


def task_priors(scenario: Scenario) -> dict[str, float]:
    """Mean run time at performance 100 of each generated task type (none for traces,
    whose task types carry no run-time distribution of their own)."""
    if scenario.trace is not None:
        return {}
    return {t.name: t.runtime.mean_minutes * 60.0 for t in scenario.task_types}


class PredictionFeed:
    """Feeds one policy's predictor during a run and keeps its errors."""

    def __init__(self, predictor: RuntimePredictor, scenario: Scenario, seed: int) -> None:
        self.predictor = predictor
        for task, work_s in task_priors(scenario).items():
            predictor.set_prior(task, work_s)
        self.spec = scenario.progress
        self.rng = np.random.default_rng([seed, 0x70726F67])
        self.next_report_s = 0.0
        self.errors: dict[tuple[str, PredictionSource], list[tuple[float, float]]] = {}

    def started(
        self, pod: PendingPod, node: str, performance: float, run_s: float, now_s: float
    ) -> None:
        """``pod`` starts on ``node``; ``run_s`` (its true run time there) only scores."""
        predicted = self.predictor.duration_on(pod, performance, now_s)
        self._score(DURATION, predicted.source, predicted.seconds, run_s)
        self.predictor.started(pod, node, now_s, performance)

    def finished(self, uid: str, now_s: float) -> None:
        """The pod ``uid`` completed."""
        self.predictor.finished(uid, now_s)

    def stopped(self, uid: str) -> None:
        """The pod ``uid`` was stopped before it completed (preempted): no history."""
        self.predictor.stopped(uid)

    def due(self, now_s: float) -> bool:
        """Whether running pods report progress at ``now_s``."""
        return self.spec.interval_s > 0 and now_s >= self.next_report_s

    def report(self, now_s: float, running: Mapping[str, tuple[float, float]]) -> None:
        """Progress reports: ``running`` maps each running pod's UID to (start, true run
        time on its node), from which the reported fraction is drawn."""
        interval = self.spec.interval_s
        if not self.due(now_s):
            return
        self.next_report_s = (math.floor(now_s / interval) + 1.0) * interval
        reporting = [
            (uid, since, run_s)
            for uid, (since, run_s) in running.items()
            if now_s - since >= self.spec.warmup_s and now_s > since
        ]
        if not reporting:
            return
        noise = self.rng.normal(0.0, self.spec.noise, len(reporting)) if self.spec.noise else None
        for i, (uid, since, run_s) in enumerate(reporting):
            fraction = (now_s - since) / run_s
            if noise is not None:
                fraction += float(noise[i])
            self.predictor.progress(uid, min(max(fraction, 0.0), 1.0), now_s)
            left = self.predictor.remaining(uid, now_s)
            self._score(REMAINING, left.source, left.seconds, max(since + run_s - now_s, 0.0))

    def _score(self, kind: str, source: PredictionSource, predicted: float, actual: float) -> None:
        self.errors.setdefault((kind, source), []).append((predicted, actual))

    def error_table(self) -> ErrorTable:
        """Per kind and source: how many predictions, their mean absolute error (s), the
        median of |predicted - actual| / actual, and the median of predicted / actual."""
        out: ErrorTable = {}
        for (kind, source), pairs in sorted(
            self.errors.items(), key=lambda kv: (kv[0][0], kv[0][1].value)
        ):
            predicted, actual = np.array(pairs).T
            positive = actual > 0
            ratio = predicted[positive] / actual[positive]
            out.setdefault(kind, {})[source.value] = {
                "count": float(len(pairs)),
                "mean_abs_error_s": float(np.abs(predicted - actual).mean()),
                "median_abs_relative_error": float(np.median(np.abs(ratio - 1.0)))
                if ratio.size
                else math.nan,
                "median_ratio": float(np.median(ratio)) if ratio.size else math.nan,
            }
        return out
