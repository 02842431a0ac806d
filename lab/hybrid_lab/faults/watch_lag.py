"""Watch lines held back by the fault proxy: while a lag is on, the events that show a pod
bound and not finished reach the operator some seconds late, and every other event goes
on at once. Bindings then arrive after completions and creations that came later, as
from a client that works through objects out of order when it falls behind."""

from __future__ import annotations

import heapq
import itertools
import json
import threading
import time
from collections.abc import Callable

TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})


def shows_a_bound_pod(line: bytes) -> bool:
    """Whether a watch line is an event of a pod bound to a node and not finished."""
    try:
        event = json.loads(line)
    except ValueError:
        return False
    if not isinstance(event, dict) or event.get("type") == "DELETED":
        return False
    obj = event.get("object")
    if not isinstance(obj, dict) or obj.get("kind") != "Pod":
        return False
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return bool(spec.get("nodeName")) and status.get("phase") not in TERMINAL_PHASES


class LaggedLines:
    """The lines of one watch stream, each relayed when it is due."""

    def __init__(self, lag_of: Callable[[bytes], float], lagging: Callable[[], bool]) -> None:
        #: How long a line is held back when it arrives (0: not at all).
        self.lag_of = lag_of
        #: Whether the lag is still on (when it ends, every held line is due at once).
        self.lagging = lagging
        self._ready = threading.Condition()
        self._held: list[tuple[float, int, bytes]] = []
        self._order = itertools.count()
        self._ended = False

    def put(self, line: bytes) -> None:
        """A line arrived from the API server."""
        due = time.monotonic() + self.lag_of(line)
        with self._ready:
            heapq.heappush(self._held, (due, next(self._order), line))
            self._ready.notify()

    def end(self) -> None:
        """The stream ended: once every held line is relayed, :meth:`next` says so."""
        with self._ready:
            self._ended = True
            self._ready.notify()

    def next(self) -> bytes:
        """The next line that is due (waiting for it); empty once the stream ended."""
        with self._ready:
            while True:
                if self._held:
                    due, _, line = self._held[0]
                    wait = due - time.monotonic() if self.lagging() else 0.0
                    if wait <= 0:
                        heapq.heappop(self._held)
                        return line
                    self._ready.wait(min(wait, 0.1))
                elif self._ended:
                    return b""
                else:
                    self._ready.wait(0.1)
