"""Operator settings from a YAML file (the Helm chart's ConfigMap), validated at start.

Keys are the :class:`~hybrid_operator.settings.OperatorSettings` field names; ``promql``
maps ``cpu``, ``memory`` and ``gpu`` to the queries that give per-node utilisation. An
unknown key, a value of the wrong type or an impossible value stops the operator with
one line naming the file, the key and the value.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from hybrid_operator.settings import OperatorSettings, SettingsError

PROMQL_KEYS = ("cpu", "memory", "gpu")
_KINDS: dict[type, str] = {int: "a whole number", float: "a number", bool: "true or false"}


def _typed(path: Path, key: str, value: Any, default: Any) -> Any:
    expected = type(default) if default is not None else str
    if key == "namespaces":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise SettingsError(f"{path}: {key}: must be a list of namespace names (got {value!r})")
        return value
    if key == "promql":
        if not isinstance(value, dict) or not set(value) <= set(PROMQL_KEYS):
            raise SettingsError(
                f"{path}: promql: must map {', '.join(PROMQL_KEYS)} to queries (got {value!r})"
            )
        if not all(isinstance(v, str) and v.strip() for v in value.values()):
            raise SettingsError(
                f"{path}: promql: every query must be a non-empty string (got {value!r})"
            )
        return dict(value)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
        raise SettingsError(
            f"{path}: {key}: must be {_KINDS.get(expected, 'a string')} (got {value!r})"
        )
    return value


def load_settings(path: Path) -> OperatorSettings:
    """Read and validate a settings file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise SettingsError(f"{path}: not a UTF-8 text file ({exc.reason})") from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: must be a mapping of setting names to values")
    defaults = OperatorSettings()
    fields = {f.name for f in dataclasses.fields(OperatorSettings)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            raise SettingsError(
                f"{path}: {key}: unknown setting (known: {', '.join(sorted(fields))})"
            )
        values[key] = _typed(path, key, value, getattr(defaults, key))
    settings = OperatorSettings(**values)
    try:
        return settings.validate()
    except SettingsError as exc:
        raise SettingsError(f"{path}: {exc}") from None
