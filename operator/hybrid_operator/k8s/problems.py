"""Problems found while reading a Kubernetes object: which field, which value, what was done.

A bad annotation or quantity never stops the operator: the conversion records a
:class:`Problem`, falls back to the documented default (or refuses the object), and the
caller turns each problem into an Event on the object and a log line.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One field of one object that could not be used as given."""

    field: str
    value: object
    problem: str
    #: What the operator does about it ("using the default 1", "not scheduling the pod").
    action: str

    @property
    def message(self) -> str:
        """One line for an Event or a log: field, value, problem, action."""
        return f"{self.field}={self.value!r}: {self.problem}; {self.action}"
