"""The command line that starts the operator as a process of its own (demo, benchmark, tests)."""

from __future__ import annotations

import sys
from pathlib import Path


def operator_argv(kubeconfig: Path | str, *flags: str) -> list[str]:
    """``hybrid-scheduler run --kubeconfig KUBECONFIG FLAGS...`` with this Python."""
    return [
        sys.executable,
        "-m",
        "hybrid_operator.cli",
        "run",
        "--kubeconfig",
        str(kubeconfig),
        *flags,
    ]
