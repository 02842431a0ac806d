"""Bad input to every sub-command: one line on stderr naming the flag or field and the value,
exit status 2, and nothing started (no training, no cluster, no simulation run)."""

from pathlib import Path

import pytest

from cli_helpers import TINY, nothing_starts, refused
from hybrid_policy.policies import policy_names

pytestmark = pytest.mark.usefixtures(nothing_starts.__name__)


TRAIN = ["train", "--steps", "10", "--quiet", "--out"]


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            [*TRAIN, "m.pt", "--horizon-hours", "-1"],
            "hybrid-scheduler train: --horizon-hours: must be > 0 (got '-1') (see --help)",
        ),
        (
            [*TRAIN, "m.pt", "--eval-every", "-1"],
            "hybrid-scheduler train: --eval-every: must be > 0 (got '-1') (see --help)",
        ),
        (
            [*TRAIN, "m.pt", "--warm-start-steps", "-100"],
            "hybrid-scheduler train: --warm-start-steps: must be >= 0 (got '-100') (see --help)",
        ),
        (
            [*TRAIN, "m.pt", "--train-seeds", "1,2,3", "--validation-seeds", "3,4"],
            "hybrid-scheduler train: --validation-seeds: must not repeat a training seed (got '3')",
        ),
        (
            [*TRAIN, "m.pt", "--validation-seeds", "12"],
            "hybrid-scheduler train: --validation-seeds: seeds 10-14 are evaluation seeds (got 12)",
        ),
        (
            [*TRAIN, "m.pt", "--seed", "-1"],
            "hybrid-scheduler train: --seed: must be >= 0 (got '-1') (see --help)",
        ),
        (
            [*TRAIN, "m.pt", "--trace-window-days", "nan"],
            "hybrid-scheduler train: --trace-window-days: must be finite (got 'nan') (see --help)",
        ),
        (
            ["train", "--steps", "ten", "--out", "m.pt"],
            "hybrid-scheduler train: --steps: must be a whole number (got 'ten') (see --help)",
        ),
        (
            ["train", "--steps", "10"],
            "hybrid-scheduler train: the following arguments are required: --out (see --help)",
        ),
        (
            ["dqn-bench", "--repeats", "0"],
            "hybrid-scheduler dqn-bench: --repeats: must be > 0 (got '0') (see --help)",
        ),
        (
            ["dqn-bench", "--nodes", "10,0"],
            "hybrid-scheduler dqn-bench: --nodes: must be comma-separated whole numbers >= 1 "
            "(got '10,0')",
        ),
        (
            ["run", "--policy", "a,b"],
            "hybrid-scheduler run: policy: the operator runs one policy (got 'a,b')",
        ),
        (
            ["run", "--policy", "binpack,drf"],
            "hybrid-scheduler run: policy: the operator runs one policy (got 'binpack,drf')",
        ),
        (["run", "--seed", "-1"], "hybrid-scheduler run: seed: must be a number >= 0 (got -1.0)"),
        (
            ["run", "--policy", "binpack", "--reservation", "mode=none"],
            "hybrid-scheduler run: reservation: policy 'binpack' does not reserve (got "
            "'mode=none'; reserving policies: fair-order, fair-reserve, fair-easy, "
            "fair-conservative, fair-speed, hybrid-reserve)",
        ),
        (
            ["run", "--policy", "fair-easy", "--reservation", "max_wait_s=soon"],
            "hybrid-scheduler run: reservation: max_wait_s='soon': not a number (got "
            "'max_wait_s=soon'; KEY=VALUE,...)",
        ),
        (
            ["run", "--namespace", ""],
            "hybrid-scheduler run: namespaces: names must not be empty (got [''])",
        ),
        (
            ["run", "--lease-name", " "],
            "hybrid-scheduler run: lease_name: must not be empty",
        ),
        (
            ["run", "--batch-size", "many"],
            "hybrid-scheduler run: --batch-size: invalid int value: 'many' (see --help)",
        ),
        (
            ["demo", "--time-scale", "nan"],
            "hybrid-scheduler demo: --time-scale: must be finite (got 'nan') (see --help)",
        ),
        (
            ["demo", "--timeout", "0"],
            "hybrid-scheduler demo: --timeout: must be > 0 (got '0') (see --help)",
        ),
        (
            ["demo", "--seed", "-3"],
            "hybrid-scheduler demo: --seed: must be >= 0 (got '-3') (see --help)",
        ),
        (
            ["cluster-bench", "--gpus", "-1"],
            "hybrid-scheduler cluster-bench: --gpus: must be >= 0 (got '-1') (see --help)",
        ),
        (
            ["cluster-bench", "--cpu", "lots"],
            "hybrid-scheduler cluster-bench: --cpu: not a quantity (got 'lots') (see --help)",
        ),
        (
            ["cluster-bench", "--memory", "0Mi"],
            "hybrid-scheduler cluster-bench: --memory: must be more than zero (got '0Mi') "
            "(see --help)",
        ),
        (
            ["cluster-bench", "--runtime", "-5"],
            "hybrid-scheduler cluster-bench: --runtime: must be > 0 (got '-5') (see --help)",
        ),
        (
            ["cluster-bench", "--seed", "-1"],
            "hybrid-scheduler cluster-bench: --seed: must be >= 0 (got '-1') (see --help)",
        ),
        (
            ["cluster-bench", "--policies", "binpack@soon"],
            "hybrid-scheduler cluster-bench: --policies: pass interval 'soon' must be at least "
            "0.01 s",
        ),
        (
            ["cluster-bench", "--compare", "kube-scheduler,slurm"],
            "hybrid-scheduler cluster-bench: --compare: unknown scheduler 'slurm' (known: "
            "kube-scheduler, scheduler-plugins, kueue, hybrid)",
        ),
        (
            ["cluster-bench", "--compare", " , "],
            "hybrid-scheduler cluster-bench: --compare: no scheduler named",
        ),
        (
            ["cluster-bench", "--compare", "hybrid", "--hybrid-policy", "best"],
            "hybrid-scheduler cluster-bench: --hybrid-policy: unknown policy 'best' (known: "
            + ", ".join(policy_names())
            + ")",
        ),
        (
            ["cluster-bench", "--compare", "kueue", "--workload", "huge"],
            "hybrid-scheduler cluster-bench: builtin:seed-paper: workloads: no workload level "
            "'huge' (known: light, medium, heavy)",
        ),
        (
            ["cluster-bench", "--compare", "kueue", "--time-scale", "0"],
            "hybrid-scheduler cluster-bench: --time-scale: must be > 0 (got '0') (see --help)",
        ),
        (
            ["dev-cluster", "up", "--nodes", "0"],
            "hybrid-scheduler dev-cluster up: --nodes: must be > 0 (got '0') (see --help)",
        ),
        (
            [
                "trace",
                "convert-philly",
                "--input",
                "p.csv",
                "--output",
                "o.csv",
                "--max-gpus-per-job",
                "0",
            ],
            "hybrid-scheduler trace convert-philly: --max-gpus-per-job: must be > 0 (got '0') "
            "(see --help)",
        ),
        (
            ["bound", "--scenario", TINY, "--seeds", "1,x"],
            "hybrid-scheduler bound: --seeds: must be comma-separated whole numbers (got '1,x')",
        ),
    ],
)
def test_a_bad_flag_is_one_line_naming_it(
    capsys: pytest.CaptureFixture[str], argv: list[str], line: str
) -> None:
    assert refused(capsys, argv) == line


def test_run_names_a_kubeconfig_it_cannot_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "none.yaml"
    line = refused(capsys, ["run", "--kubeconfig", str(missing)])
    assert line.startswith(f"hybrid-scheduler run: --kubeconfig {missing}: cannot load it: ")


@pytest.mark.parametrize("command", [["simulate"], ["bound"], ["run", "--config"]])
def test_a_binary_input_file_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    path = tmp_path / "b.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    argv = [*command, str(path)] if command[0] == "run" else [*command, "--scenario", str(path)]
    line = refused(capsys, argv)
    assert line.endswith(f"{path}: not a UTF-8 text file (invalid start byte)")


def test_a_binary_trace_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "philly.csv"
    path.write_bytes(b"timestamp,duration\n\xff\xfe")
    argv = ["trace", "convert-philly", "--input", str(path), "--output", str(tmp_path / "o.csv")]
    assert refused(capsys, argv) == (
        f"hybrid-scheduler trace convert-philly: {path}: not a UTF-8 text file (invalid start byte)"
    )


def test_manifests_names_a_folder_that_is_not_a_chart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    helm = tmp_path / "helm"
    helm.write_text("#!/bin/sh\n")
    helm.chmod(0o755)
    argv = ["manifests", "render", "--helm", str(helm), "--chart", str(tmp_path)]
    argv += ["--out", str(tmp_path / "out")]
    assert refused(capsys, argv) == (
        f"hybrid-scheduler manifests render: --chart: {tmp_path} is not a Helm chart "
        "(no Chart.yaml)"
    )
