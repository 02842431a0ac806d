"""The PID file of a running dev cluster: which processes ``up`` started, and their logs.

Each record keeps the process start time read from ``/proc`` next to the PID, so a PID
that the kernel has since given to an unrelated process is never signalled.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hybrid_lab.devcluster.errors import DevClusterError

STATE_FILE_NAME = "processes.json"


@dataclass(frozen=True)
class ProcessRecord:
    """One process started by ``up``."""

    name: str
    """Component name, e.g. ``kube-apiserver``."""
    pid: int
    """Process id (also its session and process-group id)."""
    start_ticks: int
    """Start time in clock ticks after boot (/proc/PID/stat field 22); 0 if unknown."""
    log_path: str
    """File receiving its stdout and stderr."""


@dataclass
class ClusterState:
    """Contents of the PID file."""

    processes: list[ProcessRecord] = field(default_factory=list)
    """Started processes, in start order."""
    info: dict[str, Any] = field(default_factory=dict)
    """What ``status`` reports: URLs, kubeconfig path, node count."""


def process_start_ticks(pid: int) -> int:
    """Start time of ``pid`` in clock ticks since boot, or 0 when it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return 0
    # The command name (field 2) may hold spaces; fields after its closing paren are plain.
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[19])


def is_alive(record: ProcessRecord) -> bool:
    """Whether the recorded process still runs (and is the same process, not a reused PID)."""
    ticks = process_start_ticks(record.pid)
    if ticks == 0:
        return False
    if record.start_ticks and ticks != record.start_ticks:
        return False
    try:
        stat = Path(f"/proc/{record.pid}/stat").read_text(encoding="ascii")
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def resident_bytes(pid: int) -> int:
    """Resident memory of ``pid`` (bytes), 0 when unknown."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def state_path(state_dir: Path) -> Path:
    """Where the PID file lives in ``state_dir``."""
    return state_dir / STATE_FILE_NAME


def load(state_dir: Path) -> ClusterState | None:
    """Read the PID file, or return None when there is none."""
    path = state_path(state_dir)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        records = [ProcessRecord(**entry) for entry in raw["processes"]]
        return ClusterState(records, dict(raw.get("info", {})))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DevClusterError(f"cannot read the state file {path}: {err}") from err


def save(state_dir: Path, state: ClusterState) -> None:
    """Write the PID file atomically, so a crash never leaves half a file."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_path(state_dir)
    payload = {"processes": [asdict(record) for record in state.processes], "info": state.info}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def remove(state_dir: Path) -> None:
    """Delete the PID file if it exists."""
    state_path(state_dir).unlink(missing_ok=True)


def running(state: ClusterState) -> list[ProcessRecord]:
    """The records whose processes are still alive."""
    return [record for record in state.processes if is_alive(record)]
