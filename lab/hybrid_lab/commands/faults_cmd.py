"""``hybrid-scheduler faults``: fault injection on the dev cluster, and what survived it.

Starts the dev cluster (4 kwok nodes) unless one runs, then two operator replicas behind
a fault proxy and a fake Prometheus, and runs each fault while a workload flows through
three weighted namespaces. Prints a line per fault as it ends and a Markdown table at the
end (``--output FILE`` writes it too). Exit status 0 when every invariant held for every
fault, 1 when one broke (or the cluster failed), 2 for bad flags.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from hybrid_lab.commands.stopping import stops_on_sigterm


def register(subparsers: Any) -> None:
    """Add the ``faults`` sub-command."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "faults",
        help="inject faults on the dev cluster and check the operator's invariants",
        description=__doc__,
    )
    p.add_argument(
        "--faults", default="", metavar="NAME,...", help="faults to run, comma-separated (all)"
    )
    p.add_argument("--pods", type=int, default=None, help="pods flowing through each fault (300)")
    p.add_argument("--burst", type=int, default=None, help="pods of the restart burst (2000)")
    p.add_argument("--seed", type=int, default=None, help="workload seed (0)")
    p.add_argument("--output", type=Path, default=None, help="also write the report to FILE")
    p.add_argument(
        "--keep-cluster", action="store_true", help="leave a cluster this command started running"
    )
    p.set_defaults(handler=faults)


def _fail(message: str, status: int) -> int:
    print(f"hybrid-scheduler faults: {message}", file=sys.stderr)
    return status


@stops_on_sigterm
def faults(args: argparse.Namespace) -> int:
    """Run the faults and print the report."""
    from hybrid_lab.faults.catalogue import UnknownFaultError, select
    from hybrid_lab.faults.plan import FaultPlan

    names = [n.strip() for n in args.faults.split(",") if n.strip()]
    try:
        chosen = select(names)
    except UnknownFaultError as exc:
        return _fail(f"--faults: {exc}", 2)
    for flag in ("pods", "burst"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            return _fail(f"--{flag} must be at least 1 (got {value})", 2)
    plan = FaultPlan().with_sizes(args.pods, args.burst, args.seed)
    return _run(chosen, plan, command_line(args), args)


def command_line(args: argparse.Namespace) -> str:
    """The command that makes the report, as the report states it."""
    words = ["hybrid-scheduler", "faults"]
    if args.faults:
        words += ["--faults", args.faults]
    for flag in ("pods", "burst", "seed"):
        if getattr(args, flag) is not None:
            words += [f"--{flag}", str(getattr(args, flag))]
    return shlex.join(words)


def _run(chosen: list[Any], plan: Any, command: str, args: argparse.Namespace) -> int:
    from hybrid_lab.devcluster import cluster, scenario
    from hybrid_lab.devcluster.errors import DevClusterError
    from hybrid_lab.devcluster.settings import ClusterSettings
    from hybrid_lab.faults.report import report
    from hybrid_lab.faults.rig import FaultRig, RigSettings
    from hybrid_lab.faults.run import run_faults

    settings = ClusterSettings()
    started_cluster = False
    try:
        if cluster.running_state(settings) is None:
            print("starting the dev cluster (4 kwok nodes) ...", flush=True)
            cluster.up(settings, scenario.resolve(None, None), show_progress=sys.stderr.isatty())
            started_cluster = True
        rig_settings = RigSettings(work_dir=settings.state_dir / "faults")
        with FaultRig(settings, rig_settings) as rig:
            results = run_faults(rig, chosen, plan, lambda line: print(line, flush=True))
    except DevClusterError as exc:
        return _fail(" ".join(str(exc).split()), 1)
    finally:
        if started_cluster and not args.keep_cluster:
            cluster.down(settings)
    text = report(results, plan, command)
    print("\n" + text)
    print(f"\n(operator logs: {rig_settings.work_dir})")
    if args.output is not None:
        args.output.write_text(text + "\n", encoding="utf-8")
    return 1 if any(r.violations for r in results) else 0
