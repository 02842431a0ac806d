"""The tooling's sub-commands of ``hybrid-scheduler``, one module each.

:func:`register_all` is the ``hybrid_scheduler.commands`` entry point that the operator's
command line discovers, so the operator never imports this package: without the tooling
installed, ``hybrid-scheduler`` offers ``run`` and ``explain`` alone.
"""

from __future__ import annotations

from typing import Any

from hybrid_lab.commands import (
    bound_cmd,
    cluster_bench_cmd,
    demo_cmd,
    faults_cmd,
    manifests_cmd,
    report_cmd,
    simulate_cmd,
    trace_cmd,
    train_cmd,
)
from hybrid_lab.devcluster import command as dev_cluster_command


def register_all(subparsers: Any) -> None:
    """Add every tooling sub-command to the top-level parser."""
    simulate_cmd.register(subparsers)
    bound_cmd.register(subparsers)
    report_cmd.register(subparsers)
    trace_cmd.register(subparsers)
    demo_cmd.register(subparsers)
    cluster_bench_cmd.register(subparsers)
    faults_cmd.register(subparsers)
    train_cmd.register(subparsers)
    manifests_cmd.register(subparsers)
    dev_cluster_command.register(subparsers)
