"""SIGTERM stops a long lab command the way Ctrl-C does, so that its clean-up runs.

The commands that start a dev cluster, processes or namespaces (``demo``,
``cluster-bench``, ``faults``) stop what they started in ``finally`` blocks. Python's
default SIGTERM ends the process at once and skips them, which left a dev cluster running
after a ``kill`` or a CI timeout; under :func:`stops_on_sigterm` the signal raises
:class:`KeyboardInterrupt` instead, the blocks run, and the command line reports
"interrupted" (exit status 130).
"""

from __future__ import annotations

import functools
import signal
from collections.abc import Callable
from types import FrameType
from typing import TypeVar

T = TypeVar("T")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def stops_on_sigterm(handler: Callable[..., T]) -> Callable[..., T]:
    """``handler`` with SIGTERM raising KeyboardInterrupt while it runs (the previous
    disposition comes back after it)."""

    @functools.wraps(handler)
    def run(*args: object, **kwargs: object) -> T:
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            return handler(*args, **kwargs)
        finally:
            signal.signal(signal.SIGTERM, previous)

    run.stops_on_sigterm = True  # type: ignore[attr-defined]
    return run
