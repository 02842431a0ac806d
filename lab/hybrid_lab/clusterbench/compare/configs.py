"""Each compared scheduler as its users configure it for weighted teams.

* **kube-scheduler**: a second instance of the cluster's binary with the default profile;
  the pods name it. It knows no teams and no gangs (a gang's pods are placed one by one).
* **scheduler-plugins**: CapacityScheduling and Coscheduling (the dev cluster's peer
  configuration). One ElasticQuota per team namespace: ``min`` the team's weighted share
  of the cluster (guaranteed, and reclaimed by preemption when lent), ``max`` the whole
  cluster (a team may borrow everything idle); gangs get a PodGroup.
* **Kueue** over kube-scheduler: one ClusterQueue per team in one cohort, its nominal
  quota the team's weighted share, fair-sharing weight the team's weight, preemption
  ``reclaimWithinCohort: Any`` (take back lent quota) and ``withinClusterQueue:
  LowerPriority``. ``borrowWithinCohort`` stays unset: Kueue's API allows it only with
  classical preemption, not with fair sharing. A LocalQueue per namespace; Jobs are
  created suspended with the queue-name label; a gang is one Job, admitted whole.
* **hybrid**: our operator with a gang-aware policy; teams' weights from the namespace
  annotation, gangs from the PodGroup label.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

from hybrid_lab.clusterbench.compare.stream import (
    ROUND_LABEL,
    Expression,
    Team,
    namespace_name,
)
from hybrid_lab.devcluster.peers import SCHEDULER_NAME as SCHEDULER_PLUGINS_NAME
from hybrid_policy.resources import CPU, GPU, MEMORY

KUEUE_API = "/apis/kueue.x-k8s.io/v1beta2"
ELASTIC_QUOTA_PATH = "/apis/scheduling.x-k8s.io/v1alpha1/namespaces/{namespace}/elasticquotas"
LOCAL_QUEUE = "team"
"""The LocalQueue every team namespace gets under Kueue."""
QUOTA_RESOURCES = (CPU, MEMORY, GPU)


class SchedulerKind(StrEnum):
    """The schedulers ``--compare`` knows."""

    KUBE_SCHEDULER = "kube-scheduler"
    SCHEDULER_PLUGINS = "scheduler-plugins"
    KUEUE = "kueue"
    HYBRID = "hybrid"


class UnknownSchedulerError(ValueError):
    """A name ``--compare`` does not know."""


def parse_schedulers(text: str) -> list[SchedulerKind]:
    """Comma-separated scheduler names, in order, each once."""
    kinds: list[SchedulerKind] = []
    for raw in text.split(","):
        name = raw.strip()
        if not name:
            continue
        try:
            kind = SchedulerKind(name)
        except ValueError:
            known = ", ".join(k.value for k in SchedulerKind)
            raise UnknownSchedulerError(f"unknown scheduler {name!r} (known: {known})") from None
        if kind not in kinds:
            kinds.append(kind)
    if not kinds:
        raise UnknownSchedulerError("no scheduler named")
    return kinds


def round_scheduler_name(kind: SchedulerKind) -> str:
    """The ``schedulerName`` the round's pods carry."""
    if kind is SchedulerKind.SCHEDULER_PLUGINS:
        return SCHEDULER_PLUGINS_NAME
    return f"compare-{kind.value}"


def expression(kind: SchedulerKind) -> Expression:
    """How the stream is submitted to ``kind``."""
    return Expression(
        scheduler_name=round_scheduler_name(kind),
        pod_groups=kind in (SchedulerKind.SCHEDULER_PLUGINS, SchedulerKind.HYBRID),
        queue=LOCAL_QUEUE if kind is SchedulerKind.KUEUE else None,
    )


def weighted_shares(
    teams: Sequence[Team], capacity: Mapping[str, int]
) -> dict[str, dict[str, int]]:
    """Each team's share of each resource, in proportion to its weight, rounded down so
    that the shares never add up to more than the cluster."""
    total = sum(t.weight for t in teams)
    if total <= 0:
        raise ValueError("team weights must add up to more than 0")
    return {
        t.name: {r: math.floor(capacity.get(r, 0) * t.weight / total) for r in QUOTA_RESOURCES}
        for t in teams
    }


def quantity(resource: str, amount: int) -> str:
    """A Kubernetes quantity from the policy core's units (millicores, bytes, GPUs)."""
    return f"{amount}m" if resource == CPU else str(amount)


def _resource_list(amounts: Mapping[str, int]) -> dict[str, str]:
    return {r: quantity(r, amounts.get(r, 0)) for r in QUOTA_RESOURCES}


def elastic_quotas(
    round_name: str, teams: Sequence[Team], capacity: Mapping[str, int]
) -> list[dict[str, Any]]:
    """One ElasticQuota per team namespace: min its weighted share, max the cluster."""
    shares = weighted_shares(teams, capacity)
    return [
        {
            "apiVersion": "scheduling.x-k8s.io/v1alpha1",
            "kind": "ElasticQuota",
            "metadata": {
                "name": "team-quota",
                "namespace": namespace_name(round_name, t.name),
                "labels": {ROUND_LABEL: round_name},
            },
            "spec": {"min": _resource_list(shares[t.name]), "max": _resource_list(capacity)},
        }
        for t in teams
    ]


def cohort_name(round_name: str) -> str:
    """The cohort every team's ClusterQueue joins."""
    return f"cmp-{round_name}"


def kueue_objects(
    round_name: str, teams: Sequence[Team], capacity: Mapping[str, int]
) -> list[tuple[str, dict[str, Any]]]:
    """(collection path, object) for Kueue: a ResourceFlavor, a ClusterQueue per team in
    one cohort, a LocalQueue per team namespace."""
    shares = weighted_shares(teams, capacity)
    flavor = f"cmp-{round_name}"
    labels = {ROUND_LABEL: round_name}
    objects: list[tuple[str, dict[str, Any]]] = [
        (
            f"{KUEUE_API}/resourceflavors",
            _kueue("ResourceFlavor", {"name": flavor, "labels": labels}, {}),
        )
    ]
    for t in teams:
        queue = f"cmp-{round_name}-{t.name}"
        resources = [
            {"name": r, "nominalQuota": quantity(r, shares[t.name][r])} for r in QUOTA_RESOURCES
        ]
        spec = {
            "cohortName": cohort_name(round_name),
            "namespaceSelector": {
                "matchLabels": {"kubernetes.io/metadata.name": namespace_name(round_name, t.name)}
            },
            "resourceGroups": [
                {
                    "coveredResources": list(QUOTA_RESOURCES),
                    "flavors": [{"name": flavor, "resources": resources}],
                }
            ],
            "fairSharing": {"weight": f"{t.weight:g}"},
            "preemption": {"reclaimWithinCohort": "Any", "withinClusterQueue": "LowerPriority"},
        }
        objects.append(
            (
                f"{KUEUE_API}/clusterqueues",
                _kueue("ClusterQueue", {"name": queue, "labels": labels}, spec),
            )
        )
        namespace = namespace_name(round_name, t.name)
        objects.append(
            (
                f"{KUEUE_API}/namespaces/{namespace}/localqueues",
                _kueue(
                    "LocalQueue",
                    {"name": LOCAL_QUEUE, "namespace": namespace, "labels": labels},
                    {"clusterQueue": queue},
                ),
            )
        )
    return objects


def _kueue(kind: str, metadata: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": kind,
        "metadata": metadata,
        "spec": spec,
    }
