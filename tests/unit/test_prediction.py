"""The run-time predictor: each source, the history's causality, progress extrapolation."""

import dataclasses

import pytest

from builders import make_pod
from hybrid_policy.domain import PendingPod
from hybrid_policy.prediction import PredictionSource, PredictorSettings, RuntimePredictor


def _pod(
    name: str, gpus: int = 1, namespace: str = "team-a", task: str = "nlp", **kw: object
) -> PendingPod:
    pod = make_pod(name, gpus=gpus, namespace=namespace)
    return dataclasses.replace(pod, task_type=task, **kw)  # type: ignore[arg-type]


def _finish(
    predictor: RuntimePredictor, pod: PendingPod, start_s: float, end_s: float, perf: float = 100.0
) -> None:
    predictor.started(pod, "n0", start_s, perf)
    predictor.finished(pod.uid, end_s)


def test_a_user_estimate_comes_first() -> None:
    predictor = RuntimePredictor(priors={"nlp": 600.0})
    prediction = predictor.duration(_pod("p", expected_runtime_s=1234.0), now_s=0.0)
    assert prediction.seconds == 1234.0
    assert prediction.source is PredictionSource.USER_ESTIMATE


def test_the_task_types_prior_answers_without_history() -> None:
    predictor = RuntimePredictor(PredictorSettings(default_prior_s=99.0), priors={"nlp": 660.0})
    assert predictor.duration(_pod("p"), 0.0).seconds == 660.0
    assert predictor.duration(_pod("p"), 0.0).source is PredictionSource.PRIOR
    unknown = predictor.duration(_pod("q", task="video"), 0.0)
    assert (unknown.seconds, unknown.source) == (99.0, PredictionSource.PRIOR)


def test_history_is_the_mean_of_the_same_namespace_and_job_class() -> None:
    predictor = RuntimePredictor(PredictorSettings(history_min_samples=2), priors={"nlp": 600.0})
    _finish(predictor, _pod("a1", gpus=2), 0.0, 100.0)
    # Work is counted at performance 100: 600 s on a node of performance 50 is 300 s.
    _finish(predictor, _pod("a2", gpus=2), 0.0, 600.0, perf=50.0)
    _finish(predictor, _pod("other-ns", gpus=2, namespace="team-b"), 0.0, 5000.0)
    prediction = predictor.duration(_pod("next", gpus=2), now_s=1000.0)
    assert (prediction.seconds, prediction.source) == (200.0, PredictionSource.HISTORY)
    on_slow_node = predictor.duration_on(_pod("next", gpus=2), 50.0, now_s=1000.0)
    assert on_slow_node.seconds == 400.0
    assert predictor.duration(_pod("b", gpus=2, namespace="team-b"), 400.0).source is (
        PredictionSource.PRIOR
    )


def test_history_falls_back_to_the_task_type_in_the_namespace() -> None:
    predictor = RuntimePredictor(PredictorSettings(history_min_samples=2), priors={"nlp": 600.0})
    _finish(predictor, _pod("a1", gpus=2), 0.0, 100.0)
    _finish(predictor, _pod("a2", gpus=4), 0.0, 300.0)
    eight = predictor.duration(_pod("wide", gpus=8), now_s=400.0)
    assert (eight.seconds, eight.source) == (200.0, PredictionSource.HISTORY)


def test_history_holds_only_pods_finished_before_the_question() -> None:
    predictor = RuntimePredictor(PredictorSettings(history_min_samples=1), priors={"nlp": 600.0})
    _finish(predictor, _pod("early"), 0.0, 100.0)
    _finish(predictor, _pod("late"), 0.0, 900.0)
    before_both = predictor.duration(_pod("q"), now_s=50.0)
    assert before_both.source is PredictionSource.PRIOR
    between = predictor.duration(_pod("q"), now_s=500.0)
    assert (between.seconds, between.source) == (100.0, PredictionSource.HISTORY)
    after = predictor.duration(_pod("q"), now_s=1000.0)
    assert after.seconds == 500.0


def test_history_keeps_a_window_of_the_latest_pods() -> None:
    settings = PredictorSettings(history_window=2, history_min_samples=1)
    predictor = RuntimePredictor(settings)
    for i, run_s in enumerate((1000.0, 10.0, 30.0)):
        _finish(predictor, _pod(f"p{i}"), 0.0, run_s)
    assert predictor.duration(_pod("q"), now_s=2000.0).seconds == 20.0


def test_progress_extrapolates_the_time_left() -> None:
    predictor = RuntimePredictor(priors={"nlp": 60.0})
    pod = _pod("p")
    predictor.started(pod, "n0", 100.0, 100.0)
    for at_s in (160.0, 220.0, 400.0):  # the pod runs 1000 s: fraction = elapsed / 1000
        predictor.progress(pod.uid, (at_s - 100.0) / 1000.0, at_s)
    left = predictor.remaining(pod.uid, now_s=500.0)
    assert left.source is PredictionSource.PROGRESS
    assert left.seconds == pytest.approx(600.0)


def test_without_progress_the_time_left_is_the_duration_minus_the_time_run() -> None:
    settings = PredictorSettings(overdue_ratio=0.5)
    predictor = RuntimePredictor(settings, priors={"nlp": 600.0})
    pod = _pod("p")
    predictor.started(pod, "n0", 0.0, 50.0)  # 600 s at 100 is 1200 s on this node
    left = predictor.remaining(pod.uid, now_s=200.0)
    assert (left.seconds, left.source) == (1000.0, PredictionSource.PRIOR)
    overdue = predictor.remaining(pod.uid, now_s=2000.0)
    assert overdue.seconds == 1000.0  # half the 2000 s it has run


def test_a_pod_that_stopped_without_finishing_leaves_no_history() -> None:
    predictor = RuntimePredictor(PredictorSettings(history_min_samples=1))
    pod = _pod("p")
    predictor.started(pod, "n0", 0.0, 100.0)
    predictor.stopped(pod.uid)
    predictor.finished(pod.uid, 50.0)
    assert predictor.duration(_pod("q"), 100.0).source is PredictionSource.PRIOR
    assert pod.uid not in predictor.running


def test_settings_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="min_samples"):
        RuntimePredictor(PredictorSettings(history_window=2, history_min_samples=3))
    with pytest.raises(ValueError, match="prior"):
        RuntimePredictor().set_prior("nlp", 0.0)
