"""Shares of the cluster: one definition for decisions, arbitrators and the operator.

An amount's share of the cluster is, per resource, the amount divided by the cluster's
schedulable allocatable (0 where there is none); its *dominant* share is the largest of
those, the unit DRF and the game count in. A namespace's shares are those of what its
pods are allocated, divided by its fair-share weight. The *namespace share* written on
every decision and exported by the operator is the weighted GPU share.
"""

from __future__ import annotations

import numpy as np

from hybrid_policy.framework.snapshot import ClusterSnapshot, FloatArray
from hybrid_policy.resources import GPU


def dominant_share_of(snapshot: ClusterSnapshot, amounts: FloatArray) -> float:
    """The largest share of any resource of the cluster that ``amounts`` stand for."""
    total = snapshot.total_allocatable
    shares = np.divide(amounts, total, out=np.zeros_like(amounts), where=total > 0)
    return float(shares.max()) if shares.size else 0.0


def weighted_dominant_share(snapshot: ClusterSnapshot, namespace: str) -> float:
    """The namespace's dominant share of the cluster divided by its weight (DRF's order)."""
    alloc = snapshot.namespace_allocated.get(namespace)
    if alloc is None:
        return 0.0
    return dominant_share_of(snapshot, alloc) / snapshot.weight_of(namespace)


def namespace_share(snapshot: ClusterSnapshot, namespace: str) -> float:
    """The namespace's GPU share of the cluster divided by its weight (0 when it holds
    none or the cluster has no schedulable GPUs)."""
    alloc = snapshot.namespace_allocated.get(namespace)
    gpu = snapshot.index[GPU]
    total = float(snapshot.total_allocatable[gpu])
    if alloc is None or total <= 0:
        return 0.0
    return float(alloc[gpu]) / total / snapshot.weight_of(namespace)


def namespace_shares(snapshot: ClusterSnapshot) -> dict[str, float]:
    """:func:`namespace_share` of every namespace that holds GPUs, when the cluster has
    schedulable GPUs (none otherwise)."""
    gpu = snapshot.index[GPU]
    if snapshot.total_allocatable[gpu] <= 0:
        return {}
    return {
        namespace: namespace_share(snapshot, namespace)
        for namespace, allocated in snapshot.namespace_allocated.items()
        if allocated[gpu] > 0
    }
