"""Compiling the policy core's few hot loops with numba, where their machine code is kept.

A loop compiled here gives the same numbers as the numpy expressions it stands for (each
kernel's module says why); it is compiled on first use, and the machine code is kept on
disk next to its module, else in the user's cache directory (in the chart's image,
``/tmp``); where neither can be written, each process compiles it again in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from numba import njit


def compiled(loop: Callable[..., None]) -> Callable[..., None]:
    """``loop`` compiled without the GIL, with IEEE division (no ZeroDivisionError)."""
    options: dict[str, Any] = {"nogil": True, "error_model": "numpy"}
    try:
        fast: Callable[..., None] = njit(cache=True, **options)(loop)
    except RuntimeError:  # numba: "cannot cache function ...: no locator available"
        fast = njit(cache=False, **options)(loop)
    return fast
