"""``hybrid-scheduler demo``: a round through hybrid-scheduler and then through
kube-scheduler, on the same kwok nodes of a local dev cluster, side by side.

``--round workload`` (the default) sends the seed-paper workload and ends with a table of
completion times and the simulator's prediction for the same jobs beside the measured
ratio. ``--round reservation`` sends a whole-node pod behind a stream of small pods of
another team on full nodes: under ``hybrid-reserve`` it shows the reservation, the
``Reserved`` Event, the binding against the predicted start, then when the wide pod
started under each scheduler (:mod:`hybrid_lab.demo_reservation`).

Starts the dev cluster (seed-paper nodes, kube-scheduler, Prometheus) unless one runs,
runs the operator as its own process, prints live lines per round and a final table, and
stops what it started. A bad flag is one line naming it, exit status 2, before anything
starts; errors while running (among them a wide pod that got no reservation or no
binding) are one line and exit status 1.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hybrid_lab.commands.stopping import stops_on_sigterm
from hybrid_lab.launch import operator_argv
from hybrid_operator.commands.arguments import (
    UsageError,
    non_negative_int,
    positive_float,
    positive_int,
)
from hybrid_policy.policies import policy_names
from hybrid_policy.reservation.model import ReservationSettings

if TYPE_CHECKING:
    from hybrid_lab.devcluster.apiserver import ApiServer
    from hybrid_lab.devcluster.settings import ClusterSettings

#: The operator's pass interval in the demo, seconds.
PASS_S = 0.5
#: The policy of the reservation round.
RESERVATION_POLICY = "hybrid-reserve"
BACKFILL_FACTOR = ReservationSettings().backfill_factor


class DemoRound(StrEnum):
    """What the demo sends through both schedulers."""

    WORKLOAD = "workload"
    RESERVATION = "reservation"


def register(subparsers: Any) -> None:
    """Add the ``demo`` sub-command."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="run a round through hybrid-scheduler and kube-scheduler, side by side",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--round",
        choices=[r.value for r in DemoRound],
        default=DemoRound.WORKLOAD.value,
        help="the seed-paper workload (default), or a wide pod's reservation",
    )
    workload = p.add_argument_group("the workload round")
    workload.add_argument(
        "--jobs", type=positive_int, default=60, help="jobs to submit (default 60)"
    )
    workload.add_argument(
        "--seed", type=non_negative_int, default=10, help="workload seed (default 10)"
    )
    workload.add_argument(
        "--time-scale",
        type=positive_float,
        default=60.0,
        help="scenario seconds per real second (60)",
    )
    workload.add_argument(
        "--policy",
        default="binpack",
        choices=policy_names(),
        metavar="POLICY",
        help=f"one of {', '.join(policy_names())} (binpack); "
        f"the reservation round always uses {RESERVATION_POLICY}",
    )
    workload.add_argument(
        "--no-prediction",
        dest="prediction",
        action="store_false",
        help="skip the simulator's prediction for the same jobs",
    )
    reservation = p.add_argument_group("the reservation round")
    reservation.add_argument(
        "--busy",
        type=positive_int,
        default=40,
        help="seconds every node but one stays full (40)",
    )
    reservation.add_argument(
        "--drain",
        type=positive_int,
        default=12,
        help="seconds until the node that drains first is empty (12)",
    )
    reservation.add_argument(
        "--stream", type=positive_int, default=16, help="small pods, one every 0.5 s (16)"
    )
    reservation.add_argument(
        "--small-runtime",
        type=positive_int,
        default=30,
        help="seconds each small pod runs (30); hybrid-reserve backfills a pod on the "
        f"reserved node when {BACKFILL_FACTOR:g} of its run time ends before the reserved start, "
        "so below about 1.5 x --drain small pods may delay the wide pod",
    )
    p.add_argument(
        "--timeout", type=positive_float, default=600.0, help="longest a round may take, seconds"
    )
    p.add_argument(
        "--keep-cluster", action="store_true", help="leave a cluster the demo started running"
    )
    p.set_defaults(handler=demo)


@stops_on_sigterm
def demo(args: argparse.Namespace) -> int:
    """Run the chosen round under both schedulers and print the comparison."""
    from hybrid_lab.devcluster.errors import DevClusterError
    from hybrid_lab.devcluster.settings import ClusterSettings

    chosen = DemoRound(args.round)
    if chosen is DemoRound.RESERVATION and args.busy <= args.drain:
        raise UsageError(
            f"--busy ({args.busy}) must be longer than --drain "
            f"({args.drain}), or no node drains first"
        )
    settings = ClusterSettings(kube_scheduler=True, prometheus=True)
    try:
        with _dev_cluster(settings, args.keep_cluster) as api:
            if chosen is DemoRound.RESERVATION:
                _reservation(args, settings, api)
            else:
                _workload(args, settings, api)
    except DevClusterError as exc:
        print(f"hybrid-scheduler demo: {exc}", file=sys.stderr)
        return 1
    return 0


@contextmanager
def _dev_cluster(settings: ClusterSettings, keep: bool) -> Iterator[ApiServer]:
    """The running dev cluster, or one started here (stopped after unless ``keep``)."""
    from hybrid_lab import demo as d
    from hybrid_lab.devcluster import cluster, scenario
    from hybrid_lab.devcluster.apiserver import ApiServer
    from hybrid_lab.devcluster.errors import DevClusterError

    existing = cluster.running_state(settings)
    if existing is not None and not existing.info.get("kube_scheduler"):
        raise DevClusterError(
            "a dev cluster without --kube-scheduler runs; stop it with 'dev-cluster down'"
        )
    if existing is None:
        d.echo("starting the dev cluster (seed-paper nodes, kube-scheduler, Prometheus) ...")
    started = False
    try:
        if existing is None:
            cluster.up(
                settings, scenario.resolve("seed-paper", None), show_progress=sys.stderr.isatty()
            )
            started = True
        yield ApiServer.from_kubeconfig(settings.kubeconfig)
    finally:
        if started and not keep:
            cluster.down(settings)


@contextmanager
def _operator(settings: ClusterSettings, policy: str, log: Path) -> Iterator[None]:
    """The operator as its own process with ``policy``, once it has listed the cluster."""
    from hybrid_lab.devcluster.workload import wait_for

    command = operator_argv(
        settings.kubeconfig,
        "--policy",
        policy,
        "--prometheus-url",
        settings.prometheus_url,
        "--http-port",
        "0",
        # One replica: no Lease to wait for (a Lease left by an earlier demo would
        # hold the start up for its whole duration).
        "--no-leader-election",
        "--batch-interval",
        f"{PASS_S:g}",
        "--metrics-refresh",
        "5",
    )
    with log.open("w") as out:
        operator = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_for("the operator to start", lambda: "listed" in log.read_text() or None, 60)
        yield
    finally:
        os.killpg(operator.pid, signal.SIGTERM)
        operator.wait(timeout=30)


def _workload(args: argparse.Namespace, settings: ClusterSettings, api: ApiServer) -> None:
    """The seed-paper workload through hybrid-scheduler, then kube-scheduler."""
    from hybrid_lab import demo as d

    jobs = d.demo_jobs(args.jobs, args.seed, args.time_scale)
    origin = f"seed-paper, heavy, seed {args.seed}, {args.time_scale:g}x faster"
    d.echo(f"workload: {d.describe(jobs)} ({origin})")
    log = settings.state_dir / "demo-operator.log"
    with _operator(settings, args.policy, log):
        label = f"hybrid-scheduler ({args.policy})"
        ours = d.run_round(api, jobs, "hybrid-scheduler", label, d.echo, args.timeout)
    theirs = d.run_round(api, jobs, None, "kube-scheduler", d.echo, args.timeout)
    d.echo("")
    d.echo(d.side_by_side([ours, theirs]))
    if args.prediction:
        from hybrid_lab.demo_prediction import comparison, predict

        rows = {
            "predicted, uniform node speed (as kwok runs pods)": predict(
                args.jobs, args.seed, args.time_scale, args.policy, uniform=True
            ),
            "predicted, node performance 50-100": predict(
                args.jobs, args.seed, args.time_scale, args.policy, uniform=False
            ),
        }
        d.echo(
            f"\nmean completion time, {args.policy} against kube-scheduler "
            "(simulator: the same jobs, seed and time scale; kube-default scoring):"
        )
        d.echo(comparison(ours.jct(), theirs.jct(), rows))
    d.echo(f"\n(operator log: {log}; times measured by polling once a second)")
    for team in d.WEIGHTS:
        api.call("DELETE", f"/api/v1/namespaces/{d.PREFIX}{team}", allow=(404,))


def _reservation(args: argparse.Namespace, settings: ClusterSettings, api: ApiServer) -> None:
    """The wide pod and the stream through hybrid-scheduler (``hybrid-reserve``), then
    kube-scheduler."""
    from hybrid_lab import demo as d
    from hybrid_lab import demo_reservation as r
    from hybrid_lab.demo_reservation_round import run_round

    shape = r.RoundShape(
        busy_s=args.busy, drain_s=args.drain, stream=args.stream, small_runtime_s=args.small_runtime
    )
    performance = r.node_performance(api)
    d.echo(
        f"reservation round: a {r.WIDE_GPUS}-GPU pod of {r.TEAM_A} behind {shape.stream} "
        f"{r.SMALL_GPUS}-GPU pods of {r.TEAM_B} ({shape.small_runtime_s} s each, one every "
        f"{shape.interval_s:g} s) on {len(performance)} full nodes"
    )
    log = settings.state_dir / "demo-operator.log"
    with _operator(settings, RESERVATION_POLICY, log):
        label = f"hybrid-scheduler ({RESERVATION_POLICY})"
        ours = run_round(
            api, performance, shape, "hybrid-scheduler", label, d.echo, args.timeout, PASS_S
        )
    d.echo("")
    theirs = run_round(
        api, performance, shape, None, "kube-scheduler", d.echo, args.timeout, PASS_S
    )
    d.echo("")
    d.echo(r.wide_table([ours, theirs]))
    d.echo(f"\n(operator log: {log}; starts and ends seen by polling every quarter second)")
    for namespace in (r.FILL, r.TEAM_A, r.TEAM_B):
        api.call("DELETE", f"/api/v1/namespaces/{namespace}", allow=(404,))
