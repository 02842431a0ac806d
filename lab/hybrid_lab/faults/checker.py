"""The invariant checker: watches of pods, nodes and the leader Lease feeding a
:class:`~hybrid_lab.faults.ledger.Ledger`, straight from the API server (never through the
operator's proxy).

Each watch lists first, then follows from the list's resourceVersion; when a stream ends
it resumes from the last version seen, and after any error (the API server gone, 410
Gone) it lists again, so the ledger is reconciled with what exists. Times are wall-clock
(``time.time()``), the clock the Lease and the decision records use.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests

from hybrid_lab.devcluster.apiserver import ApiServer
from hybrid_lab.devcluster.errors import ClusterApiError
from hybrid_lab.faults.ledger import Ledger
from hybrid_lab.faults.records import Body, EventKind, PodRecord

RETRY_S = 0.5
#: Short, so that a stopped checker's threads notice soon (a closed stream may not wake them).
WATCH_TIMEOUT_S = 15


@dataclass(frozen=True)
class Follow:
    """One resource to follow: where it lives and what to do with what comes."""

    path: str
    params: dict[str, str]
    relist: Callable[[list[Body], int, float], None]
    event: Callable[[EventKind, Body, float], None]


class InvariantChecker:
    """Follows pods (all namespaces), nodes and one Lease into a ledger."""

    def __init__(self, api: ApiServer, scheduler_name: str, lease: tuple[str, str]) -> None:
        self.api = api
        self.ledger = Ledger(scheduler_name)
        self.lock = threading.Lock()
        self.errors: list[str] = []
        self._stopped = threading.Event()
        self._responses: list[requests.Response] = []
        namespace, name = lease
        with_lock = self._locked
        self._follows = [
            Follow(
                "/api/v1/pods",
                {},
                with_lock(lambda items, _v, t: self.ledger.relist_pods(items, t)),
                with_lock(self.ledger.see_pod),
            ),
            Follow("/api/v1/nodes", {}, with_lock(self.ledger.relist_nodes), with_lock(self._node)),
            Follow(
                f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases",
                {"fieldSelector": f"metadata.name={name}"},
                with_lock(lambda items, _v, _t: self._leases(items)),
                with_lock(lambda _k, body, _t: self.ledger.see_lease(body)),
            ),
        ]
        self._threads: list[threading.Thread] = []

    def _leases(self, items: list[Body]) -> None:
        for item in items:
            self.ledger.see_lease(item)

    def _node(self, kind: EventKind, body: Body, seen_at: float) -> None:
        self.ledger.see_node(kind, body, seen_at)

    def _locked(self, fn: Callable[..., Any]) -> Callable[..., None]:
        def call(*args: Any) -> None:
            with self.lock:
                fn(*args)

        return call

    def start(self) -> InvariantChecker:
        """List everything once (so the ledger is complete on return), then follow."""
        versions = [self._list(follow) for follow in self._follows]
        for follow, version in zip(self._follows, versions, strict=True):
            thread = threading.Thread(
                target=self._run, args=(follow, version), name="fault-checker", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """End every watch."""
        self._stopped.set()
        for response in list(self._responses):
            with contextlib.suppress(Exception):
                response.close()
        for thread in self._threads:
            thread.join(timeout=1)

    @contextmanager
    def view(self) -> Iterator[Ledger]:
        """The ledger, held still while the block reads it."""
        with self.lock:
            yield self.ledger

    def _list(self, follow: Follow) -> str:
        listing = self.api.get(follow.path, **follow.params)
        version = str(listing["metadata"]["resourceVersion"])
        follow.relist(listing.get("items") or [], int(version), time.time())
        return version

    def _run(self, follow: Follow, version: str) -> None:
        while not self._stopped.is_set():
            try:
                version = self._follow(follow, version)
            except Exception as exc:  # requests' own errors while streaming, or 410 Gone
                if self._stopped.is_set():
                    return
                self.errors.append(f"{follow.path}: {exc}")
                time.sleep(RETRY_S)
                with contextlib.suppress(ClusterApiError, requests.RequestException, OSError):
                    version = self._list(follow)

    def _follow(self, follow: Follow, version: str) -> str:
        params = {
            **follow.params,
            "watch": "1",
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_TIMEOUT_S),
        }
        response = self.api.stream(follow.path, params)
        if not response.ok:
            raise ClusterApiError(f"watch {follow.path}: HTTP {response.status_code}")
        self._responses.append(response)
        try:
            for line in response.iter_lines():
                if self._stopped.is_set():
                    break
                if line:
                    version = self._event(follow, json.loads(line), version)
        finally:
            self._responses.remove(response)
            response.close()
        return version

    def _event(self, follow: Follow, event: dict[str, Any], version: str) -> str:
        kind, body = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            raise ValueError(f"watch {follow.path}: {body.get('message')}")
        new_version = str((body.get("metadata") or {}).get("resourceVersion") or version)
        if kind in EventKind.__members__:
            follow.event(EventKind(str(kind)), body, time.time())
        return new_version

    # -- questions asked at the end of a fault -------------------------------------------

    def pods_of(self, faults: Iterable[str]) -> list[PodRecord]:
        """Copies of the pods labelled with one of ``faults``."""
        wanted = set(faults)
        with self.lock:
            return [
                dataclasses.replace(p, requests=dict(p.requests))
                for p in self.ledger.pods.values()
                if p.fault in wanted
            ]

    def told(self, namespaces: Iterable[str], reason: str) -> Counter[str]:
        """How many Events with ``reason`` each pod (by UID) got in ``namespaces``."""
        told: Counter[str] = Counter()
        for namespace in namespaces:
            for event in self.api.items(
                f"/api/v1/namespaces/{namespace}/events", fieldSelector=f"reason={reason}"
            ):
                uid = str((event.get("involvedObject") or {}).get("uid") or "")
                told[uid] += int(event.get("count") or 1)
        return told

    def failed_scheduling(self, namespaces: Iterable[str]) -> set[str]:
        """UIDs of pods with a FailedScheduling Event in ``namespaces``."""
        return set(self.told(namespaces, "FailedScheduling"))
