"""Training progress read from Prometheus and told to the run-time predictor."""

import asyncio
from typing import Any

import pytest

from builders import k8s_node, k8s_pod, rfc3339
from fake_api import FakeApi
from hybrid_operator.progress import IgnoredReason, ProgressReader
from hybrid_operator.scheduler import Scheduler
from hybrid_operator.settings import OperatorSettings
from hybrid_policy.prediction.model import PredictionSource

NOW = 1_000_000.0
QUERY = "hybrid_scheduler_training_progress"


def _series(pod: str, value: object, at: float = NOW, ns: str = "team-a") -> dict[str, Any]:
    labels = {"namespace": ns, "pod": pod} if pod else {"namespace": ns}
    return {"metric": labels, "value": [at, value]}


class FakeProm:
    def __init__(self, series: list[dict[str, Any]], scraped: dict[str, float] | None = None):
        self.series = series
        self.scraped = scraped or {}
        self.down = False
        self.asked: list[str] = []

    def custom_query(self, query: str, params: dict[str, Any] | None = None) -> Any:
        self.asked.append(query)
        if self.down:
            raise ConnectionError("connection refused")
        if query == f"timestamp({QUERY})":
            return [
                {"metric": s["metric"], "value": [NOW, self.scraped[s["metric"]["pod"]]]}
                for s in self.series
                if s["metric"].get("pod") in self.scraped
            ]
        return self.series if query == QUERY else []


def _reader(prom: FakeProm) -> tuple[ProgressReader, list[IgnoredReason]]:
    ignored: list[IgnoredReason] = []
    return ProgressReader(prom, QUERY, 120.0, lambda: NOW, ignored.append), ignored


@pytest.mark.parametrize(
    ("series", "reason"),
    [
        (_series("a", "1.5"), IgnoredReason.OUT_OF_RANGE),
        (_series("a", "-0.1"), IgnoredReason.OUT_OF_RANGE),
        (_series("a", "NaN"), IgnoredReason.NOT_A_NUMBER),
        (_series("", "0.5"), IgnoredReason.NO_POD),
        (_series("a", "0.5", at=NOW - 121), IgnoredReason.STALE),
    ],
)
def test_a_series_that_cannot_be_used_is_ignored_and_counted(
    series: dict[str, Any], reason: IgnoredReason
) -> None:
    reader, ignored = _reader(FakeProm([series, _series("b", "0.5")]))
    assert [(r.pod, r.fraction) for r in reader.read()] == [("b", 0.5)]
    assert ignored == [reason]


def test_a_series_is_aged_by_its_scrape_time() -> None:
    prom = FakeProm([_series("a", "0.5"), _series("b", "0.5")], {"a": NOW - 500, "b": NOW - 5})
    reader, ignored = _reader(prom)
    assert [(r.pod, r.at_s) for r in reader.read()] == [("b", NOW - 5)]
    assert ignored == [IgnoredReason.STALE]


def test_a_query_that_fails_gives_no_reports_and_no_error() -> None:
    prom = FakeProm([_series("a", "0.5")])
    prom.down = True
    reader, ignored = _reader(prom)
    assert reader.read() == [] and ignored == []


def test_progress_read_before_a_pass_predicts_the_time_left_once_per_sample() -> None:
    clock = [NOW]
    settings = OperatorSettings(policy="fair-easy")
    scheduler = Scheduler(settings, FakeApi(), clock=lambda: clock[0])
    scheduler.on_node(None, k8s_node("n1"))
    status = {"startTime": rfc3339(NOW - 100)}
    scheduler.on_pod(None, k8s_pod("a", node="n1", phase="Running", status=status))
    prom = FakeProm([_series("a", "0.25", at=NOW), _series("gone", "2")])
    scheduler.use_progress(prom)
    for _ in range(2):  # the same sample on two passes counts once
        asyncio.run(scheduler.read_progress())
        asyncio.run(scheduler.schedule_once())
    predictor = scheduler.policy.predictor
    assert predictor is not None
    assert predictor.running["uid-a"].progress_reports == 1
    left = predictor.remaining("uid-a", NOW)
    assert (left.seconds, left.source) == (300.0, PredictionSource.PROGRESS)
    registry = scheduler.metrics.registry
    labels = {"reason": "out-of-range"}
    assert registry.get_sample_value("hybrid_scheduler_progress_ignored_total", labels) == 2


def test_progress_is_not_read_with_an_empty_query_or_a_policy_without_predictions() -> None:
    for settings in (
        OperatorSettings(policy="fair-easy", progress_query=""),
        OperatorSettings(policy="binpack"),
    ):
        scheduler = Scheduler(settings, FakeApi())
        scheduler.use_progress(FakeProm([]))
        assert scheduler.progress is None
