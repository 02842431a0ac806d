from pathlib import Path

import pytest

from hybrid_lab.game_bench import main


def test_bench_prints_timings_gap_and_writes_the_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plot = tmp_path / "solve.png"
    args = ["--seeds", "0", "--sizes", "3:20:5", "--gap-seeds", "1", "--repeats", "2"]
    assert main([*args, "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "2 timed solves each" in out
    row = next(line for line in out.splitlines() if line.split()[:3] == ["3", "20", "5"])
    assert "optimal" in row
    assert plot.stat().st_size > 0


def test_bench_refuses_zero_repeats(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--repeats", "0"])
    assert exc.value.code == 2
    assert "--repeats must be at least 1, got 0" in capsys.readouterr().err
