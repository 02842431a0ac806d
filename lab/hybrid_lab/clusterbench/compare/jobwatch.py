"""The pods of one round as the API server shows them: bound, finished, deleted.

One thread follows every pod labelled with the round (all namespaces) through a watch
from the resourceVersion of a list, reconnecting where it left off. Times are seconds of
``time.monotonic()`` when an event is read, the clock the round's Job creations use.
A pod deleted before it finished (Kueue suspending a preempted Job) ends where it is
deleted.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

from hybrid_lab.clusterbench.compare.stream import JOB_LABEL, ROUND_LABEL
from hybrid_lab.devcluster.apiserver import ApiServer

SUCCEEDED = "Succeeded"
TERMINAL = (SUCCEEDED, "Failed")


@dataclass(frozen=True)
class PodSeen:
    """What the watch saw of one pod (monotonic seconds)."""

    job: str
    bound_s: float | None = None
    end_s: float | None = None
    succeeded: bool = False


@dataclass
class RoundWatch:
    """Follows the pods of ``round_name`` until :meth:`stop`."""

    api: ApiServer
    round_name: str
    pods: dict[str, PodSeen] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._response: Any = None
        self._version = ""
        self._thread = threading.Thread(target=self._run, name="round-watch", daemon=True)

    def _list(self, now: float) -> None:
        listing = self.api.get("/api/v1/pods", labelSelector=f"{ROUND_LABEL}={self.round_name}")
        for item in listing.get("items", []):
            self._see(item, now, deleted=False)
        self._version = str(listing["metadata"]["resourceVersion"])

    def start(self) -> RoundWatch:
        """List once, then follow in a thread."""
        self._list(time.monotonic())
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the watch."""
        self._stopped.set()
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):
                response.close()
        self._thread.join(timeout=10)

    def snapshot(self) -> dict[str, PodSeen]:
        """A copy of what has been seen so far, by ``namespace/pod``."""
        with self._lock:
            return dict(self.pods)

    def _run(self) -> None:
        while not self._stopped.is_set():
            params = {
                "watch": "1",
                "labelSelector": f"{ROUND_LABEL}={self.round_name}",
                "resourceVersion": self._version,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": "300",
            }
            try:
                self._response = self.api.stream("/api/v1/pods", params)
                for line in self._response.iter_lines():
                    if self._stopped.is_set():
                        return
                    if line:
                        self._event(json.loads(line), time.monotonic())
            except Exception as exc:  # the stream's and requests' own errors alike
                if self._stopped.is_set():
                    return
                self.errors.append(f"{type(exc).__name__}: {exc}")
                time.sleep(0.5)

    def _event(self, event: dict[str, Any], now: float) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":  # usually 410 Gone: list again and carry on from there
            self.errors.append(str(obj.get("message")))
            self._list(now)
            return
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if version:
            self._version = str(version)
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            self._see(obj, now, deleted=kind == "DELETED")

    def _see(self, pod: dict[str, Any], now: float, deleted: bool) -> None:
        meta = pod.get("metadata") or {}
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        job = str((meta.get("labels") or {}).get(JOB_LABEL, ""))
        node = (pod.get("spec") or {}).get("nodeName")
        phase = (pod.get("status") or {}).get("phase")
        with self._lock:
            seen = self.pods.get(key) or PodSeen(job)
            if node and seen.bound_s is None:
                seen = replace(seen, bound_s=now)
            if seen.end_s is None and (phase in TERMINAL or (deleted and seen.bound_s)):
                seen = replace(seen, end_s=now, succeeded=phase == SUCCEEDED)
            self.pods[key] = seen
