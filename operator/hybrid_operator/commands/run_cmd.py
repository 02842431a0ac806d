"""``hybrid-scheduler run``: the operator, scheduling pods that name it.

Settings come from ``--config FILE`` (the Helm chart's ConfigMap) and from flags, which
win over the file. Impossible values stop the command with one line naming the setting
and the value (exit 2).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any

from hybrid_operator.settings import OperatorSettings, SettingsError
from hybrid_policy.policies import policy_names
from hybrid_policy.preemption.options import settings_help

#: Flag -> (settings field, type, help). Every flag defaults to "not given".
FLAGS: list[tuple[str, str, type, str]] = [
    ("--kubeconfig", "kubeconfig", str, "kubeconfig file (default: $KUBECONFIG or in-cluster)"),
    (
        "--scheduler-name",
        "scheduler_name",
        str,
        "spec.schedulerName of our pods (hybrid-scheduler)",
    ),
    ("--policy", "policy", str, f"one of {', '.join(policy_names())} (kube-default)"),
    ("--batch-interval", "batch_interval_s", float, "seconds between passes (1)"),
    ("--batch-size", "batch_size", int, "most pods per pass (500)"),
    ("--default-weight", "default_weight", float, "weight of namespaces without one (1)"),
    ("--prometheus-url", "prometheus_url", str, "Prometheus for live utilisation (none)"),
    ("--metrics-refresh", "metrics_refresh_s", float, "seconds between refreshes (15)"),
    ("--metrics-staleness", "metrics_staleness_s", float, "ignore older samples, seconds (120)"),
    (
        "--progress-query",
        "progress_query",
        str,
        "PromQL of training progress per pod; empty: off (hybrid_scheduler_training_progress)",
    ),
    ("--http-port", "http_port", int, "/metrics, /healthz, /readyz; 0 turns them off (8080)"),
    ("--http-host", "http_host", str, "address of the HTTP endpoints (0.0.0.0)"),
    ("--seed", "seed", int, "seed of random tie-breaking (0)"),
    ("--api-qps", "api_qps", float, "API calls per second on average; 0: no limit (50)"),
    ("--api-burst", "api_burst", int, "API calls above --api-qps at once (100)"),
    ("--max-parked", "max_parked_s", float, "retry pods that fit nowhere after, seconds (300)"),
    ("--api-timeout", "api_timeout_s", float, "seconds one API call may take (10)"),
    ("--resync-interval", "resync_interval_s", float, "seconds between full re-lists (120)"),
    ("--lease-namespace", "lease_namespace", str, "namespace of the leader Lease (default)"),
    ("--lease-name", "lease_name", str, "name of the leader Lease (hybrid-scheduler)"),
    ("--lease-duration", "lease_duration_s", float, "seconds before a standby takes over (15)"),
    (
        "--renew-deadline",
        "renew_deadline_s",
        float,
        "seconds the leader leads without renewing; < --lease-duration (10)",
    ),
    (
        "--retry-period",
        "retry_period_s",
        float,
        "seconds between election rounds; < --renew-deadline (2)",
    ),
    ("--identity", "identity", str, "this replica's name (<hostname>-<pid>)"),
    ("--webhook-host", "webhook_host", str, "how the API server reaches the webhook"),
    ("--webhook-addr", "webhook_addr", str, "address the webhook listens on (0.0.0.0)"),
    ("--webhook-port", "webhook_port", int, "port the webhook listens on (9443)"),
    (
        "--webhook-cert-dir",
        "webhook_cert_dir",
        str,
        "serve the webhook with DIR/tls.crt and DIR/tls.key; leave its configuration alone "
        "(default: self-issue and manage it)",
    ),
    ("--model-path", "model_path", str, "DQN checkpoint of dqn and hybrid (the shipped model)"),
    (
        "--model-fallback",
        "model_fallback",
        str,
        "unusable checkpoint: none refuses to start, binpack schedules with binpack (none)",
    ),
    (
        "--preemption",
        "preemption",
        str,
        f"off, on, or rules as KEY=VALUE,... among {settings_help()}; only opted-in pods "
        "are victims (off)",
    ),
    (
        "--reservation",
        "reservation",
        str,
        "a reserving policy's reservation settings changed, as KEY=VALUE,... among "
        "mode, max_reservations, max_wait_s, switch_margin_s, backfill_factor, order, "
        "level_slack (the policy's own)",
    ),
]


def register(subparsers: Any) -> None:
    """Add the ``run`` sub-command."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "run", help="run the scheduler against a cluster", description=__doc__
    )
    p.add_argument("--config", type=Path, help="settings file (YAML)")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument(
        "--all-namespaces", action="store_true", help="schedule everywhere (default)"
    )
    scope.add_argument(
        "--namespace", action="append", metavar="NS", help="schedule only in NS (repeatable)"
    )
    for flag, _, kind, text in FLAGS:
        p.add_argument(flag, type=kind, default=None, help=text)
    p.add_argument(
        "--no-leader-election",
        dest="leader_election",
        action="store_false",
        default=None,
        help="schedule without holding the Lease (a single replica only)",
    )
    p.add_argument(
        "--shadow-of",
        dest="shadow_of",
        metavar="SCHEDULER",
        help="record our choice for pods this scheduler binds (off)",
    )
    p.add_argument(
        "--shadow",
        dest="shadow_of",
        action="store_const",
        const="default-scheduler",
        help="shadow the default scheduler (same as --shadow-of default-scheduler)",
    )
    p.add_argument(
        "--webhook",
        action="store_true",
        default=None,
        help="serve the opt-in admission webhook (needs --webhook-host)",
    )
    p.add_argument(
        "--preemption-all-pods",
        dest="preemption_all_pods",
        action="store_true",
        default=None,
        help="with --preemption: every pod of ours may be a victim unless it opts out",
    )
    p.add_argument("--verbose", action="store_true", help="log every watch event")
    p.set_defaults(handler=run)


def settings_from(args: argparse.Namespace) -> OperatorSettings:
    """The file's settings (or the defaults) with every given flag on top, validated."""
    from hybrid_operator.settings_file import load_settings

    settings = load_settings(args.config) if args.config else OperatorSettings()
    given = {name: getattr(args, flag[2:].replace("-", "_")) for flag, name, _, _ in FLAGS}
    given["leader_election"] = args.leader_election
    given["webhook"] = args.webhook
    given["shadow_of"] = args.shadow_of
    given["preemption_all_pods"] = args.preemption_all_pods
    changes: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if args.namespace:
        changes["namespaces"] = list(args.namespace)
    elif args.all_namespaces:
        changes["namespaces"] = []
    merged = dataclasses.replace(settings, **changes)
    if not merged.identity:
        merged.identity = f"{socket.gethostname()}-{os.getpid()}"
    return merged.validate()


def run(args: argparse.Namespace) -> int:
    """Validate the settings, connect, and run until interrupted."""
    from hybrid_operator.webhook import check_certificate_files

    try:
        settings = settings_from(args)
        check_certificate_files(settings)
    except SettingsError as exc:
        print(f"hybrid-scheduler run: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    import numpy as np

    from hybrid_operator.scheduler import policy_from
    from hybrid_policy.dqn.checkpoint import CheckpointError

    try:
        # Before connecting: a model that cannot be used stops the operator at once.
        policy = policy_from(settings, np.random.default_rng(settings.seed))
    except CheckpointError as exc:
        print(f"hybrid-scheduler run: model_path: {exc}", file=sys.stderr)
        return 2
    if not args.verbose:
        # kopf logs every handled watch event at INFO; one line per pod event is noise here.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    # Heavy imports only for this command.
    from hybrid_operator.commands.kubeconfig import api_client as api_client_for
    from hybrid_operator.handlers import run_operator
    from hybrid_operator.k8s.api import KubeApi
    from hybrid_operator.leader import LeaderElector, LeaseTimings
    from hybrid_operator.promql import SAMPLE_TIME_QUERIES, utilisation_queries
    from hybrid_operator.scheduler import Scheduler
    from hybrid_operator.utilisation import UtilisationCollector, connect

    api_client = api_client_for(settings.kubeconfig)
    collector = None
    if settings.prometheus_url:
        collector = UtilisationCollector(
            connect(settings.prometheus_url, settings.metrics_timeout_s),
            queries={**utilisation_queries(), **settings.promql},
            # A query of one's own is aged from its evaluation time.
            sample_time_queries={
                k: q for k, q in SAMPLE_TIME_QUERIES.items() if k not in settings.promql
            },
            staleness_s=settings.metrics_staleness_s,
        )
    elector = None
    if settings.leader_election:
        elector = LeaderElector(
            api_client,
            settings.identity,
            settings.lease_namespace,
            settings.lease_name,
            LeaseTimings(
                settings.lease_duration_s, settings.renew_deadline_s, settings.retry_period_s
            ),
        )
    api = KubeApi(
        api_client,
        settings.identity,
        settings.api_qps,
        settings.api_burst,
        timeout_s=settings.api_timeout_s,
    )
    scheduler = Scheduler(settings, api, collector=collector, elector=elector, policy=policy)
    if settings.prometheus_url:
        scheduler.use_progress(connect(settings.prometheus_url, settings.metrics_timeout_s))
    try:
        asyncio.run(run_operator(scheduler, api_client, settings.kubeconfig))
    except KeyboardInterrupt:
        return 0
    return 0
