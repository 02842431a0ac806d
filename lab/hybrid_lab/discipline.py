"""The policy the DQN scorer learns inside (``train --discipline``), without torch, so the
command line can offer the choices before training imports anything heavy."""

from __future__ import annotations

from enum import Enum


class Discipline(Enum):
    """Which policy the network learns inside."""

    #: The plain ``dqn`` policy: the DQN is the only score, queue order, no reservation.
    DQN = "dqn"
    #: ``hybrid-reserve``: fair order, reservation, backfill, DQN + binpack scores.
    RESERVE = "reserve"

    @property
    def policy_name(self) -> str:
        """The policy whose validation JCT the log shows (``dqn``, ``hybrid-reserve``)."""
        return "dqn" if self is Discipline.DQN else "hybrid-reserve"
