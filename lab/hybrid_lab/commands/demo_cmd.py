"""``hybrid-scheduler demo``: the seed-paper workload through hybrid-scheduler and then
through kube-scheduler, on the same kwok nodes of a local dev cluster, side by side.

Starts the dev cluster (seed-paper nodes, kube-scheduler, Prometheus) unless one runs,
runs the operator as its own process, prints a live line per round and a final table,
then the simulator's prediction for the same jobs beside the measured ratio, and stops
what it started. A bad flag is one line naming it, exit status 2, before anything starts;
errors while running are one line and exit status 1.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from typing import Any

from hybrid_lab.launch import operator_argv
from hybrid_operator.commands.arguments import non_negative_int, positive_float, positive_int
from hybrid_policy.policies import policy_names


def register(subparsers: Any) -> None:
    """Add the ``demo`` sub-command."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="run a workload through hybrid-scheduler and kube-scheduler, side by side",
        description=__doc__,
    )
    p.add_argument("--jobs", type=positive_int, default=60, help="jobs to submit (default 60)")
    p.add_argument("--seed", type=non_negative_int, default=10, help="workload seed (default 10)")
    p.add_argument(
        "--time-scale",
        type=positive_float,
        default=60.0,
        help="scenario seconds per real second (60)",
    )
    p.add_argument(
        "--policy",
        default="binpack",
        choices=policy_names(),
        metavar="POLICY",
        help=f"one of {', '.join(policy_names())} (binpack)",
    )
    p.add_argument(
        "--timeout", type=positive_float, default=600.0, help="longest a round may take, seconds"
    )
    p.add_argument(
        "--keep-cluster", action="store_true", help="leave a cluster the demo started running"
    )
    p.add_argument(
        "--no-prediction",
        dest="prediction",
        action="store_false",
        help="skip the simulator's prediction for the same jobs",
    )
    p.set_defaults(handler=demo)


def demo(args: argparse.Namespace) -> int:
    """Run both rounds and print the comparison."""
    from hybrid_lab import demo as d
    from hybrid_lab.devcluster import cluster, scenario
    from hybrid_lab.devcluster.apiserver import ApiServer
    from hybrid_lab.devcluster.errors import DevClusterError
    from hybrid_lab.devcluster.settings import ClusterSettings
    from hybrid_lab.devcluster.workload import wait_for

    settings = ClusterSettings(kube_scheduler=True, prometheus=True)
    started_cluster = False
    try:
        existing = cluster.running_state(settings)
        if existing is None:
            d.echo("starting the dev cluster (seed-paper nodes, kube-scheduler, Prometheus) ...")
            cluster.up(
                settings, scenario.resolve("seed-paper", None), show_progress=sys.stderr.isatty()
            )
            started_cluster = True
        elif not existing.info.get("kube_scheduler"):
            raise DevClusterError(
                "a dev cluster without --kube-scheduler runs; stop it with 'dev-cluster down'"
            )
        api = ApiServer.from_kubeconfig(settings.kubeconfig)
        jobs = d.demo_jobs(args.jobs, args.seed, args.time_scale)
        origin = f"seed-paper, heavy, seed {args.seed}, {args.time_scale:g}x faster"
        d.echo(f"workload: {d.describe(jobs)} ({origin})")
        log = settings.state_dir / "demo-operator.log"
        command = operator_argv(
            settings.kubeconfig,
            "--policy",
            args.policy,
            "--prometheus-url",
            settings.prometheus_url,
            "--http-port",
            "0",
            # One replica: no Lease to wait for (a Lease left by an earlier demo would
            # hold the start up for its whole duration).
            "--no-leader-election",
            "--batch-interval",
            "0.5",
            "--metrics-refresh",
            "5",
        )
        with log.open("w") as out:
            operator = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            wait_for("the operator to start", lambda: "listed" in log.read_text() or None, 60)
            ours = d.run_round(
                api,
                jobs,
                "hybrid-scheduler",
                f"hybrid-scheduler ({args.policy})",
                d.echo,
                args.timeout,
            )
        finally:
            os.killpg(operator.pid, signal.SIGTERM)
            operator.wait(timeout=30)
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
    except DevClusterError as exc:
        print(f"hybrid-scheduler demo: {exc}", file=sys.stderr)
        return 1
    finally:
        if started_cluster and not args.keep_cluster:
            cluster.down(settings)
    return 0
