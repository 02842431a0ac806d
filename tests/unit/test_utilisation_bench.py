import pytest

from hybrid_lab.utilisation_bench import BenchSettings, build, main
from hybrid_operator.utilisation import apply_utilisation


def test_bench_counts_the_recent_pods_it_times() -> None:
    cache, collector = build(BenchSettings(nodes=4, recent=10, repeats=1), 1000.0)
    snapshot = cache.snapshot(1000.0)
    apply_utilisation(snapshot, collector, cache, 1000.0)
    gpu = snapshot.index["nvidia.com/gpu"]
    # 0.5 measured, plus 3, 3, 2 and 2 one-GPU pods on 8 GPUs bound after the sample.
    assert snapshot.utilisation[:, gpu].tolist() == [0.875, 0.875, 0.75, 0.75]


def test_bench_prints_parameters_median_and_spread(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--nodes", "5", "--recent", "12", "--repeats", "3"]) == 0
    out = capsys.readouterr().out
    assert "5 nodes with fresh samples, 12 pods placed since, 3 repeats" in out
    assert "median" in out and "min" in out and "max" in out


def test_bench_refuses_zero_nodes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--nodes", "0"])
    assert exc.value.code == 2
    assert "--nodes must be at least 1, got 0" in capsys.readouterr().err
