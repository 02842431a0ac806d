"""Run times of finished pods, kept per namespace and job class, newest last.

A job class is the pod's task type, its ``job_class`` (the operator reads it from the pod's
labels and owner; the simulator leaves it unset) and its GPU count; a coarser key
(namespace and task type) answers when the class has too few pods yet. Work is stored in
seconds at node performance 100, so pods that ran on nodes of different speeds are
comparable. A query at time ``t`` reads only pods that finished at or before ``t``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from hybrid_policy.domain import PendingPod
from hybrid_policy.resources import GPU

HistoryKey = tuple[str, str, str, int]
#: GPU count of the coarser key (any GPU count of the task type).
ANY_GPUS = -1


def class_key(pod: PendingPod) -> HistoryKey:
    """(namespace, task type, job class, GPUs): the class a pod's history is read from."""
    return (pod.namespace, pod.task_type or "", pod.job_class or "", int(pod.requests.get(GPU, 0)))


def coarse_key(pod: PendingPod) -> HistoryKey:
    """(namespace, task type, any job class and GPU count)."""
    return (pod.namespace, pod.task_type or "", "", ANY_GPUS)


@dataclass(frozen=True, slots=True)
class Completion:
    """One finished pod: when it finished and its work at performance 100."""

    finished_at_s: float
    work_s: float


class RuntimeHistory:
    """The latest ``window`` completions of every job class and of every task type."""

    def __init__(self, window: int, min_samples: int) -> None:
        if window < 1 or min_samples < 1 or min_samples > window:
            raise ValueError(
                f"history: need 1 <= min_samples <= window (got {min_samples}, {window})"
            )
        self.window = window
        self.min_samples = min_samples
        self._by_key: dict[HistoryKey, deque[Completion]] = {}
        #: Work summed over the completions kept per key.
        self._sums: dict[HistoryKey, float] = {}
        #: The latest finish among the completions kept per key.
        self._latest: dict[HistoryKey, float] = {}

    def record(self, pod: PendingPod, finished_at_s: float, work_s: float) -> None:
        """Remember that ``pod`` finished at ``finished_at_s`` after ``work_s`` of work."""
        done = Completion(finished_at_s, work_s)
        for key in (class_key(pod), coarse_key(pod)):
            entries = self._by_key.get(key)
            if entries is None:
                entries = self._by_key[key] = deque(maxlen=self.window)
            dropped = entries[0].work_s if len(entries) == self.window else 0.0
            entries.append(done)
            self._sums[key] = self._sums.get(key, 0.0) + work_s - dropped
            self._latest[key] = max(c.finished_at_s for c in entries)

    def mean_work(self, pod: PendingPod, now_s: float) -> float | None:
        """Mean work of the pod's class (else of its task type in its namespace) over pods
        finished by ``now_s``; None with fewer than ``min_samples`` of them."""
        for key in (class_key(pod), coarse_key(pod)):
            entries = self._by_key.get(key)
            if not entries:
                continue
            if self._latest[key] <= now_s:  # every kept completion finished by now
                if len(entries) >= self.min_samples:
                    return self._sums[key] / len(entries)
                continue
            earlier = [c.work_s for c in entries if c.finished_at_s <= now_s]
            if len(earlier) >= self.min_samples:
                return sum(earlier) / len(earlier)
        return None

    def completions(self, pod: PendingPod) -> tuple[Completion, ...]:
        """Every completion kept for the pod's class, oldest first."""
        return tuple(self._by_key.get(class_key(pod), ()))
