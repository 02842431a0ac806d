"""The operator's own watch of PodGroups, for a CRD installed after kopf started.

kopf finds the kinds it watches once, at start-up (scanning CRDs for new ones would need
a permission the operator has no other use for), so a PodGroup CRD installed later is not
watched by it. When a reconciling listing finds PodGroups served again, the loop starts
this watch instead: it lists PodGroups (each fed as a listed object), then watches from
the listing's ``resourceVersion``, feeding every event through the same conversion as
kopf's handlers; a watch the server ends is resumed from the last version seen, and one
that is cut (an error, ``410 Gone``, the CRD removed) is listed again, which makes the
loop reconcile as for any watch that re-lists. The blocking calls run in a thread; on
shutdown the open stream is closed and the task ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from kubernetes import client, watch

from hybrid_operator.k8s.fields import Body
from hybrid_operator.k8s.gangs import POD_GROUP_GROUP, POD_GROUP_PLURAL, POD_GROUP_VERSION

log = logging.getLogger("hybrid_scheduler")
#: A raw event for the loop: its type (None for a listed object) and the object.
Emit = Callable[[str | None, Body], None]
#: Seconds the API server keeps one watch request open (as kopf's watches).
SERVER_TIMEOUT_S = 300
#: The longest pause between tries after the watch fails again and again.
MAX_RETRY_S = 30.0
T = TypeVar("T")


class WatchCutError(Exception):
    """The watch ended with an error event (``410 Gone`` among them): list again."""


class PodGroupWatch:
    """Lists and watches PodGroups in a thread, handing each event to ``emit`` on the loop."""

    def __init__(
        self,
        api_client: client.ApiClient,
        emit: Emit,
        timeout_s: float,
        server_timeout_s: int = SERVER_TIMEOUT_S,
        first_retry_s: float = 1.0,
    ) -> None:
        self.custom = client.CustomObjectsApi(api_client)
        self.emit = emit
        self.timeout_s = timeout_s
        self.server_timeout_s = server_timeout_s
        #: The pause after a first failure, doubled after each further one.
        self.first_retry_s = first_retry_s
        self._stopped = threading.Event()
        self._open: watch.Watch | None = None

    def stop(self) -> None:
        """End the watch: the open stream is closed at once (any thread may call it)."""
        self._stopped.set()
        stream = self._open
        if stream is not None:
            stream.stop()  # type: ignore[no-untyped-call]

    def list(self, deliver: Emit) -> str:
        """Every PodGroup, handed to ``deliver`` as listed; returns the listing's version."""
        listed: Any = self.custom.list_cluster_custom_object(
            POD_GROUP_GROUP, POD_GROUP_VERSION, POD_GROUP_PLURAL, _request_timeout=self.timeout_s
        )
        for item in listed.get("items") or []:
            deliver(None, item)
        return str((listed.get("metadata") or {}).get("resourceVersion") or "")

    def stream(self, version: str, deliver: Emit) -> str:
        """Watch from ``version`` until the server ends the request or :meth:`stop`;
        returns the last version seen. Raises :class:`WatchCutError` on an error event."""
        # The client's watch has no type annotations; it yields plain dicts here.
        stream = watch.Watch()  # type: ignore[no-untyped-call]
        self._open = stream
        try:
            if self._stopped.is_set():
                return version
            for event in stream.stream(  # type: ignore[no-untyped-call]
                self.custom.list_cluster_custom_object,
                POD_GROUP_GROUP,
                POD_GROUP_VERSION,
                POD_GROUP_PLURAL,
                resource_version=version,
                timeout_seconds=self.server_timeout_s,
                _request_timeout=self.server_timeout_s + self.timeout_s,
            ):
                if self._stopped.is_set():
                    break
                kind, body = event.get("type"), event.get("raw_object")
                if kind == "ERROR" or not isinstance(body, dict):
                    raise WatchCutError(f"the PodGroup watch ended with {kind}: {body}")
                if kind != "BOOKMARK":
                    deliver(str(kind), body)
            return str(stream.resource_version or version)
        finally:
            self._open = None

    async def run(self, stop: asyncio.Event) -> None:
        """List, then watch, until ``stop`` is set; list again after a cut watch."""
        loop = asyncio.get_running_loop()

        def deliver(kind: str | None, body: Body) -> None:
            loop.call_soon_threadsafe(self.emit, kind, body)

        stopper = asyncio.create_task(self._stop_on(stop))
        failures = 0
        try:
            while not stop.is_set():
                try:
                    version = await _until(stopper, _in_daemon(self.list, deliver))
                    while not stop.is_set():
                        version = await _until(stopper, _in_daemon(self.stream, version, deliver))
                        failures = 0
                except _StoppingError:
                    return
                except Exception as exc:  # the API server may be down or the CRD gone
                    failures += 1
                    if failures == 1:
                        log.warning("the PodGroup watch was cut, listing again: %s", exc)
                    pause = min(self.first_retry_s * 2.0 ** (failures - 1), MAX_RETRY_S)
                    await asyncio.wait([stopper], timeout=pause)
        finally:
            stopper.cancel()

    async def _stop_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self.stop()


class _StoppingError(Exception):
    """The operator is stopping: the watch ends without waiting for its call."""


async def _until(stopper: asyncio.Task[None], call: asyncio.Future[T]) -> T:
    """``call``'s result, or :class:`_StoppingError` as soon as ``stopper`` is done (the
    call is then cancelled: what it ends with later, a result or an error, is dropped,
    not left for the loop to report as never retrieved)."""
    waits: list[asyncio.Future[Any]] = [stopper, call]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    if not call.done():
        call.cancel()
        raise _StoppingError
    return call.result()


def _in_daemon(fn: Callable[..., T], *args: object) -> asyncio.Future[T]:
    """Run the blocking ``fn(*args)`` in a daemon thread: a watch request blocked in a
    read (the client's ``Watch.stop`` is seen only at the next event) never keeps the
    process from exiting, as a thread of the loop's default pool would."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def work() -> None:
        try:
            result, error = fn(*args), None
        except BaseException as exc:  # handed to the awaiting task
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name="podgroup-watch", daemon=True).start()
    return future
