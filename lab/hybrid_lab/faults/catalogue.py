"""Every fault by name, in the order a run takes them."""

from __future__ import annotations

from collections.abc import Sequence

from hybrid_lab.faults import control_plane as cp
from hybrid_lab.faults import operator_faults as op
from hybrid_lab.faults.context import Fault

FAULTS: dict[str, Fault] = {
    f.name: f
    for f in (
        Fault("baseline", cp.no_fault),
        Fault("apiserver-down", cp.apiserver_down),
        Fault("apiserver-slow", cp.apiserver_slow),
        Fault("etcd-restart", cp.etcd_restart),
        Fault("watch-disconnect", cp.watch_disconnect, prepare=cp.prepare_gap),
        Fault("watch-expired", cp.watch_expired, prepare=cp.prepare_gap),
        Fault("leader-frozen", op.leader_frozen),
        Fault("prometheus-bad", op.prometheus_bad),
        Fault("crafted-objects", op.crafted_objects),
        Fault("node-deleted-mid-binding", cp.node_deleted_mid_binding, prepare=cp.prepare_node),
        Fault("binding-reply-lost", cp.binding_reply_lost),
        Fault("restart-burst", op.restart_burst, burst=True),
        Fault("lagging-takeover", op.lagging_takeover, burst=True),
    )
}


class UnknownFaultError(ValueError):
    """A fault name that is not in the catalogue."""


def select(names: Sequence[str]) -> list[Fault]:
    """The faults named, in the catalogue's order; all of them when none is named."""
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        raise UnknownFaultError(f"unknown fault {unknown[0]!r} (known: {', '.join(FAULTS)})")
    return [f for name, f in FAULTS.items() if not names or name in names]
