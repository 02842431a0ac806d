"""The fair order of one pass: aged units first, then namespaces by weighted dominant share.

The order is over *units*: a single pod, or the pods of a gang, standing where the gang's
first pod stands in its namespace's queue (:func:`~hybrid_policy.framework.gangs.units`).
A unit whose first pod has been pending at least ``max_wait_s`` is aged: aged units go
first, oldest first, whatever their namespace holds, which bounds every unit's wait by the
ageing threshold plus the time until the units ahead of it start. The others follow
weighted DRF across namespaces (Ghodsi et al., NSDI'11): the namespace holding the smallest
dominant share over its weight, counting what this pass already placed (all of a gang's
pods once it is placed), gives its next unit, and a namespace's units keep their queue
order.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator, Sequence

import numpy as np

from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.gangs import Unit
from hybrid_policy.framework.snapshot import ClusterSnapshot


def is_aged(pod: PendingPod, now_s: float, max_wait_s: float) -> bool:
    """Whether ``pod`` has waited at least ``max_wait_s`` at ``now_s``."""
    return now_s - pod.created_at_s >= max_wait_s


def fair_order(
    batch: Sequence[Unit], snapshot: ClusterSnapshot, now_s: float, max_wait_s: float
) -> Iterator[Unit]:
    """Yield the units of ``batch`` (in queue order of their first pods) in fair order.

    Shares are read from ``snapshot`` when a namespace is next considered, so placements
    the caller commits between two units count at once.
    """
    aged = sorted(
        (u for u in batch if is_aged(u[0], now_s, max_wait_s)),
        key=lambda u: (u[0].created_at_s, u[0].uid),
    )
    yield from aged
    queues: dict[str, deque[Unit]] = {}
    for unit in batch:
        if not is_aged(unit[0], now_s, max_wait_s):
            queues.setdefault(unit[0].namespace, deque()).append(unit)
    total = snapshot.total_allocatable
    scale = np.divide(1.0, total, out=np.zeros_like(total), where=total > 0)

    def share(namespace: str) -> float:
        held = snapshot.namespace_allocated.get(namespace)
        if held is None:
            return 0.0
        return float((held * scale).max()) / snapshot.weight_of(namespace)

    # Only the namespace just served changes share, so a heap keeps the order.
    heap = [(share(ns), ns) for ns in queues]
    heapq.heapify(heap)
    while heap:
        _, namespace = heapq.heappop(heap)
        pods = queues[namespace]
        yield pods.popleft()
        if pods:
            heapq.heappush(heap, (share(namespace), namespace))
