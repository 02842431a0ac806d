"""A scheduler's CPU seconds and peak resident memory during a round, from ``/proc``.

Each process is counted with its descendants (Kueue's manager runs under ``unshare``
and ``sh``, which exec it). CPU is user plus system time, read at the start and the end;
memory is the sum of resident set sizes, sampled twice a second, its highest value kept.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hybrid_lab.devcluster.state import resident_bytes

SAMPLE_INTERVAL_S = 0.5


@dataclass(frozen=True)
class ProcessUsage:
    """CPU and memory of the processes over the round."""

    cpu_s: float
    peak_rss_bytes: int


def _stat_fields(pid: int) -> list[str]:
    """The fields of ``/proc/PID/stat`` after the command name (empty when gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return []
    return text.rsplit(")", 1)[1].split()


def descendants(pids: Sequence[int]) -> list[int]:
    """``pids`` and every process below them."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if len(fields) > 1:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], list(pids)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.append(pid)
            todo.extend(children.get(pid, []))
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    """User plus system CPU time of ``pids`` (their own, not their reaped children's)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if len(fields) > 12:
            total += int(fields[11]) + int(fields[12])
    return total / ticks


class UsageSampler:
    """Samples the processes of ``pids`` (and their descendants) until :meth:`stop`."""

    def __init__(self, pids: Sequence[int]) -> None:
        self._roots = list(pids)
        self._stopped = threading.Event()
        self._peak = 0
        self._start_cpu = cpu_seconds(descendants(self._roots))
        self._thread = threading.Thread(target=self._run, name="usage-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.is_set():
            rss = sum(resident_bytes(pid) for pid in descendants(self._roots))
            self._peak = max(self._peak, rss)
            self._stopped.wait(SAMPLE_INTERVAL_S)

    def stop(self) -> ProcessUsage:
        """Stop sampling; the CPU used since the start and the peak memory seen."""
        cpu = cpu_seconds(descendants(self._roots)) - self._start_cpu
        self._stopped.set()
        self._thread.join(timeout=5)
        return ProcessUsage(cpu_s=round(max(cpu, 0.0), 2), peak_rss_bytes=self._peak)
