"""The fault checker's bookkeeping: bindings, overcommit, deleted nodes, leadership."""

from __future__ import annotations

import json
from typing import Any

from hybrid_lab.faults.ledger import Ledger
from hybrid_lab.faults.records import DECISION_ANNOTATION, FAULT_LABEL, EventKind
from hybrid_lab.faults.verdict import has_room

OURS = "hybrid-scheduler-faults"
ADDED, MODIFIED, DELETED = EventKind.ADDED, EventKind.MODIFIED, EventKind.DELETED


def pod(
    name: str,
    *,
    gpus: int = 1,
    node: str | None = None,
    phase: str = "Pending",
    version: int = 1,
    instance: str | None = None,
    unschedulable: str | None = None,
) -> dict[str, Any]:
    annotations = {}
    if instance is not None:
        annotations[DECISION_ANNOTATION] = json.dumps({"instance": instance, "at": 1.0})
    conditions = []
    if unschedulable is not None:
        conditions.append({"type": "PodScheduled", "status": "False", "message": unschedulable})
    return {
        "metadata": {
            "uid": f"uid-{name}",
            "name": name,
            "namespace": "ns",
            "resourceVersion": str(version),
            "labels": {FAULT_LABEL: "f"},
            "annotations": annotations,
        },
        "spec": {
            "schedulerName": OURS,
            "nodeName": node,
            "containers": [{"resources": {"requests": {"nvidia.com/gpu": str(gpus), "cpu": "1"}}}],
        },
        "status": {"phase": phase, "conditions": conditions},
    }


def node(name: str, gpus: str = "8", version: int = 1) -> dict[str, Any]:
    amounts = {"nvidia.com/gpu": gpus, "cpu": "64", "pods": "110"}
    return {
        "metadata": {"name": name, "resourceVersion": str(version)},
        "status": {"allocatable": amounts},
    }


def lease(holder: str, renewed: str, duration: int = 4) -> dict[str, Any]:
    spec = {"holderIdentity": holder, "renewTime": renewed, "leaseDurationSeconds": duration}
    return {"spec": spec}


def with_node() -> Ledger:
    ledger = Ledger(OURS)
    ledger.see_node(ADDED, node("n1", version=5), 0.0)
    return ledger


def test_a_second_node_for_the_same_pod_is_a_double_binding() -> None:
    ledger = with_node()
    ledger.see_node(ADDED, node("n2", version=6), 0.0)
    ledger.see_pod(MODIFIED, pod("p", node="n1", version=10), 1.0)
    ledger.see_pod(MODIFIED, pod("p", node="n1", phase="Running", version=11), 2.0)
    assert ledger.double_bindings == []
    ledger.see_pod(MODIFIED, pod("p", node="n2", version=12), 3.0)
    assert [v.what for v in ledger.double_bindings] == ["ns/p bound to n1, then to n2"]
    assert ledger.bindings["uid-p"].node == "n1"


def test_requests_beyond_allocatable_count_once_per_episode() -> None:
    ledger = with_node()
    for i in range(8):
        ledger.see_pod(MODIFIED, pod(f"p{i}", node="n1", version=10 + i), 1.0)
    assert ledger.overcommits == []
    ledger.see_pod(MODIFIED, pod("extra", node="n1", version=20), 2.0)
    ledger.see_pod(MODIFIED, pod("extra", node="n1", phase="Running", version=21), 2.5)
    (what,) = [v.what for v in ledger.overcommits]
    assert what.startswith("n1: nvidia.com/gpu 9 requested, 8 allocatable (")
    assert what.count(" 1 by unknown at ") == 9  # every holder named, with who bound it
    # Finished pods free their GPUs; going over again is a second episode.
    ledger.see_pod(MODIFIED, pod("p0", node="n1", phase="Succeeded", version=22), 3.0)
    ledger.see_pod(MODIFIED, pod("late", node="n1", version=23), 4.0)
    assert len(ledger.overcommits) == 2
    assert ledger.used("n1")["nvidia.com/gpu"] == 9


def test_a_deleted_pod_frees_its_node_and_a_relist_finds_deletions() -> None:
    ledger = with_node()
    ledger.see_pod(MODIFIED, pod("a", gpus=8, node="n1", version=10), 1.0)
    ledger.see_pod(DELETED, pod("a", gpus=8, node="n1", version=11), 2.0)
    ledger.see_pod(MODIFIED, pod("b", gpus=8, node="n1", version=12), 3.0)
    assert ledger.overcommits == []
    # b vanished while the watch was down: the next list does not have it.
    ledger.relist_pods([pod("c", gpus=8, node="n1", version=14)], 4.0)
    assert ledger.pods["uid-b"].gone
    assert ledger.overcommits == []
    assert ledger.used("n1")["nvidia.com/gpu"] == 8


def test_a_binding_sent_after_its_node_was_deleted_is_lost() -> None:
    ledger = with_node()
    ledger.see_pod(MODIFIED, pod("before", node="n1", version=10), 1.0)
    ledger.see_node(DELETED, node("n1", version=11), 2.0)
    ledger.see_pod(MODIFIED, pod("after", node="n1", version=12), 4.0)
    ledger.see_pod(MODIFIED, pod("nowhere", node="ghost", version=13), 4.0)
    late, landed = ledger.bindings_to_missing_nodes({"ns/after": 3.5})
    assert sorted(v.what for v in late) == [
        "ns/after sent to n1 1.5 s after it was deleted",
        "ns/nowhere bound to unknown ghost",
    ]
    assert landed == []
    assert ledger.live_nodes() == []


def test_a_binding_sent_before_its_node_was_deleted_is_not_the_schedulers_fault() -> None:
    ledger = with_node()
    ledger.see_node(DELETED, node("n1", version=11), 2.0)
    ledger.see_pod(MODIFIED, pod("held", node="n1", version=12), 4.0)
    late, landed = ledger.bindings_to_missing_nodes({"ns/held": 1.9})
    assert late == []
    assert [v.what for v in landed] == ["ns/held sent to n1 before its deletion, applied after"]


def test_a_relist_without_a_node_marks_it_deleted_at_the_list_version() -> None:
    ledger = with_node()
    ledger.relist_nodes([], 30, 5.0)
    ledger.see_pod(MODIFIED, pod("late", node="n1", version=31), 9.0)
    late, _ = ledger.bindings_to_missing_nodes()
    assert len(late) == 1


def test_leader_is_whoever_renewed_last_until_the_lease_expires() -> None:
    ledger = Ledger(OURS)
    ledger.see_lease(lease("a", "2026-01-01T00:00:00.000000Z"))
    ledger.see_lease(lease("a", "2026-01-01T00:00:02.000000Z"))
    ledger.see_lease(lease("b", "2026-01-01T00:00:07.500000Z"))
    t0 = 1767225600.0  # 2026-01-01T00:00:00Z
    assert ledger.leader_at(t0 - 1) is None
    assert ledger.leader_at(t0 + 3) == "a"
    assert ledger.leader_at(t0 + 6.5) is None  # a stopped renewing at +2, lease 4 s
    assert ledger.leader_at(t0 + 8) == "b"


def test_binding_by_a_replica_that_does_not_lead_is_stale() -> None:
    ledger = with_node()
    ledger.see_lease(lease("a", "2026-01-01T00:00:00Z"))
    ledger.see_lease(lease("b", "2026-01-01T00:00:05Z"))
    t0 = 1767225600.0
    ledger.see_pod(MODIFIED, pod("by-a", node="n1", version=10, instance="a"), t0 + 1)
    ledger.see_pod(MODIFIED, pod("by-b", node="n1", version=11, instance="b"), t0 + 6)
    # Seen just after the takeover: within the watch's slack of a's lease.
    ledger.see_pod(MODIFIED, pod("a-late", node="n1", version=12, instance="a"), t0 + 4.5)
    assert ledger.stale_bindings() == []
    ledger.see_pod(MODIFIED, pod("a-stale", node="n1", version=13, instance="a"), t0 + 6)
    assert [v.what for v in ledger.stale_bindings()] == ["ns/a-stale bound to n1 by a while b led"]


def test_a_request_sent_while_leading_is_not_stale_however_late_it_lands() -> None:
    ledger = with_node()
    ledger.see_lease(lease("a", "2026-01-01T00:00:00Z"))
    t0 = 1767225600.0
    # Seen 20 s later, when a's lease had long expired (etcd was away, say).
    ledger.see_pod(MODIFIED, pod("slow", node="n1", version=10, instance="a"), t0 + 20)
    ledger.see_pod(MODIFIED, pod("late", node="n1", version=11, instance="a"), t0 + 20)
    sent = {"ns/slow": t0 + 1, "ns/late": t0 + 15}
    assert [v.what for v in ledger.stale_bindings(sent)] == [
        "ns/late bound to n1 by a while nobody led"
    ]


def test_without_a_lease_no_binding_is_stale() -> None:
    ledger = with_node()
    ledger.see_pod(MODIFIED, pod("p", node="n1", instance="anyone"), 1.0)
    assert ledger.stale_bindings() == []


def test_unparseable_quantities_are_left_out_and_huge_ones_kept() -> None:
    ledger = Ledger(OURS)
    ledger.see_node(ADDED, node("huge", gpus="1e400"), 0.0)
    ledger.see_node(ADDED, node("bad", gpus="lots"), 0.0)
    assert ledger.nodes["huge"].allocatable["nvidia.com/gpu"] == 10**400
    assert "nvidia.com/gpu" not in ledger.nodes["bad"].allocatable


def test_pending_pods_carry_their_unschedulable_message() -> None:
    ledger = with_node()
    ledger.see_pod(ADDED, pod("p", unschedulable="0/1 nodes are available"), 1.0)
    record = ledger.pods["uid-p"]
    assert record.pending
    assert record.unschedulable == "0/1 nodes are available"
    assert record.fault == "f"


def test_room_counts_what_holds_a_node_and_skips_excluded_nodes() -> None:
    ledger = with_node()
    ledger.see_node(ADDED, node("spare", version=6), 0.0)
    for i in range(7):
        ledger.see_pod(MODIFIED, pod(f"p{i}", node="n1", version=10 + i), 1.0)
    ledger.see_pod(MODIFIED, pod("full", gpus=8, node="spare", version=20), 1.0)
    one, two = pod("one", version=30), pod("two", gpus=2, version=31)
    for body in (one, two):
        ledger.see_pod(ADDED, body, 2.0)
    assert has_room(ledger.pods["uid-one"], ledger)
    assert not has_room(ledger.pods["uid-two"], ledger)
    assert not has_room(ledger.pods["uid-one"], ledger, frozenset({"n1"}))
    ledger.see_pod(MODIFIED, pod("full", gpus=8, node="spare", phase="Succeeded"), 3.0)
    assert has_room(ledger.pods["uid-two"], ledger)
