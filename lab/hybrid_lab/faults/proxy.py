"""A loopback HTTPS proxy between the operator and the API server, to cut and slow it.

The operator's kubeconfig names the proxy. The proxy terminates TLS (with a certificate
for 127.0.0.1 that the kubeconfig trusts), reads each HTTP/1.1 request and sends it to the
real API server on a connection of its own, passing the operator's own credentials
through; watch streams are relayed line by line, one chunk per event. When the API server
cannot be reached the client's connection is reset, as a load balancer would do it. On
command the proxy:

* **cuts** the operator off: every client connection is closed and new ones are reset
  for ``hold_s`` seconds (a partition). With :attr:`CutMode.EXPIRE` every open watch
  first receives the API server's ``410 Gone`` ERROR event, and from then on a watch that
  resumes from a resourceVersion at or below the cut's gets the same event, as from an
  API server whose watch cache has moved on, so the client has to list again;
* **slows** every request but a watch by some seconds before it goes on (an API server
  that answers late);
* **delays** every ``POST .../binding`` by some seconds, telling which are held;
* **loses the answers** of some bindings: the client's connection is reset without an
  answer, and the binding reaches the API server all the same, at once or some seconds
  later (as when a client times out while its request is still on its way);
* **lags** the watches' bindings: an event showing a pod bound and not finished reaches
  the operator some seconds late, every other event at once
  (:mod:`hybrid_lab.faults.watch_lag`).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from hybrid_lab.faults.proxy_http import ClientConnection, ProxyHandler, reset
from hybrid_lab.faults.records import DECISION_ANNOTATION
from hybrid_lab.faults.watch_lag import shows_a_bound_pod


class CutMode(StrEnum):
    """How the operator is cut off."""

    DISCONNECT = "disconnect"
    """Connections closed, nothing said."""
    EXPIRE = "expire"
    """Watches told ``410 Gone`` first; resuming them from before the cut is refused."""


@dataclass(frozen=True)
class HeldBinding:
    """A binding the proxy is holding back."""

    pod: str
    node: str


@dataclass(frozen=True)
class LostAnswer:
    """A binding whose client was cut off without an answer."""

    instance: str | None
    """``instance`` of the decision record the binding carries."""
    pod: str
    node: str
    late_s: float
    """How long after the client was cut off the binding reached the API server."""


@dataclass(frozen=True)
class BindingAttempt:
    """A binding the operator sent, as the proxy saw it go through."""

    instance: str | None
    """``instance`` of the decision record the binding carries."""
    pod: str
    node: str
    sent_at: float
    """Wall time the proxy received it."""
    status: int
    """The API server's answer (0: it could not be reached)."""


@dataclass
class ProxyCounters:
    """What the proxy did."""

    forwarded: int = 0
    reset: int = 0
    cut: int = 0
    gone: int = 0
    held: int = 0
    #: Watch events of bound pods held back by a lag.
    lagged: int = 0
    #: Bindings whose answer was lost (their client cut off).
    lost: int = 0
    #: Requests slowed down.
    slowed: int = 0


class ApiProxy:
    """The proxy, listening on 127.0.0.1 on a free port once started."""

    def __init__(self, upstream_url: str, ca_cert: Path, cert: Path, key: Path) -> None:
        parts = urlsplit(upstream_url)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 443)
        self.server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_context.load_cert_chain(str(cert), str(key))
        self.server_context.set_alpn_protocols(["http/1.1"])
        self.client_context = ssl.create_default_context(cafile=str(ca_cert))
        self.counters = ProxyCounters()
        self._lock = threading.Lock()
        self._connections: dict[int, ClientConnection] = {}
        self._refuse_until = 0.0
        self._expired_below: int | None = None
        self._binding_delay_s = 0.0
        self._latency_s = 0.0
        self._watch_lag_s = 0.0
        self._held: list[HeldBinding] = []
        self._answers_to_lose = 0
        self._late_s: tuple[float, ...] = (0.0,)
        self.lost_answers: list[LostAnswer] = []
        self.attempts: list[BindingAttempt] = []
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="api-proxy", daemon=True
        )

    @property
    def url(self) -> str:
        """The proxy's HTTPS address."""
        host, port = self._server.server_address[:2]
        return f"https://{host!s}:{port}"

    def start(self) -> ApiProxy:
        """Serve in a thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every connection."""
        self._server.shutdown()
        self._server.server_close()
        for connection in self.connections():
            connection.close()

    def connections(self) -> list[ClientConnection]:
        """The open client connections."""
        with self._lock:
            return list(self._connections.values())

    def cut(self, mode: CutMode, hold_s: float, expired_below: int | None = None) -> int:
        """Close every connection and reset new ones for ``hold_s`` seconds (see the
        module docstring); return how many connections were cut."""
        with self._lock:
            self._refuse_until = time.monotonic() + hold_s
            if mode is CutMode.EXPIRE:
                self._expired_below = expired_below
        cut = 0
        for connection in self.connections():
            if mode is CutMode.EXPIRE and connection.end_watch_with_gone():
                self.count("gone")
            connection.close()
            cut += 1
        with self._lock:
            self.counters.cut += cut
        return cut

    def refusing(self) -> bool:
        """Whether new connections are reset now."""
        return time.monotonic() < self._refuse_until

    def slow_requests(self, seconds: float) -> None:
        """Hold every request but a watch this long before it goes on (0: none)."""
        self._latency_s = seconds

    def latency(self, watch: bool) -> float:
        """How long a request waits before it goes on (counted when it does)."""
        latency = 0.0 if watch else self._latency_s
        if latency > 0:
            self.count("slowed")
        return latency

    def delay_bindings(self, seconds: float) -> None:
        """Hold every binding back this long before forwarding it (0: no delay)."""
        self._binding_delay_s = seconds

    def lose_binding_answers(self, count: int, late_s: Sequence[float] = (0.0,)) -> None:
        """Cut the client off from the next ``count`` bindings (0: none) without an
        answer; each reaches the API server the next of ``late_s`` seconds later."""
        with self._lock:
            self._answers_to_lose = count
            self._late_s = tuple(late_s) or (0.0,)

    def answer_lost(self, path: str, body: bytes | None) -> float | None:
        """Whether this binding's answer is lost: how long after its client is cut off it
        goes on to the API server; None when it is relayed as usual."""
        pod, node, instance = _binding_target(path, body)
        with self._lock:
            if self._answers_to_lose <= 0:
                return None
            self._answers_to_lose -= 1
            late_s = self._late_s[len(self.lost_answers) % len(self._late_s)]
            self.lost_answers.append(LostAnswer(instance, pod, node, late_s))
            self.counters.lost += 1
        return late_s

    def lag_bindings(self, seconds: float) -> None:
        """Relay the watch events of bound, unfinished pods this long after they arrived
        (0: at once, and every one held is relayed now)."""
        self._watch_lag_s = seconds

    def lagging(self) -> bool:
        """Whether watch events are held back now."""
        return self._watch_lag_s > 0

    def watch_lag_of(self, line: bytes) -> float:
        """How long a watch line is held back before it is relayed."""
        lag = self._watch_lag_s
        if lag <= 0 or not shows_a_bound_pod(line):
            return 0.0
        self.count("lagged")
        return lag

    def count(self, what: str) -> None:
        """Count one event (a field of :class:`ProxyCounters`)."""
        with self._lock:
            setattr(self.counters, what, getattr(self.counters, what) + 1)

    def held_bindings(self) -> list[HeldBinding]:
        """The bindings being held back now."""
        with self._lock:
            return list(self._held)

    def expired(self, path: str) -> bool:
        """Whether a watch request resumes from a resourceVersion the cut expired."""
        below = self._expired_below
        query = parse_qs(urlsplit(path).query)
        version = (query.get("resourceVersion") or [""])[0]
        return below is not None and version.isdigit() and 0 < int(version) <= below

    def hold(self, path: str, body: bytes | None) -> None:
        """Hold a binding back for the configured delay."""
        delay = self._binding_delay_s
        if delay <= 0:
            return
        held = HeldBinding(*_binding_target(path, body)[:2])
        with self._lock:
            self._held.append(held)
            self.counters.held += 1
        try:
            time.sleep(delay)
        finally:
            with self._lock:
                self._held.remove(held)

    def record_binding(self, path: str, body: bytes | None, sent_at: float, status: int) -> None:
        """Note a binding that went through (or could not)."""
        pod, node, instance = _binding_target(path, body)
        with self._lock:
            self.attempts.append(BindingAttempt(instance, pod, node, sent_at, status))

    def connection_of(self, sock: socket.socket) -> ClientConnection:
        """The tracked connection of a client socket."""
        with self._lock:
            return self._connections[id(sock)]

    def register(self, sock: socket.socket) -> ClientConnection:
        """Track a new client connection."""
        connection = ClientConnection(sock)
        with self._lock:
            self._connections[id(sock)] = connection
        return connection

    def unregister(self, sock: socket.socket) -> None:
        """Forget a closed client connection."""
        with self._lock:
            connection = self._connections.pop(id(sock), None)
        if connection is not None and connection.upstream is not None:
            connection.upstream.close()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, proxy: ApiProxy) -> None:
        self.proxy = proxy
        super().__init__(("127.0.0.1", 0), ProxyHandler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.proxy.refusing():
            self.proxy.count("reset")
            reset(request)
            return
        try:
            tls = self.proxy.server_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            reset(request)
            return
        self.proxy.register(tls)
        try:
            ProxyHandler(tls, client_address, self)
        except (OSError, ssl.SSLError, http.client.HTTPException, ValueError):
            pass
        finally:
            self.proxy.unregister(tls)
            with contextlib.suppress(OSError):
                tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Broken connections are what this proxy is for; nothing to report."""


def _binding_target(path: str, body: bytes | None) -> tuple[str, str, str | None]:
    """Pod (``namespace/name``), node and deciding instance of a binding request."""
    parts = urlsplit(path).path.split("/")
    pod = "/".join(parts[4:7:2]) if len(parts) > 6 else path
    try:
        binding: dict[str, Any] = json.loads(body or b"{}")
        node = str(binding["target"]["name"])
        record = (binding.get("metadata") or {}).get("annotations", {}).get(DECISION_ANNOTATION)
        instance = json.loads(record).get("instance") if record else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return pod, "?", None
    return pod, node, None if instance is None else str(instance)
