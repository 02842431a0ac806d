import json
from pathlib import Path

import pytest

from hybrid_operator.cli import main

REQUIRED = {
    "policy",
    "seed",
    "workload",
    "offered_load",
    "utilization",
    "jct_s",
    "jct_by_task_type_s",
    "wait_s",
    "throughput_jobs_per_h",
    "completed",
    "unfinished",
    "jain_fairness",
    "namespace_share",
    "decision_ms_per_pod",
}


def test_simulate_writes_table_json_and_plots(
    tmp_path: Path, tiny_scenario_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(
        [
            "simulate",
            "--scenario",
            str(tiny_scenario_path),
            "--workload",
            "all",
            "--policies",
            "kube-default,binpack",
            "--seeds",
            "0,1",
            "--json",
            str(out / "runs.json"),
            "--plots",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "workload light (2 seeds, mean ±95% CI)" in text
    assert "JCT image-classification min" in text
    assert "share team-a" in text and "JCT team-b min" in text
    data = json.loads((out / "runs.json").read_text())
    assert len(data["runs"]) == 2 * 2 * 2
    for run in data["runs"]:
        assert set(run) >= REQUIRED
        assert set(run["utilization"]) == {"gpu", "cpu", "memory"}
        assert set(run["jct_s"]) == {"mean", "p50", "p95", "p99"}
        assert set(run["namespace_share"]) == {"team-a", "team-b"}
    for name in ("utilisation.png", "completion_time.png"):
        png = (out / name).read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 10_000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--policies", "kube-default,fastest"], "unknown policy 'fastest' (known: kube-default"),
        (["--workload", "extreme"], "no level 'extreme' (known: light, heavy)"),
        (["--seeds", "1,x"], "--seeds: must be comma-separated whole numbers"),
        (["--model", "/nonexistent/m.pt"], "--model: /nonexistent/m.pt: no such checkpoint file"),
    ],
)
def test_simulate_refuses_bad_arguments(
    tiny_scenario_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["simulate", "--scenario", str(tiny_scenario_path), "--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_simulate_refuses_a_bad_scenario_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nhorizon_hours: ten\n")
    assert main(["simulate", "--scenario", str(path), "--quiet"]) == 2
    assert f"{path}: horizon_hours: must be a number (got 'ten')" in capsys.readouterr().err


def test_simulate_refuses_an_empty_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "jobs.csv").write_text("submit_time_s,duration_s,gpus\n")
    spec = tmp_path / "t.yaml"
    spec.write_text(
        "name: t\ntrace: {path: jobs.csv}\nnodes: [{count: 1, gpus: 4, cpu: 8, memory_gib: 64}]\n"
        "task_types: [{name: any, cpu_per_gpu: 1, memory_gib_per_gpu: 4}]\n"
    )
    assert main(["simulate", "--scenario", str(spec), "--quiet"]) == 2
    assert "jobs.csv: trace has no jobs" in capsys.readouterr().err


def test_convert_philly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "philly.csv"
    src.write_text(
        "timestamp,duration,num_gpus,gpu_time,cluster\n"
        "2017-10-01 00:00:00,60,1,60,abc\n2017-10-01 00:01:00,60,32,1920,abc\n"
    )
    out = tmp_path / "jobs.csv"
    assert main(["trace", "convert-philly", "--input", str(src), "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert "kept 1" in text and "1 wider than one node" in text
    assert out.read_text().splitlines()[1] == "0,60,1,,,vc-abc,"
    assert (
        main(["trace", "convert-philly", "--input", str(tmp_path / "no.csv"), "--output", str(out)])
        == 2
    )
    assert "trace file not found" in capsys.readouterr().err


def test_simulate_runs_dqn_with_the_model_it_is_given(
    tmp_path: Path, tiny_scenario_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    from hybrid_policy.dqn.checkpoint import save_checkpoint
    from hybrid_policy.dqn.network import DEFAULT_HIDDEN, QNetwork
    from hybrid_policy.features import FEATURE_COUNT

    torch.manual_seed(1)
    untrained = tmp_path / "untrained.pt"
    save_checkpoint(QNetwork(FEATURE_COUNT, DEFAULT_HIDDEN), untrained, {})

    def mean_jct(*extra: str) -> float:
        out = tmp_path / "runs.json"
        argv = ["simulate", "--scenario", str(tiny_scenario_path), "--workload", "heavy"]
        argv += ["--policies", "dqn", "--seeds", "1", "--quiet", "--json", str(out), *extra]
        assert main(argv) == 0
        return float(json.loads(out.read_text())["runs"][0]["jct_s"]["mean"])

    shipped = mean_jct()
    assert mean_jct("--model", str(untrained)) != shipped
    capsys.readouterr()


def test_report_combines_saved_runs_and_draws_them(
    tmp_path: Path, tiny_scenario_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    base = ["simulate", "--scenario", str(tiny_scenario_path), "--seeds", "1,2", "--quiet"]
    assert main([*base, "--policies", "kube-default,binpack", "--json", str(first)]) == 0
    assert main([*base, "--policies", "kube-default,random", "--json", str(second)]) == 0
    capsys.readouterr()
    out = tmp_path / "figures"
    argv = ["report", "--json", str(first), str(second), "--workload", "heavy"]
    assert main([*argv, "--plots", str(out)]) == 0
    text = capsys.readouterr().out
    # kube-default is in both files and counted once: 3 policies x 2 seeds at one level.
    assert text.startswith("6 runs from ")
    assert "random" in text and "binpack" in text
    for name in ("utilisation.png", "completion_time.png", "fairness.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("body", "message"),
    [(None, "no such file"), ("{", "not JSON"), ('{"runs": 3}', "not the output of")],
)
def test_report_names_a_bad_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str | None, message: str
) -> None:
    path = tmp_path / "runs.json"
    if body is not None:
        path.write_text(body)
    assert main(["report", "--json", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and message in err
