import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from builders import k8s_node, k8s_pod
from hybrid_operator.k8s.api import BindOutcome, BindResult, StoredMap
from hybrid_operator.k8s.preempt import DeleteResult
from hybrid_operator.promql import (
    SAMPLE_TIME_QUERIES,
    DropReason,
    parse_vector,
    utilisation_queries,
)
from hybrid_operator.scheduler import DECISION_ANNOTATION, Scheduler
from hybrid_operator.settings import OperatorSettings
from hybrid_operator.utilisation import (
    MetricsState,
    MetricsStatus,
    UtilisationCollector,
    apply_utilisation,
)
from hybrid_policy.domain import PendingPod


class FakeProm:
    def __init__(self) -> None:
        self.answers: dict[str, Any] = {}
        self.fail: Exception | None = None

        self.asked: list[str] = []

    def custom_query(self, query: str, params: dict[str, Any] | None = None) -> Any:
        self.asked.append(query)
        if self.fail is not None:
            raise self.fail
        answer = self.answers.get(query, [])
        if isinstance(answer, Exception):
            raise answer
        return answer


def _vector(label: str, values: dict[str, float], at: float) -> list[dict[str, Any]]:
    return [{"metric": {label: node}, "value": [at, str(v)]} for node, v in values.items()]


QUERIES = {"cpu": "q-cpu", "memory": "q-mem", "gpu": "q-gpu"}


def test_parse_vector_reads_node_labels_and_drops_garbage_series() -> None:
    parsed = parse_vector(
        _vector("Hostname", {"n1": 0.5}, 100.0) + _vector("instance", {"n2:9100": 0.25}, 101.0),
        now_s=101.0,
    )
    assert parsed.samples["n1"].fraction == 0.5
    assert parsed.samples["n2"].observed_at_s == 101.0
    overshoot = parse_vector([{"metric": {"node": "n1"}, "value": [1, "1.2"]}], now_s=1.0)
    assert overshoot.samples["n1"].fraction == 1.2  # rate() may overshoot a busy node
    for bad, reason in (
        ("-1", DropReason.OUT_OF_RANGE),
        ("7.3", DropReason.OUT_OF_RANGE),
        ("1e99", DropReason.OUT_OF_RANGE),
        ("NaN", DropReason.NOT_A_NUMBER),
        ("abc", DropReason.NOT_A_NUMBER),
    ):
        one = parse_vector([{"metric": {"node": "n1"}, "value": [1, bad]}], now_s=1.0)
        assert one.samples == {}
        assert [d.reason for d in one.dropped] == [reason]
    unnamed = parse_vector([{"metric": {"job": "x"}, "value": [1, "0.5"]}], now_s=1.0)
    assert [d.reason for d in unnamed.dropped] == [DropReason.NO_NODE]
    with pytest.raises(ValueError, match="expected a vector"):
        parse_vector({"resultType": "matrix"}, now_s=1.0)


def _all_resources(values: dict[str, float], at: float) -> dict[str, Any]:
    return {
        "q-cpu": _vector("node", values, at),
        "q-mem": _vector("node", values, at),
        "q-gpu": _vector("Hostname", values, at),
    }


def test_collector_keeps_fresh_samples_and_reports_failures() -> None:
    prom = FakeProm()
    now = [1000.0]
    prom.answers = {
        "q-gpu": _vector("Hostname", {"n1": 0.8}, 990.0),
        "q-cpu": _vector("node", {"n1": 0.3}, 995.0),
        "q-mem": _vector("node", {"n1": 0.5}, 990.0),
    }
    collector = UtilisationCollector(prom, QUERIES, staleness_s=60.0, clock=lambda: now[0])
    collector.refresh()
    assert collector.status == MetricsStatus(MetricsState.LIVE)
    fractions, age = collector.fresh()["n1"]
    assert fractions == {"nvidia.com/gpu": 0.8, "cpu": 0.3, "memory": 0.5}
    assert age == 10.0
    prom.fail = ConnectionError("connection refused")
    collector.refresh()
    assert collector.status.state is MetricsState.UNAVAILABLE
    assert collector.status.reason.startswith("cpu: ConnectionError: connection refused")
    assert str(collector.status).startswith("unavailable (cpu: ConnectionError")
    assert collector.failures == 1
    assert "n1" in collector.fresh()  # old samples still count until they are stale
    now[0] = 1052.0
    assert collector.fresh()["n1"][0] == {"cpu": 0.3}
    now[0] = 2000.0
    assert collector.fresh() == {}


def test_one_bad_series_drops_only_that_series(caplog: pytest.LogCaptureFixture) -> None:
    prom = FakeProm()
    prom.answers = _all_resources({"n1": 0.3, "n2": 0.4, "n3": 0.5, "n4": 0.6}, 1000.0)
    prom.answers["q-cpu"] = [
        *_vector("node", {"n1": 0.3}, 1000.0),
        {"metric": {"node": "n2"}, "value": [1000.0, "7.3"]},
        {"metric": {"node": "n3"}, "value": [1000.0, "NaN"]},
        {"metric": {"node": "n4"}, "value": [1000.0, "-1"]},
    ]
    drops: list[tuple[str, DropReason]] = []
    collector = UtilisationCollector(
        prom, QUERIES, clock=lambda: 1000.0, on_drop=lambda r, why: drops.append((r, why))
    )
    with caplog.at_level(logging.WARNING, logger="hybrid_scheduler"):
        collector.refresh()
        collector.refresh()
    fresh = collector.fresh()
    assert fresh["n1"][0]["cpu"] == 0.3
    for node in ("n2", "n3", "n4"):
        assert "cpu" not in fresh[node][0], node
        assert fresh[node][0]["memory"] > 0  # the node's other resources stand
    assert collector.status.live
    assert sorted(why.value for _, why in drops[:3]) == [
        "not-a-number",
        "out-of-range",
        "out-of-range",
    ]
    assert len(drops) == 6  # counted on every refresh
    warnings = [r.getMessage() for r in caplog.records if "ignoring" in r.getMessage()]
    assert len(warnings) == 3  # but logged once per node and resource
    assert "cpu utilisation of node n2: out-of-range" in warnings[0]


def test_dropped_series_are_counted_in_the_operator_metrics() -> None:
    prom = FakeProm()
    prom.answers = _all_resources({"n1": 0.3}, 1000.0)
    prom.answers["q-gpu"] += [{"metric": {"Hostname": "n2"}, "value": [1000.0, "7.3"]}]
    collector = UtilisationCollector(prom, QUERIES, clock=lambda: 1000.0)
    scheduler = Scheduler(OperatorSettings(policy="load-aware"), BindAll(), collector=collector)
    collector.refresh()
    labels = {"resource": "gpu", "reason": "out-of-range"}
    value = scheduler.metrics.registry.get_sample_value(
        "hybrid_scheduler_utilisation_series_dropped_total", labels
    )
    assert value == 1.0


def test_an_empty_answer_is_not_live() -> None:
    prom = FakeProm()  # every query answers an empty vector
    collector = UtilisationCollector(prom, QUERIES, clock=lambda: 1000.0)
    collector.refresh()
    assert collector.status.state is MetricsState.UNAVAILABLE
    assert collector.status.reason == "cpu: empty answer; memory: empty answer; gpu: empty answer"
    # Some resources answering and one not is degraded, not live.
    prom.answers = _all_resources({"n1": 0.3}, 1000.0)
    prom.answers["q-gpu"] = [{"metric": {"Hostname": "n1"}, "value": [1000.0, "NaN"]}]
    collector.refresh()
    assert collector.status == MetricsStatus(
        MetricsState.DEGRADED, "gpu: no usable series (1 dropped)"
    )


def test_empty_answers_make_the_scheduler_fall_back() -> None:
    collector = UtilisationCollector(FakeProm(), QUERIES)
    collector.refresh()
    api = BindAll()
    scheduler = Scheduler(OperatorSettings(policy="load-aware"), api, collector=collector)
    scheduler.on_node(None, k8s_node("n1"))
    scheduler.on_pod(None, k8s_pod("a", 1))
    asyncio.run(scheduler.schedule_once())
    assert api.records[0]["node"] == "n1"
    assert api.records[0]["metrics"] == (
        "unavailable (cpu: empty answer; memory: empty answer; gpu: empty answer)"
    )
    fallbacks = scheduler.metrics.registry.get_sample_value(
        "hybrid_scheduler_fallbacks_total", {"reason": "metrics-unavailable"}
    )
    assert fallbacks == 1.0


def test_samples_age_by_the_time_the_node_was_measured() -> None:
    prom = FakeProm()
    # Prometheus evaluates at 1000, but n1's input was last scraped at 900, n2's at 990.
    prom.answers = _all_resources({"n1": 0.5, "n2": 0.5}, 1000.0)
    times = {"t-cpu": {"n1": 900.0, "n2": 990.0}}
    prom.answers["t-cpu"] = _vector("node", times["t-cpu"], 1000.0)
    collector = UtilisationCollector(
        prom, QUERIES, staleness_s=60.0, clock=lambda: 1000.0, sample_time_queries={"cpu": "t-cpu"}
    )
    collector.refresh()
    fresh = collector.fresh()
    assert "cpu" not in fresh["n1"][0]
    assert fresh["n2"][0]["cpu"] == 0.5
    assert fresh["n2"][1] == 10.0


def test_the_default_queries_come_with_sample_time_queries() -> None:
    prom = FakeProm()
    defaults = utilisation_queries()
    for key, query in defaults.items():
        label = "Hostname" if key == "gpu" else "node"
        prom.answers[query] = _vector(label, {"n1": 0.5}, 1000.0)
        prom.answers[SAMPLE_TIME_QUERIES[key]] = _vector(label, {"n1": 700.0}, 1000.0)
    collector = UtilisationCollector(prom, staleness_s=600.0, clock=lambda: 1000.0)
    collector.refresh()
    assert collector.fresh()["n1"][1] == 300.0
    collector.staleness_s = 120.0
    assert collector.fresh() == {}


def test_an_unreachable_prometheus_costs_one_query_per_resource() -> None:
    prom = FakeProm()
    prom.fail = ConnectionError("connection refused")
    collector = UtilisationCollector(prom, clock=lambda: 1000.0)  # with sample-time queries
    collector.refresh()
    assert prom.asked == list(utilisation_queries().values())
    assert collector.status.state is MetricsState.UNAVAILABLE


def test_unknown_sample_times_leave_the_values_aged_from_evaluation() -> None:
    prom = FakeProm()
    prom.answers = _all_resources({"n1": 0.5}, 990.0)
    prom.answers["t-cpu"] = TimeoutError("timed out")
    collector = UtilisationCollector(
        prom, QUERIES, clock=lambda: 1000.0, sample_time_queries={"cpu": "t-cpu"}
    )
    collector.refresh()
    assert collector.status == MetricsStatus(
        MetricsState.DEGRADED, "cpu sample times: TimeoutError: timed out"
    )
    assert collector.fresh()["n1"] == ({"cpu": 0.5, "memory": 0.5, "nvidia.com/gpu": 0.5}, 10.0)


def test_samples_stamped_in_the_future_are_refused() -> None:
    prom = FakeProm()
    prom.answers = _all_resources({"n1": 0.5}, 1000.0)
    prom.answers["q-cpu"] = _vector("node", {"n1": 0.5}, 1000.0 + 3600)
    prom.answers["q-gpu"] = _vector("Hostname", {"n1": 0.5}, 1000.0 + 10)  # clock skew
    drops: list[tuple[str, DropReason]] = []
    collector = UtilisationCollector(
        prom, QUERIES, clock=lambda: 1000.0, on_drop=lambda r, why: drops.append((r, why))
    )
    collector.refresh()
    assert drops == [("cpu", DropReason.FUTURE_TIMESTAMP)]
    fractions, age = collector.fresh(now_s=1000.0)["n1"]
    assert fractions == {"memory": 0.5, "nvidia.com/gpu": 0.5}
    assert age == 0.0
    assert "n1" not in collector.fresh(now_s=1000.0 + 3000)  # it expires like any other


def _node_with_addresses(name: str, addresses: dict[str, str]) -> dict[str, Any]:
    node = k8s_node(name)
    node["status"]["addresses"] = [{"type": t, "address": a} for t, a in addresses.items()]
    return node


def test_series_named_by_address_match_their_node() -> None:
    prom = FakeProm()
    prom.answers = {
        "q-cpu": _vector("instance", {"10.0.0.5:9100": 0.25, "10.0.0.6:9100": 0.75}, 1000.0),
        "q-mem": _vector("nodename", {"gpu-b.example.com": 0.5}, 1000.0),
        "q-gpu": _vector("Hostname", {"gpu-a": 0.1}, 1000.0),
    }
    collector = UtilisationCollector(prom, QUERIES, clock=lambda: 1000.0)
    scheduler = Scheduler(OperatorSettings(policy="load-aware"), BindAll(), collector=collector)
    scheduler.on_node(None, _node_with_addresses("gpu-a", {"InternalIP": "10.0.0.5"}))
    scheduler.on_node(
        None,
        _node_with_addresses(
            "gpu-b",
            {"InternalIP": "10.0.0.9", "ExternalIP": "10.0.0.6", "Hostname": "gpu-b.example.com"},
        ),
    )
    collector.refresh()
    snapshot = scheduler.cache.snapshot(1000.0)
    apply_utilisation(snapshot, collector, scheduler.cache, 1000.0)
    cpu, memory = snapshot.index["cpu"], snapshot.index["memory"]
    a, b = snapshot.node_index["gpu-a"], snapshot.node_index["gpu-b"]
    assert snapshot.utilisation[a, cpu] == pytest.approx(0.25)
    assert snapshot.utilisation[b, cpu] == pytest.approx(0.75)
    assert snapshot.utilisation[b, memory] == pytest.approx(0.5)
    # A node that goes away takes its addresses along.
    scheduler.on_node("DELETED", _node_with_addresses("gpu-a", {}))
    fresh = collector.fresh()
    assert fresh["gpu-a"][0] == {"nvidia.com/gpu": 0.1}
    assert fresh["10.0.0.5"][0] == {"cpu": 0.25}


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
        self,
        involved: dict[str, str],
        reason: str,
        message: str,
        warning: bool = False,
        name: str | None = None,
    ) -> None:
        pass

    def mark_unschedulable(self, pod: PendingPod, message: str) -> None:
        pass

    def nominate(self, pod: PendingPod, node: str | None, message: str | None = None) -> None:
        pass

    def annotate(self, pod: PendingPod, key: str, record: dict[str, Any]) -> None:
        raise AssertionError("the decision record rides on the binding")

    def read_namespace_labels(self, name: str) -> dict[str, str]:
        return {}

    def patch_pod_group_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        pass

    def mark_disruption_target(self, namespace: str, name: str, message: str) -> None:
        raise AssertionError("preemption is off")

    def delete_pod(self, namespace: str, name: str, uid: str) -> DeleteResult:
        raise AssertionError("preemption is off")

    def read_config_map(self, namespace: str, name: str) -> StoredMap | None:
        raise AssertionError("preemption is off")

    def write_config_map(
        self, namespace: str, name: str, data: Mapping[str, str], version: str | None
    ) -> str:
        raise AssertionError("preemption is off")


def test_load_aware_scheduling_reads_metrics_and_counts_new_pods_by_request() -> None:
    prom = FakeProm()
    now = [1000.0]
    # n1 is busy by the metrics (95 % GPU), n2 idle; both have all 8 GPUs free by requests.
    prom.answers = _all_resources({"n1": 0.0, "n2": 0.0}, 990.0)
    prom.answers["q-gpu"] = _vector("Hostname", {"n1": 0.95, "n2": 0.0}, 990.0)
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
