"""The fault harness without a cluster: the fake Prometheus, the verdict, the report, the
catalogue and the command's flags."""

from __future__ import annotations

import json
import time

import pytest
import requests

from hybrid_lab.faults.catalogue import FAULTS, UnknownFaultError, select
from hybrid_lab.faults.control_plane import decided_again
from hybrid_lab.faults.plan import FaultPlan
from hybrid_lab.faults.prometheus import FakePrometheus, PrometheusAnswer, garbage_answers
from hybrid_lab.faults.proxy import BindingAttempt, LostAnswer
from hybrid_lab.faults.report import table
from hybrid_lab.faults.verdict import FaultResult
from hybrid_operator.cli import main
from hybrid_operator.promql import NodeSample, parse_vector


def _query(url: str) -> requests.Response:
    session = requests.Session()
    session.trust_env = False
    return session.get(f"{url}/api/v1/query", params={"query": "up"}, timeout=5)


def _samples(result: object, now_s: float | None = None) -> dict[str, NodeSample]:
    """The usable samples by node; with no ``now_s``, judged from far ahead so that
    samples stamped in the future are kept too (to see what the fake stamped)."""
    parsed = parse_vector(result, time.time() + 1e7 if now_s is None else now_s)
    return {str(node): sample for node, sample in parsed.samples.items()}


def test_fake_prometheus_answers_as_configured_and_can_be_killed() -> None:
    fake = FakePrometheus(lambda: ["node-000", "node-001"]).start()
    try:
        healthy = _samples(_query(fake.url).json()["data"]["result"])
        assert {n: s.fraction for n, s in healthy.items()} == {"node-000": 0.3, "node-001": 0.3}
        assert abs(healthy["node-000"].observed_at_s - time.time()) < 5
        fake.answer = PrometheusAnswer.FUTURE
        future = _samples(_query(fake.url).json()["data"]["result"])
        assert future["node-000"].observed_at_s - time.time() > 3000
        fake.answer = PrometheusAnswer.STALE
        stale = _samples(_query(fake.url).json()["data"]["result"])
        assert time.time() - stale["node-000"].observed_at_s > 3000
        url = fake.url
        fake.kill()
        with pytest.raises(requests.ConnectionError):
            _query(url)
        fake.start()
        assert fake.url == url
        assert _query(url).ok
    finally:
        fake.kill()


def test_every_garbage_answer_is_refused_by_the_operators_parser() -> None:
    fake = FakePrometheus(lambda: ["node-000"]).start()
    fake.answer = PrometheusAnswer.GARBAGE
    try:
        bodies = [_query(fake.url).text for _ in garbage_answers(["node-000"], 0.0)]
    finally:
        fake.kill()
    assert len(set(bodies)) == len(bodies)
    for body in bodies:
        assert _usable(body) == {}, body


def _usable(body: str) -> dict[str, NodeSample]:
    """What the operator's client and parser keep of an answer: nothing from garbage."""
    try:
        answer = json.loads(body)
        if answer["status"] != "success":
            raise ValueError(answer["error"])
        return _samples(answer["data"]["result"], now_s=time.time())
    except (ValueError, KeyError, TypeError, AttributeError):
        return {}


def _result(**changes: object) -> FaultResult:
    base: dict[str, object] = {
        "fault": "f",
        "summary": "A fault.",
        "pods": 10,
        "bound": 10,
        "pending_with_reason": 0,
        "stranded": [],
        "waiting": 0,
        "gauge": 0.0,
        "api_pending": 0,
        "probes": 4,
        "stuck": 0,
        "overcommits": [],
        "double_bindings": [],
        "stale_bindings": [],
        "lost_bindings": [],
        "crashes": [],
        "recovery_s": 1.5,
    }
    return FaultResult(**{**base, **changes})  # type: ignore[arg-type]


def test_a_clean_result_has_no_violations_and_each_kind_is_named() -> None:
    assert _result().violations == []
    broken = _result(
        stranded=["ns/a", "ns/b"],
        overcommits=["n1: nvidia.com/gpu 9 requested, 8 allocatable"],
        stale_bindings=["ns/c bound to n1 by a while b led"],
        stray_requests=["ns/d to n1 by a (answer 201, leader b)"],
        gauge=3.0,
        api_pending=2,
        recovery_s=None,
        stuck=1,
    )
    assert broken.violations == [
        "2 stranded pods",
        "1 overcommits",
        "1 bindings by a non-leader",
        "1 accepted binding requests by a non-leader",
        "1 probe pods stuck on free capacity",
        "pending gauge 3 against 2 pending in the API",
        "not recovered",
    ]
    assert "pending gauge no leader against 0" in _result(gauge=None).violations[0]


def test_a_refused_request_from_a_former_leader_is_listed_not_counted() -> None:
    refused = _result(refused_stray_requests=["ns/d to n1 by a (answer 409, leader b)"])
    assert refused.violations == []
    assert any("refused by the API server" in line for line in refused.details())
    row = table([refused], FaultPlan()).splitlines()[2]
    assert "| 0 (1) |" in row


def test_a_pod_whose_answer_was_lost_is_sent_again_only_to_the_same_node() -> None:
    lost = [LostAnswer("r0", "ns/a", "n1", 0.0), LostAnswer("r0", "ns/b", "n2", 2.5)]
    sent = [
        BindingAttempt("r0", "ns/a", "n1", 1.0, 201),
        BindingAttempt("r0", "ns/b", "n2", 1.0, 0),
        BindingAttempt("r0", "ns/b", "n2", 2.0, 201),  # sent again as it was
        BindingAttempt("r1", "ns/a", "n3", 3.0, 409),  # a new leader decides anew
    ]
    assert decided_again(lost, sent) == []
    moved = [*sent, BindingAttempt("r0", "ns/b", "n3", 2.0, 201)]
    assert decided_again(lost, moved) == [
        "ns/b decided again by r0: sent to n3 after its binding to n2 lost its answer"
    ]


def test_the_table_has_one_row_per_fault_with_its_numbers() -> None:
    text = table([_result(), _result(fault="g", stranded=["x"], recovery_s=None)], FaultPlan())
    rows = text.splitlines()
    assert len(rows) == 4
    assert rows[2].startswith("| f | 10 | 10 | 0 |")
    assert rows[3].startswith("| g | 10 | 10 | 1 |") and rows[3].endswith("| > 120 |")


def test_faults_are_selected_in_catalogue_order_and_unknown_names_refused() -> None:
    assert [f.name for f in select([])] == list(FAULTS)
    assert [f.name for f in select(["leader-frozen", "apiserver-down"])] == [
        "apiserver-down",
        "leader-frozen",
    ]
    with pytest.raises(UnknownFaultError, match="unknown fault 'nope'"):
        select(["nope"])
    assert all(f.summary.endswith(".") for f in FAULTS.values())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--faults", "apiserver-down,nope"], "--faults: unknown fault 'nope'"),
        (["--pods", "0"], "--pods must be at least 1 (got 0)"),
        (["--burst", "-3"], "--burst must be at least 1 (got -3)"),
    ],
)
def test_faults_command_refuses_bad_flags_in_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["faults", *argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(f"hybrid-scheduler faults: {message}")
