"""Queue-sort plugins: which pending pod is tried first."""

from __future__ import annotations

from hybrid_policy.domain import PendingPod


class PrioritySort:
    """kube-scheduler's PrioritySort: higher priority first, then creation time (FIFO)."""

    name = "PrioritySort"

    def sort_key(self, pod: PendingPod) -> tuple[float | int | str, ...]:
        """``(-priority, created_at_s, uid)``."""
        return (-pod.priority, pod.created_at_s, pod.uid)


class ShortestRemainingFirst:
    """Shortest expected run time first (needs run times: the oracle's queue)."""

    name = "ShortestRemainingFirst"

    def sort_key(self, pod: PendingPod) -> tuple[float | int | str, ...]:
        """``(expected_runtime_s, created_at_s, uid)``; unknown run times go last."""
        runtime = pod.expected_runtime_s if pod.expected_runtime_s is not None else float("inf")
        return (runtime, pod.created_at_s, pod.uid)
