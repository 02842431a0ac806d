"""``hybrid-scheduler explain NAMESPACE/POD``: why a pod went where it went.

Prints the decision record the operator wrote on the pod: the policy and its path, the
chosen node's score, the runners-up and the namespace's share at the time.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``explain`` sub-command."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "explain", help="print the scheduling decision recorded on a pod", description=__doc__
    )
    p.add_argument("pod", metavar="NAMESPACE/POD")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or in-cluster)")
    p.set_defaults(handler=explain)


def render(key: str, record: dict[str, Any]) -> str:
    """The record as a few aligned lines."""
    at = record.get("at")
    when = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if at else "?"
    share = record.get("namespaceShare")
    lines = [
        f"pod:             {key}",
        f"node:            {record.get('node')}",
        f"policy (path):   {record.get('policy')} ({record.get('path')})",
        f"score:           {record.get('score')}",
        f"namespace share: {'n/a' if share is None else f'{share:.4f}'}",
        f"decided at:      {when}",
        "runners-up:" if record.get("runnersUp") else "runners-up:      none",
    ]
    lines.extend(f"  {r['node']:<24} {r['score']}" for r in record.get("runnersUp", []))
    return "\n".join(lines)


def explain(args: argparse.Namespace) -> int:
    """Read the pod's decision record and print it."""
    namespace, _, name = args.pod.partition("/")
    if not namespace or not name:
        print(f"hybrid-scheduler explain: give NAMESPACE/POD (got {args.pod!r})", file=sys.stderr)
        return 2
    from kubernetes.client.exceptions import ApiException

    from hybrid_operator.k8s.api import KubeApi, load_client
    from hybrid_operator.reporting import DECISION_ANNOTATION

    try:
        api = KubeApi(load_client(args.kubeconfig), "explain")
        raw = api.read_annotation(namespace, name, DECISION_ANNOTATION)
    except ApiException as exc:
        print(f"hybrid-scheduler explain: {args.pod}: {exc.status} {exc.reason}", file=sys.stderr)
        return 1
    if raw is None:
        print(
            f"hybrid-scheduler explain: {args.pod} has no decision record "
            "(hybrid-scheduler has not bound it)",
            file=sys.stderr,
        )
        return 1
    print(render(args.pod, json.loads(raw)))
    return 0
