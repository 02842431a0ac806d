"""The pass-time benchmark with preemption: what it draws, that its phase really plans,
what it prints, what it refuses."""

import numpy as np
import pytest

from hybrid_lab.preemption_bench import HIGH_PRIORITY, RULES, draw, main, time_passes
from hybrid_policy.resources import GPU


def test_the_drawn_cluster_is_nearly_full_of_opted_in_pods_and_some_pods_rank_higher() -> None:
    drawn = draw((5, 60, 10), "fair-easy", 0)
    snapshot = drawn.snapshot
    assert snapshot.requested[:, snapshot.index[GPU]].sum() >= 0.85 * 80
    assert {p.uid for p in drawn.running} == set(snapshot.placements)
    assert all(p.opted_in and p.checkpoint_interval_s == 300.0 for p in drawn.running)
    assert any(p.priority == HIGH_PRIORITY for p in drawn.batch)
    assert any(p.priority == 0 for p in drawn.batch)


def test_the_timed_phase_makes_plans_with_victims_under_the_default_rules() -> None:
    result = time_passes(draw((5, 100, 20), "fair-easy", 0), "on", 2, np.random.default_rng(0))
    assert result.plans > 0 and result.victims >= result.plans
    assert len(result.ms) == len(result.phase_ms) == len(result.cpu_ms) == 2
    assert all(whole >= phase for whole, phase in zip(result.ms, result.phase_ms, strict=True))


def test_it_prints_one_line_per_policy_and_rule(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--sizes", "2:30:6", "--seeds", "0", "--repeats", "1", "--policies", "fair-easy"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "pass ms median p95 | CPU ms median | phase ms median | plans victims" in lines[1]
    assert len(lines[2:]) == len(RULES)
    assert all(line.split()[3] == "fair-easy" for line in lines[2:])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--repeats", "0"], "--repeats must be at least 1, got 0"),
        (["--sizes", "2:30"], "--sizes: '2:30' is not namespaces:pods:nodes (positive)"),
        (["--seeds", "a"], "--seeds: 'a'"),
        (["--policies", "binpack"], "--policies: binpack (each one of hybrid-reserve, fair-easy)"),
    ],
)
def test_bad_arguments_stop_with_a_message(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
