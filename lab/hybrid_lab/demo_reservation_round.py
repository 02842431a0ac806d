"""One reservation round of the demo, followed live (see :mod:`hybrid_lab.demo_reservation`).

The nodes are filled, the wide pod submitted; once its scheduler has looked at it (a
nominated node under hybrid-scheduler, ``PodScheduled=False`` under kube-scheduler) the
stream starts. The API server is polled every quarter second; a line is printed for the
reservation, the ``Reserved`` Event's message as the pod got it, the binding and, under
hybrid-scheduler, whether the binding came no later than the predicted start plus one
pass. Start and end times are when a poll first saw the pod running or succeeded.
"""

from __future__ import annotations

import time
from typing import Any

from hybrid_lab.demo import Print
from hybrid_lab.demo_reservation import (
    FILL,
    SMALL_GPUS,
    TEAM_A,
    TEAM_B,
    WIDE,
    WIDE_GPUS,
    RoundShape,
    WidePodError,
    WideRound,
    clock,
    draining_node,
    estimated_pod,
    fill_nodes,
    predicted_start_s,
    reserved_events,
    verdict_line,
    wait_running,
)
from hybrid_lab.devcluster.apiserver import ApiServer
from hybrid_lab.devcluster.workload import WaitTimeoutError, recreate_namespaces, wait_for
from hybrid_operator.decision_record import DECISION_ANNOTATION, RecordError, parse_record

POLL_S = 0.25
#: Longest wait for the scheduler to look at the wide pod (dozens of passes).
LOOK_S = 30.0
FILL_S = 60.0


def run_round(
    api: ApiServer,
    performance: dict[str, float],
    shape: RoundShape,
    scheduler: str | None,
    label: str,
    out: Print,
    timeout_s: float,
    pass_s: float,
) -> WideRound:
    """Fill the nodes, submit the wide pod and the stream under ``scheduler`` (None:
    kube-scheduler) and follow them until all have succeeded or ``timeout_s`` passed."""
    recreate_namespaces(api, {FILL: 1, TEAM_A: 1, TEAM_B: 1})
    names = fill_nodes(api, FILL, performance, shape.draining_s(), shape.busy_s, scheduler)
    wait_running(api, FILL, names, FILL_S)
    drain = ", ".join(f"{s}" for s in shape.draining_s())
    out(
        f"{label}: {len(performance)} nodes full ({len(names)} pods of {FILL}); "
        f"{draining_node(performance)} empties after {drain} s, the others after {shape.busy_s} s"
    )
    result = WideRound(label, shape.stream)
    wide = estimated_pod(WIDE, WIDE_GPUS, shape.wide_runtime_s, shape.wide_runtime_s, scheduler)
    _submit(api, TEAM_A, wide, result)
    out(f"{label}: submitted {TEAM_A}/{WIDE} ({WIDE_GPUS} GPUs, a whole node)")
    if scheduler is not None:
        node = _nominated(api)
        wait = time.time() - result.submitted[WIDE]
        out(
            f"reserved: {node} for {TEAM_A}/{WIDE} (status.nominatedNodeName {node}), "
            f"{wait:.1f} s after submission"
        )
    else:
        _looked_at(api)
    _follow(api, result, shape, scheduler, out, timeout_s, pass_s)
    started = sum(1 for k in result.started if k != WIDE)
    out(
        f"{label}: small pods' mean wait {result.small_wait():.1f} s "
        f"({started} of {shape.stream} started)"
    )
    return result


def _pod_path(namespace: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{namespace}/pods" + (f"/{name}" if name else "")


def _submit(api: ApiServer, namespace: str, body: dict[str, Any], result: WideRound) -> None:
    api.create(_pod_path(namespace), body)
    result.submitted[body["metadata"]["name"]] = time.time()


def _nominated(api: ApiServer) -> str:
    try:
        node: str = wait_for(
            "a nominated node",
            lambda: api.get(_pod_path(TEAM_A, WIDE))["status"].get("nominatedNodeName"),
            LOOK_S,
        )
    except WaitTimeoutError:
        raise WidePodError(
            f"the wide pod {TEAM_A}/{WIDE} got no reservation: "
            f"no status.nominatedNodeName within {LOOK_S:g} s"
        ) from None
    return node


def _looked_at(api: ApiServer) -> None:
    """Until kube-scheduler has found no room for the wide pod (``PodScheduled=False``)."""

    def unschedulable() -> bool | None:
        conditions = api.get(_pod_path(TEAM_A, WIDE))["status"].get("conditions") or []
        return (
            any(c["type"] == "PodScheduled" and c["status"] == "False" for c in conditions) or None
        )

    wait_for("kube-scheduler to look at the wide pod", unschedulable, LOOK_S)


def _follow(
    api: ApiServer,
    result: WideRound,
    shape: RoundShape,
    scheduler: str | None,
    out: Print,
    timeout_s: float,
    pass_s: float,
) -> None:
    begin = time.time()
    sent, next_small, last_line = 0, begin, begin
    event: dict[str, Any] | None = None
    bound: str | None = None
    while time.time() - begin < timeout_s:
        now = time.time()
        while sent < shape.stream and next_small <= now:
            small = estimated_pod(
                f"small-{sent}", SMALL_GPUS, shape.small_runtime_s, shape.small_runtime_s, scheduler
            )
            _submit(api, TEAM_B, small, result)
            sent, next_small = sent + 1, next_small + shape.interval_s
        wide = _poll(api, result)
        if scheduler is not None and event is None:
            event = _reserved_event(api, out)
        if bound is None and wide["spec"].get("nodeName"):
            bound = wide["spec"]["nodeName"]
            _binding(api, wide, result, scheduler, event, out, pass_s)
        if len(result.finished) == shape.stream + 1:
            return
        if now - last_line >= 2.0:
            out(_live_line(result, now - begin, sent, bound))
            last_line = now
        time.sleep(POLL_S)
    if bound is None:
        raise WidePodError(f"the wide pod {TEAM_A}/{WIDE} was not bound within {timeout_s:g} s")


def _poll(api: ApiServer, result: WideRound) -> dict[str, Any]:
    """Note starts and ends; the wide pod as the API server has it."""
    now = time.time()
    wide: dict[str, Any] = {"spec": {}}
    for namespace in (TEAM_A, TEAM_B):
        for pod in api.items(_pod_path(namespace)):
            name, phase = pod["metadata"]["name"], (pod.get("status") or {}).get("phase")
            if phase in ("Running", "Succeeded"):
                result.started.setdefault(name, now)
            if phase == "Succeeded":
                result.finished.setdefault(name, now)
            if name == WIDE:
                wide = pod
    return wide


def _reserved_event(api: ApiServer, out: Print) -> dict[str, Any] | None:
    found = reserved_events(api, TEAM_A, WIDE)
    if found:
        out(f"Reserved Event on {TEAM_A}/{WIDE}, its message:")
        out(found[0]["message"])
        return found[0]
    return None


def _binding(
    api: ApiServer,
    wide: dict[str, Any],
    result: WideRound,
    scheduler: str | None,
    event: dict[str, Any] | None,
    out: Print,
    pass_s: float,
) -> None:
    node, submitted = wide["spec"]["nodeName"], result.submitted[WIDE]
    if scheduler is None:
        out(
            f"bound: {TEAM_A}/{WIDE} on {node}, "
            f"seen {time.time() - submitted:.1f} s after submission"
        )
        return
    if event is None:
        event = _reserved_event(api, out)
    if event is None:
        raise WidePodError(
            f"the wide pod {TEAM_A}/{WIDE} was bound to {node} without a Reserved Event"
        )
    raw = (wide["metadata"].get("annotations") or {}).get(DECISION_ANNOTATION, "")
    try:
        at = parse_record(raw).at
    except RecordError as exc:
        raise WidePodError(f"the wide pod's decision record cannot be read: {exc}") from None
    predicted = predicted_start_s(event)
    out(
        f"bound: {TEAM_A}/{WIDE} on {node} at {clock(at)} (its decision record), "
        f"{at - submitted:.1f} s after submission; the Event predicted {clock(predicted)[:8]} UTC"
    )
    out(verdict_line(at, predicted, pass_s))


def _live_line(result: WideRound, t: float, sent: int, bound: str | None) -> str:
    smalls = [k for k in result.started if k != WIDE]
    running = sum(1 for k in smalls if k not in result.finished)
    done = sum(1 for k in smalls if k in result.finished)
    if WIDE in result.finished:
        wide = "done"
    elif bound is not None:
        wide = f"on {bound}"
    else:
        wide = "pending"
    return (
        f"{result.label:<28} t={t:4.0f}s  small pods sent {sent:3d}/{result.smalls}"
        f"  running {running:3d}  done {done:3d}  |  wide pod {wide}"
    )
