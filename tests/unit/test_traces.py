from pathlib import Path

import pytest

from hybrid_policy.scenario.fields import ScenarioError
from hybrid_policy.scenario.loader import load_scenario
from hybrid_policy.scenario.traces import (
    convert_philly,
    jobs_from_rows,
    read_canonical,
    write_canonical,
)
from hybrid_policy.scenario.workload import prepare_workload, trace_windows

PHILLY = """timestamp,duration,num_gpus,gpu_time,cluster
2017-10-31 23:00:00,600.0,1,600.0,aaa111
2017-11-01 00:00:00,1200.0,2,2400.0,bbb222
2017-11-01 01:00:00,0.0,1,0.0,aaa111
2017-11-01 02:00:00,3600.0,16,57600.0,bbb222
2017-11-01 03:00:00,60.0,8,480.0,aaa111
2017-12-01 00:00:00,60.0,1,60.0,ccc333
"""


def _philly(tmp_path: Path) -> Path:
    path = tmp_path / "philly.csv"
    path.write_text(PHILLY)
    return path


def test_philly_window_wide_and_empty_jobs(tmp_path: Path) -> None:
    rows, report = convert_philly(_philly(tmp_path), start="2017-11-01", end="2017-11-30")
    assert report.read == 6
    assert report.outside_window == 2
    assert report.zero_duration == 1
    assert report.wider_than_node == 1
    assert report.kept == 2
    assert report.wide_gpu_seconds == 57600.0
    assert [(r.submit_time_s, r.duration_s, r.gpus, r.namespace) for r in rows] == [
        (0.0, 1200.0, 2, "vc-bbb222"),
        (3 * 3600.0, 60.0, 8, "vc-aaa111"),
    ]
    assert "1 wider than one node" in report.summary()


def test_philly_without_window_keeps_all_narrow_jobs(tmp_path: Path) -> None:
    rows, report = convert_philly(_philly(tmp_path))
    assert report.kept == 4
    assert rows[0].submit_time_s == 0.0  # relative to the first kept job


def test_empty_window_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no jobs left"):
        convert_philly(_philly(tmp_path), start="2018-01-01")


def test_canonical_round_trip_and_defaults(tmp_path: Path) -> None:
    rows, _ = convert_philly(_philly(tmp_path))
    path = tmp_path / "jobs.csv"
    assert write_canonical(path, rows) == 4
    again = read_canonical(path)
    assert again == rows
    scenario = load_scenario(str(Path(__file__).parents[1] / "data" / "tiny.yaml"))
    jobs = jobs_from_rows(again, scenario)
    first = jobs[0]
    # no CPU/memory in the trace: the first task type's per-GPU amounts
    assert first.requests == {"nvidia.com/gpu": 1, "cpu": 6000, "memory": 32 * 1024**3}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "missing column(s) submit_time_s, duration_s, gpus"),
        ("submit_time_s,duration_s,gpus\n", "trace has no jobs"),
        ("submit_time_s,duration_s,gpus\n0,-5,1\n", "line 2: duration_s: must be > 0 (got '-5')"),
        ("submit_time_s,duration_s,gpus\n0,5,two\n", "line 2: gpus: must be a number (got 'two')"),
        ("submit_time_s,duration_s,gpus\n0,5,1.5\n", "line 2: gpus: must be a whole number"),
    ],
)
def test_bad_canonical_traces(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "jobs.csv"
    path.write_text(body)
    with pytest.raises(ScenarioError) as err:
        read_canonical(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_trace_scenario_sizes_the_cluster_for_its_load(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(
        "submit_time_s,duration_s,gpus,cpu_millicores,memory_bytes,namespace,task_type\n"
        + "".join(f"{i * 100},{800},{1 + i % 4},,,team-{i % 3},\n" for i in range(500))
    )
    spec = tmp_path / "trace.yaml"
    spec.write_text(
        "name: t\ntrace: {path: jobs.csv, target_load: 0.5}\n"
        "nodes: [{count: 1, gpus: 4, cpu: 32, memory_gib: 256}]\n"
        "task_types: [{name: any, cpu_per_gpu: 2, memory_gib_per_gpu: 8}]\n"
    )
    workload = prepare_workload(load_scenario(str(spec)), "trace", 0)
    # 500 jobs x 2.5 GPUs x 800 s = 1e6 GPU-s over a 49,900 s window at load 0.5
    # needs 40.08 GPUs -> ceil(10.02) = 11 nodes of 4 GPUs
    assert len(workload.nodes) == 11
    assert len(workload.jobs) == 500
    assert {j.namespace for j in workload.jobs} == {"team-0", "team-1", "team-2"}


def test_trace_windows_replay_each_window_on_its_own_sized_cluster(tmp_path: Path) -> None:
    day = 86_400
    # Days 0-2: 600 jobs a day of 1 GPU for 800 s; days 2-4: 1,200 a day of 2 GPUs; then
    # 100 jobs on day 4 (a window of too few jobs) and a half day alone on day 6.
    rows = [(i * day / 600, 1) for i in range(1200)]
    rows += [(2 * day + i * day / 1200, 2) for i in range(2400)]
    rows += [(4 * day + i * 800, 1) for i in range(100)]
    rows += [(6 * day + i * 40, 1) for i in range(600)]
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(
        "submit_time_s,duration_s,gpus,cpu_millicores,memory_bytes,namespace,task_type\n"
        + "".join(f"{t:.0f},800,{g},,,team-a,\n" for t, g in rows)
    )
    spec = tmp_path / "trace.yaml"
    spec.write_text(
        "name: t\ntrace: {path: jobs.csv, target_load: 0.5}\n"
        "nodes: [{count: 1, gpus: 4, cpu: 32, memory_gib: 256}]\n"
        "task_types: [{name: any, cpu_per_gpu: 2, memory_gib_per_gpu: 8}]\n"
    )
    windows = trace_windows(load_scenario(str(spec)), 0, 2.0)
    # Window 2 (days 4-6) has 100 jobs and window 3 covers a quarter of its width: both out.
    assert [w.level for w in windows] == ["trace-w0", "trace-w1"]
    assert [len(w.jobs) for w in windows] == [1200, 2400]
    assert all(min(j.submit_s for j in w.jobs) == 0.0 for w in windows)
    assert max(j.submit_s for j in windows[1].jobs) < 2 * day
    # Four times the GPU-time in the second window: about four times the nodes.
    small, large = (len(w.nodes) for w in windows)
    assert 3.5 < large / small < 4.5
    with pytest.raises(ScenarioError, match="must be > 0"):
        trace_windows(load_scenario(str(spec)), 0, 0.0)


def test_philly_wide_jobs_kept_as_gangs_of_whole_node_pods(tmp_path: Path) -> None:
    rows, report = convert_philly(
        _philly(tmp_path), start="2017-11-01", end="2017-11-30", keep_wide=True
    )
    assert [r.gpus for r in rows] == [2, 16, 8]
    assert report.kept == 3 and report.wider_than_node == 1
    assert "1 wider than one node as gangs" in report.summary()
    trace = tmp_path / "philly.csv"
    spec = tmp_path / "philly.yaml"
    spec.write_text(
        f"name: p\ntrace: {{path: {trace.name}, format: philly, start: '2017-11-01', "
        "end: '2017-11-30', wide_jobs: gang}\n"
        "nodes: [{count: 2, gpus: 8, cpu: 64, memory_gib: 512}]\n"
        "task_types: [{name: philly, cpu_per_gpu: 4, memory_gib_per_gpu: 32}]\n"
    )
    workload = prepare_workload(load_scenario(str(spec)), "trace", 0)
    shapes = [(j.members, j.requests["nvidia.com/gpu"], j.gpus) for j in workload.jobs]
    assert shapes == [(1, 2, 2), (2, 8, 16), (1, 8, 8)]
    dropped = spec.read_text().replace(", wide_jobs: gang", "")
    spec.write_text(dropped)
    assert [j.gpus for j in prepare_workload(load_scenario(str(spec)), "trace", 0).jobs] == [2, 8]
    spec.write_text(dropped.replace("'2017-11-30'", "'2017-11-30', wide_jobs: split"))
    with pytest.raises(ScenarioError, match=r"trace\.wide_jobs"):
        load_scenario(str(spec))
