"""A fake Prometheus on loopback whose answers to ``/api/v1/query`` a fault chooses.

Healthy, it answers every instant query with the same utilisation for every node,
measured now. A fault can make it answer garbage (each query gets the next of several
kinds: a body that is not JSON, values that are not numbers, negative or absurd values,
a result that is not a vector), samples stamped an hour in the future or an hour ago, or
kill it: the port is closed and connections are refused until it is started again.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

HEALTHY_UTILISATION = "0.3"
SKEW_S = 3600.0


class PrometheusAnswer(StrEnum):
    """What the fake answers."""

    HEALTHY = "healthy"
    GARBAGE = "garbage"
    FUTURE = "future"
    STALE = "stale"


def _vector(nodes: list[str], at: float, value: str) -> dict[str, Any]:
    result = [{"metric": {"node": n}, "value": [at, value]} for n in nodes]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def garbage_answers(nodes: list[str], now: float) -> list[bytes]:
    """The kinds of garbage, one per query in turn."""
    node = nodes[0] if nodes else "node-000"
    bad_values = ["NaN", "+Inf", "-0.5", "1e400", "lots"]
    bodies: list[Any] = [_vector([node], now, value) for value in bad_values]
    bodies += [
        {"status": "success", "data": {"resultType": "matrix", "result": {"node": node}}},
        {"status": "success", "data": {"resultType": "vector", "result": [{"value": "x"}]}},
        {"status": "error", "errorType": "bad_data", "error": "garbage on purpose"},
    ]
    return [b"<html>this is not Prometheus</html>"] + [json.dumps(b).encode() for b in bodies]


class FakePrometheus:
    """The fake, on a fixed loopback port once started (so it can be killed and revived)."""

    def __init__(self, nodes: Callable[[], list[str]], port: int = 0) -> None:
        self.nodes = nodes
        self.answer = PrometheusAnswer.HEALTHY
        self.queries = 0
        self._garbage: Iterator[int] = itertools.cycle(range(len(garbage_answers([], 0))))
        self._port = port
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """Its base URL (the port is fixed at the first start)."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def alive(self) -> bool:
        """Whether it is listening."""
        return self._server is not None

    def start(self) -> FakePrometheus:
        """Listen (again) and serve in a thread."""
        server = ThreadingHTTPServer(("127.0.0.1", self._port), self._handler())
        server.daemon_threads = True
        self._port = int(server.server_address[1])
        self._server = server
        threading.Thread(target=server.serve_forever, name="fake-prometheus", daemon=True).start()
        return self

    def kill(self) -> None:
        """Stop listening: queries are refused until :meth:`start`."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def body(self) -> tuple[int, bytes]:
        """The status and body of the answer to one query, as configured now."""
        self.queries += 1
        now = time.time()
        nodes = self.nodes()
        if self.answer is PrometheusAnswer.GARBAGE:
            return 200, garbage_answers(nodes, now)[next(self._garbage)]
        at = {
            PrometheusAnswer.FUTURE: now + SKEW_S,
            PrometheusAnswer.STALE: now - SKEW_S,
        }.get(self.answer, now)
        return 200, json.dumps(_vector(nodes, at, HEALTHY_UTILISATION)).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                """Answer an instant query; anything else is 404."""
                if urlsplit(self.path).path != "/api/v1/query":
                    self.send_error(404)
                    return
                status, body = fake.body()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Silent."""

        return Handler
