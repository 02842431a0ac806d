"""The fair order of one pass: aged pods first, then namespaces by weighted dominant share.

A pod pending at least ``max_wait_s`` is aged: aged pods go first, oldest first, whatever
their namespace holds, which bounds every pod's wait by the ageing threshold plus the
time until the pods ahead of it start. The others follow weighted DRF across namespaces
(Ghodsi et al., NSDI'11): the namespace holding the smallest dominant share over its
weight, counting what this pass already placed, gives its next pod, and a namespace's
pods keep their queue order.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator, Sequence

import numpy as np

from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.snapshot import ClusterSnapshot


def is_aged(pod: PendingPod, now_s: float, max_wait_s: float) -> bool:
    """Whether ``pod`` has waited at least ``max_wait_s`` at ``now_s``."""
    return now_s - pod.created_at_s >= max_wait_s


def fair_order(
    batch: Sequence[PendingPod], snapshot: ClusterSnapshot, now_s: float, max_wait_s: float
) -> Iterator[PendingPod]:
    """Yield the pods of ``batch`` (in queue order) in fair order.

    Shares are read from ``snapshot`` when a namespace is next considered, so placements
    the caller commits between two pods count at once.
    """
    aged = sorted(
        (p for p in batch if is_aged(p, now_s, max_wait_s)), key=lambda p: (p.created_at_s, p.uid)
    )
    yield from aged
    queues: dict[str, deque[PendingPod]] = {}
    for pod in batch:
        if not is_aged(pod, now_s, max_wait_s):
            queues.setdefault(pod.namespace, deque()).append(pod)
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
