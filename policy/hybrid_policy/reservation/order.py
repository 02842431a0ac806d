"""The fair order of one pass: aged units first, then namespaces by one of two rules.

The order is over *units*: a single pod, or the pods of a gang, standing where the gang's
first pod stands in its namespace's queue (:func:`~hybrid_policy.framework.gangs.units`).
A unit whose first pod has been pending at least ``max_wait_s`` is aged: aged units go
first, oldest first, whatever their namespace holds, which bounds every unit's wait by the
ageing threshold plus the time until the units ahead of it start. The others follow the
settings' :class:`~hybrid_policy.reservation.model.OrderRule`, and a namespace's units
keep their queue order under either:

- ``drf``: weighted DRF across namespaces (Ghodsi et al., NSDI'11): the namespace holding
  the smallest dominant share over its weight, counting what this pass already placed
  (all of a gang's pods once it is placed), gives its next unit.
- ``capped``: the pass's *water level* is worked out from what each namespace holds and
  asks for in the pass (its dominant share of held requests plus those of its units in
  the batch): the level at which every
  namespace would get the smaller of its demand and its weight times the level, the
  whole cluster given out (weighted max-min fairness). Namespaces whose share over
  weight is at most the level (times ``1 + level_slack``) are served oldest head first;
  a namespace that rises above it waits until they are all served, and those above it
  then follow DRF. A team inside its fair share thus waits in arrival order with the
  others inside theirs, instead of behind whichever team holds least.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np

from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.gangs import Unit
from hybrid_policy.framework.snapshot import ClusterSnapshot, FloatArray
from hybrid_policy.reservation.model import OrderRule, ReservationSettings

#: Shares within this of the cap count as at it: a full cluster puts the one namespace
#: above its entitlement exactly at the level, up to rounding.
_EPS = 1e-9


def is_aged(pod: PendingPod, now_s: float, max_wait_s: float) -> bool:
    """Whether ``pod`` has waited at least ``max_wait_s`` at ``now_s``."""
    return now_s - pod.created_at_s >= max_wait_s


def fair_order(
    batch: Sequence[Unit], snapshot: ClusterSnapshot, now_s: float, settings: ReservationSettings
) -> Iterator[Unit]:
    """Yield the units of ``batch`` (in queue order of their first pods) in fair order.

    Shares are read from ``snapshot`` when a namespace is next considered, so placements
    the caller commits between two units count at once; the capped rule's water level is
    worked out before the first unit is yielded, from the batch and what is held then.
    """
    total = snapshot.total_allocatable
    scale = np.divide(1.0, total, out=np.zeros_like(total), where=total > 0)
    capped = settings.order is OrderRule.CAPPED
    level = water_level(_demands(batch, snapshot, scale), snapshot.weight_of) if capped else 0.0
    flags = [is_aged(u[0], now_s, settings.max_wait_s) for u in batch]
    aged = sorted(
        (u for u, old in zip(batch, flags, strict=True) if old),
        key=lambda u: (u[0].created_at_s, u[0].uid),
    )
    yield from aged
    queues: dict[str, deque[Unit]] = {}
    for unit, old in zip(batch, flags, strict=True):
        if not old:
            queues.setdefault(unit[0].namespace, deque()).append(unit)

    def share(namespace: str) -> float:
        held = snapshot.namespace_allocated.get(namespace)
        if held is None:
            return 0.0
        return float((held * scale).max()) / snapshot.weight_of(namespace)

    if capped:
        yield from _capped(queues, share, level * (1.0 + settings.level_slack) + _EPS)
    else:
        yield from _drf(queues, share)


def _drf(queues: dict[str, deque[Unit]], share: Callable[[str], float]) -> Iterator[Unit]:
    # Only the namespace just served changes share, so a heap keeps the order.
    heap = [(share(ns), ns) for ns in queues]
    heapq.heapify(heap)
    while heap:
        _, namespace = heapq.heappop(heap)
        pods = queues[namespace]
        yield pods.popleft()
        if pods:
            heapq.heappush(heap, (share(namespace), namespace))


def _capped(
    queues: dict[str, deque[Unit]], share: Callable[[str], float], cap: float
) -> Iterator[Unit]:
    # A namespace's share only rises as it is served and the level is fixed for the
    # pass, so a namespace above the cap stays above it: two heaps keep the order.
    def head(namespace: str) -> tuple[float, str, str]:
        first = queues[namespace][0][0]
        return (first.created_at_s, first.uid, namespace)

    inside: list[tuple[float, str, str]] = []
    above: list[tuple[float, str]] = []
    for ns in queues:
        if (s := share(ns)) <= cap:
            inside.append(head(ns))
        else:
            above.append((s, ns))
    heapq.heapify(inside)
    heapq.heapify(above)
    while inside or above:
        namespace = heapq.heappop(inside)[2] if inside else heapq.heappop(above)[1]
        pods = queues[namespace]
        yield pods.popleft()
        if pods:
            if (s := share(namespace)) <= cap:
                heapq.heappush(inside, head(namespace))
            else:
                heapq.heappush(above, (s, namespace))


def _demands(
    batch: Sequence[Unit], snapshot: ClusterSnapshot, scale: FloatArray
) -> dict[str, float]:
    """Each namespace's dominant share of what it holds plus what it has pending."""
    wanted: dict[str, FloatArray] = {
        ns: held.copy() for ns, held in snapshot.namespace_allocated.items()
    }
    for unit in batch:
        for pod in unit:
            need = snapshot.request_vector(pod)
            if pod.namespace in wanted:
                wanted[pod.namespace] += need
            else:
                wanted[pod.namespace] = need.copy()
    return {ns: float((want * scale).max()) for ns, want in wanted.items()}


def water_level(demand: Mapping[str, float], weight_of: Callable[[str], float]) -> float:
    """The weighted max-min fair level of a capacity of 1 over dominant ``demand``: each
    namespace is entitled to ``min(demand, weight x level)``, the entitlements summing to
    1; infinite when every demand fits at once."""
    if sum(demand.values()) <= 1.0:
        return float("inf")
    names = sorted(demand, key=lambda ns: demand[ns] / weight_of(ns))
    left, weights = 1.0, sum(weight_of(ns) for ns in names)
    for ns in names:
        level = left / weights
        if demand[ns] / weight_of(ns) > level:
            return level
        left -= demand[ns]
        weights -= weight_of(ns)
    return float("inf")
