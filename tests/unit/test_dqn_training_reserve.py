"""Training with ``--discipline reserve``: the actor acts inside hybrid-reserve's passes."""

from pathlib import Path

import numpy as np
import pytest

from hybrid_lab.discipline import Discipline
from hybrid_lab.training import TrainConfig, train, with_horizon
from hybrid_operator.cli import main
from hybrid_policy.domain import PendingPod
from hybrid_policy.dqn.checkpoint import load_checkpoint
from hybrid_policy.dqn.env import LearningActor
from hybrid_policy.features import Float32Array
from hybrid_policy.framework.snapshot import BoolArray, ClusterSnapshot, FloatArray, IntArray
from hybrid_policy.reservation import arbiter
from hybrid_policy.scenario.loader import load_scenario


def _config(tmp_path: Path, steps: int) -> TrainConfig:
    return TrainConfig(
        scenarios=[with_horizon(load_scenario("seed-paper"), 2.0)],
        levels=["heavy"],
        train_seeds=[0],
        validation_seeds=[9],
        steps=steps,
        seed=3,
        out=tmp_path / "m.pt",
        eval_every=steps // 2,
        warm_start_steps=50,
        learn_after=64,
        show_progress=False,
        discipline=Discipline.RESERVE,
    )


def test_the_actor_chooses_only_among_the_nodes_that_delay_no_reservation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every node the actor is offered is one where the pod delays no reservation held in
    the pass (what the arbitrator's ``_allowed`` leaves), and reservations did close some."""
    allowed_now: dict[str, tuple[set[int], int]] = {}
    #: Per action: the nodes offered, the nodes the pass allowed, the feasible count.
    offered: list[tuple[set[int], set[int], int]] = []
    real_allowed = arbiter._Pass._allowed
    real_act = LearningActor.act

    def spy_allowed(self: arbiter._Pass, pod: PendingPod, candidates: IntArray) -> BoolArray:
        mask = real_allowed(self, pod, candidates)
        allowed_now[pod.uid] = ({int(r) for r in candidates[mask]}, candidates.size)
        return mask

    def spy_act(
        self: LearningActor,
        pod: PendingPod,
        snapshot: ClusterSnapshot,
        candidates: IntArray,
        features: Float32Array,
        q: FloatArray,
    ) -> int:
        offered.append(({int(r) for r in candidates}, *allowed_now.pop(pod.uid)))
        assert features.shape[0] == candidates.size
        return real_act(self, pod, snapshot, candidates, features, q)

    monkeypatch.setattr(arbiter._Pass, "_allowed", spy_allowed)
    monkeypatch.setattr(LearningActor, "act", spy_act)
    result = train(_config(tmp_path, 400))
    assert result.steps == 400
    assert len(offered) >= 400  # and the call that found the budget spent
    for nodes, allowed, _ in offered:
        assert nodes == allowed
    closed = [n for n, allowed, feasible in offered if len(allowed) < feasible]
    assert closed, "no reservation closed a node: the check above proved nothing"


def test_reserve_training_writes_its_discipline_and_baselines(tmp_path: Path) -> None:
    result = train(_config(tmp_path, 300))
    metadata = load_checkpoint(result.checkpoint).metadata
    assert metadata["discipline"] == "reserve"
    assert set(result.baseline_jct_min["seed-paper"]) == {
        "binpack",
        "hybrid-reserve[dqn-default]",
    }
    header = result.log_csv.read_text().splitlines()[0].split(",")
    assert header[4:6] == ["hybrid-reserve_jct_min", "hybrid-reserve_jain"]
    assert np.isfinite(result.best_validation_jct_min["seed-paper"])


def test_train_names_a_bad_discipline(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--steps", "10", "--out", "x.pt", "--discipline", "game"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "--discipline: invalid choice: 'game'" in err[0]
