"""The ``hybrid-scheduler`` command line.

The operator's own sub-commands (``run``, ``explain``) live in :mod:`hybrid_operator.commands`.
The tooling installed beside it (the ``[lab]`` extra: simulator runs, training, the dev
cluster, benchmarks) adds its sub-commands through the ``hybrid_scheduler.commands`` entry
point group, so this package never imports the tooling and the operator's image, which
does not carry it, offers only what it runs. Heavy imports (torch, kopf, the Kubernetes
client) happen only for the command that needs them. Every command returns a process exit
code; errors the user can fix are printed as one clear line on stderr with a non-zero
exit, never as a traceback: a flag, argument or input file that cannot be used is named
with its value, exit status 2 (:mod:`hybrid_operator.commands.arguments`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

from hybrid_operator import __version__
from hybrid_operator.commands import explain_cmd, run_cmd
from hybrid_operator.commands.arguments import USAGE_EXIT, CommandParser, UsageError

#: Entry-point group of packages that add sub-commands.
COMMANDS_GROUP = "hybrid_scheduler.commands"
log = logging.getLogger("hybrid_scheduler")


def register_plugins(subparsers: object) -> list[str]:
    """Let every installed ``hybrid_scheduler.commands`` entry point add its sub-commands.

    Returns the names of those that loaded. An entry point whose package is not installed
    (its metadata can outlive it, e.g. in an image built without the tooling) is skipped.
    """
    loaded = []
    for point in entry_points(group=COMMANDS_GROUP):
        try:
            register = point.load()
        except ModuleNotFoundError as exc:
            log.debug("sub-commands of %s are not installed: %s", point.value, exc)
            continue
        register(subparsers)
        loaded.append(point.name)
    return loaded


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every sub-command registered."""
    parser = CommandParser(
        prog="hybrid-scheduler",
        description="Kubernetes scheduler for ML training: simulate, train, run.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run_cmd.register(subparsers)
    explain_cmd.register(subparsers)
    register_plugins(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen sub-command; return its exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return USAGE_EXIT
    try:
        code: int = args.handler(args)
    except UsageError as exc:
        print(f"{args.command_prog}: {exc}", file=sys.stderr)
        return USAGE_EXIT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
