"""The vocabulary of preemption: the rules a cluster sets, a running pod as a possible
victim, and the plans that name the victims and where the preemptors go: one node for a
pod alone, one node per member for a gang."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class PreemptionReason(StrEnum):
    """Why a pending pod may take a running pod's place."""

    RECLAIM = "reclaim"
    """Its team is below its entitled share and the victim's team above theirs."""
    DEFRAGMENT = "defragment"
    """It has held its reservation past its predicted start by more than the threshold."""
    PRIORITY = "priority"
    """Its PriorityClass is higher than the victim's (as kube-scheduler preempts)."""
    SHORTEN = "shorten"
    """It is predicted to wait longer than stopping the victims would delay them."""
    SHORTEST = "shortest"
    """It is predicted to run much shorter than the victims have left (``shortest``)."""
    WIDE = "wide"
    """It is wide and waits, and the victims are narrower and checkpointed lately."""


@dataclass(frozen=True, slots=True)
class PreemptionRules:
    """What a cluster allows: a pod ran at least ``min_runtime_s`` before it may be a
    victim and is never preempted more than ``max_preemptions`` times; a pending pod may
    trigger preemption only after waiting ``trigger_delay_s``; a reservation overdue by
    more than ``overdue_s`` may defragment its node."""

    min_runtime_s: float = 300.0
    max_preemptions: int = 3
    trigger_delay_s: float = 60.0
    overdue_s: float = 600.0

    def __post_init__(self) -> None:
        for name in ("min_runtime_s", "trigger_delay_s", "overdue_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.max_preemptions < 0:
            raise ValueError(f"max_preemptions must be >= 0, got {self.max_preemptions}")


@dataclass(frozen=True, slots=True)
class RunningPod:
    """A pod bound to ``node``, as preemption sees it.

    ``opted_in`` says whether it may be a victim at all (namespace label, pod annotation
    or cluster setting); ``checkpoint_interval_s`` is how often it saves its work (None:
    never, so a preemption loses everything it did); ``preemptions`` counts how often it
    (or the job it restarts for) was preempted before. ``gang`` is ``(namespace, name)``
    of its gang: a gang is evicted whole. ``took_from`` names the teams whose pods the
    plan that placed it stopped (empty when a pass placed it, or it stopped since): what
    the take-back guard reads (``guard.py``)."""

    namespace: str
    name: str
    uid: str
    node: str
    requests: Mapping[str, int]
    started_at_s: float
    priority: int = 0
    opted_in: bool = False
    preemptions: int = 0
    checkpoint_interval_s: float | None = None
    gang: tuple[str, str] | None = None
    took_from: frozenset[str] = frozenset()

    @property
    def key(self) -> str:
        """``namespace/name``, as Events and logs name it."""
        return f"{self.namespace}/{self.name}"

    def ran_s(self, now_s: float) -> float:
        """How long it has run."""
        return max(now_s - self.started_at_s, 0.0)

    def work_lost_s(self, now_s: float) -> float:
        """The work a preemption now would lose: everything since its last checkpoint."""
        ran = self.ran_s(now_s)
        if self.checkpoint_interval_s is None or self.checkpoint_interval_s <= 0:
            return ran
        return ran % self.checkpoint_interval_s


@dataclass(frozen=True, slots=True)
class PreemptionPlan:
    """Take ``victims`` off ``node`` so that ``preemptor`` (a pod uid) fits there."""

    preemptor: str
    node: str
    victims: tuple[RunningPod, ...]
    reason: PreemptionReason
    work_lost_s: float
    """GPU-seconds of work the victims lose (work since checkpoint times their GPUs)."""


@dataclass(frozen=True, slots=True)
class GangPlan:
    """Take ``victims`` back, once, so that every waiting member of ``gang`` fits:
    ``placements`` pairs each member's uid with its node, in the members' order."""

    gang: tuple[str, str]
    placements: tuple[tuple[str, str], ...]
    victims: tuple[RunningPod, ...]
    reason: PreemptionReason
    work_lost_s: float
    """GPU-seconds of work the victims lose (work since checkpoint times their GPUs)."""
