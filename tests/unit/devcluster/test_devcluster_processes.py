"""Ports, the PID file, and starting/stopping processes, without a cluster."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from hybrid_lab.devcluster import processes, state
from hybrid_lab.devcluster.errors import DevClusterError, PortInUseError, StartupError
from hybrid_lab.devcluster.ports import port_is_free, require_free
from hybrid_lab.devcluster.state import ClusterState, ProcessRecord


def test_busy_port_is_detected_and_named() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert not port_is_free(port)
        with pytest.raises(PortInUseError, match=f"127.0.0.1:{port} \\(needed for etcd\\)"):
            require_free({"etcd": port})
    assert port_is_free(port)


def test_state_file_round_trip(tmp_path: Path) -> None:
    assert state.load(tmp_path) is None
    record = ProcessRecord("etcd", os.getpid(), state.process_start_ticks(os.getpid()), "x.log")
    state.save(tmp_path, ClusterState([record], {"nodes": 4}))
    loaded = state.load(tmp_path)
    assert loaded is not None
    assert loaded.processes == [record]
    assert loaded.info == {"nodes": 4}
    assert state.running(loaded) == [record]
    state.remove(tmp_path)
    assert state.load(tmp_path) is None


def test_corrupt_state_file_is_a_clear_error(tmp_path: Path) -> None:
    state.state_path(tmp_path).write_text("{not json")
    with pytest.raises(DevClusterError, match="cannot read the state file"):
        state.load(tmp_path)


def test_reused_pid_is_not_taken_for_ours() -> None:
    ticks = state.process_start_ticks(os.getpid())
    assert state.is_alive(ProcessRecord("me", os.getpid(), ticks, ""))
    assert not state.is_alive(ProcessRecord("me", os.getpid(), ticks + 1, ""))
    assert not state.is_alive(ProcessRecord("gone", 2**22 + 1, 0, ""))


def test_start_then_stop_exactly_the_started_process(tmp_path: Path) -> None:
    record = processes.start("sleeper", ["sleep", "60"], tmp_path)
    assert state.is_alive(record)
    processes.wait_ready(record, lambda: True, timeout_seconds=5)
    assert processes.stop([record], timeout_seconds=5) == ["sleeper"]
    assert not state.is_alive(record)


def test_stop_escalates_to_sigkill(tmp_path: Path) -> None:
    record = processes.start("stubborn", ["sh", "-c", "trap '' TERM; sleep 60"], tmp_path)
    time.sleep(0.3)
    started = time.monotonic()
    assert processes.stop([record], timeout_seconds=1) == ["stubborn"]
    assert not state.is_alive(record)
    assert time.monotonic() - started < 5


def test_process_that_exits_during_start_up_names_its_log(tmp_path: Path) -> None:
    record = processes.start("broken", ["sh", "-c", "echo boom; exit 3"], tmp_path)
    with pytest.raises(StartupError, match=r"broken exited during start-up; see its log at"):
        processes.wait_ready(record, lambda: False, timeout_seconds=5)
    assert "boom" in Path(record.log_path).read_text()


def test_missing_program_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="cannot start ghost"):
        processes.start("ghost", ["/nonexistent/ghost"], tmp_path)
