"""Which running pods may be victims, what taking them back costs, and the cheapest
minimal set that makes room on one node.

A gang is evicted whole: its running pods form one *unit*, which frees on a node only
what its members there hold but costs the work of all of them. A unit is a victim only if
every member may be. The cheapest units are taken first (least work lost since the last
checkpoint, then lowest priority, then newest), and the set is then pruned in reverse:
each chosen unit, costliest first, is spared if the rest still make room (kube-scheduler
reprieves victims the same way)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from hybrid_policy.preemption.model import PreemptionRules, RunningPod
from hybrid_policy.resources import GPU


def may_be_victim(pod: RunningPod, now_s: float, rules: PreemptionRules) -> bool:
    """Opted in, run for at least the minimum, and not preempted too often already."""
    return (
        pod.opted_in
        and pod.ran_s(now_s) >= rules.min_runtime_s
        and pod.preemptions < rules.max_preemptions
    )


@dataclass(frozen=True, slots=True)
class VictimUnit:
    """Running pods taken back together: one pod, or every running pod of a gang."""

    pods: tuple[RunningPod, ...]
    #: :meth:`cost_key` by time asked (the members never change; a pass asks for the same
    #: units' costs once per preemptor and node), and :meth:`freed_on` by node.
    _costs: dict[float, tuple[float, int, float, str]] = field(
        default_factory=dict, compare=False, repr=False
    )
    _freed: dict[str, Mapping[str, int]] = field(default_factory=dict, compare=False, repr=False)
    #: :meth:`lost_s` by time asked.
    _lost: dict[float, float] = field(default_factory=dict, compare=False, repr=False)

    @property
    def namespace(self) -> str:
        """The team that loses the unit (a gang's pods share a namespace)."""
        return self.pods[0].namespace

    @property
    def priority(self) -> int:
        """The highest priority among the members (a gang is as important as its most
        important pod)."""
        return max(p.priority for p in self.pods)

    def gpus(self) -> int:
        """GPUs the unit holds, on every node."""
        if len(self.pods) == 1:  # most units: a pod alone
            return self.pods[0].requests.get(GPU, 0)
        return sum(p.requests.get(GPU, 0) for p in self.pods)

    def freed_on(self, node: str) -> Mapping[str, int]:
        """What the unit's members on ``node`` hold there."""
        known = self._freed.get(node)
        if known is None:
            known = self._freed[node] = self._freed_on(node)
        return known

    def _freed_on(self, node: str) -> Mapping[str, int]:
        if len(self.pods) == 1:
            only = self.pods[0]
            return only.requests if only.node == node else {}
        out: Counter[str] = Counter()
        for p in self.pods:
            if p.node == node:
                out.update(p.requests)
        return out

    def work_lost(self, now_s: float) -> float:
        """GPU-seconds of work lost if the unit is taken back now (a pod without GPUs
        counts as one, so that CPU pods are not free to preempt)."""
        return sum(p.work_lost_s(now_s) * max(p.requests.get(GPU, 0), 1) for p in self.pods)

    def lost_s(self, now_s: float) -> float:
        """Wall seconds of work the unit's longest-losing member would lose now."""
        known = self._lost.get(now_s)
        if known is None:
            known = self._lost[now_s] = self._lost_s(now_s)
        return known

    def _lost_s(self, now_s: float) -> float:
        if len(self.pods) == 1:
            return self.pods[0].work_lost_s(now_s)
        return max(p.work_lost_s(now_s) for p in self.pods)

    def cost_key(self, now_s: float) -> tuple[float, int, float, str]:
        """Cheapest first: least work lost, lowest priority, newest, then by uid."""
        known = self._costs.get(now_s)
        if known is None:
            known = self._costs[now_s] = self._cost_key(now_s)
        return known

    def _cost_key(self, now_s: float) -> tuple[float, int, float, str]:
        if len(self.pods) == 1:
            only = self.pods[0]
            return (self.work_lost(now_s), only.priority, -only.started_at_s, only.uid)
        newest = max(p.started_at_s for p in self.pods)
        return (self.work_lost(now_s), self.priority, -newest, min(p.uid for p in self.pods))


def gpus_by_team(units: Iterable[VictimUnit]) -> dict[str, float]:
    """GPUs ``units`` hold, per team: what a set of victims takes from each team."""
    out: dict[str, float] = {}
    for unit in units:
        out[unit.namespace] = out.get(unit.namespace, 0.0) + float(unit.gpus())
    return out


def units_on(
    node: str,
    running: Iterable[RunningPod],
    gang_pods: Mapping[tuple[str, str], Sequence[RunningPod]],
    eligible: Mapping[str, bool],
) -> list[VictimUnit]:
    """The units with a member on ``node`` whose every member is eligible (``eligible``
    by uid; a member missing from it is not)."""
    units: list[VictimUnit] = []
    seen: set[tuple[str, str]] = set()
    for pod in running:
        if pod.node != node:
            continue
        if pod.gang is None:
            members: tuple[RunningPod, ...] = (pod,)
        elif pod.gang in seen:
            continue
        else:
            seen.add(pod.gang)
            members = tuple(gang_pods.get(pod.gang, (pod,)))
        if all(eligible.get(m.uid, False) for m in members):
            units.append(VictimUnit(members))
    return units


def shortfall(requests: Mapping[str, int], free: Mapping[str, int]) -> dict[str, int]:
    """What must be freed, per resource, for ``requests`` to fit in ``free``."""
    return {r: q - free.get(r, 0) for r, q in requests.items() if q > free.get(r, 0)}


def _covers(freed: Mapping[str, int], short: Mapping[str, int]) -> bool:
    return all(freed.get(r, 0) >= q for r, q in short.items())


def minimal_units(
    node: str, units: Sequence[VictimUnit], short: Mapping[str, int], now_s: float
) -> tuple[VictimUnit, ...] | None:
    """The cheapest units that free ``short`` on ``node``, pruned so that no unit can be
    spared; None when all of them together do not free enough."""
    if not short:
        return ()
    if not units:
        return None
    freed_by = [u.freed_on(node) for u in units]
    if not _covers(_added({}, *freed_by), short):
        return None
    keys = [u.cost_key(now_s) for u in units]
    chosen: list[int] = []
    freed: dict[str, int] = {}
    for i in sorted(range(len(units)), key=keys.__getitem__):
        if _covers(freed, short):
            break
        chosen.append(i)
        _added(freed, freed_by[i])
    for i in sorted(chosen, key=keys.__getitem__, reverse=True):
        spared = {r: q - freed_by[i].get(r, 0) for r, q in freed.items()}
        if _covers(spared, short):
            chosen.remove(i)
            freed = spared
    return tuple(units[i] for i in sorted(chosen, key=keys.__getitem__))


def _added(total: dict[str, int], *parts: Mapping[str, int]) -> dict[str, int]:
    """``total`` with every part added to it, in place."""
    for part in parts:
        for r, q in part.items():
            total[r] = total.get(r, 0) + q
    return total
