"""What a run-time prediction is: seconds, and the source they came from."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from hybrid_policy.domain import PendingPod


class PredictionSource(Enum):
    """Where a predicted run time came from, most specific first."""

    #: The running pod's reported fraction done, extrapolated.
    PROGRESS = "progress"
    #: The run time the user put on the pod (``expected_runtime_s``).
    USER_ESTIMATE = "user-estimate"
    #: Pods of the same namespace and job class that finished earlier.
    HISTORY = "history"
    #: The task type's prior (or the predictor's default when the task type is unknown).
    PRIOR = "prior"
    #: The predictor's fixed default, when none of the sources it may use answers (only
    #: when ``prior`` is left out of its sources: the prior answers every pod).
    DEFAULT = "default"


#: The sources a predictor may be restricted to (``DEFAULT`` is the last resort, not a choice).
SELECTABLE_SOURCES = (
    PredictionSource.PROGRESS,
    PredictionSource.USER_ESTIMATE,
    PredictionSource.HISTORY,
    PredictionSource.PRIOR,
)


def parse_sources(text: str) -> frozenset[PredictionSource]:
    """The sources named by ``text``: ``all`` or comma-separated names among
    ``progress``, ``user-estimate``, ``history``, ``prior``; a ValueError names any other."""
    if text.strip() == "all":
        return frozenset(SELECTABLE_SOURCES)
    names = [part.strip() for part in text.split(",") if part.strip()]
    by_name = {source.value: source for source in SELECTABLE_SOURCES}
    known = ", ".join(["all", *by_name])
    if not names:
        raise ValueError(f"no prediction source named in {text!r} (known: {known})")
    for name in names:
        if name not in by_name:
            raise ValueError(f"unknown prediction source {name!r} (known: {known})")
    return frozenset(by_name[name] for name in names)


def describe_sources(sources: frozenset[PredictionSource]) -> str:
    """``all``, or the sources' names in the order of :data:`SELECTABLE_SOURCES`."""
    if sources >= frozenset(SELECTABLE_SOURCES):
        return "all"
    return "+".join(s.value for s in SELECTABLE_SOURCES if s in sources)


@dataclass(frozen=True, slots=True)
class Prediction:
    """A predicted time in seconds and its source."""

    seconds: float
    source: PredictionSource

    def scaled(self, factor: float) -> Prediction:
        """The same prediction with its seconds multiplied by ``factor``."""
        return Prediction(self.seconds * factor, self.source)


@dataclass(slots=True)
class RunningPod:
    """A pod the predictor knows to be running: where, since when, and what it reported."""

    pod: PendingPod
    node: str
    started_at_s: float
    #: Performance of its node (a run time ``d`` at 100 takes ``d * 100 / performance``).
    performance: float
    #: Least-squares sums of the progress reports (elapsed seconds ``e``, fraction ``f``):
    #: the fit ``f = e / T`` gives ``T = sum(e^2) / sum(e * f)``.
    progress_ee: float = 0.0
    progress_ef: float = 0.0
    progress_reports: int = 0
