"""How a decision was reached: the path a pass took, and the parts a policy runs without.

A pass's :class:`PassPath` is written on each of its decisions: which arbitrator settled
it and, for the game, whether there was contention and whether the solver's equilibrium
or the greedy fallback decided (and why). A policy whose learned model could not be
loaded runs with a :class:`ScorerFallback` in its place when its :class:`ModelFallback`
allows it. Both are typed here and rendered to the short text that decision records,
Events and logs show (``greedy-fallback:timeout``, ``binpack: <file>: no such file``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class SolverPath(Enum):
    """Which way one pass of the game went."""

    #: No contention: pods placed in queue order on their best nodes.
    UNCONTENDED = "uncontended"
    #: The solver's equilibrium decided.
    EQUILIBRIUM = "equilibrium"
    #: The greedy weighted allocation decided (see :class:`FallbackReason`).
    FALLBACK = "greedy-fallback"


class FallbackReason(Enum):
    """Why a contended pass took the greedy fallback instead of the solver's answer."""

    #: The solve went over its wall-clock budget.
    TIMEOUT = "timeout"
    #: The solver finished with a status other than optimal (detail: the status).
    STATUS = "status"
    #: The solver raised (detail: the exception's type).
    ERROR = "error"


@dataclass(frozen=True)
class PassPath:
    """How a scheduling pass settled its pods.

    ``str()`` is the text decision records show: the arbitrator's name (``sequential``,
    ``drf``), or for a game pass ``uncontended``, ``equilibrium`` or
    ``greedy-fallback:<reason>[-<detail>]``.
    """

    arbitrator: str
    #: For arbitrators that solve a game: which way this pass went.
    solver: SolverPath | None = None
    #: Why the fallback decided; set exactly when ``solver`` is ``FALLBACK``.
    reason: FallbackReason | None = None
    #: The solver's status or the exception's type, as shown after the reason.
    detail: str = ""

    def __post_init__(self) -> None:
        if (self.solver is SolverPath.FALLBACK) != (self.reason is not None):
            raise ValueError(f"{self.solver}: a fallback path, and only one, has a reason")

    def __str__(self) -> str:
        if self.solver is None:
            return self.arbitrator
        if self.reason is None:
            return self.solver.value
        detail = f"-{self.detail}" if self.detail else ""
        return f"{self.solver.value}:{self.reason.value}{detail}"


class ModelFallback(Enum):
    """What a learned policy does when its checkpoint cannot be used."""

    #: Refuse: the checkpoint's error stands.
    NONE = "none"
    #: Schedule with the binpack scorer in the model's place.
    BINPACK = "binpack"

    @classmethod
    def parse(cls, value: ModelFallback | str) -> ModelFallback:
        """``value`` as a ModelFallback; a ValueError names the value and the choices."""
        if isinstance(value, ModelFallback):
            return value
        try:
            return cls(value)
        except ValueError:
            known = ", ".join(f.value for f in cls)
            raise ValueError(f"model fallback: must be one of {known} (got {value!r})") from None


@dataclass(frozen=True)
class ScorerFallback:
    """A learned scorer that could not be loaded, what runs in its place, and why.

    ``str()`` is ``<replacement>: <problem>``, as the log and the decision record show it.
    """

    replacement: ModelFallback
    problem: str

    def __str__(self) -> str:
        return f"{self.replacement.value}: {self.problem}"
