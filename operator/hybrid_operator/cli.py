"""The ``hybrid-scheduler`` command line.

Each sub-command lives in its own module and registers itself here through a
``register(subparsers)`` function, so that this file only wires them together and heavy
imports (torch, kopf, the Kubernetes client) happen only for the command that needs them.
Every command returns a process exit code; errors the user can fix are printed as one
clear line on stderr with a non-zero exit, never as a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from hybrid_operator import __version__
from hybrid_operator.commands import (
    bound_cmd,
    cluster_bench_cmd,
    demo_cmd,
    explain_cmd,
    manifests_cmd,
    report_cmd,
    run_cmd,
    simulate_cmd,
    trace_cmd,
    train_cmd,
)
from hybrid_operator.devcluster import command as dev_cluster_command


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="hybrid-scheduler",
        description="Kubernetes scheduler for ML training: simulate, train, run.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    simulate_cmd.register(subparsers)
    bound_cmd.register(subparsers)
    report_cmd.register(subparsers)
    trace_cmd.register(subparsers)
    run_cmd.register(subparsers)
    explain_cmd.register(subparsers)
    demo_cmd.register(subparsers)
    cluster_bench_cmd.register(subparsers)
    train_cmd.register(subparsers)
    manifests_cmd.register(subparsers)
    dev_cluster_command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen sub-command; return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = args.handler
    try:
        code: int = handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
