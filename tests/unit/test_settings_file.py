from pathlib import Path

import pytest

from hybrid_operator.cli import build_parser
from hybrid_operator.commands.run_cmd import settings_from
from hybrid_operator.settings import SettingsError
from hybrid_operator.settings_file import load_settings


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    return path


def test_file_settings_and_flags_on_top(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        "policy: binpack\nbatch_interval_s: 2\nnamespaces: [team-a, team-b]\n"
        "prometheus_url: http://prometheus:9090\npromql: {gpu: 'avg by (node) (gpu_util)'}\n",
    )
    settings = load_settings(path)
    assert settings.policy == "binpack"
    assert settings.batch_interval_s == 2.0
    assert settings.namespaces == ["team-a", "team-b"]
    assert settings.promql == {"gpu": "avg by (node) (gpu_util)"}
    args = build_parser().parse_args(
        ["run", "--config", str(path), "--policy", "drf", "--all-namespaces"]
    )
    merged = settings_from(args)
    assert (merged.policy, merged.batch_interval_s, merged.namespaces) == ("drf", 2.0, [])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("polcy: binpack\n", "polcy: unknown setting"),
        ("batch_interval_s: fast\n", "batch_interval_s: must be a number (got 'fast')"),
        ("batch_size: 1.5\n", "batch_size: must be a whole number (got 1.5)"),
        ("batch_interval_s: -1\n", "batch_interval_s: must be a number >= 0.01 (got -1.0)"),
        ("policy: fastest\n", "policy: unknown policy 'fastest'"),
        ("namespaces: team-a\n", "namespaces: must be a list of namespace names"),
        ("promql: {disk: x}\n", "promql: must map cpu, memory, gpu to queries"),
        ("http_port: 70000\n", "http_port: must be 0 (off) or a port number (got 70000)"),
        ("- a\n", "must be a mapping"),
        ("a: [\n", "not valid YAML"),
    ],
)
def test_bad_settings_files_name_file_key_and_value(
    tmp_path: Path, text: str, message: str
) -> None:
    path = _file(tmp_path, text)
    with pytest.raises(SettingsError) as err:
        load_settings(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_run_refuses_bad_settings_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hybrid_operator.cli import main

    assert main(["run", "--config", str(_file(tmp_path, "batch_size: 0\n"))]) == 2
    assert "batch_size: must be a number >= 1 (got 0.0)" in capsys.readouterr().err
    assert main(["run", "--policy", "nope"]) == 2
    assert "policy: unknown policy 'nope'" in capsys.readouterr().err


def test_shadow_flags() -> None:
    parse = build_parser().parse_args
    assert settings_from(parse(["run", "--shadow"])).shadow_of == "default-scheduler"
    assert settings_from(parse(["run", "--shadow-of", "volcano"])).shadow_of == "volcano"
    assert settings_from(parse(["run"])).shadow_of == ""
