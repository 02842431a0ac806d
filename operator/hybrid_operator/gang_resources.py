"""A PodGroup's ``spec.minResources``: a gang is not tried while the cluster lacks them.

As Coscheduling's PreFilter does, once a gang has as many pods as it needs, each amount
its PodGroup names in ``minResources`` is compared with what the cluster has free in
total: allocatable minus requested, summed over the schedulable nodes (ready and not
cordoned), the gang's own placed pods counted as free. A gang short of one of them is
not offered to the policy in that pass: each of its pods is left pending with a
notice that names the resource (``gang team-a/llm: minResources nvidia.com/gpu=16 is
more than the 12 free in the cluster; ...``), which the PodGroup's status and Events
repeat. Like Coscheduling's, the check is a necessary condition only: a gang that
passes it may still not fit whole (affinity, taints, fragmentation), and the policy
then says so.

A gang that already runs ``min_member`` pods takes its late members alone, unchecked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.cycle import Decision
from hybrid_policy.framework.paths import PassPath
from hybrid_policy.framework.snapshot import ClusterSnapshot
from hybrid_policy.framework.status import Code, Status
from hybrid_policy.resources import PODS, format_amount

#: The plugin name on the status of a pod left pending by the check.
MIN_RESOURCES = "MinResources"

#: ``minResources`` of the PodGroup of each gang, by ``(namespace, gang name)``.
MinResourcesOf = Callable[[tuple[str, str]], Mapping[str, int]]


@dataclass(frozen=True)
class Shortfall:
    """One resource of ``minResources`` that the cluster lacks."""

    resource: str
    wanted: int
    free: int

    @property
    def text(self) -> str:
        """``nvidia.com/gpu=16 is more than the 12 free``."""
        wanted, free = (format_amount(self.resource, x) for x in (self.wanted, self.free))
        return f"{self.resource}={wanted} is more than the {free} free"


def free_in_cluster(snapshot: ClusterSnapshot, resource: str, own: Iterable[PendingPod]) -> int:
    """What the schedulable nodes have free of ``resource`` in total, the pods ``own``
    (the gang's placed pods) counted as free; ``pods`` counts free pod slots."""
    rows = [i for i, n in enumerate(snapshot.nodes) if n.ready and not n.unschedulable]
    placed = [(snapshot.placements.get(p.uid), p) for p in own]
    if resource == PODS:
        free = {i: int(snapshot.max_pods[i] - snapshot.pod_count[i]) for i in rows}
        for row, _ in placed:
            if row in free:
                free[row] += 1
        return sum(max(amount, 0) for amount in free.values())
    column = snapshot.index.get(resource)
    if column is None:
        return 0
    left = {i: float(snapshot.allocatable[i, column] - snapshot.requested[i, column]) for i in rows}
    for row, pod in placed:
        if row in left:
            left[row] += float(snapshot.request_vector(pod)[column])
    return int(sum(max(amount, 0.0) for amount in left.values()))


def shortfalls(
    min_resources: Mapping[str, int], snapshot: ClusterSnapshot, own: Iterable[PendingPod]
) -> list[Shortfall]:
    """The resources of ``min_resources`` the cluster has less of free, by name."""
    mates = list(own)
    out = []
    for resource in sorted(min_resources):
        free = free_in_cluster(snapshot, resource, mates)
        if min_resources[resource] > free:
            out.append(Shortfall(resource, min_resources[resource], free))
    return out


def notice(gang: tuple[str, str], min_member: int, short: list[Shortfall]) -> str:
    """What the gang's pods and PodGroup are told while the cluster lacks ``short``."""
    return (
        f"gang {gang[0]}/{gang[1]}: minResources {', '.join(s.text for s in short)} in the "
        f"cluster; none of its {min_member} pods is placed until they are free"
    )


def hold_out(
    batch: list[PendingPod],
    snapshot: ClusterSnapshot,
    min_resources_of: MinResourcesOf,
    own: Callable[[tuple[str, str]], Iterable[PendingPod]],
    arbitrator: str,
) -> tuple[list[PendingPod], list[Decision]]:
    """``batch`` without the pods of gangs whose ``minResources`` the cluster lacks, and a
    pending decision for each pod left out (``own``: a gang's placed pods)."""
    waiting: dict[tuple[str, str], int] = {}
    for pod in batch:
        if pod.gang_key is not None:
            waiting[pod.gang_key] = waiting.get(pod.gang_key, 0) + 1
    held: dict[tuple[str, str], Status] = {}
    checked: set[tuple[str, str]] = set()
    for pod in batch:
        key = pod.gang_key
        if key is None or pod.gang is None or key in checked:
            continue
        checked.add(key)
        placed = snapshot.gang_members[key]
        wanted = min_resources_of(key)
        if not wanted or placed >= pod.gang.min_member:
            continue
        if placed + waiting[key] < pod.gang.min_member:
            continue  # the policy says it waits for its members, as Coscheduling does first
        short = shortfalls(wanted, snapshot, own(key))
        if short:
            message = notice(key, pod.gang.min_member, short)
            held[key] = Status(Code.UNSCHEDULABLE, (message,), MIN_RESOURCES)
    if not held:
        return batch, []
    path = PassPath(arbitrator)
    kept = [p for p in batch if p.gang_key not in held]
    left = [
        Decision(p, None, held[p.gang_key], path)
        for p in batch
        if p.gang_key is not None and p.gang_key in held
    ]
    return kept, left
