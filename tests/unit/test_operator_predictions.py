"""The operator feeds the run-time predictor from the watch, and reads run-time hints."""

import asyncio
from typing import Any

import pytest

from builders import finished_status, k8s_node, k8s_pod, rfc3339, usable
from fake_api import FakeApi
from hybrid_operator.k8s.calls import Listing
from hybrid_operator.k8s.convert import MAX_RUNTIME_S, RUNTIME_ANNOTATION, Body, pending_pod
from hybrid_operator.scheduler import Scheduler
from hybrid_operator.settings import OperatorSettings
from hybrid_policy.domain import PendingPod
from hybrid_policy.prediction.model import PredictionSource
from hybrid_policy.prediction.predictor import RuntimePredictor

NOW = 1_000_000.0


def _scheduler(policy: str = "fair-easy") -> tuple[Scheduler, FakeApi, list[float]]:
    api, clock = FakeApi(), [NOW]
    scheduler = Scheduler(OperatorSettings(policy=policy), api, clock=lambda: clock[0])
    node = k8s_node("fast")
    node["metadata"]["labels"] = {"hybrid-scheduler.io/performance": "200"}
    scheduler.on_node(None, node)
    scheduler.on_node(None, k8s_node("n2"))
    return scheduler, api, clock


def _predictor(scheduler: Scheduler) -> RuntimePredictor:
    assert scheduler.policy.predictor is not None
    return scheduler.policy.predictor


def _pod(body: dict[str, Any]) -> PendingPod:
    return usable(pending_pod(body))


def _done(name: str, run_s: float, node: str = "n2", **kw: Any) -> dict[str, Any]:
    status = finished_status(NOW - 5000, NOW - 5000 + run_s)
    return k8s_pod(name, node=node, phase="Succeeded", status=status, **kw)


def test_a_running_pod_is_started_at_its_start_time_on_its_node_performance() -> None:
    scheduler, _, _ = _scheduler()
    status = {"startTime": rfc3339(NOW - 300)}
    scheduler.on_pod(None, k8s_pod("a", node="fast", phase="Running", status=status))
    run = _predictor(scheduler).running["uid-a"]
    assert (run.node, run.started_at_s, run.performance) == ("fast", NOW - 300, 200.0)


def test_completions_build_the_history_of_the_job_class() -> None:
    scheduler, _, _ = _scheduler()
    for i, run_s in enumerate((600, 900, 1200)):
        scheduler.on_pod(None, _done(f"done{i}", run_s, labels={"app": "bert"}))
    predictor = _predictor(scheduler)
    pending = _pod(k8s_pod("next", labels={"app": "bert"}))
    prediction = predictor.duration(pending, NOW)
    assert (prediction.seconds, prediction.source) == (900.0, PredictionSource.HISTORY)


def test_history_counts_work_at_performance_100() -> None:
    scheduler, _, _ = _scheduler()
    for i in range(3):
        scheduler.on_pod(None, _done(f"d{i}", 600, node="fast", labels={"app": "bert"}))
    pending = _pod(k8s_pod("next", labels={"app": "bert"}))
    assert _predictor(scheduler).duration(pending, NOW).seconds == 1200.0


@pytest.mark.parametrize(
    ("kw", "same"),
    [
        ({"labels": {"hybrid-scheduler.io/job-class": "bert", "app": "x"}, "owner": "j"}, True),
        ({"owner": "bert", "labels": {"app": "x"}}, True),
        ({"labels": {"app": "bert"}}, True),
        ({"labels": {"app": "gpt"}}, False),
    ],
)
def test_the_job_class_is_the_label_else_the_controller_else_the_app_label(
    kw: dict[str, Any], same: bool
) -> None:
    scheduler, _, _ = _scheduler()
    for i in range(3):
        scheduler.on_pod(None, _done(f"d{i}", 600, **kw))
        other = {"hybrid-scheduler.io/job-class": "other"}
        scheduler.on_pod(None, _done(f"o{i}", 1800, labels=other))
    pending = _pod(k8s_pod("next", labels={"hybrid-scheduler.io/job-class": "bert"}))
    # Its own class's mean; else the namespace's (both classes) as the coarser answer.
    expected = 600.0 if same else 1200.0
    assert _predictor(scheduler).duration(pending, NOW).seconds == expected


def test_a_pod_deleted_while_running_is_stopped_and_teaches_nothing() -> None:
    scheduler, _, _ = _scheduler()
    body = k8s_pod("a", node="n2", phase="Running", status={"startTime": rfc3339(NOW - 60)})
    scheduler.on_pod(None, body)
    scheduler.on_pod("DELETED", body)
    predictor = _predictor(scheduler)
    assert "uid-a" not in predictor.running
    assert predictor.history.completions(_pod(body)) == ()


def test_a_finish_without_a_terminated_time_is_taken_when_seen() -> None:
    scheduler, _, clock = _scheduler()
    status = {"startTime": rfc3339(NOW - 100)}
    scheduler.on_pod(None, k8s_pod("a", node="n2", phase="Running", status=status))
    clock[0] = NOW + 200
    scheduler.on_pod("MODIFIED", k8s_pod("a", node="n2", phase="Failed", status=status))
    (done,) = _predictor(scheduler).history.completions(_pod(k8s_pod("a")))
    assert (done.finished_at_s, done.work_s) == (NOW + 200, 300.0)


def test_the_first_listing_rebuilds_history_and_later_listings_do_not_repeat_it() -> None:
    scheduler, _, _ = _scheduler()
    pods = [_done(f"d{i}", 600, labels={"app": "bert"}) for i in range(3)]
    listing = Listing([], [k8s_node("n2")], list[Body](pods))
    scheduler.reconcile(listing, scheduler.cache.ticks())
    scheduler.reconcile(listing, scheduler.cache.ticks())
    pod = _pod(pods[0])
    assert len(_predictor(scheduler).history.completions(pod)) == 3


def test_pods_of_other_schedulers_are_not_fed() -> None:
    scheduler, _, _ = _scheduler()
    status = {"startTime": rfc3339(NOW - 60)}
    body = k8s_pod("a", node="n2", phase="Running", scheduler="default-scheduler", status=status)
    scheduler.on_pod(None, body)
    assert _predictor(scheduler).running == {}


def test_each_finish_seen_running_scores_its_prediction_by_source() -> None:
    scheduler, _, clock = _scheduler()
    annotations = {RUNTIME_ANNOTATION: "10m"}
    status = {"startTime": rfc3339(NOW)}
    body = k8s_pod("a", node="n2", phase="Running", status=status, annotations=annotations)
    scheduler.on_pod(None, body)
    clock[0] = NOW + 400
    scheduler.on_pod("MODIFIED", {**body, "status": {"phase": "Succeeded", **status}})
    registry = scheduler.metrics.registry
    labels = {"source": "user-estimate"}
    name = "hybrid_scheduler_prediction_error_ratio"
    assert registry.get_sample_value(f"{name}_count", labels) == 1
    assert registry.get_sample_value(f"{name}_sum", labels) == pytest.approx(200 / 400)


@pytest.mark.parametrize("value", ["soon", "-5m", "-30", "721h", "2592001"])
def test_a_bad_expected_runtime_is_ignored_with_a_warning_naming_it(value: str) -> None:
    scheduler, api, _ = _scheduler("kube-default")
    body = k8s_pod("a", annotations={RUNTIME_ANNOTATION: value})
    assert _pod(body).expected_runtime_s is None
    scheduler.on_pod(None, body)
    asyncio.run(scheduler.schedule_once())
    warnings = [(r, m) for name, r, m, warning in api.events if warning]
    assert len(warnings) == 1
    reason, message = warnings[0]
    assert reason == "InvalidField"
    assert RUNTIME_ANNOTATION in message and value in message
    assert "30 days" in message


def test_an_expected_runtime_of_30_days_is_taken() -> None:
    body = k8s_pod("a", annotations={RUNTIME_ANNOTATION: "720h"})
    assert _pod(body).expected_runtime_s == MAX_RUNTIME_S == 30 * 86400
