"""What the invariant checker has seen of pods, nodes and the leader's Lease, and which
invariants broke: plain bookkeeping fed by watch events (or by tests), no I/O.

* **Bindings**: the first ``spec.nodeName`` seen for a pod UID is its binding; a second,
  different one is a double binding.
* **Overcommit**: after every change, each touched node's sum of requests of the pods bound
  to it and not terminated is compared with its allocatable, resource by resource; each
  time a resource goes over counts once.
* **Deleted nodes**: a binding whose resourceVersion is newer than the deletion of its node
  (or names a node never seen) lands on a node that is gone.
* **Leadership**: every renewal of the Lease is kept; a binding by the scheduler is stale
  when the decision record's ``instance`` did not hold an unexpired Lease when it sent the
  binding (as the proxy saw it go out), or else when the binding was seen (with a little
  slack for the watch's delay).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from hybrid_lab.faults.records import (
    Binding,
    Body,
    EventKind,
    LeaseRenewal,
    NodeRecord,
    PodRecord,
    Violation,
    binding_of,
    micro_time,
    parse_amounts,
    pod_record,
)
from hybrid_policy.resources import PODS


@dataclass
class Ledger:
    """Everything seen so far, and the invariants broken, for one scheduler name."""

    scheduler_name: str
    #: How long before its sighting a binding may have happened (the watch's delay), s.
    slack_s: float = 1.0
    pods: dict[str, PodRecord] = field(default_factory=dict)
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    bindings: dict[str, Binding] = field(default_factory=dict)
    double_bindings: list[Violation] = field(default_factory=list)
    overcommits: list[Violation] = field(default_factory=list)
    lease: list[LeaseRenewal] = field(default_factory=list)
    _on_node: dict[str, set[str]] = field(default_factory=dict)
    _over: set[tuple[str, str]] = field(default_factory=set)

    # -- pods ---------------------------------------------------------------------------

    def see_pod(self, kind: EventKind, body: Body, seen_at: float) -> None:
        """A pod event from the watch."""
        record = pod_record(body)
        record.gone = kind is EventKind.DELETED
        binding = self.bindings.get(record.uid)
        if record.node and binding is None:
            self.bindings[record.uid] = binding_of(body, record, seen_at)
        elif record.node and binding is not None and binding.node != record.node:
            what = f"{binding.pod} bound to {binding.node}, then to {record.node}"
            self.double_bindings.append(Violation(seen_at, record.fault, what))
        self._update(record, seen_at)

    def relist_pods(self, bodies: Iterable[Body], seen_at: float) -> None:
        """A fresh list: every known pod not in it is gone (first, so that the capacity
        they held is free), then every pod in it is seen."""
        items = list(bodies)
        listed = {str((body.get("metadata") or {}).get("uid") or "") for body in items}
        for uid, record in list(self.pods.items()):
            if uid not in listed and not record.gone:
                self._update(dataclasses.replace(record, gone=True), seen_at)
        for body in items:
            self.see_pod(EventKind.MODIFIED, body, seen_at)

    def _update(self, record: PodRecord, seen_at: float) -> None:
        old = self.pods.get(record.uid)
        self.pods[record.uid] = record
        self._reindex(record.uid, old, record)
        for node in {old.node if old else None, record.node} - {None}:
            self._check_node(str(node), seen_at)

    def _reindex(self, uid: str, old: PodRecord | None, new: PodRecord) -> None:
        if old is not None and old.node:
            self._on_node.get(old.node, set()).discard(uid)
        if new.holds_node and new.node:
            self._on_node.setdefault(new.node, set()).add(uid)

    # -- nodes --------------------------------------------------------------------------

    def see_node(self, kind: EventKind, body: Body, seen_at: float) -> None:
        """A node event from the watch."""
        meta = body.get("metadata") or {}
        name = str(meta.get("name") or "")
        version = int(meta.get("resourceVersion") or 0)
        known = self.nodes.get(name)
        if kind is EventKind.DELETED:
            if known is not None and known.deleted_version is None:
                known.deleted_version = version
                known.deleted_at = seen_at
            return
        allocatable = parse_amounts((body.get("status") or {}).get("allocatable") or {})
        if known is None or known.deleted_version is not None:
            created = version if kind is EventKind.ADDED else 0
            self.nodes[name] = NodeRecord(allocatable, created)
        else:
            known.allocatable = allocatable
        self._check_node(name, seen_at)

    def relist_nodes(self, bodies: Iterable[Body], version: int, seen_at: float) -> None:
        """A fresh list at ``version``: nodes not in it were deleted by then."""
        listed = set()
        for body in bodies:
            listed.add(str((body.get("metadata") or {}).get("name") or ""))
            self.see_node(EventKind.MODIFIED, body, seen_at)
        for name, record in self.nodes.items():
            if name not in listed and record.deleted_version is None:
                record.deleted_version = version
                record.deleted_at = seen_at

    def _check_node(self, name: str, seen_at: float) -> None:
        node = self.nodes.get(name)
        if node is None or node.deleted_version is not None:
            return
        used = self.used(name)
        for resource, allocatable in node.allocatable.items():
            over = used.get(resource, 0) > allocatable
            if over and (name, resource) not in self._over:
                fault = next(
                    (self.pods[u].fault for u in self._on_node.get(name, ()) if self.pods[u].fault),
                    None,
                )
                what = (
                    f"{name}: {resource} {used.get(resource, 0)} requested, "
                    f"{allocatable} allocatable ({self._holders(name, resource)})"
                )
                self.overcommits.append(Violation(seen_at, fault, what))
                self._over.add((name, resource))
            elif not over:
                self._over.discard((name, resource))

    def _holders(self, node: str, resource: str) -> str:
        """Who holds ``resource`` on ``node``: each pod, its amount, and who bound it when
        (the decision record's instance and time), latest binding first."""
        held = []
        for uid in self._on_node.get(node, ()):
            record, binding = self.pods[uid], self.bindings.get(uid)
            amount = record.requests.get(resource, 0)
            if amount:
                who = (binding.instance if binding else None) or "unknown"
                at = binding.decided_at if binding and binding.decided_at else 0.0
                held.append((at, f"{record.name} {amount} by {who} at {at:.1f}"))
        return "; ".join(text for _, text in sorted(held, reverse=True))

    def used(self, node: str) -> dict[str, int]:
        """Requests of the pods that hold ``node``, by resource (``pods`` counts them)."""
        total: dict[str, int] = {PODS: 0}
        for uid in self._on_node.get(node, ()):
            record = self.pods[uid]
            total[PODS] += 1
            for resource, amount in record.requests.items():
                total[resource] = total.get(resource, 0) + amount
        return total

    def live_nodes(self) -> list[str]:
        """Nodes that exist now."""
        return sorted(n for n, r in self.nodes.items() if r.deleted_version is None)

    # -- the Lease ----------------------------------------------------------------------

    def see_lease(self, body: Body) -> None:
        """A state of the leader Lease (from a watch event or a list)."""
        spec = body.get("spec") or {}
        holder, renewed = spec.get("holderIdentity"), spec.get("renewTime")
        if not holder or not renewed:
            return
        renewal = LeaseRenewal(
            str(holder), micro_time(str(renewed)), float(spec.get("leaseDurationSeconds") or 0)
        )
        if renewal not in self.lease:
            self.lease.append(renewal)
            self.lease.sort(key=lambda r: r.renewed_at)

    def leader_at(self, t: float) -> str | None:
        """Who held an unexpired Lease at wall time ``t``, if anyone."""
        last = None
        for renewal in self.lease:
            if renewal.renewed_at > t:
                break
            last = renewal
        if last is None or t > last.renewed_at + last.duration_s:
            return None
        return last.holder

    # -- what broke ---------------------------------------------------------------------

    def stale_bindings(self, sent_at: Mapping[str, float] | None = None) -> list[Violation]:
        """Bindings of ours by a replica that did not hold the Lease when it sent them
        (``sent_at``: when each pod's binding request was sent, by ``namespace/name``), or
        else when they were seen; none when nothing ever held the Lease (leader election
        is off). A request sent while leading that the API server applied late (it was
        slow, or etcd away) is no fault of the replica's."""
        if not self.lease:
            return []
        out = []
        for b in self.bindings.values():
            if b.instance is None or not self._is_ours(b.uid):
                continue
            t = (sent_at or {}).get(b.pod, b.seen_at)
            if b.instance not in (self.leader_at(t), self.leader_at(t - self.slack_s)):
                holder = self.leader_at(t) or "nobody"
                what = f"{b.pod} bound to {b.node} by {b.instance} while {holder} led"
                out.append(Violation(b.seen_at, b.fault, what))
        return out

    def bindings_to_missing_nodes(
        self, sent_at: Mapping[str, float] | None = None
    ) -> tuple[list[Violation], list[Violation]]:
        """Bindings to a node that never existed or was deleted before they were applied:
        (sent after the deletion, sent before it).

        Only the first is the scheduler's fault: it sent a binding to a node already gone
        (``slack_s`` allows for its watch showing the deletion later than the checker's).
        A binding already sent when the node was deleted cannot be recalled, and the API
        server applies it anyway (a Binding has no precondition on the node): no scheduler
        can prevent that; kube-controller-manager's pod garbage collector removes the pod.
        """
        late: list[Violation] = []
        landed: list[Violation] = []
        for b in self.bindings.values():
            node = self.nodes.get(b.node)
            if node is None:
                late.append(Violation(b.seen_at, b.fault, f"{b.pod} bound to unknown {b.node}"))
                continue
            if node.deleted_version is None or b.version <= node.deleted_version:
                continue
            sent = (sent_at or {}).get(b.pod, b.seen_at)
            deleted = node.deleted_at if node.deleted_at is not None else b.seen_at
            if sent > deleted + self.slack_s:
                what = f"{b.pod} sent to {b.node} {sent - deleted:.1f} s after it was deleted"
                late.append(Violation(b.seen_at, b.fault, what))
            else:
                what = f"{b.pod} sent to {b.node} before its deletion, applied after"
                landed.append(Violation(b.seen_at, b.fault, what))
        return late, landed

    def _is_ours(self, uid: str) -> bool:
        record = self.pods.get(uid)
        return record is not None and record.scheduler_name == self.scheduler_name
