from pathlib import Path

import pytest
import torch

from hybrid_operator.cli import main
from hybrid_policy.dqn.checkpoint import load_checkpoint
from hybrid_policy.dqn.train import TrainConfig, train, with_horizon
from hybrid_policy.scenario.loader import load_scenario


def _tiny_run(tmp_path: Path, seed: int, name: str) -> Path:
    scenario = with_horizon(load_scenario("seed-paper"), 2.0)
    cfg = TrainConfig(
        scenario=scenario,
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
