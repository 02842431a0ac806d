"""Operator replicas as processes the faults can kill, freeze and restart.

Each replica is ``hybrid-scheduler run`` with its own identity and ``/metrics`` port, its
log appended to one file across restarts. A replica that exits without the harness having
killed or stopped it has crashed; :meth:`OperatorReplica.problems` picks the tracebacks
and error lines its log gained since a given offset.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import requests

from hybrid_lab.devcluster.errors import StartupError
from hybrid_lab.devcluster.workload import wait_for

PENDING_GAUGE = "hybrid_scheduler_pending_pods"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


@dataclass
class OperatorReplica:
    """One operator process (started on demand)."""

    identity: str
    http_port: int
    log: Path
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    #: Exit statuses of processes that ended without the harness ending them.
    crashes: list[int] = field(default_factory=list)

    def start(self) -> None:
        """Start the process and wait until it has listed the cluster."""
        self.wait_started(self.launch())

    def launch(self) -> int:
        """Start the process; return the log offset :meth:`wait_started` reads from."""
        offset = self.log_size()
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        return offset

    def wait_started(self, offset: int) -> None:
        """Wait until the process started at ``offset`` has listed the cluster."""

        def listed() -> bool | None:
            self.check()
            if self.process is None:
                raise StartupError(
                    f"operator {self.identity} exited while starting; see {self.log}"
                )
            return True if re.search(r"listed .*\d+ pods", self.text(offset)) else None

        wait_for(f"operator {self.identity} to list the cluster", listed, START_TIMEOUT_S)

    def text(self, offset: int = 0) -> str:
        """The log from byte ``offset`` on."""
        with self.log.open("rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")

    def log_size(self) -> int:
        """The log's length now, to read what comes after."""
        return self.log.stat().st_size if self.log.exists() else 0

    def check(self) -> None:
        """Notice a process that ended on its own (a crash)."""
        if self.process is not None and self.process.poll() is not None:
            self.crashes.append(self.process.returncode)
            self.process = None

    @property
    def alive(self) -> bool:
        """Whether the process runs (after noticing a crash)."""
        self.check()
        return self.process is not None

    def signal(self, signum: signal.Signals) -> None:
        """Send ``signum`` to the replica's process group."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)

    def kill(self) -> None:
        """SIGKILL, as the harness's own doing (not a crash)."""
        if self.process is not None:
            self.signal(signal.SIGKILL)
            self.process.wait()
            self.process = None

    def freeze(self) -> None:
        """SIGSTOP: the process stops dead, its connections stay open."""
        self.signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`freeze`."""
        self.signal(signal.SIGCONT)

    def terminate(self) -> None:
        """Ask the process to stop (SIGCONT first, in case it is frozen); do not wait."""
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)

    def stop(self) -> None:
        """SIGTERM (SIGCONT first, in case it is frozen), then SIGKILL if it lingers."""
        self.check()
        if self.process is None:
            return
        self.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.process.wait()
        self.process = None

    def metrics(self, prefix: str) -> dict[str, float]:
        """Samples on its ``/metrics`` whose name starts with ``prefix``, by
        ``name{labels}``; empty if unreachable."""
        session = requests.Session()
        session.trust_env = False
        try:
            text = session.get(f"http://127.0.0.1:{self.http_port}/metrics", timeout=2).text
        except requests.RequestException:
            return {}
        found = re.findall(rf"^({re.escape(prefix)}\S*) (\S+)$", text, re.M)
        return {sample: float(value) for sample, value in found}

    def pending_gauge(self) -> float | None:
        """``hybrid_scheduler_pending_pods``; None if unreachable."""
        return self.metrics(PENDING_GAUGE).get(PENDING_GAUGE)

    def problems(self, offset: int) -> list[str]:
        """Tracebacks' last lines and ERROR lines the log gained after ``offset``."""
        lines = self.text(offset).splitlines()
        found = []
        for i, line in enumerate(lines):
            if line.startswith("Traceback"):
                end = next(
                    (j for j in range(i + 1, len(lines)) if not lines[j].startswith((" ", "\t"))),
                    None,
                )
                if end is not None:
                    found.append(lines[end].strip())
            elif " ERROR " in line:
                found.append(line.split(" ERROR ", 1)[1].strip())
        return found
