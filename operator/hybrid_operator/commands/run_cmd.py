"""``hybrid-scheduler run``: the operator, scheduling pods that name it.

Settings come from flags; impossible values stop with one line naming the setting and
the value (exit 2).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
from typing import Any

from hybrid_operator.settings import DEFAULT_SCHEDULER_NAME, OperatorSettings, SettingsError
from hybrid_policy.policies import policy_names


def register(subparsers: Any) -> None:
    """Add the ``run`` sub-command."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "run", help="run the scheduler against a cluster", description=__doc__
    )
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or in-cluster)")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument(
        "--all-namespaces", action="store_true", help="schedule in every namespace (default)"
    )
    scope.add_argument(
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="schedule only in NS (repeatable)",
    )
    p.add_argument(
        "--scheduler-name", default=DEFAULT_SCHEDULER_NAME, help="spec.schedulerName of our pods"
    )
    p.add_argument("--policy", default="kube-default", help=f"one of {', '.join(policy_names())}")
    p.add_argument(
        "--batch-interval", type=float, default=1.0, help="seconds between passes (default 1)"
    )
    p.add_argument("--batch-size", type=int, default=500, help="most pods per pass (default 500)")
    p.add_argument(
        "--default-weight", type=float, default=1.0, help="weight of namespaces without one"
    )
    p.add_argument("--prometheus-url", help="Prometheus for live utilisation (default: none)")
    p.add_argument("--metrics-refresh", type=float, default=15.0, help="seconds between refreshes")
    p.add_argument("--metrics-staleness", type=float, default=120.0, help="ignore older samples")
    p.add_argument(
        "--http-port", type=int, default=8080, help="/metrics, /healthz, /readyz (0: off)"
    )
    p.add_argument("--http-host", default="0.0.0.0", help="address for the HTTP endpoints")
    p.add_argument("--seed", type=int, default=0, help="seed of random tie-breaking")
    p.add_argument("--verbose", action="store_true", help="log every decision")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Validate the settings, connect, and run until interrupted."""
    settings = OperatorSettings(
        scheduler_name=args.scheduler_name,
        namespaces=list(args.namespace),
        policy=args.policy,
        batch_interval_s=args.batch_interval,
        batch_size=args.batch_size,
        default_weight=args.default_weight,
        kubeconfig=args.kubeconfig,
        seed=args.seed,
        http_port=args.http_port,
        http_host=args.http_host,
        prometheus_url=args.prometheus_url,
        metrics_refresh_s=args.metrics_refresh,
        metrics_staleness_s=args.metrics_staleness,
    )
    try:
        settings.validate()
    except SettingsError as exc:
        print(f"hybrid-scheduler run: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # kopf logs every handled watch event at INFO; one line per pod event is noise here.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    # Heavy imports only for this command.
    from kubernetes.config import ConfigException

    from hybrid_operator.handlers import run_operator
    from hybrid_operator.k8s.api import KubeApi, load_client
    from hybrid_operator.scheduler import Scheduler

    try:
        api_client = load_client(settings.kubeconfig)
    except (ConfigException, OSError) as exc:
        print(f"hybrid-scheduler run: cannot load the kubeconfig: {exc}", file=sys.stderr)
        return 2
    collector = None
    if settings.prometheus_url:
        from hybrid_operator.utilisation import UtilisationCollector, connect

        collector = UtilisationCollector(
            connect(settings.prometheus_url, settings.metrics_timeout_s),
            staleness_s=settings.metrics_staleness_s,
        )
    scheduler = Scheduler(settings, KubeApi(api_client, socket.gethostname()), collector=collector)
    try:
        asyncio.run(run_operator(scheduler, api_client, settings.kubeconfig))
    except KeyboardInterrupt:
        return 0
    return 0
