"""All or nothing for gangs: a pass places every pod a gang still needs, or none of them.

A gang's pods are useless alone, and pods placed one by one while the others wait hold
capacity that nobody uses (two such gangs can deadlock, each holding half of what it
needs). Gang-aware arbitrators therefore serve a gang as one *unit*, where its first pod
stands in queue order: its pods are placed one after the other on their best nodes and,
if one of them fits nowhere, every placement of the unit is taken back at once
(:meth:`BatchCycle.rollback`) before any other pod is served. A gang that already runs
``min_member`` pods (counted in the snapshot) takes late members like single pods.

:func:`settle_gangs` is the profile's last word: whatever the arbitrator did, a gang left
short of ``min_member`` after the pass has this pass's placements taken back.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import numpy as np

from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.cycle import BatchCycle, Decision, ScoreTable
from hybrid_policy.framework.status import Code, Status

GANG = "Gang"

#: A single pod, or the pods of one gang in queue order.
Unit = tuple[PendingPod, ...]
#: Picks the node row for a pod from its score table (None: no allowed node).
Chooser = Callable[[PendingPod, ScoreTable], int | None]


def gang_status(pod: PendingPod, placed: int, batch_members: int | None = None) -> Status:
    """Why a gang's pod stays pending: ``placed`` of its gang's pods would fit (or only
    ``batch_members`` of them are waiting)."""
    assert pod.gang is not None
    need = pod.gang.min_member
    if batch_members is not None:
        why = f"{batch_members} of {need} pods exist; waiting for the rest"
    else:
        why = f"{placed} of {need} pods would fit; none is placed until all fit"
    return Status(Code.UNSCHEDULABLE, (f"gang {pod.namespace}/{pod.gang.name}: {why}",), GANG)


def units(batch: Sequence[PendingPod], cycle: BatchCycle) -> list[Unit]:
    """``batch`` as units, in the order of each unit's first pod: a gang that still needs
    pods is one unit; a late member of a gang already running is a unit of its own."""
    gangs: dict[tuple[str, str], list[PendingPod]] = {}
    out: list[Unit | list[PendingPod]] = []
    for pod in batch:
        key = pod.gang_key
        if key is None or pod.gang is None or _complete(pod, cycle):
            out.append((pod,))
            continue
        members = gangs.get(key)
        if members is None:
            members = gangs[key] = []
            out.append(members)
        members.append(pod)
    return [tuple(u) for u in out]


def _complete(pod: PendingPod, cycle: BatchCycle) -> bool:
    assert pod.gang is not None and pod.gang_key is not None
    return cycle.snapshot.gang_members[pod.gang_key] >= pod.gang.min_member


def best_node(pod: PendingPod, table: ScoreTable, cycle: BatchCycle) -> int:
    """The best-scored row of ``table`` (ties broken by the pass's random generator)."""
    return table.best(cycle.rng)


def place_unit(
    unit: Unit,
    cycle: BatchCycle,
    choose: Chooser | None = None,
    reject: bool = True,
    scored: ScoreTable | None = None,
) -> bool:
    """Place every pod of ``unit`` or none (each on the node ``choose`` picks, by default
    its best-scored one); rejected pods get their reason, unless ``reject`` is off (the
    caller then decides them). True when placed. ``scored``: a gang's table scored
    earlier in the pass (:func:`try_unit`)."""
    pick = choose or (lambda pod, table: best_node(pod, table, cycle))
    if len(unit) == 1 and (unit[0].gang is None or not cycle.profile.gang_aware):
        return place_one(unit[0], cycle, pick) is None
    head = unit[0]
    assert head.gang is not None and head.gang_key is not None
    running = cycle.snapshot.gang_members[head.gang_key]
    if running + len(unit) < head.gang.min_member:
        if reject:
            for pod in unit:
                cycle.reject(pod, gang_status(pod, 0, batch_members=running + len(unit)))
        return False
    fitted = try_unit(unit, cycle, pick, scored)
    if fitted is None:
        return True
    if reject:
        for member in unit:
            cycle.reject(member, gang_status(member, running + fitted))
    return False


def try_unit(
    unit: Unit, cycle: BatchCycle, choose: Chooser, scored: ScoreTable | None = None
) -> int | None:
    """Place the pods of ``unit`` one after the other (each on the node ``choose`` picks);
    None when all are placed, else everything is taken back and the number that fitted
    before one did not is returned. Nothing is rejected.

    A gang of pods that fit the same nodes, with fewer copies fitting side by side now than
    it has pods (:meth:`BatchCycle.fit_count`, an upper bound), is answered without
    evaluating any of them: that many would fit at most.

    Pods alike (same requests and constraints) are placed by one score table, the
    gang's, kept to the nodes where each still fits: ``scored``, a table the caller
    scored for the gang earlier in the pass, or the first pod's own evaluation."""
    if len(unit) > 1 and len({cycle.feasibility_key(p) for p in unit}) == 1:
        fit = cycle.fit_count(unit[0])
        if fit < len(unit):
            return fit
    mark = cycle.mark()
    group = scored if scored is not None and _shares_table(unit, cycle) else None
    for placed, pod in enumerate(unit):
        table = _member_table(pod, group, cycle)
        row = choose(pod, table) if isinstance(table, ScoreTable) else None
        if row is None:
            cycle.rollback(mark)
            return placed
        assert isinstance(table, ScoreTable)
        cycle.commit(pod, row, table)
        if group is None and _shares_table(unit, cycle):
            group = table
    return None


def _shares_table(unit: Unit, cycle: BatchCycle) -> bool:
    """Whether one score table serves every pod of ``unit``: the pods are alike (same
    requests and constraints) and no placed pod's terms can change their scores."""
    head = unit[0]
    key = cycle.feasibility_key(head)
    return all(
        p.requests == head.requests and cycle.feasibility_key(p) == key for p in unit
    ) and all(cycle.plain(p) for p in unit)


def _member_table(
    pod: PendingPod, group: ScoreTable | None, cycle: BatchCycle
) -> ScoreTable | Status:
    """The score table ``pod`` is placed by: the gang's own, scored once for its first
    pod and kept to the nodes where ``pod`` still fits, when ``group`` is given; else
    ``pod``'s own evaluation."""
    if group is None:
        return cycle.evaluate(pod)
    mask = cycle.feasible(pod)
    if isinstance(mask, Status):
        return mask
    keep = mask[group.candidates]
    if not keep.any():
        return Status(Code.UNSCHEDULABLE, ("no allowed node",), GANG)
    return ScoreTable(pod, group.candidates[keep], group.scores[keep])


def missing_members(unit: Unit, cycle: BatchCycle) -> int:
    """How many more pods the gang of ``unit`` needs than it runs and has waiting (0 when
    all it needs are here)."""
    head = unit[0]
    if head.gang is None or head.gang_key is None:
        return 0
    running = cycle.snapshot.gang_members[head.gang_key]
    return max(head.gang.min_member - running - len(unit), 0)


def place_one(
    pod: PendingPod, cycle: BatchCycle, pick: Chooser, record: bool = True
) -> Status | None:
    """Commit ``pod`` to the node ``pick`` chooses from its score table; the reason (the
    pod rejected with it when ``record``) if none."""
    table = cycle.evaluate(pod)
    if isinstance(table, ScoreTable):
        row = pick(pod, table)
        if row is not None:
            cycle.commit(pod, row, table)
            return None
        table = Status(Code.UNSCHEDULABLE, ("no allowed node",), GANG)
    if record:
        cycle.reject(pod, table)
    return table


def avoiding(rows: Collection[int], rng: np.random.Generator) -> Chooser:
    """A chooser of the best-scored node outside ``rows`` (ties broken by ``rng``)."""

    def choose(pod: PendingPod, table: ScoreTable) -> int | None:
        keep = np.array([int(r) not in rows for r in table.candidates], dtype=bool)
        if not keep.any():
            return None
        allowed = ScoreTable(pod, table.candidates[keep], table.scores[keep])
        return allowed.best(rng)

    return choose


def settle_gangs(cycle: BatchCycle, decisions: Sequence[Decision]) -> list[Decision]:
    """Take back this pass's placements of every gang that is still short of its
    ``min_member``; returns the decisions with those pods rejected (same order)."""
    snapshot = cycle.snapshot
    short: dict[tuple[str, str], int] = {}
    for d in decisions:
        key, gang = d.pod.gang_key, d.pod.gang
        if key is None or gang is None or key in short:
            continue
        placed = snapshot.gang_members[key]
        if placed < gang.min_member:
            short[key] = placed
    if not short:
        return list(decisions)
    out: list[Decision] = []
    for d in decisions:
        key = d.pod.gang_key
        if key is None or key not in short or not d.placed:
            out.append(d)  # a rejected pod keeps the arbitrator's reason
            continue
        cycle.profile.reserve.unreserve(d.pod, snapshot)
        out.append(
            Decision(
                pod=d.pod,
                node=None,
                status=gang_status(d.pod, short[key]),
                pass_path=d.pass_path,
                nomination=d.nomination,
            )
        )
    return out
