"""The operator under test as it would be deployed: two replicas electing a leader, each
talking to the API server through the fault proxy and to the fake Prometheus, with the
invariant checker watching the API server directly.

:class:`FaultRig` starts all of it on a running dev cluster and stops what it started.
The replicas share one scheduler name and one Lease, both of their own, so nothing else
on the cluster is affected, and the workload namespaces are made afresh.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import yaml

from hybrid_lab.devcluster import pki
from hybrid_lab.devcluster.apiserver import ApiServer
from hybrid_lab.devcluster.ports import free_port
from hybrid_lab.devcluster.settings import ClusterSettings
from hybrid_lab.devcluster.workload import wait_for
from hybrid_lab.faults.checker import InvariantChecker
from hybrid_lab.faults.prometheus import FakePrometheus
from hybrid_lab.faults.proxy import ApiProxy
from hybrid_lab.faults.replicas import OperatorReplica
from hybrid_lab.faults.workload import NAMESPACE_WEIGHTS, ensure_namespaces
from hybrid_lab.launch import operator_argv

LEASE_NAMESPACE = "default"


@dataclass(frozen=True)
class RigSettings:
    """How the operator under test runs."""

    work_dir: Path
    """Logs and the proxy's kubeconfig go here."""
    scheduler_name: str = "hybrid-scheduler-faults"
    """``spec.schedulerName`` of the workload, and the name of the Lease."""
    replicas: int = 2
    """Operator processes electing a leader."""
    lease_duration_s: float = 6.0
    """Seconds without renewal before a standby takes over."""
    renew_deadline_s: float = 4.0
    """Seconds without renewal before the leader stops binding."""
    retry_period_s: float = 1.0
    """Seconds between election rounds."""
    policy: str = "load-aware"
    """The policy (one that reads utilisation, so Prometheus faults matter)."""
    batch_interval_s: float = 0.5
    """Seconds between scheduling passes."""
    metrics_refresh_s: float = 1.0
    """Seconds between utilisation queries."""


class FaultRig:
    """Proxy, fake Prometheus, checker and replicas on a running dev cluster."""

    def __init__(self, cluster: ClusterSettings, settings: RigSettings) -> None:
        self.cluster = cluster
        self.settings = settings
        self.admin = ApiServer.from_kubeconfig(cluster.kubeconfig)
        keys = pki.Pki(cluster.state_dir / "pki")
        self.proxy = ApiProxy(cluster.server_url, keys.ca_cert, keys.serving_cert, keys.serving_key)
        self.checker = InvariantChecker(
            self.admin, settings.scheduler_name, (LEASE_NAMESPACE, settings.scheduler_name)
        )
        self.prometheus = FakePrometheus(self._node_names)
        self.replicas: list[OperatorReplica] = []
        self.kubeconfig = settings.work_dir / "operator-via-proxy.kubeconfig"

    def _node_names(self) -> list[str]:
        with self.checker.view() as ledger:
            return ledger.live_nodes()

    def __enter__(self) -> FaultRig:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Namespaces, checker, proxy, Prometheus, then the replicas."""
        self.settings.work_dir.mkdir(parents=True, exist_ok=True)
        ensure_namespaces(self.admin, NAMESPACE_WEIGHTS)
        self.admin.call(
            "DELETE",
            f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/"
            f"{self.settings.scheduler_name}",
            allow=(404,),
        )
        self.checker.start()
        self.proxy.start()
        self.prometheus.start()
        self._write_kubeconfig()
        self.replicas = [self._replica(i) for i in range(self.settings.replicas)]
        self._start_all()

    def stop(self) -> None:
        """Stop what :meth:`start` started (the namespaces are left for inspection)."""
        self._stop_all()
        self.prometheus.kill()
        self.proxy.stop()
        self.checker.stop()

    def _write_kubeconfig(self) -> None:
        config = yaml.safe_load(self.cluster.kubeconfig.read_text(encoding="utf-8"))
        token = str(config["users"][0]["user"]["token"])
        ca_cert = pki.Pki(self.cluster.state_dir / "pki").ca_cert
        pki.write_kubeconfig(self.kubeconfig, self.proxy.url, ca_cert, "admin", token)

    def _replica(self, index: int) -> OperatorReplica:
        s = self.settings
        identity = f"{s.scheduler_name}-{index}"
        port = free_port()
        argv = operator_argv(
            self.kubeconfig,
            *("--scheduler-name", s.scheduler_name, "--lease-name", s.scheduler_name),
            *("--lease-namespace", LEASE_NAMESPACE, "--identity", identity),
            *("--lease-duration", f"{s.lease_duration_s:g}", "--policy", s.policy),
            *("--renew-deadline", f"{s.renew_deadline_s:g}"),
            *("--retry-period", f"{s.retry_period_s:g}"),
            *("--batch-interval", f"{s.batch_interval_s:g}"),
            *("--prometheus-url", self.prometheus.url),
            *("--metrics-refresh", f"{s.metrics_refresh_s:g}"),
            *("--http-host", "127.0.0.1", "--http-port", str(port)),
        )
        return OperatorReplica(identity, port, s.work_dir / f"{identity}.log", argv)

    # -- questions and actions of the faults --------------------------------------------

    def leader(self) -> OperatorReplica | None:
        """The replica holding an unexpired Lease now, as the checker last saw it."""
        with self.checker.view() as ledger:
            holder = ledger.leader_at(time.time())
        return next((r for r in self.replicas if r.identity == holder), None)

    def wait_leader(self, timeout_s: float) -> OperatorReplica:
        """The leader, once there is one."""
        return wait_for("a replica to lead", self.leader, timeout_s, 0.2)

    def restart_replicas(self) -> None:
        """Stop every replica and start it again (a clean slate for the next fault)."""
        self._stop_all()
        self._start_all()

    def _stop_all(self) -> None:
        for replica in self.replicas:
            replica.terminate()
        for replica in self.replicas:
            replica.stop()

    def _start_all(self) -> None:
        offsets = [replica.launch() for replica in self.replicas]
        for replica, offset in zip(self.replicas, offsets, strict=True):
            replica.wait_started(offset)

    def revive_crashed(self) -> list[str]:
        """Start again every replica whose process is gone; return their identities."""
        revived = []
        for replica in self.replicas:
            if not replica.alive:
                replica.start()
                revived.append(replica.identity)
        return revived
