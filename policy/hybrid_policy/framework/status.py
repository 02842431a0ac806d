"""Outcome codes that cross phase boundaries, after kube-scheduler's ``framework.Status``."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Code(StrEnum):
    """What a phase concluded."""

    SUCCESS = "Success"
    #: No node fits now; may fit after other pods leave.
    UNSCHEDULABLE = "Unschedulable"
    #: No node can ever fit as the cluster is (selector, taints, unknown resource).
    UNSCHEDULABLE_AND_UNRESOLVABLE = "UnschedulableAndUnresolvable"
    ERROR = "Error"
    #: The plugin has nothing to say about this pod.
    SKIP = "Skip"
    #: The pod waits (e.g. for its namespace's turn in arbitration).
    WAIT = "Wait"


@dataclass(frozen=True, slots=True)
class Status:
    """A code with the reasons behind it, in kube-scheduler's wording."""

    code: Code = Code.SUCCESS
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    @property
    def ok(self) -> bool:
        """True for :attr:`Code.SUCCESS`."""
        return self.code is Code.SUCCESS

    @property
    def message(self) -> str:
        """The reasons joined as one line."""
        return "; ".join(self.reasons)

    @classmethod
    def success(cls) -> Status:
        """A plain success."""
        return _SUCCESS


_SUCCESS = Status()
