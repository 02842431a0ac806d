"""The demo's reservation round: a wide pod behind a stream of small ones from another team.

Every kwok node is filled with four 2-GPU pods of ``demo-fill`` pinned to it; one node
drains first, the others stay full. A whole-node pod (8 GPUs) of ``demo-team-a`` arrives,
then a stream of small pods of ``demo-team-b``, one every half second, while that node
empties. Under ``hybrid-reserve`` the wide pod reserves the draining node
(``status.nominatedNodeName`` and a ``Reserved`` Event naming its predicted start) and is
bound there when it empties; under kube-scheduler the small pods take the GPUs as they
free up, and the wide pod waits until the other nodes empty. Every pod carries the
``hybrid-scheduler.io/expected-runtime`` annotation, so predictions are close to exact.

The pod builder, the fill and the reading of a ``Reserved`` Event are shared with the
e2e test of the operator's reservations; following a round and printing it is in
:mod:`hybrid_lab.demo_reservation_round`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hybrid_lab.demo import table
from hybrid_lab.devcluster.apiserver import ApiServer
from hybrid_lab.devcluster.errors import DevClusterError
from hybrid_lab.devcluster.workload import training_pod, wait_for
from hybrid_operator.k8s.convert import PERFORMANCE_LABEL, RUNTIME_ANNOTATION
from hybrid_operator.reservations import parse_notice
from hybrid_policy.resources import GPU

FILL = "demo-fill"
TEAM_A = "demo-team-a"
TEAM_B = "demo-team-b"
WIDE = "wide"
#: GPUs of the wide pod (a whole seed-paper node), and of each fill and stream pod.
WIDE_GPUS = 8
SMALL_GPUS = 2
#: Kubernetes writes times in whole seconds: the Event's predicted start and the start
#: times a prediction is made from are each up to a second early.
WHOLE_SECONDS_SLACK = 2.0


class WidePodError(DevClusterError):
    """The wide pod did not get what the round shows (a reservation, its binding)."""


@dataclass(frozen=True)
class RoundShape:
    """The round's times, in seconds, and how many small pods the stream sends."""

    #: How long every node but the draining one stays full.
    busy_s: int = 40
    #: When the draining node's last pod ends; its four pods end evenly from half of it.
    drain_s: int = 12
    stream: int = 16
    small_runtime_s: int = 30
    wide_runtime_s: int = 5
    #: One small pod every ``interval_s``.
    interval_s: float = 0.5

    def draining_s(self) -> tuple[int, ...]:
        """Run times of the draining node's four pods (6, 8, 10, 12 for ``drain_s`` 12)."""
        return tuple(round(self.drain_s / 2 + i * self.drain_s / 6) for i in range(4))


def estimated_pod(
    name: str,
    gpus: int,
    runtime_s: float,
    estimate_s: float,
    scheduler_name: str | None,
    node: str | None = None,
) -> dict[str, Any]:
    """A simulated pod that kwok runs ``runtime_s`` and that says it needs ``estimate_s``
    of work at performance 100 (``hybrid-scheduler.io/expected-runtime``)."""
    body = training_pod(
        name,
        gpus=gpus,
        cpu="1",
        memory="1Gi",
        runtime=f"{runtime_s:g}s",
        node=node,
        scheduler_name=scheduler_name,
    )
    body["metadata"]["annotations"][RUNTIME_ANNOTATION] = f"{estimate_s:.3f}s"
    return body


def node_performance(api: ApiServer) -> dict[str, float]:
    """Each kwok node's performance label; a node that is not 8 GPUs is refused."""
    performance = {}
    for node in api.items("/api/v1/nodes", labelSelector="type=kwok"):
        name = node["metadata"]["name"]
        gpus = int(node["status"].get("allocatable", {}).get(GPU, 0))
        if gpus != WIDE_GPUS:
            raise DevClusterError(
                f"the reservation round needs kwok nodes of {WIDE_GPUS} GPUs; {name} has {gpus}"
            )
        performance[name] = float(node["metadata"]["labels"].get(PERFORMANCE_LABEL, 100))
    if len(performance) < 2:
        raise DevClusterError("the reservation round needs at least two kwok nodes")
    return performance


def draining_node(performance: dict[str, float]) -> str:
    """The node that drains first: the last by name."""
    return sorted(performance)[-1]


def fill_nodes(
    api: ApiServer,
    namespace: str,
    performance: dict[str, float],
    draining_s: Sequence[float],
    busy_s: float,
    scheduler_name: str | None,
) -> list[str]:
    """Pods of ``SMALL_GPUS`` pinned on every node, one per entry of ``draining_s``: on the
    draining node they run those times, elsewhere ``busy_s``; their names."""
    names, draining = [], draining_node(performance)
    for node, perf in sorted(performance.items()):
        runtimes = draining_s if node == draining else (busy_s,) * len(draining_s)
        for i, runtime in enumerate(runtimes):
            name = f"{node}-{i}"
            body = estimated_pod(
                name, SMALL_GPUS, runtime, runtime * perf / 100, scheduler_name, node
            )
            api.create(f"/api/v1/namespaces/{namespace}/pods", body)
            names.append(name)
    return names


def wait_running(api: ApiServer, namespace: str, names: Sequence[str], timeout_s: float) -> None:
    """Until every pod of ``names`` runs (the nodes are full)."""
    pods = f"/api/v1/namespaces/{namespace}/pods"

    def full() -> bool | None:
        return (
            all(api.get(f"{pods}/{n}")["status"].get("phase") == "Running" for n in names) or None
        )

    wait_for("the nodes to be full", full, timeout_s)


def reserved_events(api: ApiServer, namespace: str, name: str) -> list[dict[str, Any]]:
    """The pod's ``Reserved`` Events."""
    selector = f"involvedObject.name={name}"
    found = api.items(f"/api/v1/namespaces/{namespace}/events", fieldSelector=selector)
    return [e for e in found if e.get("reason") == "Reserved"]


def predicted_start_s(event: dict[str, Any]) -> float:
    """The predicted start a ``Reserved`` Event names (HH:MM:SS UTC, on the Event's day),
    seconds since the epoch."""
    notice = parse_notice(event["message"])
    if notice is None:
        raise WidePodError(f"the Reserved Event names no predicted start: {event['message']!r}")
    posted = datetime.fromisoformat(event["firstTimestamp"].replace("Z", "+00:00"))
    clock = datetime.strptime(notice.predicted_start, "%H:%M:%S UTC").time()
    start = datetime.combine(posted.date(), clock, UTC)
    if start < posted - timedelta(hours=12):
        start += timedelta(days=1)
    return start.timestamp()


def on_time(bound_at_s: float, predicted_s: float, pass_s: float) -> bool:
    """Whether a binding came no later than the predicted start plus one pass (and the
    slack of times written in whole seconds)."""
    return bound_at_s <= predicted_s + pass_s + WHOLE_SECONDS_SLACK


def verdict_line(bound_at_s: float, predicted_s: float, pass_s: float) -> str:
    """``started no later than predicted plus one pass: yes (...)``."""
    answer = "yes" if on_time(bound_at_s, predicted_s, pass_s) else "no"
    late = bound_at_s - predicted_s
    return (
        f"started no later than predicted plus one pass: {answer} ({late:+.1f} s from the "
        f"predicted start; allowed +{pass_s + WHOLE_SECONDS_SLACK:g} s: a {pass_s:g} s pass "
        f"and {WHOLE_SECONDS_SLACK:g} s for times written in whole seconds)"
    )


def clock(epoch_s: float) -> str:
    """``23:59:10.4 UTC``."""
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%H:%M:%S.%f")[:10] + " UTC"


@dataclass
class WideRound:
    """What one scheduler made of the wide pod and the stream (epoch seconds by pod name)."""

    label: str
    smalls: int
    submitted: dict[str, float] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)
    finished: dict[str, float] = field(default_factory=dict)

    def wide_wait(self) -> float:
        """From the wide pod's submission to its start, seconds."""
        if WIDE not in self.started:
            return math.nan
        return self.started[WIDE] - self.submitted[WIDE]

    def small_wait(self) -> float:
        """Mean time from a small pod's submission to its start, seconds."""
        waits = [self.started[k] - self.submitted[k] for k in self.started if k != WIDE]
        return sum(waits) / len(waits) if waits else math.nan

    def all_done(self) -> float:
        """From the wide pod's submission until every pod of the round succeeded."""
        if len(self.finished) < self.smalls + 1:
            return math.nan
        return max(self.finished.values()) - self.submitted[WIDE]


def wide_table(rounds: list[WideRound]) -> str:
    """The rounds side by side, one column per scheduler."""
    rows = [
        ("wide pod's wait (s)", [f"{r.wide_wait():.1f}" for r in rounds]),
        ("small pods' mean wait (s)", [f"{r.small_wait():.1f}" for r in rounds]),
        ("pods completed", [f"{len(r.finished)}/{r.smalls + 1}" for r in rounds]),
        ("all done after (s)", [f"{r.all_done():.1f}" for r in rounds]),
    ]
    return table([r.label for r in rounds], rows)
