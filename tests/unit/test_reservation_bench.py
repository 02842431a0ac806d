"""The reservation pass-time benchmark: what it draws, what it prints, what it refuses."""

import numpy as np
import pytest

from hybrid_lab.reservation_bench import Scores, draw, main, time_passes
from hybrid_policy.dqn.scorer import DqnScore
from hybrid_policy.reservation import BackfillMode
from hybrid_policy.resources import GPU


def test_the_drawn_cluster_is_nearly_full_and_known_to_the_predictor() -> None:
    drawn = draw((5, 40, 10), BackfillMode.EASY, 0)
    snapshot = drawn.snapshot
    gpu = snapshot.index[GPU]
    assert snapshot.requested[:, gpu].sum() >= 0.85 * 80
    assert drawn.policy.predictor is not None
    assert set(drawn.policy.predictor.running) == set(snapshot.placements)
    assert len(drawn.batch) == 40 and len({p.namespace for p in drawn.batch}) > 1


def test_a_timed_pass_holds_reservations_and_places_pods() -> None:
    for mode, held in ((BackfillMode.EASY, 1), (BackfillMode.CONSERVATIVE, 4)):
        result = time_passes(draw((3, 60, 10), mode, 1), 2, np.random.default_rng(0))
        assert result.held == held
        assert 0 < result.placed < 60
        assert len(result.ms) == len(result.binpack_ms) == 2


def test_learned_scores_are_the_networks_plus_binpack() -> None:
    drawn = draw((3, 30, 6), BackfillMode.EASY, 0, Scores.DQN)
    plugins = [type(p).__name__ for p, _ in drawn.policy.profile.scorers]
    assert plugins == [DqnScore.__name__, "MostAllocated"]
    assert isinstance(drawn.policy.profile.scorers[0][0], DqnScore)
    assert time_passes(drawn, 1, np.random.default_rng(0)).placed > 0


def test_it_prints_one_line_per_size_and_mode(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--sizes", "2:30:6", "--seeds", "0", "--repeats", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "pass ms median p95 | binpack ms median" in lines[1]
    assert [line.split()[3] for line in lines[2:]] == ["easy", "conservative"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--repeats", "0"], "--repeats must be at least 1, got 0"),
        (["--sizes", "2:30"], "--sizes: '2:30' is not namespaces:pods:nodes (positive)"),
        (["--seeds", "a"], "--seeds: 'a'"),
        (["--scores", "kube"], "argument --scores: invalid choice: 'kube'"),
    ],
)
def test_bad_arguments_stop_with_a_message(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
