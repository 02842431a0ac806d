"""Problems found while reading a Kubernetes object: which field, which value, what was done.

A bad annotation or quantity never stops the operator: the conversion records a
:class:`Problem`, falls back to the documented default (or refuses the object), and the
caller turns each problem into an Event on the object and a log line. A conversion's
result is a :class:`Conversion`: the domain value, or ``None`` when the object cannot be
used at all and the caller leaves it out, and every problem found either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

from hybrid_policy.resources import shown

T = TypeVar("T")


@dataclass(frozen=True)
class Problem:
    """One field of one object that could not be used as given."""

    field: str
    value: object
    problem: str
    #: What the operator does about it ("using the default 1", "leaving the pod out").
    action: str

    @property
    def message(self) -> str:
        """One line for an Event or a log: field, value (cut short), problem, action."""
        return f"{self.field}={shown(self.value)}: {self.problem}; {self.action}"


class Conversion(NamedTuple, Generic[T]):
    """A raw object read into a domain value, with what was wrong with it.

    ``value`` is ``None`` when the object cannot be used at all (no name, requests that
    cannot be counted): the caller leaves it out, and ``problems`` says why. It unpacks
    as ``value, problems = conversion``.
    """

    value: T | None
    problems: list[Problem]
