"""The demo's reservation round, its pure parts: the fill, the predicted start read from a
``Reserved`` Event, the verdict line, the side-by-side table and the refused flags."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest

from cli_helpers import nothing_starts, refused
from hybrid_lab.demo_reservation import (
    WIDE,
    RoundShape,
    WidePodError,
    WideRound,
    fill_nodes,
    on_time,
    predicted_start_s,
    verdict_line,
    wide_table,
)
from hybrid_operator.k8s.convert import RUNTIME_ANNOTATION

MESSAGE = (
    "waiting for node-003: predicted start in 5 s (23:59:58 UTC) from the user's estimate "
    "(reserved; 1st in demo-team-a's queue; demo-team-a holds 0.00 of an entitled 0.50)"
)


class _Recorder:
    """Stands in for the API server: keeps what was created."""

    def __init__(self) -> None:
        self.created: list[tuple[str, dict[str, Any]]] = []

    def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.created.append((path, body))
        return body


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_the_default_shape_drains_one_node_in_four_steps() -> None:
    assert RoundShape().draining_s() == (6, 8, 10, 12)
    assert RoundShape(drain_s=6).draining_s() == (3, 4, 5, 6)


def test_every_node_is_filled_and_only_the_last_drains_first() -> None:
    api = _Recorder()
    performance = {"node-001": 50.0, "node-000": 100.0, "node-002": 80.0}
    names = fill_nodes(api, "demo-fill", performance, (3, 4, 5, 6), 16, None)  # type: ignore[arg-type]
    assert len(names) == 12 and names[0] == "node-000-0"
    by_node: dict[str, list[dict[str, Any]]] = {}
    for path, body in api.created:
        assert path == "/api/v1/namespaces/demo-fill/pods"
        assert "schedulerName" not in body["spec"]
        by_node.setdefault(body["spec"]["nodeSelector"]["kubernetes.io/hostname"], []).append(body)
    runtimes = {
        node: [b["metadata"]["annotations"]["hybrid-scheduler.io/sim-runtime"] for b in bodies]
        for node, bodies in by_node.items()
    }
    assert runtimes == {
        "node-000": ["16s"] * 4,
        "node-001": ["16s"] * 4,
        "node-002": ["3s", "4s", "5s", "6s"],
    }
    # The estimate is work at performance 100: a node at 80 runs 5 s of it in 4 s.
    estimates = [b["metadata"]["annotations"][RUNTIME_ANNOTATION] for b in by_node["node-002"]]
    assert estimates == ["2.400s", "3.200s", "4.000s", "4.800s"]


def test_the_fill_names_the_scheduler_when_one_is_given() -> None:
    api = _Recorder()
    fill_nodes(api, "f", {"a": 100.0, "b": 100.0}, (1,), 2, "hybrid-scheduler")  # type: ignore[arg-type]
    assert {body["spec"]["schedulerName"] for _, body in api.created} == {"hybrid-scheduler"}


def test_the_predicted_start_is_read_from_the_event_on_its_day() -> None:
    event = {"message": MESSAGE, "firstTimestamp": "2026-11-30T23:59:53Z"}
    assert predicted_start_s(event) == _epoch("2026-11-30T23:59:58")


def test_a_predicted_start_past_midnight_is_on_the_next_day() -> None:
    late = MESSAGE.replace("23:59:58", "00:00:03")
    event = {"message": late, "firstTimestamp": "2026-11-30T23:59:58Z"}
    assert predicted_start_s(event) == _epoch("2026-12-01T00:00:03")


def test_an_event_without_a_prediction_is_named() -> None:
    with pytest.raises(WidePodError, match="names no predicted start: 'fits nowhere'"):
        predicted_start_s({"message": "fits nowhere", "firstTimestamp": "2026-11-30T23:59:53Z"})


def test_a_binding_within_one_pass_and_whole_seconds_is_on_time() -> None:
    predicted = 1000.0
    assert on_time(predicted + 2.5, predicted, 0.5)
    assert not on_time(predicted + 2.6, predicted, 0.5)
    assert verdict_line(predicted + 1.0, predicted, 0.5) == (
        "started no later than predicted plus one pass: yes (+1.0 s from the predicted start; "
        "allowed +2.5 s: a 0.5 s pass and 2 s for times written in whole seconds)"
    )
    late = verdict_line(predicted + 13.1, predicted, 0.5)
    assert late.startswith("started no later than predicted plus one pass: no (+13.1 s ")


def _round(label: str, wide_start: float, smalls: dict[str, tuple[float, float]]) -> WideRound:
    result = WideRound(label, smalls=2)
    result.submitted[WIDE], result.started[WIDE], result.finished[WIDE] = 0.0, wide_start, 20.0
    for name, (start, end) in smalls.items():
        result.submitted[name], result.started[name], result.finished[name] = 1.0, start, end
    return result


def test_the_table_sets_the_wide_pods_wait_beside_the_small_pods() -> None:
    ours = _round(
        "hybrid-scheduler (hybrid-reserve)", 6.0, {"s0": (12.0, 24.0), "s1": (17.0, 29.0)}
    )
    theirs = _round("kube-scheduler", 27.0, {"s0": (4.0, 16.0)})
    assert ours.small_wait() == 13.5 and ours.all_done() == 29.0
    assert math.isnan(theirs.all_done())  # one small pod never finished
    assert wide_table([ours, theirs]).splitlines() == [
        "                           hybrid-scheduler (hybrid-reserve)  kube-scheduler",
        "----------------------------------------------------------------------------",
        "wide pod's wait (s)                                      6.0            27.0",
        "small pods' mean wait (s)                               13.5             3.0",
        "pods completed                                           3/3             2/3",
        "all done after (s)                                      29.0             nan",
    ]


@pytest.mark.usefixtures(nothing_starts.__name__)
@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["demo", "--round", "gangs"],
            "hybrid-scheduler demo: --round: invalid choice: 'gangs' (choose from 'workload', "
            "'reservation') (see --help)",
        ),
        (
            ["demo", "--round", "reservation", "--busy", "10", "--drain", "12"],
            "hybrid-scheduler demo: --busy (10) must be longer than --drain (12), or no node "
            "drains first",
        ),
        (
            ["demo", "--round", "reservation", "--stream", "0"],
            "hybrid-scheduler demo: --stream: must be > 0 (got '0') (see --help)",
        ),
    ],
)
def test_a_bad_round_flag_is_one_line_naming_it(
    capsys: pytest.CaptureFixture[str], argv: list[str], line: str
) -> None:
    assert refused(capsys, argv) == line
