"""Starting, watching and stopping the cluster's processes.

Each component runs in its own session (so a Ctrl-C in the terminal does not reach it and
it can be signalled as a group), writes to its own log file, and is recorded with its PID.
Stopping sends SIGTERM to exactly the recorded process groups, in reverse start order, and
SIGKILL to any that outlive the grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from hybrid_lab.devcluster.errors import StartupError
from hybrid_lab.devcluster.state import ProcessRecord, is_alive, process_start_ticks

POLL_SECONDS = 0.2


def start(
    name: str, argv: Sequence[str], log_dir: Path, env: Mapping[str, str] | None = None
) -> ProcessRecord:
    """Start ``argv`` detached, logging to ``log_dir/<name>.log``; return its record."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        try:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=None if env is None else {**os.environ, **env},
            )
        except OSError as err:
            raise StartupError(f"cannot start {name} ({argv[0]}): {err.strerror}") from err
    return ProcessRecord(name, process.pid, process_start_ticks(process.pid), str(log_path))


def wait_ready(record: ProcessRecord, probe: Callable[[], bool], timeout_seconds: float) -> None:
    """Poll ``probe`` until it is true; fail if the process dies or time runs out."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        if not is_alive(record):
            raise StartupError(
                f"{record.name} exited during start-up; see its log at {record.log_path}"
            )
        if probe():
            return
        if time.monotonic() > deadline:
            raise StartupError(
                f"{record.name} was not ready after {timeout_seconds:.0f} s; "
                f"see its log at {record.log_path}"
            )
        time.sleep(POLL_SECONDS)


def stop(records: Sequence[ProcessRecord], timeout_seconds: float) -> list[str]:
    """Stop the recorded processes in reverse order; return the names that were running."""
    stopped: list[str] = []
    for record in reversed(records):
        if not is_alive(record):
            _reap(record.pid)
            continue
        _signal_group(record, signal.SIGTERM)
        if not _wait_gone(record, timeout_seconds):
            _signal_group(record, signal.SIGKILL)
            _wait_gone(record, timeout_seconds)
        stopped.append(record.name)
    return stopped


def _signal_group(record: ProcessRecord, signum: signal.Signals) -> None:
    # Each process leads its own session, so its group id is its PID; signalling the group
    # also reaches helpers it may have spawned, and nothing else.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(record.pid, signum)


def _wait_gone(record: ProcessRecord, timeout_seconds: float) -> bool:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        _reap(record.pid)
        if not is_alive(record):
            return True
        time.sleep(POLL_SECONDS)
    return False


def _reap(pid: int) -> None:
    # Only our own children can be reaped; for processes of an earlier ``up`` this is a no-op.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
