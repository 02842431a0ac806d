"""Test support for the dev cluster (like ``kopf.testing``), used by tests/e2e only.

:func:`session_cluster` brings a cluster up for a test session, or reuses one that is
already running and then leaves it running. No command imports this module (an import
contract checks it); what commands and tests share is in :mod:`hybrid_lab.devcluster.workload`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from hybrid_lab.devcluster import build, cluster, peer_components, pki, processes, scenario, state
from hybrid_lab.devcluster.apiserver import ApiServer
from hybrid_lab.devcluster.errors import DevClusterError, NotRunningError
from hybrid_lab.devcluster.ports import require_free
from hybrid_lab.devcluster.settings import ClusterSettings


@dataclass(frozen=True)
class DevCluster:
    """Handles to a running dev cluster."""

    settings: ClusterSettings
    """Where it runs (ports, state directory)."""
    admin: ApiServer
    """Client with the admin identity (``system:masters``)."""

    def as_identity(self, identity: pki.Identity) -> ApiServer:
        """A client authenticated as one of the cluster's static identities."""
        return ApiServer.from_kubeconfig(self.settings.state_dir / identity.kubeconfig_name)


@contextmanager
def session_cluster(nodes: int) -> Iterator[DevCluster]:
    """A cluster with the default scheduler and Prometheus for the duration of the block."""
    settings = ClusterSettings(kube_scheduler=True, prometheus=True)
    existing = cluster.running_state(settings)
    if existing is not None:
        if not (existing.info.get("kube_scheduler") and existing.info.get("prometheus_enabled")):
            raise DevClusterError(
                "a dev cluster without --kube-scheduler --prometheus is "
                "running; stop it with 'hybrid-scheduler dev-cluster down'"
            )
        yield DevCluster(settings, ApiServer.from_kubeconfig(settings.kubeconfig))
        return
    cluster.up(settings, scenario.resolve(None, nodes), show_progress=False)
    try:
        yield DevCluster(settings, ApiServer.from_kubeconfig(settings.kubeconfig))
    finally:
        cluster.down(settings)


@contextmanager
def peers_running(running: DevCluster) -> Iterator[DevCluster]:
    """The peers (scheduler-plugins, Kueue) in ``running`` for the duration of the block.

    Peers started here (built first if missing) are stopped at the end, Kueue's webhook
    configurations removed first, so the tests after the block see the cluster as it was;
    peers that ``up --peers`` started are left running.
    """
    settings = dataclasses.replace(running.settings, peers=True)
    current = cluster.running_state(settings)
    if current is None:
        raise NotRunningError(f"no dev cluster is running (state in {settings.state_dir})")
    if current.info.get("peers"):
        yield DevCluster(settings, running.admin)
        return
    peer_components.unshare_binary()
    require_free(peer_components.required_ports(settings))
    build.build_missing(settings, show_progress=False)
    started = len(current.processes)
    try:
        for component in peer_components.plan(settings):
            cluster.start_one(settings, component, current)
        yield DevCluster(settings, running.admin)
    finally:
        peer_components.remove_webhooks(running.admin)
        processes.stop(current.processes[started:], settings.stop_timeout_seconds)
        del current.processes[started:]
        state.save(settings.state_dir, current)
