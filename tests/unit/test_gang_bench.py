"""The gang pass-time benchmark: what it draws, what it prints, what it refuses."""

import numpy as np
import pytest

from hybrid_lab.gang_bench import draw, main, time_passes
from hybrid_policy.resources import GPU


def test_the_drawn_batch_is_gangs_on_a_nearly_full_cluster() -> None:
    drawn = draw((3, 6, 4, 10), "hybrid-reserve", 0)
    snapshot = drawn.snapshot
    assert snapshot.requested[:, snapshot.index[GPU]].sum() >= 0.85 * 80
    assert drawn.policy.predictor is not None
    assert set(drawn.policy.predictor.running) == set(snapshot.placements)
    assert len(drawn.batch) == 24
    gangs = {p.gang_key for p in drawn.batch}
    assert len(gangs) == 6 and all(
        p.gang is not None and p.gang.min_member == 4 for p in drawn.batch
    )


def test_a_timed_pass_places_whole_gangs_only() -> None:
    result = time_passes(draw((3, 12, 3, 10), "fair-easy", 1), 2, np.random.default_rng(0))
    assert len(result.ms) == 2
    assert 0 < result.placed < 12
    assert result.held == 1


def test_it_prints_one_line_per_policy(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--size", "2:6:3:8", "--seeds", "0", "--repeats", "1"]
    assert main([*argv, "--policies", "fair-easy,binpack-gang"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "6 gangs of 3 pods (18 pending), 8 nodes" in lines[0]
    assert [line.split()[0] for line in lines[2:]] == ["fair-easy", "binpack-gang"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--repeats", "0"], "--repeats must be at least 1, got 0"),
        (["--size", "2:30:4"], "--size: '2:30:4' is not namespaces:gangs:members:nodes"),
        (["--seeds", "a"], "--seeds: 'a'"),
        (["--policies", "kube-default"], "--policies: kube-default (each one of hybrid"),
    ],
)
def test_bad_arguments_stop_with_a_message(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
