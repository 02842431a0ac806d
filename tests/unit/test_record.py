"""Run summaries are typed, and their JSON is the one saved files have always held."""

import json
import math
from pathlib import Path
from typing import Any

import pytest

from hybrid_lab.commands.report_cmd import load_records
from hybrid_lab.commands.simulate_cmd import _finite
from hybrid_lab.matrix import run_one
from hybrid_operator.cli import main
from hybrid_policy.report.record import RecordError, RunSummary
from hybrid_policy.scenario.loader import load_scenario
from hybrid_policy.scenario.workload import prepare_workload

RESULTS = Path(__file__).parents[2] / "docs" / "results"
SAVED = sorted(p for p in RESULTS.glob("*.json") if "runs" in json.loads(p.read_text()))


def _shape(record: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """A record's keys, with the keys of its fixed parts (not those keyed by data)."""
    fixed = {"utilization", "jct_s", "wait_s", "slowdown"}
    return [(k, list(v) if k in fixed else []) for k, v in record.items()]


@pytest.fixture(scope="module")
def fresh() -> RunSummary:
    scenario = load_scenario(str(Path(__file__).parents[1] / "data" / "tiny.yaml"))
    return run_one(prepare_workload(scenario, "heavy", 1), "kube-default")


def test_every_saved_results_file_loads() -> None:
    assert len(SAVED) >= 10
    for path in SAVED:
        runs = json.loads(path.read_text())["runs"]
        assert [r.seed for r in load_records([path])] == [int(r["seed"]) for r in runs], path


#: Fields added after the reservation runs' saved results (``reserve-seed-paper-light-
#: medium.json``; their defaults stand in for them there).
NEWER_THAN_SAVED = (
    "gang_jobs",
    "idle_gang_gpu_hours",
    "partial_gangs",
    "deadlocked_gangs",
    "preemptions_per_job",
    "most_preemptions",
    "preemption_counts",
    "lost_gpu_hours",
    "preemptions_by_pair",
    "back_and_forth",
    "shortest_back_and_forth_s",
    "team_reversals",
    "team_reversals_at_once",
)


def test_a_fresh_record_has_the_keys_of_the_saved_ones(fresh: RunSummary) -> None:
    newest = json.loads((RESULTS / "reserve-seed-paper-light-medium.json").read_text())["runs"][0]
    record = {k: v for k, v in fresh.to_json().items() if k not in NEWER_THAN_SAVED}
    assert _shape(record) == _shape(newest)
    assert list(fresh.to_json())[-len(NEWER_THAN_SAVED) :] == list(NEWER_THAN_SAVED)


def test_a_fresh_record_has_the_keys_of_a_file_saved_since(fresh: RunSummary) -> None:
    newest = json.loads((RESULTS / "reserve-seed-paper-heavy.json").read_text())["runs"][0]
    assert _shape(fresh.to_json()) == _shape(newest)


def test_records_older_than_gangs_load_with_no_gangs() -> None:
    old = json.loads((RESULTS / "reserve-seed-paper-light-medium.json").read_text())["runs"][0]
    assert "gang_jobs" not in old
    loaded = RunSummary.from_json(old)
    assert (loaded.gang_jobs, loaded.idle_gang_gpu_hours) == (0, 0.0)
    assert (loaded.partial_gangs, loaded.deadlocked_gangs) == (0, 0)
    assert (loaded.preemptions_per_job, loaded.most_preemptions, loaded.lost_gpu_hours) == (
        0.0,
        0,
        0.0,
    )
    assert loaded.preemption_counts == {}
    assert (loaded.preemptions_by_pair, loaded.back_and_forth) == ({}, 0)
    assert (loaded.team_reversals, loaded.team_reversals_at_once) == (0, 0)
    assert math.isnan(loaded.shortest_back_and_forth_s)
    assert RunSummary.from_json(loaded.to_json()) == loaded


def test_records_older_than_the_prediction_error_still_load() -> None:
    old = json.loads((RESULTS / "dqn-philly-eval.json").read_text())["runs"][0]
    assert "prediction_error" not in old
    assert RunSummary.from_json(old).prediction_error == {}


def test_a_malformed_prediction_error_is_named() -> None:
    saved = json.loads((RESULTS / "reserve-seed-paper-light-medium.json").read_text())["runs"]
    record = next(r for r in saved if r["prediction_error"])
    kind = next(iter(record["prediction_error"]))
    source = next(iter(record["prediction_error"][kind]))
    record["prediction_error"][kind][source]["count"] = "many"
    with pytest.raises(RecordError, match=f"prediction_error.{kind}.{source}.count: not a number"):
        RunSummary.from_json(record)


def test_json_round_trip_keeps_every_value(fresh: RunSummary) -> None:
    written = json.loads(json.dumps(_finite(fresh.to_json()), allow_nan=False))
    again = RunSummary.from_json(written)
    assert json.dumps(_finite(again.to_json())) == json.dumps(written)
    assert again.jct_s.mean == fresh.jct_s.mean and again.seed == fresh.seed


def test_records_older_than_the_namespace_slowdown_still_load() -> None:
    old = json.loads((RESULTS / "seed-paper.json").read_text())["runs"][0]
    assert "slowdown_by_namespace" not in old
    record = RunSummary.from_json(old)
    assert record.slowdown_by_namespace == {}
    assert math.isnan(record.slowdown.worst_namespace)
    assert record.slowdown.mean == old["slowdown"]["mean"]


def test_null_numbers_read_as_nan(fresh: RunSummary) -> None:
    data = json.loads(json.dumps(_finite(fresh.to_json())))
    data["wait_s"]["p95"] = None
    assert math.isnan(RunSummary.from_json(data).wait_s.p95)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.pop("jct_s"), "jct_s: missing"),
        (lambda r: r["jct_s"].update(mean="long"), "jct_s.mean: not a number ('long')"),
        (lambda r: r.update(seed=1.5), "seed: not a whole number (1.5)"),
        (lambda r: r.update(utilization=[0.5]), "utilization: not a mapping ([0.5])"),
    ],
)
def test_a_bad_field_is_named(fresh: RunSummary, change: Any, message: str) -> None:
    data = json.loads(json.dumps(_finite(fresh.to_json())))
    change(data)
    with pytest.raises(RecordError) as exc:
        RunSummary.from_json(data)
    assert str(exc.value) == message


def test_report_names_the_file_run_and_field(
    tmp_path: Path, fresh: RunSummary, capsys: pytest.CaptureFixture[str]
) -> None:
    data = json.loads(json.dumps(_finite(fresh.to_json())))
    data["utilization"]["gpu"] = "high"
    path = tmp_path / "runs.json"
    path.write_text(json.dumps({"runs": [data]}))
    assert main(["report", "--json", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: runs[0].utilization.gpu: not a number ('high')" in err
    assert "Traceback" not in err
