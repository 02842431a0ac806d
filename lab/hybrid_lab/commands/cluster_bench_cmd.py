"""``hybrid-scheduler cluster-bench``: our operator against the real kube-scheduler on the
same kwok nodes, in one run: pods bound per second for a burst of pending pods, and
pending-to-bound latency under a steady arrival.

Uses the running dev cluster, or starts one with ``--nodes`` nodes (and stops it after).
Both schedulers run with the same API client limits (``--qps``/``--api-burst``,
kube-scheduler's defaults). Prints the parameters, a live progress bar per phase and a
table; ``--json`` saves everything. A bad flag is one line naming it, exit status 2,
before anything starts; errors while running are one line and exit status 1.
``--compare`` runs the peers on one job stream instead (:mod:`.compare_cmd`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from hybrid_lab.commands import compare_cmd
from hybrid_lab.commands.stopping import stops_on_sigterm
from hybrid_operator.commands.arguments import (
    UsageError,
    non_negative_int,
    output_file,
    positive_float,
    positive_int,
    quantity,
    write_output,
)
from hybrid_policy.policies import policy_names
from hybrid_policy.resources import CPU, MEMORY


def register(subparsers: Any) -> None:
    """Add the ``cluster-bench`` sub-command."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "cluster-bench",
        help="throughput and latency of the operator and kube-scheduler on the dev cluster",
        description=__doc__,
    )
    sizes: list[tuple[str, Callable[[str], float], float, str]] = [
        ("--nodes", positive_int, 1000, "kwok nodes if a cluster is started (1000)"),
        ("--burst", positive_int, 5000, "pods pending at start (5000)"),
        ("--rate", positive_float, 50.0, "steady arrivals per second (50)"),
        ("--duration", positive_float, 120.0, "steady phase, seconds (120)"),
        ("--runtime", positive_int, 10, "seconds each pod runs (10)"),
        ("--qps", positive_float, 50.0, "API calls/s of both schedulers (50)"),
        ("--api-burst", positive_int, 100, "their API burst (100)"),
        ("--batch-interval", positive_float, 1.0, "our pass interval, s (1)"),
        ("--batch-size", positive_int, 500, "our most pods per pass (500)"),
    ]
    for flag, kind, default, text in sizes:
        p.add_argument(flag, type=kind, default=default, help=text)
    p.add_argument("--gpus", type=non_negative_int, default=1, help="nvidia.com/gpu per pod (1)")
    p.add_argument("--cpu", type=quantity(CPU), default="100m", help="CPU per pod (100m)")
    p.add_argument(
        "--memory", type=quantity(MEMORY), default="256Mi", help="memory per pod (256Mi)"
    )
    p.add_argument(
        "--policies",
        default="kube-default",
        help=(
            "our rounds, comma-separated: POLICY or POLICY@SECONDS (pass interval), "
            f"POLICY one of {', '.join(policy_names())} (kube-default)"
        ),
    )
    p.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="our tie-breaking seed; with --compare, the job stream's (0)",
    )
    p.add_argument(
        "--timeout", type=positive_float, default=900.0, help="longest wait, seconds (900)"
    )
    p.add_argument("--json", type=output_file, help="write parameters and results here")
    p.add_argument("--keep-cluster", action="store_true", help="leave a started cluster up")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    compare_cmd.add_arguments(p)
    p.set_defaults(handler=cluster_bench)


@stops_on_sigterm
def cluster_bench(args: argparse.Namespace) -> int:
    """Run every round and print the comparison (``--compare``: the peers on one stream)."""
    if args.compare is not None:
        return compare_cmd.compare(args)
    variants = [_variant(p) for p in args.policies.split(",") if p.strip()]
    from hybrid_lab.clusterbench.run import BenchParams, as_json, run_rounds, table
    from hybrid_lab.clusterbench.schedulers import ClientLimits, Contender
    from hybrid_lab.devcluster import cluster, scenario
    from hybrid_lab.devcluster.apiserver import ApiServer
    from hybrid_lab.devcluster.errors import DevClusterError
    from hybrid_lab.devcluster.settings import ClusterSettings

    params = BenchParams(
        burst_pods=args.burst,
        rate_per_s=args.rate,
        duration_s=args.duration,
        gpus=args.gpus,
        cpu=args.cpu,
        memory=args.memory,
        runtime_s=args.runtime,
        limits=ClientLimits(args.qps, args.api_burst, args.batch_interval, args.batch_size),
        seed=args.seed,
        timeout_s=args.timeout,
    )
    contenders = [Contender("kube-scheduler", "bench-kube-scheduler")]
    for policy, interval in variants:
        if interval is None:
            contenders.append(
                Contender(f"hybrid-scheduler ({policy})", f"bench-hybrid-{policy}", policy)
            )
        else:
            contenders.append(
                Contender(
                    f"hybrid-scheduler ({policy}, passes every {interval:g} s)",
                    f"bench-hybrid-{policy}-{str(interval).replace('.', '-')}s",
                    policy,
                    interval,
                )
            )
    settings = ClusterSettings()
    started_cluster = False
    began = time.monotonic()
    try:
        if cluster.running_state(settings) is None:
            say(f"starting a dev cluster with {args.nodes} kwok nodes ...")
            cluster.up(
                settings,
                scenario.resolve(None, args.nodes),
                show_progress=not args.quiet and sys.stderr.isatty(),
            )
            started_cluster = True
        api = ApiServer.from_kubeconfig(settings.kubeconfig)
        nodes = len(api.items("/api/v1/nodes", labelSelector="type=kwok"))
        environment: dict[str, Any] = {
            "nodes": nodes,
            "kubernetes": settings.versions.kubernetes,
            "kwok": settings.versions.kwok,
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        }
        say(
            f"cluster: {nodes} kwok nodes, Kubernetes {settings.versions.kubernetes}, "
            f"{os.cpu_count()} CPUs (load {environment['load_average_at_start'][0]})"
        )
        say(
            f"parameters: burst {params.burst_pods} pods; steady {params.rate_per_s:g} pods/s "
            f"for {params.duration_s:g} s ({params.steady_pods} pods); pods of "
            f"{params.gpus} GPU, {params.cpu} CPU, {params.memory}, running {params.runtime_s} s; "
            f"client qps {params.limits.qps:g}, burst {params.limits.burst} for both; our "
            f"batches every {params.limits.batch_interval_s:g} s of up to "
            f"{params.limits.batch_size}; seed {params.seed}"
        )
        results = run_rounds(
            api,
            settings,
            contenders,
            params,
            settings.state_dir / "cluster-bench",
            say,
            progress=not args.quiet,
        )
        say("")
        say(table(results))
        say(
            f"\n({time.monotonic() - began:.0f} s in all; scheduler logs under "
            f"{settings.state_dir / 'cluster-bench'})"
        )
        if args.json:
            text = json.dumps(as_json(params, environment, results), indent=2) + "\n"
            write_output("--json", args.json, text)
            say(f"results written to {args.json}")
    except (DevClusterError, TimeoutError, OSError) as exc:
        print(f"hybrid-scheduler cluster-bench: {exc}", file=sys.stderr)
        return 1
    finally:
        if started_cluster and not args.keep_cluster:
            cluster.down(settings)
    return 0


def _variant(text: str) -> tuple[str, float | None]:
    """``POLICY`` or ``POLICY@SECONDS`` (our pass interval for that round)."""
    policy, _, interval = text.strip().partition("@")
    if policy not in policy_names():
        known = ", ".join(policy_names())
        raise UsageError(f"--policies: unknown policy {policy!r} (known: {known})")
    if not interval:
        return policy, None
    try:
        seconds = float(interval)
    except ValueError:
        seconds = math.nan
    if not seconds >= 0.01 or math.isinf(seconds):
        raise UsageError(f"--policies: pass interval {interval!r} must be at least 0.01 s")
    return policy, seconds


def say(line: str) -> None:
    """Print a line at once (the benchmark runs for minutes)."""
    print(line, flush=True)
