"""One scheduling pass over a batch: Filter, Score, NormalizeScore, Reserve, per pod.

An :class:`~hybrid_policy.framework.plugins.Arbitrator` drives the pass: it asks
:meth:`BatchCycle.evaluate` for a pod's :class:`ScoreTable` (or the Status saying why it
fits nowhere) and settles each pod with :meth:`BatchCycle.commit` or
:meth:`BatchCycle.reject`. Reservations made by ``commit`` are visible to every later
evaluation of the same pass.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np

from hybrid_policy.constraints import NO_CONSTRAINTS
from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.nomination import Nomination
from hybrid_policy.framework.paths import PassPath
from hybrid_policy.framework.plugins import AlikeScorer, Conditional, FilterPlugin, ScorePlugin
from hybrid_policy.framework.shares import namespace_share
from hybrid_policy.framework.snapshot import BoolArray, ClusterSnapshot, FloatArray, IntArray
from hybrid_policy.framework.status import Code, Status

if TYPE_CHECKING:
    from hybrid_policy.framework.profile import SchedulingProfile

#: Runners-up a decision record names next to the chosen node.
RUNNERS_UP = 3
_NO_FIT = Status(Code.UNSCHEDULABLE, ("no node fits",), "Filter")


def _conditional(plugin: object) -> Conditional | None:
    """``plugin`` as a :class:`Conditional` when it has ``applies`` (checked by attribute:
    ``isinstance`` on a Protocol costs microseconds, too much for every cycle)."""
    return cast(Conditional, plugin) if callable(getattr(plugin, "applies", None)) else None


@dataclass(frozen=True, slots=True)
class ScoreTable:
    """The feasible nodes of one pod and their weighted, normalised total scores."""

    pod: PendingPod
    candidates: IntArray
    scores: FloatArray

    def best(self, rng: np.random.Generator) -> int:
        """Node row with the highest score; ties broken at random, as kube-scheduler does."""
        top = np.flatnonzero(self.scores == self.scores.max())
        pick = top[0] if top.size == 1 else top[int(rng.integers(top.size))]
        return int(self.candidates[pick])

    def score_of(self, node: int) -> float:
        """The total score of node row ``node`` (which must be a candidate)."""
        return float(self.scores[np.flatnonzero(self.candidates == node)[0]])

    def runners_up(self, best: int, count: int = RUNNERS_UP) -> tuple[tuple[int, float], ...]:
        """The next ``count`` candidates after node row ``best``, as (node row, score),
        highest score first; equal scores keep candidate order."""
        order = np.argsort(-self.scores, kind="stable")
        return tuple(
            (int(self.candidates[i]), float(self.scores[i]))
            for i in order[: count + 1]
            if int(self.candidates[i]) != best
        )[:count]


@dataclass(frozen=True, slots=True)
class Decision:
    """What the pass decided for one pod, with what is needed to explain it."""

    pod: PendingPod
    node: str | None
    status: Status
    #: How the pass settled it.
    pass_path: PassPath
    score: float | None = None
    runners_up: tuple[tuple[str, float], ...] = ()
    namespace_share: float | None = None
    node_row: int = -1
    #: For a pod left pending by a reserving arbitrator: the node held for it.
    nomination: Nomination | None = None

    @property
    def placed(self) -> bool:
        """True when the pod was given a node."""
        return self.node is not None

    @property
    def path(self) -> str:
        """The pass path as decision records and Events show it (``equilibrium``, ...)."""
        return str(self.pass_path)


class BatchCycle:
    """Evaluate and settle the pods of one batch against one snapshot."""

    def __init__(
        self,
        profile: SchedulingProfile,
        snapshot: ClusterSnapshot,
        rng: np.random.Generator,
        explain: bool = True,
    ) -> None:
        self.profile = profile
        self.explain = explain
        self.snapshot = snapshot
        self.rng = rng
        self.decisions: list[Decision] = []
        #: How this pass settles its pods; arbitrators that solve a game set it.
        self.pass_path = PassPath(profile.arbitrator.name)
        # Reservations only shrink free capacity during a pass, so a pod that fit nowhere
        # keeps fitting nowhere until the pass ends, unless its pod affinity or spread
        # constraints can be met by later placements (those are never remembered).
        self._no_fit: dict[tuple[object, ...], Status] = {}
        #: fit_count by constraint signature, with the snapshot revision it was counted at.
        self._fit_counts: dict[tuple[object, ...], tuple[int, int]] = {}
        self._filters: list[tuple[FilterPlugin, Conditional | None]] | None = None
        self._scorers: list[tuple[ScorePlugin, float, Conditional | None]] | None = None
        #: Whether namespaces and labels decide feasibility beyond the constraint
        #: signature: a pod placed, or to be placed in this pass, has anti-affinity.
        self.label_sensitive = bool(snapshot.occupancy.anti_affinity)

    def expect(self, pods: Sequence[PendingPod]) -> None:
        """Note the pods this pass may place (their anti-affinity may select others)."""
        if any(p.constraints.required_anti_affinity for p in pods):
            self.label_sensitive = True

    def feasibility_key(self, pod: PendingPod) -> tuple[object, ...]:
        """What decides where ``pod`` fits in this pass: pods with equal keys fit exactly
        the same nodes. The constraint signature, with namespace and labels once placed
        pods' anti-affinity may select the pod."""
        if self.label_sensitive or self.snapshot.occupancy.anti_affinity:
            return (pod.constraint_signature, pod.namespace, tuple(sorted(pod.labels.items())))
        return pod.constraint_signature

    def plain(self, pod: PendingPod) -> bool:
        """The fast path: no constraints of its own, and no placed pod whose terms could
        select it, so no :class:`Conditional` plugin applies."""
        occ = self.snapshot.occupancy
        return pod.constraints is NO_CONSTRAINTS and not occ.anti_affinity and not occ.scoring

    def feasible(self, pod: PendingPod) -> BoolArray | Status:
        """Filter phase: mask of nodes the pod fits on now, or why there are none."""
        snap = self.snapshot
        key = self.feasibility_key(pod)
        known = self._no_fit.get(key)
        if known is not None:
            return known
        if pod.constraints.refusals:
            status = Status(
                Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
                (f"0/{len(snap)} nodes are available: {'; '.join(pod.constraints.refusals)}.",),
                "PreFilter",
            )
            self._no_fit[key] = status
            return status
        unknown = snap.unknown_resources(pod)
        if unknown or len(snap) == 0:
            reason = ", ".join(f"{len(snap)} Insufficient {r}" for r in sorted(unknown))
            status = Status(
                Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
                (f"0/{len(snap)} nodes are available: {reason or 'no nodes'}.",),
                "NodeResourcesFit",
            )
            self._no_fit[key] = status
            return status
        mask = self._static_mask(pod)
        if self._filters is None:
            self._filters = [(f, _conditional(f)) for f in self.profile.filters if not f.static]
        plain = self.plain(pod)
        for plugin, conditional in self._filters:
            if conditional is None or (not plain and conditional.applies(pod, snap)):
                mask = mask & plugin.filter(pod, snap)
        if not mask.any():
            status = self._diagnose(pod) if self.explain else _NO_FIT
            if not pod.constraints.placement_dependent:
                self._no_fit[key] = status
            return status
        return mask

    def fit_count(self, pod: PendingPod) -> int:
        """How many copies of ``pod`` could be placed side by side right now.

        An upper bound on how many pods of the same constraint signature this pass can
        place, since reservations only take capacity away; drivers use it to leave out
        pods that would certainly be rejected.
        """
        snap = self.snapshot
        known = self._fit_counts.get(pod.constraint_signature)
        if known is not None and known[0] == snap.revision:
            return known[1]
        count = self._fit_count(pod)
        self._fit_counts[pod.constraint_signature] = (snap.revision, count)
        return count

    def _fit_count(self, pod: PendingPod) -> int:
        snap = self.snapshot
        if pod.constraints.refusals or snap.unknown_resources(pod) or len(snap) == 0:
            return 0
        need = snap.request_vector(pod)
        slots = (snap.max_pods - snap.pod_count).astype(float)
        wanted = need > 0
        if wanted.any():
            free = snap.allocatable[:, wanted] - snap.requested[:, wanted]
            copies = np.floor(free / need[wanted] + 1e-9).min(axis=1)
            slots = np.minimum(slots, copies)
        slots = np.where(self._static_mask(pod), np.maximum(slots, 0.0), 0.0)
        if pod.constraints.host_ports:  # one copy per node, where its ports are free
            ports_free = snap.occupancy.free_ports(pod.constraints.host_ports)
            slots = np.where(ports_free, np.minimum(slots, 1.0), 0.0)
        return int(slots.sum())

    def evaluate(self, pod: PendingPod) -> ScoreTable | Status:
        """Filter, Score and NormalizeScore for ``pod`` against the current reservations."""
        mask = self.feasible(pod)
        if isinstance(mask, Status):
            return mask
        return self.score(pod, np.flatnonzero(mask))

    def score(self, pod: PendingPod, candidates: IntArray) -> ScoreTable:
        """Score and NormalizeScore for ``pod`` on ``candidates``, the node rows
        :meth:`feasible` allows it now (a caller that filters further first, and finds
        nothing left, is spared the scoring)."""
        total = np.zeros(candidates.size)
        if self._scorers is None:
            self._scorers = [(p, w, _conditional(p)) for p, w in self.profile.scorers]
        plain = self.plain(pod)
        for plugin, weight, conditional in self._scorers:
            if conditional is None or (not plain and conditional.applies(pod, self.snapshot)):
                total += weight * plugin.normalize(plugin.score(pod, self.snapshot, candidates))
        return ScoreTable(pod, candidates, total)

    def evaluate_alike(self, pods: Sequence[PendingPod]) -> list[ScoreTable | Status]:
        """:meth:`evaluate` for each of ``pods``, which share one feasibility key and are
        evaluated with nothing committed in between: the same tables, with the Filter run
        once and the plugins that can (:class:`AlikeScorer`) scoring them together."""
        if len(pods) < 2 or not all(self.plain(p) for p in pods):
            return [self.evaluate(p) for p in pods]
        mask = self.feasible(pods[0])
        if isinstance(mask, Status):
            return [mask] * len(pods)
        candidates = np.flatnonzero(mask)
        totals = [np.zeros(candidates.size) for _ in pods]
        if self._scorers is None:
            self._scorers = [(p, w, _conditional(p)) for p, w in self.profile.scorers]
        for plugin, weight, conditional in self._scorers:
            if conditional is not None:
                continue  # plain pods skip conditional plugins (as evaluate does)
            if isinstance(plugin, AlikeScorer):
                raw = plugin.score_alike(pods, self.snapshot, candidates)
            else:
                raw = [plugin.score(p, self.snapshot, candidates) for p in pods]
            for total, scores in zip(totals, raw, strict=True):
                total += weight * plugin.normalize(scores)
        return [ScoreTable(p, candidates, t) for p, t in zip(pods, totals, strict=True)]

    def commit(self, pod: PendingPod, node: int, table: ScoreTable | None = None) -> Decision:
        """Reserve ``pod`` on node row ``node`` and record the decision."""
        snap = self.snapshot
        self.profile.reserve.reserve(pod, snap, node)
        score = runners = None
        if table is not None:
            score = table.score_of(node)
            runners = tuple((snap.nodes[row].name, s) for row, s in table.runners_up(node))
        decision = Decision(
            pod=pod,
            node=snap.nodes[node].name,
            status=Status.success(),
            pass_path=self.pass_path,
            score=score,
            runners_up=runners or (),
            namespace_share=namespace_share(snap, pod.namespace),
            node_row=node,
        )
        self.decisions.append(decision)
        return decision

    def mark(self) -> int:
        """A point this pass can go back to with :meth:`rollback`."""
        return len(self.decisions)

    def rollback(self, mark: int) -> None:
        """Take back every decision made since ``mark`` (placements unreserved)."""
        for decision in self.decisions[mark:]:
            if decision.placed:
                self.profile.reserve.unreserve(decision.pod, self.snapshot)
        del self.decisions[mark:]
        # Capacity came back: a pod that fitted nowhere may fit now.
        self._no_fit.clear()

    def reject(
        self, pod: PendingPod, status: Status, nomination: Nomination | None = None
    ) -> Decision:
        """Record that ``pod`` stays pending, and why (and the node held for it, if any)."""
        decision = Decision(
            pod=pod, node=None, status=status, pass_path=self.pass_path, nomination=nomination
        )
        self.decisions.append(decision)
        return decision

    def nodes_but_for_room(self, pod: PendingPod) -> BoolArray:
        """Nodes that pass the pod's filters that do not depend on what runs there
        (readiness, cordons, node affinity and selectors, taints): where it would fit if
        room were made (what preemption may consider)."""
        return self._static_mask(pod)

    def _static_mask(self, pod: PendingPod) -> BoolArray:
        key = (
            id(self.profile),
            pod.tolerations,
            tuple(sorted(pod.node_selector.items())),
            pod.constraints.required_node_terms,
        )
        mask = self.snapshot.cached(key)
        if mask is None:
            mask = np.ones(len(self.snapshot), dtype=bool)
            for plugin in self.profile.filters:
                if plugin.static:
                    mask &= plugin.filter(pod, self.snapshot)
            self.snapshot.remember(key, mask)
        return mask

    def _diagnose(self, pod: PendingPod) -> Status:
        """Count, per reason, the nodes each filter rejected (first failing filter wins)."""
        snap = self.snapshot
        remaining = np.ones(len(snap), dtype=bool)
        counts: Counter[str] = Counter()
        resolvable = False
        for plugin in self.profile.filters:
            conditional = _conditional(plugin)
            if conditional is not None and not conditional.applies(pod, snap):
                continue
            passed = plugin.filter(pod, snap)
            for node in np.flatnonzero(remaining & ~passed):
                for reason in plugin.reasons(pod, snap, int(node)):
                    counts[reason] += 1
            if not plugin.unresolvable and (remaining & ~passed).any():
                resolvable = True
            remaining &= passed
        detail = ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items()))
        code = Code.UNSCHEDULABLE if resolvable else Code.UNSCHEDULABLE_AND_UNRESOLVABLE
        return Status(code, (f"0/{len(snap)} nodes are available: {detail}.",), "Filter")
