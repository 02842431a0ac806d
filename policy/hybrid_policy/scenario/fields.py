"""Validated reading of YAML/CSV values, with errors that name the file, field and value.

Every bad input stops with one line such as
``my.yaml: nodes[0].gpus: must be >= 0 (got -1)``, so a user can fix it without reading
a traceback.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


class ScenarioError(ValueError):
    """A scenario or trace that cannot be used as given."""

    def __init__(self, source: str, field: str, problem: str, value: object = None) -> None:
        where = f"{source}: {field}" if field else source
        shown = "" if value is None else f" (got {value!r})"
        super().__init__(f"{where}: {problem}{shown}")
        self.source, self.field, self.value = source, field, value


_MISSING = object()


class FieldReader:
    """Reads typed, range-checked values out of one mapping of a parsed document."""

    def __init__(self, source: str, data: object, path: str = "") -> None:
        if not isinstance(data, Mapping):
            raise ScenarioError(source, path, "must be a mapping", data)
        self.source, self.path = source, path
        self.data: Mapping[str, Any] = data

    def _name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        """Whether ``key`` is present and not null."""
        return self.data.get(key) is not None

    def raw(self, key: str, default: object = _MISSING) -> Any:
        """The value under ``key``; missing and no default is an error."""
        value = self.data.get(key)
        if value is None:
            if default is _MISSING:
                raise ScenarioError(self.source, self._name(key), "is required")
            return default
        return value

    def number(
        self,
        key: str,
        default: float | None = None,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        exclusive_minimum: bool = False,
    ) -> float:
        """A finite number, optionally bounded."""
        value = self.raw(key, _MISSING if default is None else default)
        return check_number(
            self.source,
            self._name(key),
            value,
            minimum=minimum,
            maximum=maximum,
            exclusive_minimum=exclusive_minimum,
        )

    def integer(self, key: str, default: int | None = None, *, minimum: int | None = None) -> int:
        """A whole number, optionally bounded below."""
        value = self.number(key, None if default is None else float(default), minimum=minimum)
        if value != int(value):
            raise ScenarioError(self.source, self._name(key), "must be a whole number", value)
        return int(value)

    def string(self, key: str, default: str | None = None) -> str:
        """A non-empty string."""
        value = self.raw(key, _MISSING if default is None else default)
        if not isinstance(value, str) or not value.strip():
            raise ScenarioError(self.source, self._name(key), "must be a non-empty string", value)
        return value

    def child(self, key: str) -> FieldReader:
        """The mapping under ``key``."""
        return FieldReader(self.source, self.raw(key), self._name(key))

    def children(self, key: str) -> list[FieldReader]:
        """The list of mappings under ``key`` (at least one)."""
        items = self.raw(key)
        if not isinstance(items, list) or not items:
            raise ScenarioError(self.source, self._name(key), "must be a non-empty list", items)
        return [
            FieldReader(self.source, item, f"{self._name(key)}[{i}]")
            for i, item in enumerate(items)
        ]

    def check_keys(self, allowed: set[str]) -> None:
        """Refuse keys this reader does not know (typos must not pass silently)."""
        for key in self.data:
            if key not in allowed:
                known = ", ".join(sorted(allowed))
                raise ScenarioError(
                    self.source, self._name(str(key)), f"unknown field (known: {known})"
                )


def check_number(
    source: str,
    field: str,
    value: object,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
) -> float:
    """``value`` as a finite float within bounds, or a :class:`ScenarioError`."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ScenarioError(source, field, "must be a number", value)
    try:
        number = float(value)
    except ValueError:
        raise ScenarioError(source, field, "must be a number", value) from None
    if not math.isfinite(number):
        raise ScenarioError(source, field, "must be finite", value)
    if minimum is not None:
        if exclusive_minimum and number <= minimum:
            raise ScenarioError(source, field, f"must be > {minimum:g}", value)
        if number < minimum:
            raise ScenarioError(source, field, f"must be >= {minimum:g}", value)
    if maximum is not None and number > maximum:
        raise ScenarioError(source, field, f"must be <= {maximum:g}", value)
    return number
