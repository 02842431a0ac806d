"""``hybrid-scheduler explain NAMESPACE/POD``: why a pod went where it went.

Prints the decision record the operator wrote on the pod: the policy and its path, the
chosen node's score, the runners-up and the namespace's share at the time, then whether
the record agrees with the pod's binding (node, scheduler name, creation and
``PodScheduled`` times, and who wrote the annotation). Anyone who may update the pod can
write the annotation, so a record that disagrees is shown as unverified, with every
disagreement, and the exit status is 1; so is a record that cannot be read, or a pod
without one. A pending pod that holds a reservation shows it instead: the reserved node
(``status.nominatedNodeName``), its place in its namespace's queue, and its predicted
start with the prediction's source, as the scheduler wrote them in the ``PodScheduled``
condition; a pending pod that preempts (alone or for its gang) shows whom it preempts,
and why, instead, and a pod preempted by the scheduler shows by whom (its
``DisruptionTarget`` condition). A pending
pod of a gang that waits shows the gang: its name, how many of its
pods are bound, exist and are needed, and why it waits, as the scheduler wrote it. A bad
argument or kubeconfig is one line and exit status 2.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hybrid_operator.commands.arguments import UsageError
from hybrid_operator.decision_record import (
    DECISION_ANNOTATION,
    DecisionRecord,
    RecordError,
    binding_problems,
    parse_record,
)
from hybrid_operator.k8s.gangs import JOB_NAME_LABEL, POD_GROUP_LABEL
from hybrid_operator.k8s.preempt import DISRUPTION_TARGET, PREEMPTION_BY_SCHEDULER
from hybrid_operator.reservations import ordinal, parse_notice

#: What a preemptor's ``PodScheduled`` message starts with: a pod alone's, or a gang's.
PREEMPTING = re.compile(r"(gang \S+: )?preempting ")
PROG = "hybrid-scheduler explain"
#: The gang notice the scheduler writes in a waiting member's PodScheduled condition.
GANG_NOTICE = re.compile(r"gang (?P<gang>[^:]+): (?P<why>.*)")
NEEDED = re.compile(r"\b(?:\d+ of|none of its) (?P<need>\d+) pods\b")


def register(subparsers: Any) -> None:
    """Add the ``explain`` sub-command."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "explain", help="print the scheduling decision recorded on a pod", description=__doc__
    )
    p.add_argument("pod", metavar="NAMESPACE/POD")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or in-cluster)")
    p.set_defaults(handler=explain)


def render(key: str, record: DecisionRecord) -> str:
    """The record as a few aligned lines."""
    when = datetime.fromtimestamp(record.at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    share = "n/a" if record.namespace_share is None else f"{record.namespace_share:.4f}"
    lines = [
        f"pod:             {key}",
        f"node:            {record.node}",
        f"policy (path):   {record.policy} ({record.path})",
        f"score:           {'n/a' if record.score is None else record.score}",
        f"namespace share: {share}",
        f"decided at:      {when}",
        f"decided by:      {record.scheduler or '?'} (replica {record.instance})",
        "runners-up:" if record.runners_up else "runners-up:      none",
    ]
    lines.extend(f"  {r.node:<24} {r.score}" for r in record.runners_up)
    return "\n".join(lines)


def verdict(problems: list[str]) -> str:
    """Whether the record can be taken as the scheduler's, and why not."""
    if not problems:
        return "binding:         the record matches the pod's binding"
    lines = ["binding:         UNVERIFIED: the record does not match the pod's binding"]
    lines.extend(f"  - {p}" for p in problems)
    return "\n".join(lines)


@dataclass(frozen=True)
class Explanation:
    """What explain prints for a pod, and its exit status."""

    code: int
    out: str = ""
    err: str = ""


def reservation(key: str, pod: dict[str, Any]) -> str | None:
    """What a pending pod holding a reservation shows; None for any other pod."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    nominated = status.get("nominatedNodeName")
    if spec.get("nodeName") or not isinstance(nominated, str) or not nominated:
        return None
    conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
    messages = [str(c.get("message", "")) for c in conditions if c.get("type") == "PodScheduled"]
    notice = next((n for n in map(parse_notice, messages) if n is not None), None)
    preempting = next((m for m in messages if PREEMPTING.match(m)), None)
    if preempting is not None:
        return "\n".join(
            [
                f"pod:             {key}",
                f"pending:         node {nominated} is held for it while its victims go",
                f"preemption:      {preempting}",
            ]
        )
    lines = [f"pod:             {key}", f"pending:         node {nominated} is reserved for it"]
    if notice is None:
        lines.append("                 (no reservation notice from hybrid-scheduler on the pod)")
        return "\n".join(lines)
    if notice.node != nominated:
        lines.append(f"                 (the scheduler's last notice named {notice.node})")
    lines += [
        f"queue position:  {ordinal(notice.rank)} in {notice.namespace}'s queue",
        f"predicted start: {notice.predicted_start} (from {notice.source})",
    ]
    return "\n".join(lines)


def preempted(pod: dict[str, Any]) -> str | None:
    """The line of a pod the scheduler preempts (its ``DisruptionTarget`` condition)."""
    conditions = (pod.get("status") or {}).get("conditions") or []
    for c in conditions:
        if (
            isinstance(c, dict)
            and c.get("type") == DISRUPTION_TARGET
            and c.get("reason") == PREEMPTION_BY_SCHEDULER
        ):
            return f"preempted:       {c.get('message', '')}"
    return None


def gang_selector(pod: dict[str, Any]) -> str | None:
    """The label selector of the pod's gang mates (its PodGroup's, else its Job's)."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    for label in (POD_GROUP_LABEL, JOB_NAME_LABEL):
        if isinstance(labels.get(label), str) and labels[label]:
            return f"{label}={labels[label]}"
    return None


def gang_notice(pod: dict[str, Any]) -> re.Match[str] | None:
    """The gang notice in a pending pod's PodScheduled condition, if any."""
    status = pod.get("status") or {}
    if (pod.get("spec") or {}).get("nodeName"):
        return None
    conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
    messages = [str(c.get("message", "")) for c in conditions if c.get("type") == "PodScheduled"]
    return next((m for m in map(GANG_NOTICE.fullmatch, messages) if m is not None), None)


def gang(key: str, pod: dict[str, Any], members: Sequence[dict[str, Any]]) -> str | None:
    """What a pending pod of a waiting gang shows (``members``: the pods its gang's
    label selects); None for any other pod."""
    notice = gang_notice(pod)
    if notice is None:
        return None
    bound = sum(1 for m in members if (m.get("spec") or {}).get("nodeName"))
    needed = NEEDED.search(notice["why"])
    need = needed["need"] if needed else "?"
    return "\n".join(
        [
            f"pod:             {key}",
            f"gang:            {notice['gang']}: {bound} bound, {len(members)} exist, "
            f"{need} needed",
            f"waiting:         {notice['why']}",
        ]
    )


def explain_pod(
    key: str, pod: dict[str, Any], members: Sequence[dict[str, Any]] = ()
) -> Explanation:
    """The explanation of ``pod`` (the API server's JSON; ``members``: its gang's pods);
    never raises."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    raw = annotations.get(DECISION_ANNOTATION)
    if raw is None:
        reserved = reservation(key, pod)
        if reserved is not None:
            return Explanation(0, out=reserved)
        waiting = gang(key, pod, members)
        if waiting is not None:
            return Explanation(0, out=waiting)
        missing = f"{key} has no decision record (hybrid-scheduler has not bound it)"
        return Explanation(1, err=missing)
    try:
        record = parse_record(str(raw))
    except RecordError as exc:
        return Explanation(1, err=f"{key}: the decision record cannot be read: {exc}")
    problems = binding_problems(record, pod)
    out = f"{render(key, record)}\n{verdict(problems)}"
    taken = preempted(pod)
    if taken is not None:
        out = f"{out}\n{taken}"
    return Explanation(1 if problems else 0, out=out)


def explain(args: argparse.Namespace) -> int:
    """Read the pod, check its decision record, and print both."""
    namespace, _, name = args.pod.partition("/")
    if not namespace or not name or "/" in name:
        raise UsageError(f"give NAMESPACE/POD (got {args.pod!r})")
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    from hybrid_operator.commands.kubeconfig import api_client
    from hybrid_operator.k8s.api import KubeApi

    api = KubeApi(api_client(args.kubeconfig), "explain")
    try:
        pod = api.read_pod(namespace, name)
        selector = gang_selector(pod) if gang_notice(pod) else None
        members = api.list_pods(namespace, selector) if selector else []
    except ApiException as exc:
        print(f"{PROG}: {args.pod}: {exc.status} {exc.reason}", file=sys.stderr)
        return 1
    except (HTTPError, OSError) as exc:
        host = api.core.api_client.configuration.host
        print(f"{PROG}: cannot reach the API server at {host}: {exc}", file=sys.stderr)
        return 1
    result = explain_pod(args.pod, pod, members)
    if result.out:
        print(result.out)
    if result.err:
        print(f"{PROG}: {result.err}", file=sys.stderr)
    return result.code
