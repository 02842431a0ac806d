"""Predicted free capacity of every node from now on, for one scheduling pass.

Built from the predictor's running pods (each ends at now plus its predicted time left),
the pods placed so far in the pass (each ends after its predicted duration) and the
reservations made so far (a hold takes its pod's requests from its predicted start to its
predicted end). Requests on a node that no predicted end covers (pods the predictor was
not told about) are taken to stay. Running pods only end, so a node's free capacity grows
over time except where a hold begins: a pod fits on a node from ``t`` on when it fits at
``t`` and at every hold start on that node before it ends.

Nodes without holds are answered for all rows at once (ends sorted by node and time,
freed capacity summed); the few nodes with holds are checked one by one.
"""

from __future__ import annotations

import numpy as np

from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.snapshot import BoolArray, ClusterSnapshot, FloatArray, IntArray
from hybrid_policy.prediction.model import PredictionSource
from hybrid_policy.prediction.predictor import RuntimePredictor
from hybrid_policy.reservation.model import Hold

_EPS = 1e-9
_SOURCES = list(PredictionSource)
#: Source code of an end with no prediction source (a pod placed in this pass).
_PLACED = -1


class Timeline:
    """When each node is predicted to have room, given running pods and holds."""

    def __init__(
        self,
        snapshot: ClusterSnapshot,
        predictor: RuntimePredictor,
        now_s: float,
        placed: list[tuple[int, float, FloatArray]] | None = None,
    ) -> None:
        self.snapshot = snapshot
        self.now_s = now_s
        rows: list[int] = []
        ends: list[float] = []
        needs: list[FloatArray] = []
        codes: list[int] = []
        for uid, run in predictor.running.items():
            row = snapshot.placements.get(uid)
            if row is None or snapshot.nodes[row].name != run.node:
                continue
            left = predictor.remaining(uid, now_s)
            rows.append(row)
            ends.append(now_s + left.seconds)
            needs.append(snapshot.request_vector(run.pod))
            codes.append(_SOURCES.index(left.source))
        for row, end_s, need in placed or ():
            rows.append(row)
            ends.append(end_s)
            needs.append(need)
            codes.append(_PLACED)
        n, r = snapshot.allocatable.shape
        self.rows: IntArray = np.array(rows, dtype=np.int64)
        self.ends: FloatArray = np.array(ends, dtype=float)
        self.needs: FloatArray = np.array(needs, dtype=float).reshape(len(rows), r)
        self.codes: IntArray = np.array(codes, dtype=np.int64)
        known = np.zeros((n, r))
        np.add.at(known, self.rows, self.needs)
        #: Requests no predicted end covers: taken to stay.
        self.base: FloatArray = np.maximum(snapshot.requested - known, 0.0)
        self.holds: dict[int, list[Hold]] = {}
        #: Pods placed since the arrays were last merged, by row.
        self._placed: dict[int, list[tuple[float, FloatArray]]] = {}
        self._dirty = True
        self._end_times: FloatArray = np.zeros((n, 0))
        self._freed: FloatArray = np.zeros((n, 0, r))
        self._sources: IntArray = np.zeros((n, 0), dtype=np.int64)
        self._free_now: FloatArray = np.zeros((n, r))

    def place(self, row: int, end_s: float, need: FloatArray) -> None:
        """A pod placed in this pass on ``row`` until ``end_s``."""
        self._placed.setdefault(row, []).append((end_s, need))
        self._dirty = True

    def hold(self, hold: Hold) -> None:
        """Add a reservation's claim."""
        self.holds.setdefault(hold.node, []).append(hold)

    def usage_at(self, row: int, at_s: float) -> FloatArray:
        """Requests on ``row`` at ``at_s`` (running pods not yet ended, holds under way)."""
        running = (self.rows == row) & (self.ends > at_s)
        used: FloatArray = self.base[row] + self.needs[running].sum(axis=0)
        for end_s, need in self._placed.get(row, ()):
            if end_s > at_s:
                used += need
        for h in self.holds.get(row, ()):
            if h.start_s <= at_s < h.end_s:
                used += h.need
        return used

    def fits_from(self, row: int, need: FloatArray, start_s: float, end_s: float) -> bool:
        """Whether ``need`` fits on ``row`` from ``start_s`` until ``end_s``."""
        alloc = self.snapshot.allocatable[row] + _EPS
        later = (h.start_s for h in self.holds.get(row, ()) if start_s < h.start_s < end_s)
        return all(bool(np.all(self.usage_at(row, t) + need <= alloc)) for t in (start_s, *later))

    def earliest_start(
        self, pod: PendingPod, rows: BoolArray, duration_s: FloatArray
    ) -> tuple[FloatArray, list[PredictionSource | None]]:
        """Predicted start of ``pod`` on every row (inf where never or not in ``rows``) and
        the source of the predicted end that makes room there (None: room now, or made by
        a pod placed in this pass); ``duration_s`` is its run time on each row."""
        need = self.snapshot.request_vector(pod)
        self._refresh()
        ok_now: BoolArray = np.all(self._free_now >= need - _EPS, axis=1)
        start = np.where(ok_now, self.now_s, np.inf)
        code = np.full(len(start), _PLACED, dtype=np.int64)
        if self._end_times.shape[1]:
            room: BoolArray = np.all(
                self._free_now[:, None, :] + self._freed >= need - _EPS, axis=2
            )
            first = np.argmax(room, axis=1)
            at = np.arange(len(first))
            later = ~ok_now & room[at, first]
            start = np.where(later, self._end_times[at, first], start)
            code = np.where(later, self._sources[at, first], code)
        start = np.where(rows, start, np.inf)
        for row in self.holds:
            if rows[row]:
                start[row], code[row] = self._start_with_holds(row, need, float(duration_s[row]))
        sources = [None if c == _PLACED else _SOURCES[int(c)] for c in code]
        return start, sources

    def _start_with_holds(self, row: int, need: FloatArray, duration_s: float) -> tuple[float, int]:
        self._merge()
        mine = self.rows == row
        times = {self.now_s, *(float(e) for e in self.ends[mine] if e > self.now_s)}
        times.update(h.end_s for h in self.holds[row] if h.end_s > self.now_s)
        for t in sorted(times):
            if self.fits_from(row, need, t, t + duration_s):
                hit = mine & (self.ends == t)
                return t, int(self.codes[hit][0]) if hit.any() else _PLACED
        return np.inf, _PLACED

    def _merge(self) -> None:
        """Fold the pods placed since the last merge into the arrays."""
        if not self._placed:
            return
        added = [(row, end, need) for row, ends in self._placed.items() for end, need in ends]
        self.rows = np.concatenate([self.rows, [a[0] for a in added]]).astype(np.int64)
        self.ends = np.concatenate([self.ends, [a[1] for a in added]])
        self.needs = np.vstack([self.needs, *(a[2][None, :] for a in added)])
        self.codes = np.concatenate([self.codes, np.full(len(added), _PLACED, dtype=np.int64)])
        self._placed = {}

    def _refresh(self) -> None:
        """Ends sorted per row, and the capacity freed by each, as padded arrays."""
        if not self._dirty:
            return
        self._merge()
        n, r = self.snapshot.allocatable.shape
        order = np.lexsort((self.ends, self.rows))
        rows, ends = self.rows[order], self.ends[order]
        counts = np.bincount(rows, minlength=n)
        width = int(counts.max()) if counts.size and rows.size else 0
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        slot = np.arange(rows.size) - starts[rows]
        times = np.full((n, width), np.inf)
        times[rows, slot] = ends
        freed = np.zeros((n, width, r))
        freed[rows, slot] = self.needs[order]
        freed = np.cumsum(freed, axis=1)
        sources = np.full((n, width), _PLACED, dtype=np.int64)
        sources[rows, slot] = self.codes[order]
        self._end_times, self._freed, self._sources = times, freed, sources
        total = freed[:, -1] if width else np.zeros((n, r))
        self._free_now = self.snapshot.allocatable - self.base - total
        self._dirty = False
