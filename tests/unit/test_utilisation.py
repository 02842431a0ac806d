import asyncio
import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from builders import k8s_node, k8s_pod
from hybrid_operator.k8s.api import BindOutcome, BindResult
from hybrid_operator.scheduler import DECISION_ANNOTATION, Scheduler
from hybrid_operator.settings import OperatorSettings
from hybrid_operator.utilisation import UtilisationCollector, apply_utilisation, parse_vector
from hybrid_policy.domain import PendingPod


class FakeProm:
    def __init__(self) -> None:
        self.answers: dict[str, Any] = {}
        self.fail: Exception | None = None

    def custom_query(self, query: str, params: dict[str, Any] | None = None) -> Any:
        if self.fail is not None:
            raise self.fail
        return self.answers.get(query, [])


def _vector(label: str, values: dict[str, float], at: float) -> list[dict[str, Any]]:
    return [{"metric": {label: node}, "value": [at, str(v)]} for node, v in values.items()]


QUERIES = {"cpu": "q-cpu", "memory": "q-mem", "gpu": "q-gpu"}


def test_parse_vector_reads_node_labels_and_refuses_garbage() -> None:
    parsed = parse_vector(
        _vector("Hostname", {"n1": 0.5}, 100.0) + _vector("instance", {"n2:9100": 0.25}, 101.0)
    )
    assert parsed["n1"].fraction == 0.5
    assert parsed["n2"].observed_at_s == 101.0
    for bad in ("-1", "NaN", "1e99", "abc"):
        with pytest.raises(ValueError, match=r"not a fraction|could not convert"):
            parse_vector([{"metric": {"node": "n1"}, "value": [1, bad]}])
    with pytest.raises(ValueError, match="expected a vector"):
        parse_vector({"resultType": "matrix"})


def test_collector_keeps_fresh_samples_and_reports_failures() -> None:
    prom = FakeProm()
    now = [1000.0]
    prom.answers = {
        "q-gpu": _vector("Hostname", {"n1": 0.8}, 990.0),
        "q-cpu": _vector("node", {"n1": 0.3}, 995.0),
    }
    collector = UtilisationCollector(prom, QUERIES, staleness_s=60.0, clock=lambda: now[0])
    collector.refresh()
    assert collector.status == "live"
    fractions, age = collector.fresh()["n1"]
    assert fractions == {"nvidia.com/gpu": 0.8, "cpu": 0.3}
    assert age == 10.0
    prom.fail = ConnectionError("connection refused")
    collector.refresh()
    assert collector.status.startswith("unavailable (cpu: ConnectionError: connection refused")
    assert collector.failures == 1
    assert "n1" in collector.fresh()  # old samples still count until they are stale
    now[0] = 1052.0
    assert collector.fresh()["n1"][0] == {"cpu": 0.3}
    now[0] = 2000.0
    assert collector.fresh() == {}


class BindAll:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def bind(
        self,
        pod: PendingPod,
        node: str,
        annotations: Mapping[str, str] | None = None,
        still_wanted: Callable[[], bool] | None = None,
    ) -> BindResult:
        self.records.append(json.loads((annotations or {})[DECISION_ANNOTATION]))
        return BindResult(BindOutcome.BOUND)

    def event(
        self, involved: dict[str, str], reason: str, message: str, warning: bool = False
    ) -> None:
        pass

    def mark_unschedulable(self, pod: PendingPod, message: str) -> None:
        pass

    def annotate(self, pod: PendingPod, key: str, record: dict[str, Any]) -> None:
        raise AssertionError("the decision record rides on the binding")


def test_load_aware_scheduling_reads_metrics_and_counts_new_pods_by_request() -> None:
    prom = FakeProm()
    now = [1000.0]
    # n1 is busy by the metrics (95 % GPU), n2 idle; both have all 8 GPUs free by requests.
    prom.answers = {"q-gpu": _vector("Hostname", {"n1": 0.95, "n2": 0.0}, 990.0)}
    collector = UtilisationCollector(prom, QUERIES, clock=lambda: now[0])
    collector.refresh()
    api = BindAll()
    scheduler = Scheduler(
        OperatorSettings(policy="load-aware"), api, clock=lambda: now[0], collector=collector
    )
    for n in ("n1", "n2"):
        scheduler.on_node(None, k8s_node(n))
    scheduler.on_pod(None, k8s_pod("a", 2))
    asyncio.run(scheduler.schedule_once())
    assert api.records[0]["node"] == "n2"
    assert api.records[0]["metrics"] == "live"
    # The next pod sees n2 as 25 % used by request although the metrics still say 0 %.
    snapshot = scheduler.cache.snapshot(now[0])
    apply_utilisation(snapshot, collector, scheduler.cache, now[0])
    gpu = snapshot.index["nvidia.com/gpu"]
    assert snapshot.utilisation[snapshot.node_index["n2"], gpu] == pytest.approx(0.25)
    assert snapshot.utilisation[snapshot.node_index["n1"], gpu] == pytest.approx(0.95)


def test_scheduling_goes_on_when_prometheus_is_down() -> None:
    prom = FakeProm()
    prom.fail = TimeoutError("timed out")
    collector = UtilisationCollector(prom, QUERIES)
    collector.refresh()
    api = BindAll()
    scheduler = Scheduler(OperatorSettings(policy="load-aware"), api, collector=collector)
    scheduler.on_node(None, k8s_node("n1"))
    scheduler.on_pod(None, k8s_pod("a", 1))
    asyncio.run(scheduler.schedule_once())
    assert api.records[0]["node"] == "n1"
    assert api.records[0]["metrics"].startswith("unavailable (cpu: TimeoutError: timed out")
