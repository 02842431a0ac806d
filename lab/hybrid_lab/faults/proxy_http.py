"""The HTTP side of the fault proxy: one handler per client connection, relaying requests
to the API server and watch streams back, one chunk per event.

A plain response is read whole and sent with its length; a watch (``watch=true``) is sent
chunked, line by line, so that :class:`ClientConnection` can end it with a ``410 Gone``
event between two lines, each line once it is due (:mod:`hybrid_lab.faults.watch_lag`).
Each client connection has an upstream connection of its own; when that one went stale
(the API server restarted) the request is sent once more on a fresh one, and when the API
server cannot be reached the client's connection is reset. A binding whose answer is to
be lost has its client's connection reset first, and is sent on afterwards.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from hybrid_lab.faults.watch_lag import LaggedLines

GONE_EVENT = {
    "type": "ERROR",
    "object": {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": "Expired",
        "code": 410,
        "message": "too old resource version",
    },
}
GONE_LINE = json.dumps(GONE_EVENT).encode() + b"\n"
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "te", "trailers", "transfer-encoding", "upgrade", "host"}
    | {"content-length", "proxy-authenticate", "proxy-authorization"}
)
#: Longer than any watch the operator asks for (kopf asks for 300 s).
UPSTREAM_TIMEOUT_S = 330.0
STALE_UPSTREAM = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked HTTP body."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def reset(sock: socket.socket) -> None:
    """Close with a TCP reset, as a refused or broken connection looks to the client."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


def is_watch(path: str) -> bool:
    """Whether a request path asks for a watch stream."""
    return (parse_qs(urlsplit(path).query).get("watch") or [""])[0] in ("true", "1")


class ClientConnection:
    """One connection from the operator: its socket, its upstream, one writer at a time."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lock = threading.Lock()
        self.upstream: http.client.HTTPSConnection | None = None
        self.watching = False
        self.ended = False

    def send(self, data: bytes) -> bool:
        """Write ``data`` unless the connection was ended; False when it cannot be."""
        with self.lock:
            if self.ended:
                return False
            try:
                self.sock.sendall(data)
            except OSError:
                self.ended = True
                return False
            return True

    def end_watch_with_gone(self) -> bool:
        """Write the 410 event and the end of the body into an open watch."""
        with self.lock:
            if self.ended or not self.watching:
                return False
            with contextlib.suppress(OSError):
                self.sock.sendall(chunk(GONE_LINE) + b"0\r\n\r\n")
            self.ended = True
            return True

    def hang_up(self) -> None:
        """End the client's side at once without a word; the upstream stays usable."""
        with self.lock:
            self.ended = True
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)
        reset(self.sock)

    def close(self) -> None:
        """Shut both directions, and the upstream, so blocked readers wake up."""
        with self.lock:
            self.ended = True
        # socket.socket.shutdown, not SSLSocket.shutdown: the handler thread may be reading.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)
        upstream = self.upstream
        if upstream is not None and upstream.sock is not None:
            with contextlib.suppress(OSError):
                upstream.sock.shutdown(socket.SHUT_RDWR)


class ProxyControl(Protocol):
    """What the handler needs from the proxy."""

    upstream: tuple[str, int]
    client_context: Any

    def connection_of(self, sock: socket.socket) -> ClientConnection:
        """The tracked connection of a client socket."""
        ...

    def expired(self, path: str) -> bool:
        """Whether a watch resumes from before an expiring cut."""
        ...

    def latency(self, watch: bool) -> float:
        """How long a request waits before it goes on (an API server answering late)."""
        ...

    def hold(self, path: str, body: bytes | None) -> None:
        """Hold a binding back, if bindings are delayed."""
        ...

    def answer_lost(self, path: str, body: bytes | None) -> float | None:
        """How late a binding whose answer is lost goes on (None: relayed as usual)."""
        ...

    def count(self, what: str) -> None:
        """Count one event of the proxy's."""
        ...

    def record_binding(self, path: str, body: bytes | None, sent_at: float, status: int) -> None:
        """Note a binding that went through (or could not)."""
        ...

    def watch_lag_of(self, line: bytes) -> float:
        """How long a watch line is held back before it is relayed (0: not at all)."""
        ...

    def lagging(self) -> bool:
        """Whether watch lines are held back now."""
        ...


class ProxyHandler(BaseHTTPRequestHandler):
    """Relays the requests of one client connection."""

    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        """Find this connection's state."""
        super().setup()
        self.proxy: ProxyControl = self.server.proxy  # type: ignore[attr-defined]
        self.connection_state = self.proxy.connection_of(self.request)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: one line per request would flood the log."""

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        watch = is_watch(self.path)
        if watch and self.proxy.expired(self.path):
            self._send_gone()
            return
        binding = self.command == "POST" and urlsplit(self.path).path.endswith("/binding")
        received_at = time.time()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        latency = self.proxy.latency(watch)
        if latency > 0:
            time.sleep(latency)
        if binding:
            late_s = self.proxy.answer_lost(self.path, body)
            if late_s is not None:
                self._lose_answer(body, headers, received_at, late_s)
                return
            self.proxy.hold(self.path, body)
        try:
            response = self._upstream_call(body, headers)
        except (OSError, http.client.HTTPException):
            if binding:
                self.proxy.record_binding(self.path, body, received_at, 0)
            self.proxy.count("reset")
            self.close_connection = True
            reset(self.connection_state.sock)
            return
        self.proxy.count("forwarded")
        if binding:
            self.proxy.record_binding(self.path, body, received_at, response.status)
        if watch and response.status == 200:
            self._stream(response)
        else:
            self._relay(response)

    def _lose_answer(
        self, body: bytes | None, headers: dict[str, str], received_at: float, late_s: float
    ) -> None:
        """Reset the client's connection without an answer, then send the binding on to
        the API server ``late_s`` seconds later; its answer goes nowhere."""
        self.close_connection = True
        self.connection_state.hang_up()
        time.sleep(late_s)
        status = 0
        with contextlib.suppress(OSError, http.client.HTTPException):
            response = self._upstream_call(body, headers)
            response.read()
            status = response.status
        self.proxy.record_binding(self.path, body, received_at, status)

    def do_GET(self) -> None:
        """Relay a GET."""
        self._forward()

    def do_POST(self) -> None:
        """Relay a POST."""
        self._forward()

    def do_PUT(self) -> None:
        """Relay a PUT."""
        self._forward()

    def do_PATCH(self) -> None:
        """Relay a PATCH."""
        self._forward()

    def do_DELETE(self) -> None:
        """Relay a DELETE."""
        self._forward()

    def _upstream_call(
        self, body: bytes | None, headers: dict[str, str]
    ) -> http.client.HTTPResponse:
        state = self.connection_state
        fresh = state.upstream is None
        while True:
            if state.upstream is None:
                host, port = self.proxy.upstream
                state.upstream = http.client.HTTPSConnection(
                    host, port, timeout=UPSTREAM_TIMEOUT_S, context=self.proxy.client_context
                )
            try:
                state.upstream.request(self.command, self.path, body=body, headers=headers)
                response: http.client.HTTPResponse = state.upstream.getresponse()
                return response
            except STALE_UPSTREAM:
                self._drop_upstream()
                if fresh:
                    raise
                fresh = True  # a reused connection went stale: once more on a fresh one

    def _head(self, status: int, reason: str, headers: list[tuple[str, str]]) -> bytes:
        lines = [f"HTTP/1.1 {status} {reason}"]
        lines += [f"{k}: {v}" for k, v in headers if k.lower() not in HOP_BY_HOP]
        return ("\r\n".join(lines) + "\r\n").encode("latin-1")

    def _relay(self, response: http.client.HTTPResponse) -> None:
        data = response.read()
        head = self._head(response.status, response.reason, response.getheaders())
        self.connection_state.send(head + f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
        if response.will_close:
            self._drop_upstream()

    def _stream(self, response: http.client.HTTPResponse) -> None:
        state = self.connection_state
        head = self._head(response.status, response.reason, response.getheaders())
        with state.lock:
            state.watching = True
        if not state.send(head + b"Transfer-Encoding: chunked\r\n\r\n"):
            return
        lines = LaggedLines(self.proxy.watch_lag_of, self.proxy.lagging)
        threading.Thread(target=_read_lines, args=(response, lines), daemon=True).start()
        try:
            while line := lines.next():
                if not state.send(chunk(line)):
                    break
            else:
                state.send(b"0\r\n\r\n")
        finally:
            with state.lock:
                state.watching = False
            # Whatever the stream left unread, neither connection is reused after a watch.
            self.close_connection = True
            self._drop_upstream()

    def _send_gone(self) -> None:
        self.proxy.count("gone")
        head = self._head(200, "OK", [("Content-Type", "application/json")])
        self.connection_state.send(
            head + b"Transfer-Encoding: chunked\r\n\r\n" + chunk(GONE_LINE) + b"0\r\n\r\n"
        )
        self.close_connection = True

    def _drop_upstream(self) -> None:
        state = self.connection_state
        if state.upstream is not None:
            state.upstream.close()
            state.upstream = None


def _read_lines(response: http.client.HTTPResponse, lines: LaggedLines) -> None:
    """Hand each line of a watch stream over as it arrives, then the end."""
    try:
        while line := response.readline():
            lines.put(line)
    except (OSError, ValueError, AttributeError, http.client.HTTPException):
        pass  # the stream was closed under the reader
    finally:
        lines.end()
