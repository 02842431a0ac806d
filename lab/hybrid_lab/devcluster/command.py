"""The ``hybrid-scheduler dev-cluster`` command: ``build``, ``up``, ``down``, ``status``.

Errors the user can act on are printed as one line on stderr, and nothing is left
running: bad input (a flag, ``$HYBRID_SCHEDULER_DEV_CLUSTER_PORT_OFFSET``, a scenario
file) with exit status 2, trouble on the way (a busy port, a failed build, a missing
package, nothing to stop) with exit status 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from hybrid_lab.devcluster.errors import DevClusterError, InputError
from hybrid_lab.devcluster.settings import (
    ClusterSettings,
    Ports,
    default_cache_dir,
    default_ports,
    default_state_dir,
)
from hybrid_operator.commands.arguments import output_dir, positive_int

PORT_NAMES = [f.name for f in dataclasses.fields(Ports)]
PEERS_HELP = "also the peers: scheduler-plugins' kube-scheduler (Coscheduling) and Kueue"
JOB_CONTROLLERS_HELP = "also the job controllers: Kubeflow's training-operator (PyTorchJobs)"


def register(subparsers: Any) -> None:
    """Add ``dev-cluster`` and its sub-commands to the top-level parser."""
    parser = subparsers.add_parser(
        "dev-cluster",
        help="a real local cluster (apiserver, kwok nodes, Prometheus)",
        description="Build and run a local Kubernetes cluster on 127.0.0.1 without containers.",
    )
    actions = parser.add_subparsers(dest="dev_cluster_action", metavar="ACTION", required=True)

    build = actions.add_parser("build", help="build missing binaries into the cache, start nothing")
    _common(build, writes=True)
    build.add_argument("--peers", action="store_true", help=PEERS_HELP)
    build.add_argument("--job-controllers", action="store_true", help=JOB_CONTROLLERS_HELP)
    build.set_defaults(handler=run_build)

    up = actions.add_parser("up", help="build what is missing and start the cluster")
    _common(up, writes=True)
    nodes = up.add_mutually_exclusive_group()
    nodes.add_argument(
        "--nodes", type=positive_int, help="number of seed-paper shaped nodes (default 4)"
    )
    nodes.add_argument("--scenario", help="'seed-paper' or a scenario FILE.yaml (its nodes: list)")
    up.add_argument(
        "--kube-scheduler", action="store_true", help="also run the default kube-scheduler"
    )
    up.add_argument(
        "--prometheus", action="store_true", help="also run Prometheus and the utilisation exporter"
    )
    up.add_argument("--peers", action="store_true", help=PEERS_HELP)
    up.add_argument("--job-controllers", action="store_true", help=JOB_CONTROLLERS_HELP)
    up.add_argument(
        "--port",
        action="append",
        default=[],
        metavar="NAME=PORT",
        help=f"override a loopback port; NAME is one of {', '.join(PORT_NAMES)}",
    )
    up.add_argument("--quiet", action="store_true", help="no progress bars")
    up.set_defaults(handler=run_up)

    down = actions.add_parser("down", help="stop exactly the processes 'up' started")
    _common(down)
    down.set_defaults(handler=run_down)

    status = actions.add_parser("status", help="show the processes, kubeconfig and URLs")
    _common(status)
    status.set_defaults(handler=run_status)


def _common(parser: argparse.ArgumentParser, writes: bool = False) -> None:
    """``--state-dir`` and ``--cache-dir``; checked writable for the actions that write."""
    directory = output_dir if writes else Path
    parser.add_argument(
        "--state-dir",
        type=directory,
        default=None,
        help=f"runtime state (default {default_state_dir()}, or $HYBRID_SCHEDULER_DEV_CLUSTER_DIR)",
    )
    parser.add_argument(
        "--cache-dir",
        type=directory,
        default=None,
        help=f"build cache (default {default_cache_dir()}, or $HYBRID_SCHEDULER_CACHE_DIR)",
    )


def settings_from(args: argparse.Namespace) -> ClusterSettings:
    """ClusterSettings from the parsed flags."""
    overrides: dict[str, Any] = {}
    if args.state_dir is not None:
        overrides["state_dir"] = args.state_dir.expanduser().resolve()
    if args.cache_dir is not None:
        overrides["cache_dir"] = args.cache_dir.expanduser().resolve()
    if getattr(args, "port", None):
        overrides["ports"] = parse_ports(args.port)
    if getattr(args, "kube_scheduler", False):
        overrides["kube_scheduler"] = True
    if getattr(args, "prometheus", False):
        overrides["prometheus"] = True
    if getattr(args, "peers", False):
        overrides["peers"] = True
    if getattr(args, "job_controllers", False):
        overrides["job_controllers"] = True
    return ClusterSettings(**overrides)


def parse_ports(pairs: list[str]) -> Ports:
    """``["apiserver=17443", ...]`` as a Ports value."""
    values: dict[str, int] = {}
    for pair in pairs:
        name, _, raw = pair.partition("=")
        if name not in PORT_NAMES or not raw.isdigit() or not 0 < int(raw) < 65536:
            raise InputError(
                f"bad --port {pair!r}: expected NAME=PORT with NAME one of {', '.join(PORT_NAMES)}"
            )
        values[name] = int(raw)
    return dataclasses.replace(default_ports(), **values)


def _fail(err: DevClusterError) -> int:
    print(f"hybrid-scheduler dev-cluster: error: {' '.join(str(err).split())}", file=sys.stderr)
    return 2 if isinstance(err, InputError) else 1


def run_build(args: argparse.Namespace) -> int:
    """Build every missing binary."""
    from hybrid_lab.devcluster import build

    try:
        settings = settings_from(args)
        built = build.build_missing(settings)
    except DevClusterError as err:
        return _fail(err)
    names = ", ".join(step.binary for step in built) or "nothing (all cached)"
    print(f"built {names}; binaries are under {settings.cache_dir / 'bin'}")
    return 0


def run_up(args: argparse.Namespace) -> int:
    """Start the cluster and print the admin kubeconfig path."""
    from hybrid_lab.devcluster import cluster, scenario

    try:
        settings = settings_from(args)
        node_specs = scenario.resolve(args.scenario, args.nodes)
        result = cluster.up(settings, node_specs, show_progress=not args.quiet)
    except DevClusterError as err:
        return _fail(err)
    lines = [f"dev cluster ready in {result.seconds:.1f} s with {len(node_specs)} kwok nodes"]
    if settings.prometheus:
        lines.append(f"prometheus: {settings.prometheus_url}")
    if settings.peers:
        lines.append("peers: schedulerName 'scheduler-plugins'; Kueue admits queued Jobs")
    if settings.job_controllers:
        lines.append("job controllers: training-operator runs PyTorchJobs")
    lines.append(f"export KUBECONFIG={result.kubeconfig}")
    print("\n".join(lines))
    return 0


def run_down(args: argparse.Namespace) -> int:
    """Stop the cluster."""
    from hybrid_lab.devcluster import cluster

    try:
        stopped = cluster.down(settings_from(args))
    except DevClusterError as err:
        return _fail(err)
    print(f"stopped {', '.join(stopped)}")
    return 0


def run_status(args: argparse.Namespace) -> int:
    """Print the state; exit 0 only when every process runs."""
    from hybrid_lab.devcluster import cluster

    try:
        healthy, lines = cluster.status_lines(settings_from(args))
    except DevClusterError as err:
        return _fail(err)
    print("\n".join(lines))
    return 0 if healthy else 1
