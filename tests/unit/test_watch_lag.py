"""The fault proxy's lagged watch lines: events of bound, unfinished pods are held back and
overtaken by every other event; ending the lag relays what is held at once."""

from __future__ import annotations

import json
import threading
import time

from hybrid_lab.faults.watch_lag import LaggedLines, shows_a_bound_pod


def _line(name: str, node: str | None, phase: str, kind: str = "MODIFIED") -> bytes:
    spec = {"nodeName": node} if node else {}
    obj = {"kind": "Pod", "metadata": {"name": name}, "spec": spec, "status": {"phase": phase}}
    return json.dumps({"type": kind, "object": obj}).encode() + b"\n"


def _name(line: bytes) -> str:
    return str(json.loads(line)["object"]["metadata"]["name"])


def test_only_events_of_bound_unfinished_pods_are_lagged() -> None:
    assert shows_a_bound_pod(_line("a", "n1", "Running"))
    assert shows_a_bound_pod(_line("a", "n1", "Pending"))
    assert not shows_a_bound_pod(_line("a", None, "Pending"))
    assert not shows_a_bound_pod(_line("a", "n1", "Succeeded"))
    assert not shows_a_bound_pod(_line("a", "n1", "Running", kind="DELETED"))
    assert not shows_a_bound_pod(b"not json\n")


def test_a_binding_is_overtaken_by_later_events_until_its_lag_passed() -> None:
    lag = {"on": True}
    lines = LaggedLines(lambda line: 0.3 if shows_a_bound_pod(line) else 0.0, lambda: lag["on"])
    lines.put(_line("bound", "n1", "Running"))
    lines.put(_line("done", "n1", "Succeeded"))
    lines.put(_line("new", None, "Pending"))
    started = time.monotonic()
    first = [_name(lines.next()), _name(lines.next())]
    assert first == ["done", "new"]
    assert _name(lines.next()) == "bound"
    assert time.monotonic() - started >= 0.3
    lines.end()
    assert lines.next() == b""


def test_ending_the_lag_relays_what_is_held_at_once() -> None:
    lag = {"on": True}
    lines = LaggedLines(lambda line: 60.0, lambda: lag["on"])
    lines.put(_line("bound", "n1", "Running"))
    threading.Timer(0.2, lambda: lag.update(on=False)).start()
    started = time.monotonic()
    assert _name(lines.next()) == "bound"
    assert time.monotonic() - started < 5.0
