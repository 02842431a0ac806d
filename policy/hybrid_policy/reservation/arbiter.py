"""The reserving Arbitrator: fair order, reservations that stick, and backfill around them.

A pass serves *units*: a single pod, or a gang that still needs pods, served whole
(:mod:`hybrid_policy.framework.gangs`). It first serves the units that already hold a
reservation, in the order the reservations were made: a holder that fits now starts (on
its best-scored node that delays no earlier holder); one that does not keeps its node(s)
unless others are predicted to start it at least ``switch_margin_s`` earlier (the sticky
rule). Then the other units come in fair order
(:func:`~hybrid_policy.reservation.order.fair_order`): a gang takes its place in its
namespace's queue where its first pod stands, and once placed its namespace's share
counts all its pods. A single pod goes to its best-scored node among those where it
delays no reservation; a gang is placed whole on nodes no reservation holds. When the
unit whose turn it is fits nowhere while fewer than the mode's bound of reservations are
held, it is given one: the node where the pod is predicted to start earliest, or for a
gang the nodes where its pods are (:mod:`hybrid_policy.reservation.gangs`). A pod delays
a reservation on a node when, by its predicted duration, it would still be running at
the reserved start and the node would then lack room for both.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.cycle import BatchCycle, ScoreTable
from hybrid_policy.framework.gangs import (
    Unit,
    gang_status,
    missing_members,
    try_unit,
    units,
)
from hybrid_policy.framework.gangs import (
    avoiding as _avoiding,
)
from hybrid_policy.framework.nomination import Nomination
from hybrid_policy.framework.snapshot import BoolArray, ClusterSnapshot, FloatArray, IntArray
from hybrid_policy.framework.status import Code, Status
from hybrid_policy.prediction.predictor import RuntimePredictor
from hybrid_policy.reservation.gangs import GangHeld, GangKey, plan_gang
from hybrid_policy.reservation.model import BackfillMode, Held, Hold, ReservationSettings
from hybrid_policy.reservation.order import fair_order
from hybrid_policy.reservation.timeline import Timeline

RESERVATION = "Reservation"
_BLOCKED = Status(
    Code.UNSCHEDULABLE,
    ("the nodes with room are reserved for pods ahead in the queue",),
    RESERVATION,
)


class NodeChooser(Protocol):
    """Picks the node a pod starts on from the nodes the pass allows it (training's actor;
    by default the best-scored one)."""

    def choose(self, table: ScoreTable, snapshot: ClusterSnapshot, rng: np.random.Generator) -> int:
        """Node row, among ``table.candidates`` (the nodes where the pod delays no
        reservation, with the profile's combined scores), to start ``table.pod`` on."""
        ...


class ReservingArbitrator:
    """Fair order with reservations and backfill (``settings.mode`` says which)."""

    def __init__(
        self, predictor: RuntimePredictor, settings: ReservationSettings | None = None
    ) -> None:
        self.predictor = predictor
        self.settings = settings or ReservationSettings()
        self.name = f"fair-{self.settings.mode.value}"
        #: Reservations held across passes, by pod UID, oldest first.
        self.book: dict[str, Held] = {}
        #: Gangs' reservations held across passes, by (namespace, gang name).
        self.gang_book: dict[GangKey, GangHeld] = {}
        #: Reservations made, moved to another node, and pods placed on a held node.
        self.made = self.moved = self.backfilled = 0
        #: Whether a holder missing from a batch still waits (the driver says; by default
        #: a holder missing from a batch has started or gone, and its reservation ends).
        self.still_waiting: Callable[[str], bool] = lambda _: False
        #: Who picks a single pod's node among the allowed ones (None: the best-scored).
        self.chooser: NodeChooser | None = None

    def restore(self, uid: str, node: str, at_s: float) -> None:
        """Hold ``node`` for pod ``uid`` again, as made at ``at_s`` (a driver that restarted
        and found the reservation on the pod); it goes after the reservations held now."""
        if uid not in self.book:
            self.book[uid] = Held(uid, node, at_s, at_s)

    def release(self, uid: str) -> None:
        """Pod ``uid`` started elsewhere or went: its reservation, if any, ends."""
        self.book.pop(uid, None)

    def use_wall_clock(self, enabled: bool) -> None:
        """Nothing to do: no decision here depends on wall time."""

    def arbitrate(self, batch: Sequence[PendingPod], cycle: BatchCycle) -> None:
        """Commit or reject every pod of ``batch`` (in queue order)."""
        pods = {pod.uid: pod for pod in batch}
        for uid in [u for u in self.book if u not in pods and not self.still_waiting(u)]:
            del self.book[uid]
        settled = _Pass(self, cycle)
        for held in [h for uid, h in self.book.items() if uid not in pods]:
            settled.keep(held)
        batch_units = units(batch, cycle) if cycle.profile.gang_aware else [(p,) for p in batch]
        gangs = {key for unit in batch_units if (key := _gang_of(unit, cycle)) is not None}
        for key in [k for k in self.gang_book if k not in gangs]:
            del self.gang_book[key]
        for unit in self._holders(batch_units, cycle):
            settled.serve_unit(unit, holder=True)
        rest = [unit for unit in batch_units if unit[0].uid not in settled.done]
        for unit in fair_order(rest, cycle.snapshot, settled.now_s, self.settings):
            settled.serve_unit(unit, holder=False)

    def _holders(self, batch_units: Sequence[Unit], cycle: BatchCycle) -> list[Unit]:
        """The units of the batch that hold a reservation: pods in the order of the book,
        gangs in theirs, the two merged by when the reservations were made."""
        by_token: dict[str | GangKey, Unit] = {}
        for unit in batch_units:
            key = _gang_of(unit, cycle)
            by_token[key if key is not None else unit[0].uid] = unit
        pods: list[tuple[float, str | GangKey]] = [
            (h.made_at_s, uid) for uid, h in self.book.items() if uid in by_token
        ]
        gangs: list[tuple[float, str | GangKey]] = [
            (g.made_at_s, k) for k, g in self.gang_book.items() if k in by_token
        ]
        merged = heapq.merge(pods, gangs, key=lambda h: h[0])
        return [by_token[token] for _, token in merged]


def _gang_of(unit: Unit, cycle: BatchCycle) -> GangKey | None:
    """The gang a unit serves whole; None for a single pod, a late member of a gang that
    runs its ``min_member`` pods already, or a profile that is not gang-aware."""
    head = unit[0]
    key, gang = head.gang_key, head.gang
    if key is None or gang is None or not cycle.profile.gang_aware:
        return None
    if cycle.snapshot.gang_members[key] >= gang.min_member:
        return None
    return key


class _Pass:
    """The state of one pass: the timeline (built when first needed) and the holds."""

    def __init__(self, owner: ReservingArbitrator, cycle: BatchCycle) -> None:
        self.owner = owner
        self.settings = owner.settings
        self.predictor = owner.predictor
        self.cycle = cycle
        self.snapshot = cycle.snapshot
        self.now_s = cycle.snapshot.now_s
        self.done: set[str] = set()
        self.holds = 0
        self.placed: list[tuple[int, float, FloatArray]] = []
        self._timeline: Timeline | None = None

    @property
    def timeline(self) -> Timeline:
        """The pass's timeline, built on first use."""
        if self._timeline is None:
            self._timeline = Timeline(self.snapshot, self.predictor, self.now_s, self.placed)
        return self._timeline

    def keep(self, held: Held) -> None:
        """Hold the node of a holder missing from the batch that still waits (its driver
        is settling it), from its predicted start, so that no pod of the batch delays it."""
        row = self.snapshot.node_index.get(held.node)
        if held.pod is None or row is None:
            return
        start = max(held.predicted_start_s, self.now_s)
        end = start + float(self._durations(held.pod)[row])
        need = self.snapshot.request_vector(held.pod)
        self.timeline.hold(Hold(held.uid, row, start, end, need))
        self.holds += 1

    def serve(self, pod: PendingPod, holder: bool) -> None:
        """Start ``pod`` if it delays no reservation; else reserve for it or leave it."""
        self.done.add(pod.uid)
        mask = self.cycle.feasible(pod)
        if isinstance(mask, Status):
            status = mask
        else:
            candidates = np.flatnonzero(mask)
            allowed = self._allowed(pod, candidates)
            if allowed.any():  # scored only now: a pod held off every candidate is not
                self._commit(pod, self.cycle.score(pod, candidates), allowed)
                return
            status = _BLOCKED
        may_reserve = holder or self.holds < self.settings.bound
        if status.code is Code.UNSCHEDULABLE and may_reserve and self._reserve(pod, status):
            return
        self.owner.book.pop(pod.uid, None)
        self.cycle.reject(pod, status)

    def _durations(self, pod: PendingPod) -> FloatArray:
        work = self.predictor.duration(pod, self.now_s).seconds
        durations: FloatArray = work * 100.0 / np.maximum(self.snapshot.performance, 1e-9)
        return durations

    def _allowed(self, pod: PendingPod, candidates: IntArray) -> BoolArray:
        """Which of ``candidates`` (node rows, in node order) delay no reservation held in
        this pass."""
        allowed = np.ones(candidates.size, dtype=bool)
        if self._timeline is None or not self._timeline.holds:
            return allowed
        timeline = self._timeline
        need = self.snapshot.request_vector(pod)
        factor = self.settings.backfill_factor
        durations: FloatArray | None = None
        for row in timeline.holds:
            i = int(np.searchsorted(candidates, row))
            if i == candidates.size or candidates[i] != row:
                continue  # candidates are in node order
            if self.settings.mode is BackfillMode.RESERVE:
                allowed[i] = False
                continue
            if durations is None:
                durations = self._durations(pod)
            end = self.now_s + factor * float(durations[row])
            allowed[i] = timeline.fits_from(row, need, self.now_s, end)
        return allowed

    def serve_unit(self, unit: Unit, holder: bool) -> None:
        """Serve a single pod, or a gang whole (placed, given a reservation, or left)."""
        key = _gang_of(unit, self.cycle)
        if key is None:
            self.serve(unit[0], holder)
            return
        self.done.update(p.uid for p in unit)
        self._serve_gang(unit, key)

    def _held_rows(self, but: GangKey | None = None) -> set[int]:
        """Rows reserved for single pods, and for gangs other than ``but``."""
        names = [h.node for h in self.owner.book.values()]
        names += [n for k, g in self.owner.gang_book.items() if k != but for n in g.nodes]
        return {row for n in names if (row := self.snapshot.node_index.get(n)) is not None}

    def _serve_gang(self, unit: Unit, key: GangKey) -> None:
        running = self.snapshot.gang_members[key]
        if missing_members(unit, self.cycle):  # not all its pods exist yet
            self.owner.gang_book.pop(key, None)
            for pod in unit:
                self.cycle.reject(pod, gang_status(pod, 0, batch_members=running + len(unit)))
            return
        avoid = self._held_rows(but=key)
        fitted = try_unit(unit, self.cycle, _avoiding(avoid, self.cycle.rng))
        if fitted is None:
            self.owner.gang_book.pop(key, None)
            for decision in self.cycle.decisions[-len(unit) :]:
                self._record(decision.pod, decision.node_row)
            return
        held = self.owner.gang_book.get(key)
        may_reserve = held is not None or self.holds < self.settings.bound
        if may_reserve and self._reserve_gang(unit, key, held, avoid):
            return
        self.owner.gang_book.pop(key, None)
        for pod in unit:
            self.cycle.reject(pod, gang_status(pod, running + fitted))

    def _reserve_gang(
        self, unit: Unit, key: GangKey, held: GangHeld | None, avoid: set[int]
    ) -> bool:
        """Hold the nodes where the gang is predicted to start earliest (sticky)."""
        head = unit[0]
        rows = self._possible_rows(head)
        rows[list(avoid)] = False
        if int(rows.sum()) < len(unit):
            return False
        durations = self._durations(head)
        starts, sources = self.timeline.earliest_start(head, rows, durations)
        index = self.snapshot.node_index
        kept = None
        if held is not None and all(n in index for n in held.nodes):
            kept = tuple(index[n] for n in held.nodes)
        plan = plan_gang(starts, sources, len(unit), kept, self.settings.switch_margin_s)
        if plan is None:
            return False
        if held is None:
            self.owner.made += 1
        elif plan.rows != kept:
            self.owner.moved += 1
        end = plan.start_s + float(durations[list(plan.rows)].max())
        for pod, row in zip(unit, plan.rows, strict=True):
            need = self.snapshot.request_vector(pod)
            self.timeline.hold(Hold(pod.uid, row, plan.start_s, end, need))
        nodes = tuple(self.snapshot.nodes[row].name for row in plan.rows)
        made_at = held.made_at_s if held is not None else self.now_s
        self.owner.gang_book[key] = GangHeld(key, nodes, plan.start_s, made_at)
        position = self.holds
        self.holds += 1
        for pod, row, node in zip(unit, plan.rows, nodes, strict=True):
            nomination = Nomination(node, row, plan.start_s, position, plan.source)
            wait = max(plan.start_s - self.now_s, 0.0)
            reason = (
                f"gang {key[0]}/{key[1]}: its {len(unit)} pods do not fit whole now; "
                f"{', '.join(nodes)} reserved, predicted start in {wait:.0f} s"
            )
            status = Status(Code.UNSCHEDULABLE, (reason,), RESERVATION)
            self.cycle.reject(pod, status, nomination)
        return True

    def _commit(self, pod: PendingPod, table: ScoreTable, allowed: BoolArray) -> None:
        if not allowed.all():
            table = ScoreTable(pod, table.candidates[allowed], table.scores[allowed])
        chooser = self.owner.chooser
        if chooser is None:
            row = table.best(self.cycle.rng)
        else:
            row = chooser.choose(table, self.snapshot, self.cycle.rng)
        self.cycle.commit(pod, row, table)
        self.owner.book.pop(pod.uid, None)
        self._record(pod, row)

    def _record(self, pod: PendingPod, row: int) -> None:
        """Count a pod placed in this pass on ``row`` in the timeline, until its predicted
        end (times the backfill factor)."""
        work = self.predictor.duration(pod, self.now_s).seconds
        run_s = work * 100.0 / max(float(self.snapshot.performance[row]), 1e-9)
        end = self.now_s + self.settings.backfill_factor * run_s
        need = self.snapshot.request_vector(pod)
        if self._timeline is not None:
            if row in self._timeline.holds:
                self.owner.backfilled += 1
            self._timeline.place(row, end, need)
        else:
            self.placed.append((row, end, need))

    def _reserve(self, pod: PendingPod, status: Status) -> bool:
        """Hold the node where ``pod`` is predicted to start earliest (sticky); False when
        it can start on no node."""
        rows = self._possible_rows(pod)
        if not rows.any():
            return False
        durations = self._durations(pod)
        starts, sources = self.timeline.earliest_start(pod, rows, durations)
        order = np.lexsort((np.arange(len(starts)), starts + durations, starts))
        row = int(order[0])
        if not np.isfinite(starts[row]):
            return False
        held = self.owner.book.get(pod.uid)
        if held is not None:
            kept = self.snapshot.node_index.get(held.node)
            margin = self.settings.switch_margin_s
            if kept is not None and starts[kept] <= starts[row] + margin:
                row = kept
            else:
                self.owner.moved += 1
        else:
            self.owner.made += 1
        start = float(starts[row])
        need = self.snapshot.request_vector(pod)
        self.timeline.hold(Hold(pod.uid, row, start, start + float(durations[row]), need))
        node = self.snapshot.nodes[row].name
        made_at = held.made_at_s if held is not None else self.now_s
        self.owner.book[pod.uid] = Held(pod.uid, node, start, made_at, pod)
        nomination = Nomination(node, row, start, self.holds, sources[row])
        self.holds += 1
        reason = f"{status.message}; {nomination.describe(self.now_s)}"
        self.cycle.reject(pod, Status(Code.UNSCHEDULABLE, (reason,), RESERVATION), nomination)
        return True

    def _possible_rows(self, pod: PendingPod) -> BoolArray:
        """Nodes ``pod`` could run on once empty: static filters and allocatable."""
        snap = self.snapshot
        mask: BoolArray = np.all(snap.allocatable >= snap.request_vector(pod) - 1e-9, axis=1)
        for plugin in self.cycle.profile.filters:
            if plugin.static:
                mask &= plugin.filter(pod, snap)
        return mask
