"""Files given to the commands: output paths checked before any work, saved runs checked
field by field, and workloads whose jobs could never run refused up front."""

import json
from pathlib import Path

import pytest

from cli_helpers import TINY, nothing_starts, refused
from hybrid_operator.cli import main

pytestmark = pytest.mark.usefixtures(nothing_starts.__name__)

SIMULATE = ["simulate", "--scenario", TINY, "--workload", "light", "--seeds", "1", "--quiet"]


@pytest.fixture
def blocked(tmp_path: Path) -> Path:
    """A folder that cannot be made: its parent is a file (holds even for root)."""
    (tmp_path / "file").write_text("")
    return tmp_path / "file" / "out"


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        ([*SIMULATE, "--policies", "binpack", "--json", "{out}/runs.json"], "--json"),
        ([*SIMULATE, "--policies", "binpack", "--plots", "{out}"], "--plots"),
        (["bound", "--scenario", TINY, "--json", "{out}/b.json"], "--json"),
        (["report", "--json", "{runs}", "--plots", "{out}"], "--plots"),
        (["train", "--steps", "5", "--out", "{out}/m.pt"], "--out"),
        (["trace", "convert-philly", "--input", "{runs}", "--output", "{out}/j.csv"], "--output"),
        (["cluster-bench", "--json", "{out}/c.json"], "--json"),
        (["manifests", "render", "--out", "{out}"], "--out"),
        (["dev-cluster", "up", "--state-dir", "{out}"], "--state-dir"),
        (["dev-cluster", "build", "--cache-dir", "{out}"], "--cache-dir"),
    ],
)
def test_an_unwritable_output_is_refused_before_any_work(
    tmp_path: Path,
    blocked: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    flag: str,
) -> None:
    runs = tmp_path / "runs.json"
    runs.write_text("{}")
    line = refused(capsys, [a.format(out=blocked, runs=runs) for a in argv])
    assert f": {flag}: cannot " in line
    assert f"{blocked.parent} is not a directory" in line


def test_an_output_file_that_is_a_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = refused(capsys, [*SIMULATE, "--policies", "binpack", "--json", str(tmp_path)])
    assert line == (
        f"hybrid-scheduler simulate: --json: {tmp_path} is a directory, not a file (see --help)"
    )


def _saved(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, dict[str, object]]:
    path = tmp_path / "runs.json"
    assert main([*SIMULATE, "--policies", "binpack", "--json", str(path)]) == 0
    capsys.readouterr()
    data = json.loads(path.read_text())
    return path, data


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("jct_by_task_type_s", None, "runs[0].jct_by_task_type_s: missing"),
        ("jct_s", {"mean": 1.0}, "runs[0].jct_s.p50: missing"),
        ("jct_s", 3, "runs[0].jct_s: not a mapping (3)"),
        ("utilization", {"gpu": "high", "cpu": 0, "memory": 0}, "runs[0].utilization.gpu: "),
        ("seed", "one", "runs[0].seed: not a whole number ('one')"),
        ("namespace_share", [0.5], "runs[0].namespace_share: not a mapping ([0.5])"),
        ("jain_fairness", True, "runs[0].jain_fairness: not a number (True)"),
    ],
)
def test_report_names_a_run_missing_a_field_or_of_the_wrong_type(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    field: str,
    value: object,
    problem: str,
) -> None:
    path, data = _saved(tmp_path, capsys)
    run = data["runs"][0]  # type: ignore[index]
    if value is None:
        del run[field]
    else:
        run[field] = value
    path.write_text(json.dumps(data))
    line = refused(capsys, ["report", "--json", str(path)])
    assert line.startswith(f"hybrid-scheduler report: {path}: {problem}")


def test_report_reads_nulls_as_missing_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """simulate --json writes NaN as null (a run where nothing finished); report shows '-'."""
    path, data = _saved(tmp_path, capsys)
    run = data["runs"][0]  # type: ignore[index]
    run["jct_s"] = dict.fromkeys(run["jct_s"])
    run["jct_by_task_type_s"] = dict.fromkeys(run["jct_by_task_type_s"])
    path.write_text(json.dumps(data))
    assert main(["report", "--json", str(path)]) == 0
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if line.startswith("binpack "))
    assert row.split()[-1] == "-"


def test_bound_on_an_empty_trace_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "jobs.csv").write_text("submit_time_s,duration_s,gpus\n")
    spec = tmp_path / "t.yaml"
    spec.write_text(
        "name: t\ntrace: {path: jobs.csv}\nnodes: [{count: 1, gpus: 4, cpu: 8, memory_gib: 64}]\n"
        "task_types: [{name: any, cpu_per_gpu: 1, memory_gib_per_gpu: 4}]\n"
    )
    line = refused(capsys, ["bound", "--scenario", str(spec), "--seeds", "1", "--quiet"])
    assert line == f"hybrid-scheduler bound: trace seed 1: {tmp_path}/jobs.csv: trace has no jobs"


WIDE = """name: wide
horizon_hours: 2
nodes: [{count: 2, gpus: 8, cpu: 64, memory_gib: 512}]
namespaces: [{name: a, job_share: 1}]
task_types:
  - {name: small, share: 0.5, gpus: {1: 1}, cpu_per_gpu: 1, memory_gib_per_gpu: 1,
     runtime_minutes: {median: 5}}
  - {name: huge, share: 0.5, gpus: {4: 0.9, 16: 0.1}, cpu_per_gpu: 1, memory_gib_per_gpu: 1,
     runtime_minutes: {median: 5}}
workloads: {light: 0.5}
"""


@pytest.mark.parametrize("command", ["simulate", "bound"])
def test_a_job_no_node_can_hold_is_refused_naming_the_task_type(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    spec = tmp_path / "wide.yaml"
    spec.write_text(WIDE)
    line = refused(capsys, [command, "--scenario", str(spec), "--seeds", "1", "--quiet"])
    assert line.endswith(
        f"{spec}: task_types[1].gpus.16: a job of 16 GPUs, 16 CPU, 16Gi memory: no node has "
        "room for it (at most 8 GPUs, 64 CPU, 512Gi memory per node)"
    )


def test_a_trace_job_no_node_can_hold_is_refused_naming_the_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = tmp_path / "jobs.csv"
    jobs.write_text("submit_time_s,duration_s,gpus\n0,60,1\n30,60,2\n90,60,1\n")
    spec = tmp_path / "t.yaml"
    spec.write_text(
        "name: t\ntrace: {path: jobs.csv}\nnodes: [{count: 3, gpus: 1, cpu: 8, memory_gib: 64}]\n"
        "task_types: [{name: any, cpu_per_gpu: 1, memory_gib_per_gpu: 4}]\n"
    )
    line = refused(capsys, ["simulate", "--scenario", str(spec), "--seeds", "1", "--quiet"])
    assert line == (
        f"hybrid-scheduler simulate: {jobs}: job 1 (submitted at 30 s): 2 GPUs, 2 CPU, 8Gi "
        "memory: no node has room for it (at most 1 GPUs, 8 CPU, 64Gi memory per node); "
        "1 of 3 jobs are that large"
    )
