from pathlib import Path

import numpy as np
import pytest
import torch

from hybrid_lab.training import TrainConfig, train, with_horizon
from hybrid_operator.cli import main
from hybrid_policy.dqn.checkpoint import load_checkpoint
from hybrid_policy.scenario.loader import load_scenario


def _tiny_run(tmp_path: Path, seed: int, name: str) -> Path:
    scenario = with_horizon(load_scenario("seed-paper"), 2.0)
    cfg = TrainConfig(
        scenarios=[scenario],
        levels=["heavy"],
        train_seeds=[0],
        validation_seeds=[9],
        steps=300,
        seed=seed,
        out=tmp_path / name / "m.pt",
        eval_every=150,
        warm_start_steps=50,
        learn_after=64,
        show_progress=False,
    )
    return train(cfg).checkpoint


def test_same_seed_same_weights(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    a = load_checkpoint(_tiny_run(tmp_path, 5, "a")).network.state_dict()
    b = load_checkpoint(_tiny_run(tmp_path, 5, "b")).network.state_dict()
    c = load_checkpoint(_tiny_run(tmp_path, 6, "c")).network.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert any(not torch.equal(a[k], c[k]) for k in a)
    log = (tmp_path / "a" / "m.csv").read_text().splitlines()
    assert log[0].startswith("step,episode,epsilon,loss,dqn_jct_min,kube-default_jct_min")
    assert len(log) >= 3
    assert (tmp_path / "a" / "m.png").stat().st_size > 1000


def test_train_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.pt"
    argv = ["train", "--steps", "120", "--out", str(out), "--horizon-hours", "1"]
    argv += ["--levels", "heavy", "--train-seeds", "1", "--warm-start-steps", "20", "--quiet"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "best validation mean JCT" in text
    assert out.is_file()


def test_train_refuses_evaluation_seeds(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--steps", "10", "--out", "x.pt", "--train-seeds", "3,12"])
    assert code == 2
    assert "evaluation seeds" in capsys.readouterr().err


def test_bench_command_reports_a_bad_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["dqn-bench", "--checkpoint", str(tmp_path / "none.pt")])
    assert code == 2
    assert "none.pt: no such checkpoint file" in capsys.readouterr().err


def test_bench_command_times_the_default_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dqn-bench", "--nodes", "10,50", "--repeats", "5"]) == 0
    out = capsys.readouterr().out
    assert "| 10 |" in out
    assert "| 50 |" in out


def _small_trace(tmp_path: Path) -> Path:
    """Three days of 1-4 GPU jobs, 600 a day (a window of one day each)."""
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(
        "submit_time_s,duration_s,gpus,cpu_millicores,memory_bytes,namespace,task_type\n"
        + "".join(
            f"{i * 144},{1800 + 60 * (i % 7)},{1 + i % 4},,,team-{i % 2},\n" for i in range(1800)
        )
    )
    spec = tmp_path / "trace.yaml"
    spec.write_text(
        "name: small-trace\ntrace: {path: jobs.csv, target_load: 0.9}\n"
        "nodes: [{count: 1, gpus: 8, cpu: 64, memory_gib: 512, performance: [50, 100]}]\n"
        "task_types: [{name: any, cpu_per_gpu: 4, memory_gib_per_gpu: 32}]\n"
    )
    return spec


def test_training_on_a_scenario_and_a_trace_in_turn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "both.pt"
    argv = ["train", "--steps", "400", "--out", str(out), "--horizon-hours", "1"]
    argv += ["--scenario", "seed-paper", "--scenario", str(_small_trace(tmp_path))]
    argv += ["--trace-window-days", "1", "--levels", "heavy", "--train-seeds", "1"]
    argv += ["--warm-start-steps", "20", "--eval-every", "200", "--quiet"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "best validation mean JCT, seed-paper:" in text
    assert "best validation mean JCT, small-trace:" in text
    metadata = load_checkpoint(out).metadata
    assert metadata["scenario"] == "seed-paper+small-trace"
    assert set(metadata["validation_jct_min"]) == {"seed-paper", "small-trace"}
    header = out.with_suffix(".csv").read_text().splitlines()[0].split(",")
    assert "small-trace_dqn_jct_min" in header
    assert "seed-paper_binpack_jct_min" in header
    assert "dqn_vs_binpack" in header


def test_trace_episodes_count_rewards_in_their_own_mean_run_time(tmp_path: Path) -> None:
    from hybrid_policy.dqn.env import REWARD_SCALE_S, reward_scale_s
    from hybrid_policy.policies import build_policy
    from hybrid_policy.scenario.workload import prepare_workload, trace_windows
    from hybrid_policy.sim.engine import Simulation

    rng = np.random.default_rng(0)
    window = trace_windows(load_scenario(str(_small_trace(tmp_path))), 0, 1.0)[0]
    sim = Simulation(window, build_policy("binpack", rng), 0)
    assert reward_scale_s(sim) == pytest.approx(np.mean([j.runtime_s for j in window.jobs]))
    assert 1800 <= reward_scale_s(sim) <= 1800 + 360
    generated = prepare_workload(with_horizon(load_scenario("seed-paper"), 1.0), "heavy", 0)
    assert reward_scale_s(Simulation(generated, build_policy("binpack", rng), 0)) == REWARD_SCALE_S


def test_train_names_a_bad_window_length(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--steps", "10", "--out", "x.pt", "--trace-window-days", "0"])
    assert code == 2
    assert "--trace-window-days" in capsys.readouterr().err


def test_train_refuses_a_scenario_given_twice(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "--steps", "10", "--out", "x.pt", "--horizon-hours", "1"]
    assert main([*argv, "--scenario", "seed-paper", "--scenario", "seed-paper", "--quiet"]) == 2
    assert "scenario given twice" in capsys.readouterr().err


def test_train_names_a_level_the_scenario_lacks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--steps", "10", "--out", "x.pt", "--levels", "extreme", "--quiet"]) == 2
    assert "no level 'extreme' (known: light, medium, heavy)" in capsys.readouterr().err
