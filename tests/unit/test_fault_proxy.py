"""The fault proxy against a small HTTPS stand-in for the API server: relaying, 410 Gone
injected into a watch, the partition, and bindings held back and recorded."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hybrid_lab.faults.proxy import ApiProxy, CutMode
from hybrid_lab.faults.records import DECISION_ANNOTATION

EVENT = {"type": "ADDED", "object": {"metadata": {"name": "p", "resourceVersion": "7"}}}


def _certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class Upstream(BaseHTTPRequestHandler):
    """Lists, a watch that sends one event and stays open, bindings."""

    protocol_version = "HTTP/1.1"
    watch_open = threading.Event()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        """A list, or a watch."""
        if "watch=true" not in self.path:
            self._json(200, {"kind": "PodList", "items": []})
            return
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        line = json.dumps(EVENT).encode() + b"\n"
        self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
        self.wfile.flush()
        Upstream.watch_open.wait(10)

    def do_POST(self) -> None:
        """A binding."""
        self.rfile.read(int(self.headers["Content-Length"]))
        self._json(201, {"kind": "Status", "code": 201})

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[tuple[ApiProxy, requests.Session]]:
    cert, key = _certificate(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Upstream.watch_open.clear()
    running = ApiProxy(f"https://127.0.0.1:{server.server_address[1]}", cert, cert, key).start()
    session = requests.Session()
    session.trust_env = False
    session.verify = str(cert)
    try:
        yield running, session
    finally:
        Upstream.watch_open.set()
        running.stop()
        server.shutdown()


def test_requests_are_relayed_and_watches_streamed(
    proxy: tuple[ApiProxy, requests.Session],
) -> None:
    running, session = proxy
    assert session.get(f"{running.url}/api/v1/pods", timeout=5).json()["kind"] == "PodList"
    watch = session.get(
        f"{running.url}/api/v1/pods?watch=true&resourceVersion=5", stream=True, timeout=5
    )
    assert json.loads(next(watch.iter_lines())) == EVENT
    watch.close()


def test_an_expiring_cut_ends_watches_with_410_and_refuses_old_versions(
    proxy: tuple[ApiProxy, requests.Session],
) -> None:
    running, session = proxy
    watch = session.get(
        f"{running.url}/api/v1/pods?watch=true&resourceVersion=5", stream=True, timeout=5
    )
    lines = watch.iter_lines()
    assert json.loads(next(lines))["type"] == "ADDED"
    assert running.cut(CutMode.EXPIRE, hold_s=0.5, expired_below=7) >= 1
    gone = json.loads(next(lines))
    assert gone["type"] == "ERROR" and gone["object"]["code"] == 410
    assert list(lines) == []
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{running.url}/api/v1/pods", verify=session.verify, timeout=5)
    time.sleep(0.6)
    old = session.get(f"{running.url}/api/v1/pods?watch=true&resourceVersion=7", timeout=5)
    assert json.loads(old.text)["object"]["reason"] == "Expired"
    fresh = session.get(
        f"{running.url}/api/v1/pods?watch=true&resourceVersion=8", stream=True, timeout=5
    )
    assert json.loads(next(fresh.iter_lines()))["type"] == "ADDED"
    fresh.close()
    assert running.counters.gone == 2


def test_a_plain_cut_closes_watches_without_a_word(
    proxy: tuple[ApiProxy, requests.Session],
) -> None:
    running, session = proxy
    watch = session.get(
        f"{running.url}/api/v1/pods?watch=true&resourceVersion=5", stream=True, timeout=5
    )
    lines = watch.iter_lines()
    next(lines)
    running.cut(CutMode.DISCONNECT, hold_s=0.2)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        list(lines)
    time.sleep(0.3)
    old = session.get(
        f"{running.url}/api/v1/pods?watch=true&resourceVersion=1", stream=True, timeout=5
    )
    assert json.loads(next(old.iter_lines()))["type"] == "ADDED"
    old.close()


def test_a_slow_api_server_answers_every_call_late_but_watches_stream_on_time(
    proxy: tuple[ApiProxy, requests.Session],
) -> None:
    running, session = proxy
    running.slow_requests(0.4)
    began = time.monotonic()
    assert session.get(f"{running.url}/api/v1/pods", timeout=5).json()["kind"] == "PodList"
    assert time.monotonic() - began >= 0.4
    watch = session.get(
        f"{running.url}/api/v1/pods?watch=true&resourceVersion=5", stream=True, timeout=5
    )
    assert json.loads(next(watch.iter_lines())) == EVENT
    watch.close()
    assert running.counters.slowed == 1  # the list, not the watch
    running.slow_requests(0)
    session.get(f"{running.url}/api/v1/pods", timeout=5)
    assert running.counters.slowed == 1


def test_bindings_are_held_back_and_recorded_with_their_author(
    proxy: tuple[ApiProxy, requests.Session],
) -> None:
    running, session = proxy
    running.delay_bindings(0.5)
    record = json.dumps({"instance": "replica-a"})
    body = {
        "metadata": {"name": "p", "annotations": {DECISION_ANNOTATION: record}},
        "target": {"name": "node-7"},
    }
    url = f"{running.url}/api/v1/namespaces/ns/pods/p/binding"
    sent = threading.Thread(target=lambda: session.post(url, json=body, timeout=5))
    sent.start()
    time.sleep(0.2)
    assert [(b.pod, b.node) for b in running.held_bindings()] == [("ns/p", "node-7")]
    sent.join()
    assert running.held_bindings() == []
    [attempt] = running.attempts
    assert (attempt.instance, attempt.pod, attempt.node, attempt.status) == (
        "replica-a",
        "ns/p",
        "node-7",
        201,
    )


def test_a_binding_whose_answer_is_lost_still_reaches_the_api_server_late(
    proxy: tuple[ApiProxy, requests.Session],
) -> None:
    running, session = proxy
    running.lose_binding_answers(1, late_s=(1.0,))
    body = {"metadata": {"name": "p"}, "target": {"name": "node-7"}}
    url = f"{running.url}/api/v1/namespaces/ns/pods/p/binding"
    with pytest.raises(requests.exceptions.ConnectionError):
        session.post(url, json=body, timeout=5)
    assert running.attempts == []  # cut off before the binding went on
    assert [(a.pod, a.node, a.late_s) for a in running.lost_answers] == [("ns/p", "node-7", 1.0)]
    deadline = time.monotonic() + 5
    while not running.attempts and time.monotonic() < deadline:
        time.sleep(0.05)
    [attempt] = running.attempts
    assert (attempt.pod, attempt.status) == ("ns/p", 201)  # the API server took it
    # Only the next ``count`` lose their answer.
    assert session.post(url, json=body, timeout=5).status_code == 201
    assert running.counters.lost == 1
