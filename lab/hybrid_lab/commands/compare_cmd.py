"""``hybrid-scheduler cluster-bench --compare``: the peers side by side on one job stream.

The scenario's jobs (``--scenario``, ``--workload``, ``--seed``; the first
``--max-jobs``) run as Jobs, at times divided by ``--time-scale``, under each named
scheduler in turn on the dev cluster's kwok nodes; a table, ``--json`` and ``--figure``
compare them with the simulator's prediction. The running dev cluster is used (started
with ``up --peers`` for scheduler-plugins and Kueue), or one is started with the
scenario's nodes and then the peers, each on its own (a peer that cannot be built or
started is one line, and its round is skipped), and stopped after. An unknown scheduler,
scenario or level is one line and exit status 2 before anything starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from hybrid_operator.commands.arguments import (
    UsageError,
    output_file,
    positive_float,
    positive_int,
    write_output,
)
from hybrid_policy.policies import policy_names
from hybrid_policy.scenario.fields import ScenarioError
from hybrid_policy.scenario.loader import load_scenario
from hybrid_policy.scenario.workload import prepare_workload

Say = Callable[[str], None]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``--compare`` (``--seed``, ``--timeout``, ``--json`` are shared)."""
    p.add_argument(
        "--compare",
        metavar="SCHEDULERS",
        help="compare these schedulers on one job stream, comma-separated among "
        "kube-scheduler, scheduler-plugins, kueue, hybrid",
    )
    p.add_argument("--scenario", default="seed-paper", help="with --compare: scenario (seed-paper)")
    p.add_argument("--workload", default="heavy", help="with --compare: workload level (heavy)")
    p.add_argument(
        "--time-scale", type=positive_float, default=60.0, help="with --compare: speed-up (60)"
    )
    p.add_argument("--max-jobs", type=positive_int, help="with --compare: the first N jobs")
    p.add_argument("--hybrid-policy", default="hybrid", help="with --compare: our policy (hybrid)")
    p.add_argument("--figure", type=output_file, help="with --compare: fairness-JCT PNG")


def compare(args: argparse.Namespace) -> int:
    """Check the flags, then run every round and report."""
    from hybrid_lab.clusterbench.compare.configs import UnknownSchedulerError, parse_schedulers
    from hybrid_lab.clusterbench.compare.stream import first_jobs

    try:
        kinds = parse_schedulers(args.compare)
    except UnknownSchedulerError as exc:
        raise UsageError(f"--compare: {exc}") from None
    if args.hybrid_policy not in policy_names():
        known = ", ".join(policy_names())
        raise UsageError(f"--hybrid-policy: unknown policy {args.hybrid_policy!r} (known: {known})")
    try:
        scenario = load_scenario(args.scenario)
        workload = prepare_workload(scenario, args.workload, args.seed)
    except ScenarioError as exc:
        raise UsageError(str(exc)) from None
    jobs = first_jobs(workload.jobs, args.max_jobs)
    if not jobs:
        raise UsageError(f"--scenario: {args.scenario} gives no jobs at level {args.workload}")
    return _run(args, kinds, scenario, jobs)


def _run(args: argparse.Namespace, kinds: list[Any], scenario: Any, jobs: list[Any]) -> int:
    from hybrid_lab.clusterbench.compare import prediction, report
    from hybrid_lab.clusterbench.compare.rounds import RoundSetup, run_rounds
    from hybrid_lab.clusterbench.compare.schedulers import start_peers
    from hybrid_lab.clusterbench.compare.stream import scaled_stream, teams
    from hybrid_lab.clusterbench.schedulers import ClientLimits
    from hybrid_lab.devcluster import cluster
    from hybrid_lab.devcluster import scenario as node_scenario
    from hybrid_lab.devcluster.apiserver import ApiServer
    from hybrid_lab.devcluster.errors import DevClusterError
    from hybrid_lab.devcluster.settings import ClusterSettings
    from hybrid_policy.sim.engine import FAIRNESS_WINDOW_S

    settings = ClusterSettings(peers=True)
    started_cluster = False
    began = time.monotonic()
    try:
        if cluster.running_state(settings) is None:
            say(f"starting a dev cluster with the nodes of {args.scenario} and the peers ...")
            nodes = node_scenario.resolve(args.scenario, None)
            progress = not args.quiet and sys.stderr.isatty()
            cluster.up(dataclasses.replace(settings, peers=False), nodes, progress)
            started_cluster = True
            for problem in start_peers(settings, progress):
                say(f"peer not started: {problem}")
        api = ApiServer.from_kubeconfig(settings.kubeconfig)
        nodes_seen = prediction.node_infos(api.items("/api/v1/nodes", labelSelector="type=kwok"))
        setup = RoundSetup(
            stream=scaled_stream(jobs, args.time_scale),
            teams=teams(scenario),
            capacity=prediction.capacity(nodes_seen),
            window_s=FAIRNESS_WINDOW_S / args.time_scale,
            timeout_s=args.timeout,
            limits=ClientLimits(args.qps, args.api_burst, args.batch_interval, args.batch_size),
            policy=args.hybrid_policy,
            workdir=settings.state_dir / "cluster-bench-compare",
        )
        parameters = _parameters(args, setup, len(nodes_seen), settings)
        say(f"parameters: {json.dumps(parameters)}")
        predictions = _predictions(args, kinds, scenario, jobs, nodes_seen)
        results = run_rounds(api, settings, kinds, setup, say)
        say("")
        say(report.table(results, predictions))
        say(f"\n({time.monotonic() - began:.0f} s in all; logs under {setup.workdir})")
        if args.json:
            text = json.dumps(report.as_json(parameters, results, predictions), indent=2) + "\n"
            write_output("--json", args.json, text)
            say(f"results written to {args.json}")
        if args.figure:
            report.figure(results, predictions, args.figure)
            say(f"figure written to {args.figure}")
    except (DevClusterError, TimeoutError, OSError) as exc:
        print(f"hybrid-scheduler cluster-bench: {exc}", file=sys.stderr)
        return 1
    finally:
        if started_cluster and not args.keep_cluster:
            cluster.down(settings)
    return 0


def _predictions(
    args: argparse.Namespace, kinds: list[Any], scenario: Any, jobs: list[Any], nodes: list[Any]
) -> dict[str, Any]:
    from hybrid_lab.clusterbench.compare.prediction import matching_policy, predict

    predicted = {}
    for kind in kinds:
        policy = matching_policy(kind, args.hybrid_policy)
        if policy is not None:
            say(f"simulating {policy} on the same jobs ...")
            predicted[kind.value] = predict(
                scenario, args.workload, args.seed, jobs, nodes, policy, args.time_scale
            )
    return predicted


def _parameters(args: argparse.Namespace, setup: Any, nodes: int, settings: Any) -> dict[str, Any]:
    return {
        "scenario": args.scenario,
        "workload": args.workload,
        "seed": args.seed,
        "time_scale": args.time_scale,
        "jobs": len(setup.stream),
        "gang_jobs": sum(1 for j in setup.stream if j.is_gang),
        "nodes": nodes,
        "capacity": setup.capacity,
        "teams": [dataclasses.asdict(t) for t in setup.teams],
        "window_s": setup.window_s,
        "timeout_s": setup.timeout_s,
        "limits": dataclasses.asdict(setup.limits),
        "hybrid_policy": setup.policy,
        "kubernetes": settings.versions.kubernetes,
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def say(line: str) -> None:
    """Print a line at once (rounds run for minutes)."""
    print(line, flush=True)
