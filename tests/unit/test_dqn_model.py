from pathlib import Path

import numpy as np
import pytest
import torch

from builders import make_node, make_pod
from hybrid_lab.matrix import run_one
from hybrid_policy.dqn import checkpoint as ckpt
from hybrid_policy.dqn.checkpoint import (
    CheckpointError,
    default_checkpoint_path,
    file_sha256,
    load_checkpoint,
    save_checkpoint,
)
from hybrid_policy.dqn.env import ExplorationConfig, LearningActor
from hybrid_policy.dqn.learner import DqnLearner, LearnerConfig
from hybrid_policy.dqn.network import QNetwork
from hybrid_policy.dqn.replay import ReplayBuffer
from hybrid_policy.dqn.scorer import DqnScore, load_scorer
from hybrid_policy.features import FEATURE_COUNT, FEATURE_SCHEMA_VERSION
from hybrid_policy.framework.paths import ModelFallback
from hybrid_policy.framework.snapshot import ClusterSnapshot
from hybrid_policy.plugins.scores import MostAllocated, binpack_scorer
from hybrid_policy.policies import ModelOptions, build_policy, policy_names
from hybrid_policy.scenario.loader import load_scenario
from hybrid_policy.scenario.workload import prepare_workload


def _net(seed: int = 0) -> QNetwork:
    torch.manual_seed(seed)
    return QNetwork(FEATURE_COUNT, (8,))


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    net = _net()
    path = tmp_path / "m.pt"
    save_checkpoint(net, path, {"seed": 3})
    loaded = load_checkpoint(path)
    assert loaded.metadata == {"seed": 3}
    x = torch.randn(4, FEATURE_COUNT)
    torch.testing.assert_close(loaded.network(x), net(x))


def test_missing_checkpoint_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.pt"
    with pytest.raises(CheckpointError, match=r"nope\.pt: no such checkpoint file"):
        load_checkpoint(path)


def test_corrupt_checkpoint_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(b"\x00not a torch file at all")
    with pytest.raises(CheckpointError, match=r"bad\.pt: not a readable checkpoint"):
        load_checkpoint(path)


def test_pickled_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "code.pt"
    torch.save({"format": ckpt.FORMAT_TAG, "payload": Path("x")}, path)
    with pytest.raises(CheckpointError, match=r"code\.pt: not a readable checkpoint"):
        load_checkpoint(path)


def test_other_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError, match="not a hybrid-scheduler DQN checkpoint"):
        load_checkpoint(path)


def test_schema_mismatch_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "old.pt"
    monkeypatch.setattr(ckpt, "FEATURE_SCHEMA_VERSION", FEATURE_SCHEMA_VERSION + 1)
    save_checkpoint(_net(), path, {})
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match=r"old\.pt: feature schema version \d+, this build"):
        load_checkpoint(path)


def test_wrong_weights_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    save_checkpoint(QNetwork(FEATURE_COUNT - 1, (8,)), path, {})
    with pytest.raises(CheckpointError, match=r"w\.pt: weights do not fit"):
        load_checkpoint(path)


def test_fallback_to_binpack_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scorer = load_scorer(tmp_path / "gone.pt", fallback=ModelFallback.BINPACK)
    assert isinstance(scorer, MostAllocated)
    assert "falling back to binpack" in capsys.readouterr().err
    with pytest.raises(CheckpointError):
        load_scorer(tmp_path / "gone.pt")


def test_every_binpack_user_scores_with_the_one_binpack_scorer(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    missing = ModelOptions(tmp_path / "gone.pt", "binpack")
    learner = DqnLearner(_net(), LearnerConfig(), torch.device("cpu"))
    actor = LearningActor(learner, ReplayBuffer(4, 4, FEATURE_COUNT), ExplorationConfig(1, 1), rng)
    users = {
        "binpack": build_policy("binpack", rng).profile.scorers[0][0],
        "game": build_policy("game", rng).profile.scorers[0][0],
        "hybrid's second term": build_policy("hybrid", rng).profile.scorers[1][0],
        "dqn without its model": build_policy("dqn", rng, missing).profile.scorers[0][0],
        "hybrid without its model": build_policy("hybrid", rng, missing).profile.scorers[0][0],
        "the training teacher": actor.teacher,
    }
    for user, scorer in users.items():
        assert scorer == binpack_scorer(), user


def test_scorer_rates_every_candidate_in_one_call() -> None:
    snap = ClusterSnapshot([make_node(f"n{i}", performance=50 + 10 * i) for i in range(5)])
    scorer = DqnScore(_net())
    raw = scorer.score(make_pod("p"), snap, np.array([0, 2, 4]))
    assert raw.shape == (3,)
    norm = scorer.normalize(raw)
    assert norm.max() == pytest.approx(100.0)
    assert norm.min() >= 0.0


def test_default_checkpoint_ships_small_with_a_model_card() -> None:
    path = default_checkpoint_path()
    assert path.stat().st_size < 5 * 1024 * 1024
    loaded = load_checkpoint(path)
    assert loaded.metadata["feature_schema_version"] == FEATURE_SCHEMA_VERSION
    card = (path.parent / "MODEL_CARD.md").read_text()
    assert file_sha256(path) in card
    assert f"feature schema version {FEATURE_SCHEMA_VERSION}" in card


def test_dqn_policy_runs_in_the_simulator(tiny_scenario_path: Path) -> None:
    assert "dqn" in policy_names()
    workload = prepare_workload(load_scenario(str(tiny_scenario_path)), "heavy", 1)
    record = run_one(workload, "dqn")
    assert record.completed == record.jobs
    assert record.jct_s.mean >= record.fastest_node_bound_jct_s


def test_reserve_checkpoint_ships_with_its_card_and_in_the_wheel(tmp_path: Path) -> None:
    from hatchling.builders.wheel import WheelBuilder

    path = default_checkpoint_path().with_name("dqn-reserve.pt")
    loaded = load_checkpoint(path)
    assert loaded.metadata["discipline"] == "reserve"
    assert loaded.metadata["feature_schema_version"] == FEATURE_SCHEMA_VERSION
    card = (path.parent / "MODEL_CARD-reserve.md").read_text()
    assert file_sha256(path) in card
    root = Path(__file__).resolve().parents[2]
    files = {f.distribution_path for f in WheelBuilder(str(root)).recurse_included_files()}
    assert "hybrid_policy/dqn/default/dqn-reserve.pt" in files
