"""The run-time predictor fed from the watch, as the simulator feeds it from its events.

A reserving policy predicts when nodes free from what its
:class:`~hybrid_policy.prediction.predictor.RuntimePredictor` was told. For the pods this
scheduler owns, :class:`PredictionFeed` tells it that a pod started (bound and Running,
at ``status.startTime``, on a node of the performance the cache knows), finished
(Succeeded or Failed, at its containers' latest ``finishedAt``, else when the watch showed
it) or stopped (deleted while running). Completed pods still in the API at start-up (the
first listing) rebuild the history the same way. Each completion of a pod seen starting
is scored: ``|predicted - actual| / actual`` per prediction source. Progress read from
Prometheus (:mod:`hybrid_operator.progress`) is told once per sample.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from hybrid_operator.cache import ClusterCache
from hybrid_operator.k8s.convert import DEFAULT_PERFORMANCE
from hybrid_operator.k8s.views import PodPhase, PodView
from hybrid_operator.observability import OperatorMetrics
from hybrid_operator.progress import ProgressReport
from hybrid_policy.prediction.model import Prediction
from hybrid_policy.prediction.predictor import RuntimePredictor


class PredictionFeed:
    """Starts, completions and stops of our pods, told to the predictor once each."""

    def __init__(
        self,
        predictor: RuntimePredictor,
        cache: ClusterCache,
        metrics: OperatorMetrics,
        clock: Callable[[], float],
    ) -> None:
        self.predictor = predictor
        self.cache = cache
        self.metrics = metrics
        self.clock = clock
        #: Pods whose completion the history holds (a re-listing does not repeat it).
        self.recorded: set[str] = set()
        #: The run time predicted for each running pod when it started, on its node.
        self.predicted: dict[str, Prediction] = {}
        #: The time of the latest progress report told per running pod (each sample once).
        self.reported_at: dict[str, float] = {}

    def progress(self, reports: list[ProgressReport]) -> int:
        """Tell the predictor the reports of running pods of ours not told yet; returns
        how many it was told."""
        running = {(r.pod.namespace, r.pod.name): uid for uid, r in self.predictor.running.items()}
        told = 0
        for report in reports:
            uid = running.get((report.namespace, report.pod))
            if uid is None or report.at_s <= self.reported_at.get(uid, -math.inf):
                continue
            self.reported_at[uid] = report.at_s
            self.predictor.progress(uid, report.fraction, report.at_s)
            told += 1
        return told

    def _performance(self, node: str) -> float:
        info = self.cache.nodes.get(node)
        return info.performance if info is not None else DEFAULT_PERFORMANCE

    def observe(self, view: PodView) -> None:
        """A pod of ours was added or changed."""
        if view.uid in self.recorded or view.node_name is None:
            return
        if view.finished:
            self._finish(view, view.node_name)
        elif view.phase is PodPhase.RUNNING and view.uid not in self.predictor.running:
            self._start(view, view.node_name)

    def _start(self, view: PodView, node: str) -> None:
        at = view.started_at_s if view.started_at_s is not None else self.clock()
        performance = self._performance(node)
        self.predicted[view.uid] = self.predictor.duration_on(view.pod, performance, at)
        self.predictor.started(view.pod, node, at, performance)

    def _finish(self, view: PodView, node: str) -> None:
        uid = view.uid
        self.recorded.add(uid)
        seen_running = uid in self.predictor.running
        if not seen_running:
            if view.started_at_s is None:
                return  # it never ran (or the kubelet never said when): nothing to learn
            # Finished before we saw it run (a listing at start-up): history only.
            self.predictor.started(view.pod, node, view.started_at_s, self._performance(node))
        started = self.predictor.running[uid].started_at_s
        at = view.finished_at_s if view.finished_at_s is not None else self.clock()
        self.predictor.finished(uid, at)
        self.reported_at.pop(uid, None)
        predicted = self.predicted.pop(uid, None)
        actual = at - started
        if seen_running and predicted is not None and actual > 0:
            error = abs(predicted.seconds - actual) / actual
            self.metrics.prediction_error.labels(source=predicted.source.value).observe(error)

    def gone(self, uid: str) -> None:
        """The pod was deleted (or a listing no longer shows it)."""
        if uid in self.predictor.running:
            self.predictor.stopped(uid)
        self.predicted.pop(uid, None)
        self.reported_at.pop(uid, None)
        self.recorded.discard(uid)
