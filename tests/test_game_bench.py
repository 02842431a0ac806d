from pathlib import Path

import pytest

from hybrid_policy.game.bench import main


def test_bench_prints_timings_gap_and_writes_the_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plot = tmp_path / "solve.png"
    assert main(["--seeds", "0", "--sizes", "3:20:5", "--gap-seeds", "1", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.split()[:3] == ["3", "20", "5"])
    assert "optimal" in row
    assert plot.stat().st_size > 0
