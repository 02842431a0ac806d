"""Timestamps of pods as a watch sees them: added, bound (``spec.nodeName`` set), done.

One thread follows the pods of a namespace through the API server's watch, from the
resourceVersion of a list, reconnecting where it left off if the stream ends. Times are
this process's ``time.monotonic()`` at the moment an event is read, so that the same
clock measures creation (when the API server acknowledged it) and binding.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from hybrid_lab.devcluster.apiserver import ApiServer
from hybrid_lab.devcluster.errors import ClusterApiError

TERMINAL = ("Succeeded", "Failed")


@dataclass
class PodTimes:
    """What the watch saw of one pod."""

    added_s: float | None = None
    bound_s: float | None = None
    node: str | None = None
    #: Times the pod was seen with a node different from the one it had (must stay 0).
    node_changes: int = 0
    done_s: float | None = None


@dataclass
class PodWatch:
    """Follows the pods of ``namespace`` until :meth:`stop`."""

    api: ApiServer
    namespace: str
    pods: dict[str, PodTimes] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._response: Any = None
        self._thread = threading.Thread(target=self._run, name="pod-watch", daemon=True)

    @property
    def path(self) -> str:
        """The namespace's pods."""
        return f"/api/v1/namespaces/{self.namespace}/pods"

    def start(self) -> PodWatch:
        """List once (to get a resourceVersion), then follow in a thread."""
        listing = self.api.get(self.path)
        for item in listing.get("items", []):
            self._see(item, time.monotonic())
        self._version = str(listing["metadata"]["resourceVersion"])
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

    def snapshot(self) -> dict[str, PodTimes]:
        """A copy of what has been seen so far."""
        with self._lock:
            return {k: PodTimes(**vars(v)) for k, v in self.pods.items()}

    def count(self, what: str) -> int:
        """Pods seen ``added``, ``bound`` or ``done``."""
        with self._lock:
            return sum(1 for p in self.pods.values() if getattr(p, f"{what}_s") is not None)

    def _run(self) -> None:
        while not self._stopped.is_set():
            params = {
                "watch": "1",
                "resourceVersion": self._version,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": "300",
            }
            try:
                self._response = self.api.stream(self.path, params)
                for line in self._response.iter_lines():
                    if self._stopped.is_set():
                        return
                    if line:
                        self._event(json.loads(line), time.monotonic())
            except (ClusterApiError, OSError, ValueError) as exc:
                if self._stopped.is_set():
                    return
                self.errors.append(str(exc))
                time.sleep(0.5)
            except Exception as exc:  # requests' own errors while streaming
                if self._stopped.is_set():
                    return
                self.errors.append(f"{type(exc).__name__}: {exc}")
                time.sleep(0.5)

    def _event(self, event: dict[str, Any], now: float) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if kind == "ERROR":
            # Usually 410 Gone: the version is too old; start again from a fresh list.
            self.errors.append(str(obj.get("message")))
            listing = self.api.get(self.path)
            for item in listing.get("items", []):
                self._see(item, now)
            self._version = str(listing["metadata"]["resourceVersion"])
            raise ValueError("watch expired; listed again")
        if version:
            self._version = str(version)
        if kind in ("ADDED", "MODIFIED"):
            self._see(obj, now)

    def _see(self, pod: dict[str, Any], now: float) -> None:
        name = str(pod["metadata"]["name"])
        node = (pod.get("spec") or {}).get("nodeName")
        phase = (pod.get("status") or {}).get("phase")
        with self._lock:
            times = self.pods.setdefault(name, PodTimes())
            if times.added_s is None:
                times.added_s = now
            if node and times.node is None:
                times.node, times.bound_s = str(node), now
            elif node and node != times.node:
                times.node_changes += 1
            if phase in TERMINAL and times.done_s is None:
                times.done_s = now
