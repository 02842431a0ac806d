"""The command's behaviour in bad situations: one clear line, nothing running; exit 2 for
bad input (flags, scenario files), exit 1 for trouble on the way."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from hybrid_lab.devcluster import state
from hybrid_operator.cli import main


def test_down_when_nothing_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dev-cluster", "down", "--state-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no dev cluster is running" in err


def test_status_when_nothing_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dev-cluster", "status", "--state-dir", str(tmp_path)]) == 1
    assert "no dev cluster is running" in capsys.readouterr().out


def test_up_with_a_busy_port_starts_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        code = main(
            [
                "dev-cluster",
                "up",
                "--quiet",
                "--state-dir",
                str(tmp_path),
                "--cache-dir",
                str(tmp_path / "cache"),
                "--port",
                f"etcd_client={port}",
            ]
        )
    assert code == 1
    err = capsys.readouterr().err
    assert f"port 127.0.0.1:{port} (needed for etcd clients) is already in use" in err
    assert state.load(tmp_path) is None
    assert not (tmp_path / "cache").exists()


def test_up_without_prometheus_package_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("shutil.which", lambda _: None)
    code = main(["dev-cluster", "up", "--quiet", "--prometheus", "--state-dir", str(tmp_path)])
    assert code == 1
    err = capsys.readouterr().err
    assert "prometheus is not installed" in err
    assert "apt-get install --no-install-recommends prometheus" in err
    assert state.load(tmp_path) is None


def test_bad_port_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dev-cluster", "up", "--state-dir", str(tmp_path), "--port", "web=1"]) == 2
    err = capsys.readouterr().err
    assert "bad --port 'web=1'" in err and err.count("\n") == 1


def test_bad_scenario_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text("nodes: [{count: 1, cpu: 1}]\n")
    assert (
        main(["dev-cluster", "up", "--state-dir", str(tmp_path), "--scenario", str(scenario)]) == 2
    )
    assert f"{scenario}: name: is required" in capsys.readouterr().err


def test_failure_mid_start_stops_what_was_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hybrid_lab.devcluster import build, cluster, components, processes
    from hybrid_lab.devcluster.errors import StartupError
    from hybrid_lab.devcluster.settings import ClusterSettings, Ports

    started: list[state.ProcessRecord] = []
    real_start = processes.start

    def recording_start(name: str, argv: list[str], log_dir: Path) -> state.ProcessRecord:
        record = real_start(name, argv, log_dir)
        started.append(record)
        return record

    plan = [
        components.Component("first", ["sleep", "60"], lambda: True),
        components.Component("second", ["sh", "-c", "exit 2"], lambda: False),
    ]
    monkeypatch.setattr(build, "build_missing", lambda *_a, **_k: [])
    monkeypatch.setattr(components, "plan", lambda *_a: plan)
    monkeypatch.setattr(processes, "start", recording_start)
    free = Ports(*(_free_port() for _ in range(8)))
    settings = ClusterSettings(state_dir=tmp_path, cache_dir=tmp_path / "cache", ports=free)
    with pytest.raises(StartupError, match="second exited during start-up"):
        cluster.up(settings, [], show_progress=False)
    assert [r.name for r in started] == ["first", "second"]
    assert not any(state.is_alive(r) for r in started)
    assert state.load(tmp_path) is None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_port_offset_shifts_every_default_and_flags_still_win(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hybrid_lab.devcluster.command import parse_ports
    from hybrid_lab.devcluster.settings import PORT_OFFSET_ENV, ClusterSettings, Ports

    monkeypatch.setenv(PORT_OFFSET_ENV, "1000")
    shifted = ClusterSettings().ports
    assert shifted.apiserver == Ports().apiserver + 1000
    assert shifted.prometheus == Ports().prometheus + 1000
    overridden = parse_ports(["apiserver=20443"])
    assert overridden.apiserver == 20443
    assert overridden.etcd_client == Ports().etcd_client + 1000


@pytest.mark.parametrize("raw", ["abc", "60000"])
def test_bad_port_offset_is_named(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    from hybrid_lab.devcluster.errors import DevClusterError
    from hybrid_lab.devcluster.settings import PORT_OFFSET_ENV, ClusterSettings

    monkeypatch.setenv(PORT_OFFSET_ENV, raw)
    with pytest.raises(DevClusterError, match=PORT_OFFSET_ENV):
        ClusterSettings()
