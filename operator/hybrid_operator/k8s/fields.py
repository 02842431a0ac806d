"""Typed reads of raw Kubernetes objects of any shape, as the watch hands them over.

An object is JSON: any field may hold a map where a list belongs, a number where a string
belongs, or ``null``. Each reader returns the field when it has the expected type (an
absent or ``null`` field reads as empty); otherwise it records a
:class:`~hybrid_operator.k8s.problems.Problem` saying what the caller does about it, and
returns the empty value, so that a conversion never raises on a malformed object.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hybrid_operator.k8s.problems import Problem

Body = Mapping[str, Any]
NOT_A_MAP = "not a map"
NOT_A_LIST = "not a list"
NOT_A_STRING = "not a string"


@dataclass(frozen=True)
class Action:
    """What the operator does about a field it cannot use, as the Event says it."""

    text: str
    #: Whether the whole object is then unusable (the caller leaves it out).
    refuses: bool = False


class FieldReader:
    """Reads the fields of one object and collects its problems."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        #: What was done about the problems, as a set.
        self.taken: set[Action] = set()

    @property
    def refused(self) -> bool:
        """Whether a field the object cannot do without was unusable."""
        return any(action.refuses for action in self.taken)

    def report(self, field: str, value: object, problem: str, action: Action) -> None:
        """Record a field that could not be used as given."""
        self.problems.append(Problem(field, value, problem, action.text))
        self.taken.add(action)

    def mapping(self, value: object, field: str, action: Action) -> Body:
        """``value`` as a map with string keys; ``{}`` when absent or not such a map."""
        if value is None:
            return {}
        if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
            return value
        self.report(field, value, NOT_A_MAP, action)
        return {}

    def sequence(self, value: object, field: str, action: Action) -> list[Any]:
        """``value`` as a list; ``[]`` when absent or not a list."""
        if value is None:
            return []
        if isinstance(value, Sequence) and not isinstance(value, str | bytes):
            return list(value)
        self.report(field, value, NOT_A_LIST, action)
        return []

    def text(self, value: object, field: str, default: str, action: Action) -> str:
        """``value`` as a string; ``default`` when absent, empty or not a string."""
        if value is None or value == "":
            return default
        if isinstance(value, str):
            return value
        self.report(field, value, NOT_A_STRING, action)
        return default

    def name(self, value: object, field: str, action: Action) -> str:
        """A required string (a name or UID); reported as missing when absent or empty."""
        if isinstance(value, str) and value:
            return value
        self.report(
            field, value, "missing" if value is None or value == "" else NOT_A_STRING, action
        )
        return ""

    def string_map(self, value: object, field: str, action: Action) -> dict[str, str]:
        """Labels, annotations, selectors: string to string; other entries are dropped."""
        out: dict[str, str] = {}
        for key, item in self.mapping(value, field, action).items():
            if isinstance(item, str):
                out[key] = item
            else:
                self.report(f"{field}[{key}]", item, NOT_A_STRING, action)
        return out
