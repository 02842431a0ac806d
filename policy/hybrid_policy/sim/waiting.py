"""Pending pods in the simulator, grouped so that a pass only looks at pods that may fit.

Pods are grouped by (constraint signature, namespace), each group in queue order. If at
most ``k`` pods of a signature fit in the cluster right now, a pass can place at most the
first ``k`` of each group (a gang counting as one unit with all its pods): within a
group the arbitrators try pods in queue order, a pod that fails makes every later pod of
its signature fail, and reservations only take capacity away. Leaving the rest out
changes no decision, and keeps a pass proportional to what it can place instead of to the
length of the queue (thousands of pods on the Philly trace).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable

from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.queue import SortKey

GroupKey = tuple[tuple[object, ...], str]


class WaitingPods:
    """Pending pods by (signature, namespace), each group sorted by the queue-sort key."""

    def __init__(self, sort_key: SortKey) -> None:
        self.sort_key = sort_key
        self._groups: dict[GroupKey, list[PendingPod]] = {}
        self._keys: dict[GroupKey, list[tuple[object, ...]]] = {}
        self._count = 0
        #: Whether any gang pod was ever queued (pods then come with their whole gang).
        self._gangs = False

    def __len__(self) -> int:
        return self._count

    def add(self, pod: PendingPod) -> None:
        """Queue ``pod`` in its group, in queue order."""
        group = (pod.constraint_signature, pod.namespace)
        pods = self._groups.setdefault(group, [])
        keys = self._keys.setdefault(group, [])
        key = self.sort_key(pod)
        self._gangs |= pod.gang is not None
        at = len(keys) if not keys or keys[-1] <= key else bisect.bisect_right(keys, key)
        pods.insert(at, pod)
        keys.insert(at, key)
        self._count += 1

    def candidates(
        self, fit_count: Callable[[PendingPod], int], at_least: int = 0
    ) -> list[PendingPod]:
        """The head of each group, as long as its signature could still fit, and at least
        the first ``at_least`` pods of every group (a reserving policy reserves nodes for
        pods that fit nowhere yet)."""
        limits: dict[tuple[object, ...], int] = {}
        out: list[PendingPod] = []
        for (signature, _), pods in self._groups.items():
            limit = limits.get(signature)
            if limit is None:
                limit = limits[signature] = fit_count(pods[0])
            take = max(limit, at_least)
            if not self._gangs:
                out.extend(pods[:take])
            else:
                out.extend(_with_whole_gangs(pods, take))
        return out

    def remove(self, pods: Iterable[PendingPod]) -> None:
        """Take placed pods out of their groups."""
        by_group: dict[GroupKey, set[str]] = {}
        for pod in pods:
            by_group.setdefault((pod.constraint_signature, pod.namespace), set()).add(pod.uid)
        for group, uids in by_group.items():
            pods_in, keys = self._groups[group], self._keys[group]
            # Placed pods sit at the head of their group: scan only until all are found.
            found, end = 0, 0
            while found < len(uids):
                found += pods_in[end].uid in uids
                end += 1
            head = [i for i in range(end) if pods_in[i].uid not in uids]
            self._count -= found
            pods_in[:end] = [pods_in[i] for i in head]
            keys[:end] = [keys[i] for i in head]
            if not pods_in:
                del self._groups[group], self._keys[group]

    def all(self) -> list[PendingPod]:
        """Every waiting pod."""
        return [p for pods in self._groups.values() for p in pods]


def _with_whole_gangs(pods: list[PendingPod], take: int) -> list[PendingPod]:
    """The head of a group as :meth:`WaitingPods.candidates` takes it, where a gang counts
    as one unit with all its waiting pods (a gang may be placed only whole, and one that
    is not takes nothing from the pods behind it): the first ``take`` single pods, and
    the first ``take`` gangs met before the last of them."""
    out: list[PendingPod] = []
    singles = 0
    gangs: set[tuple[str, str]] = set()
    for pod in pods:
        key = pod.gang_key
        if key is None:
            if singles >= take:
                if not gangs:
                    break
                continue
            singles += 1
            out.append(pod)
        elif key in gangs:
            out.append(pod)
        elif len(gangs) < take and singles < take:
            gangs.add(key)
            out.append(pod)
    return out
