"""Test support for the dev cluster (like ``kopf.testing``), used by tests/e2e only.

:func:`session_cluster` brings a cluster up for a test session, or reuses one that is
already running and then leaves it running; :func:`peers_running` and
:func:`job_controllers_running` add optional processes to it for a block.
:class:`GangMonitor` watches PodGroups and their pods while a test runs. No command
imports this module (an import contract checks it); what commands and tests share is in
:mod:`hybrid_lab.devcluster.workload`.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from hybrid_lab.devcluster import (
    build,
    cluster,
    job_controllers,
    peer_components,
    pki,
    processes,
    scenario,
    state,
)
from hybrid_lab.devcluster.apiserver import ApiServer
from hybrid_lab.devcluster.components import Component
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
    plan = peer_components.plan
    with _started(settings, current, plan, lambda: peer_components.remove_webhooks(running.admin)):
        yield DevCluster(settings, running.admin)


@contextmanager
def job_controllers_running(running: DevCluster) -> Iterator[DevCluster]:
    """The job controllers (training-operator) in ``running`` for the duration of the
    block: started here (built first if missing) and stopped at the end, or left running
    when ``up --job-controllers`` started them."""
    settings = dataclasses.replace(running.settings, job_controllers=True)
    current = cluster.running_state(settings)
    if current is None:
        raise NotRunningError(f"no dev cluster is running (state in {settings.state_dir})")
    if current.info.get("job_controllers"):
        yield DevCluster(settings, running.admin)
        return
    peer_components.unshare_binary()
    require_free(job_controllers.required_ports(settings))
    build.build_missing(settings, show_progress=False)
    with _started(settings, current, job_controllers.plan):
        yield DevCluster(settings, running.admin)


@contextmanager
def _started(
    settings: ClusterSettings,
    current: state.ClusterState,
    plan: Callable[[ClusterSettings], Sequence[Component]],
    before_stop: Callable[[], None] | None = None,
) -> Iterator[None]:
    """The processes of ``plan`` started one by one and recorded in the PID file, then
    stopped and forgotten at the end of the block (also when one fails to start), after
    ``before_stop``."""
    started = len(current.processes)
    try:
        for component in plan(settings):
            cluster.start_one(settings, component, current)
        yield
    finally:
        if before_stop is not None:
            before_stop()
        processes.stop(current.processes[started:], settings.stop_timeout_seconds)
        del current.processes[started:]
        state.save(settings.state_dir, current)


PODGROUP_LABEL = "scheduling.x-k8s.io/pod-group"
"""The label that puts a pod in the PodGroup it names (scheduler-plugins' API)."""
PODGROUPS = "/apis/scheduling.x-k8s.io/v1alpha1/namespaces/{namespace}/podgroups"


@dataclass(frozen=True)
class PartialGroup:
    """A stretch of time when a PodGroup had some, but fewer than ``minMember``, pods bound."""

    group: str
    """``namespace/name`` of the PodGroup."""
    bound: int
    """The most pods bound at once during the stretch."""
    min_member: int
    """The PodGroup's ``minMember``."""
    since: float
    """First sighting (``time.monotonic()`` seconds)."""
    until: float
    """Last sighting, or when the monitor stopped (``time.monotonic()`` seconds)."""

    @property
    def seconds(self) -> float:
        """How long the group was seen partly bound."""
        return self.until - self.since


class GangMonitor:
    """Polls the PodGroups of ``namespaces`` and their pods every ``interval_seconds``
    (from :meth:`start` to :meth:`stop`, or as a context manager) and records every
    stretch of time a group had some but fewer than ``minMember`` pods bound
    (:attr:`partial`), and when each group first had ``minMember`` bound (:attr:`whole_at`).

    A pod counts as bound once it has a node, whatever its phase after, and a group is
    followed after its PodGroup is gone (training-operator deletes it when the job ends,
    perhaps before the last pods are bound). A scheduler that
    binds a gang whole still binds its pods one API call after the other, so a correct one
    shows short stretches too: :meth:`partial_longer_than` keeps those longer than a bind.
    """

    def __init__(
        self, api: ApiServer, namespaces: Sequence[str], interval_seconds: float = 0.1
    ) -> None:
        self.api = api
        self.namespaces = list(namespaces)
        self.interval_seconds = interval_seconds
        self.partial: list[PartialGroup] = []
        self.whole_at: dict[str, float] = {}
        self.errors: list[str] = []
        self._open: dict[str, PartialGroup] = {}
        self._min_member: dict[str, int] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gang-monitor", daemon=True)

    def __enter__(self) -> GangMonitor:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start polling in a thread of its own."""
        self._thread.start()

    def stop(self) -> None:
        """Stop polling; a stretch still open ends now."""
        self._stopping.set()
        self._thread.join()
        now = time.monotonic()
        for group in list(self._open):
            self._close(group, now)

    def partial_longer_than(self, seconds: float) -> list[PartialGroup]:
        """The recorded stretches longer than ``seconds``."""
        return [span for span in self.partial if span.seconds > seconds]

    def observe(self, now: float) -> None:
        """One look at every PodGroup of the namespaces and their bound pods."""
        for namespace in self.namespaces:
            groups = self.api.items(PODGROUPS.format(namespace=namespace))
            pods = self.api.items(
                f"/api/v1/namespaces/{namespace}/pods", labelSelector=PODGROUP_LABEL
            )
            bound = Counter(
                pod["metadata"]["labels"][PODGROUP_LABEL]
                for pod in pods
                if pod["spec"].get("nodeName")
            )
            for group in groups:
                key = f"{namespace}/{group['metadata']['name']}"
                self._min_member[key] = int(group["spec"].get("minMember", 1))
            for key, min_member in self._min_member.items():
                group_namespace, _, name = key.partition("/")
                if group_namespace == namespace:
                    self._record(key, bound[name], min_member, now)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.observe(time.monotonic())
            except DevClusterError as err:
                self.errors.append(str(err))
            self._stopping.wait(self.interval_seconds)

    def _record(self, group: str, bound: int, min_member: int, now: float) -> None:
        if group in self.whole_at:
            return
        if bound >= min_member:
            self.whole_at[group] = now
            self._close(group, now)
        elif bound == 0:
            self._close(group, now)
        else:
            span = self._open.get(group)
            since = span.since if span else now
            most = max(bound, span.bound if span else 0)
            self._open[group] = PartialGroup(group, most, min_member, since, now)

    def _close(self, group: str, now: float) -> None:
        span = self._open.pop(group, None)
        if span is not None:
            self.partial.append(dataclasses.replace(span, until=now))
