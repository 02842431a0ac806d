"""Checked command-line values shared by every sub-command, and the one-line usage error.

A flag whose value cannot be used stops the command with one line on stderr that names
the flag and the value, and exit status 2; never a traceback, and never a run that fails
at its end because an output path was unusable from the start. The ``*_int``, ``*_float``
and ``*_path`` functions here are argparse ``type=`` callables: argparse reports their
:class:`argparse.ArgumentTypeError` through :meth:`CommandParser.error`, which raises
:class:`UsageError` for :func:`hybrid_operator.cli.main` to print. Handlers raise
:class:`UsageError` too, for checks that involve several flags.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from hybrid_policy.resources import QuantityError, parse_quantity

#: Exit status of a command refused for its input.
USAGE_EXIT = 2


class UsageError(Exception):
    """A flag, argument or input file that cannot be used; the message names it."""


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (:class:`UsageError`), not usage text.

    The parsed arguments carry ``command_prog``, the name of the innermost (sub-)command
    (``hybrid-scheduler trace convert-philly``), to begin the lines of its errors.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.set_defaults(command_prog=self.prog)

    def error(self, message: str) -> NoReturn:
        """Raise the problem for ``main`` to print as ``PROG: --flag: problem``."""
        text = message.removeprefix("argument ")
        raise UsageError(f"{self.prog}: {text} (see --help)")


def _number(text: str, kind: Callable[[str], float]) -> float:
    try:
        value = kind(text)
    except ValueError:
        noun = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"must be {noun} (got {text!r})") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite (got {text!r})")
    return value


def _bounded(kind: Callable[[str], float], minimum: float, strict: bool) -> Callable[[str], float]:
    relation = ">" if strict else ">="

    def check(text: str) -> float:
        value = _number(text, kind)
        if value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(f"must be {relation} {minimum:g} (got {text!r})")
        return value

    return check


def positive_int(text: str) -> int:
    """A whole number > 0 (counts, sizes, steps)."""
    return int(_bounded(int, 0, strict=True)(text))


def non_negative_int(text: str) -> int:
    """A whole number >= 0 (seeds, counts that may be zero)."""
    return int(_bounded(int, 0, strict=False)(text))


def positive_float(text: str) -> float:
    """A finite number > 0 (durations, rates, scales)."""
    return _bounded(float, 0.0, strict=True)(text)


def non_negative_float(text: str) -> float:
    """A finite number >= 0."""
    return _bounded(float, 0.0, strict=False)(text)


def quantity(resource: str) -> Callable[[str], str]:
    """A Kubernetes quantity of ``resource`` (``100m``, ``256Mi``), kept as written."""

    def check(text: str) -> str:
        try:
            if parse_quantity(resource, text) <= 0:
                raise argparse.ArgumentTypeError(f"must be more than zero (got {text!r})")
        except QuantityError:
            raise argparse.ArgumentTypeError(f"not a quantity (got {text!r})") from None
        return text

    return check


def _blocker(path: Path) -> str | None:
    """Why ``path``'s missing directories could not be created, if they could not."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                return f"{parent} is not a directory"
            if not os.access(parent, os.W_OK | os.X_OK):
                return f"{parent} is not writable"
            return None
    return None


def output_file(text: str) -> Path:
    """A file path the command can create or replace (its folders are made if missing)."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory, not a file")
    if path.exists() and not os.access(path, os.W_OK):
        raise argparse.ArgumentTypeError(f"{text} is not writable")
    problem = _blocker(path)
    if problem:
        raise argparse.ArgumentTypeError(f"cannot write {text}: {problem}")
    return path


def output_dir(text: str) -> Path:
    """A directory the command can create, or write into if it exists."""
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise argparse.ArgumentTypeError(f"{text} is not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise argparse.ArgumentTypeError(f"{text} is not writable")
        return path
    problem = _blocker(path)
    if problem:
        raise argparse.ArgumentTypeError(f"cannot create {text}: {problem}")
    return path


def write_output(flag: str, path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (making its folders), or raise :class:`UsageError`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{flag}: cannot write {path}: {exc.strerror or exc}") from None
