"""A frozen leader (SIGSTOP) stops binding before a standby takes over, and stays stopped
after it thaws (SIGCONT): every pod is bound exactly once, never by the old leader after
the takeover."""

from __future__ import annotations

import os
import re
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from hybrid_lab.devcluster.testing import DevCluster
from hybrid_lab.devcluster.workload import wait_for
from operator_helpers import (
    bound_node,
    decision,
    events,
    instance_args,
    operator_process,
    submit,
)

NAME = "hybrid-scheduler-freeze"
#: Short timings so the test stays short: the leader stops 5 s after its last renewal, a
#: standby takes over 8 s after the last renewal it saw. Passes 2 s apart, so that the
#: leader almost surely has pods queued but not yet bound when it freezes: pods it must
#: not bind when it thaws, because the new leader has bound them meanwhile.
TIMINGS = ("--lease-duration", "8", "--renew-deadline", "5", "--retry-period", "1")
BATCH_INTERVAL = ("--batch-interval", "2")
LEASE = f"/apis/coordination.k8s.io/v1/namespaces/default/leases/{NAME}"
#: Seconds between two pods of the flow.
FLOW_INTERVAL_S = 0.25


def _time(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


class Flow:
    """Pods created one after another, each with the moment it was created."""

    def __init__(self, api: Any, namespace: str) -> None:
        self.api = api
        self.pods = f"/api/v1/namespaces/{namespace}/pods"
        self.created: dict[str, float] = {}

    def one(self) -> None:
        name = f"p-{len(self.created):03d}"
        self.created[name] = time.time()
        submit(self.api, self.pods, name, 1, scheduler=NAME)
        time.sleep(FLOW_INTERVAL_S)

    def for_seconds(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            self.one()

    def until_holder(self, holder: str, timeout_s: float) -> dict[str, Any]:
        """Keep creating pods until ``holder`` holds the Lease; the Lease's spec then."""

        def taken() -> dict[str, Any] | None:
            self.one()
            spec: dict[str, Any] = self.api.get(LEASE)["spec"]
            return spec if spec.get("holderIdentity") == holder else None

        return wait_for(f"{holder} to take the Lease over", taken, timeout_s, 0)

    def all_bound(self) -> None:
        for name in self.created:
            bound_node(self.api, self.pods, name)


def test_a_frozen_leader_never_binds_after_a_standby_took_over(
    dev_cluster: DevCluster, namespace: str, tmp_path: Path
) -> None:
    api = dev_cluster.admin
    flow = Flow(api, namespace)
    args = instance_args(NAME, *TIMINGS, *BATCH_INTERVAL)
    logs = {who: tmp_path / f"{who}.log" for who in ("replica-a", "replica-b")}
    api.delete(LEASE)  # left by an earlier run on the same cluster
    with (
        operator_process(dev_cluster, logs["replica-a"], *args, "--identity", "replica-a") as a,
        operator_process(dev_cluster, logs["replica-b"], *args, "--identity", "replica-b") as b,
    ):
        old = wait_for(
            "a leader",
            lambda: api.call("GET", LEASE, allow=(404,)).get("spec", {}).get("holderIdentity"),
            30,
        )
        new = next(who for who in logs if who != old)
        frozen = a if old == "replica-a" else b
        flow.for_seconds(3)
        os.kill(frozen.pid, signal.SIGSTOP)
        try:
            lease = flow.until_holder(new, 30)  # pods keep coming while nobody leads
            takeover = _time(lease["acquireTime"])
            flow.for_seconds(1.5)
            flow.all_bound()
        finally:
            os.kill(frozen.pid, signal.SIGCONT)
        flow.for_seconds(2.5)  # the old leader is awake again, and its queue is stale
        flow.all_bound()
        wait_for(
            f"{old} to say it stopped leading",
            lambda: f"{old} stopped leading" in logs[old].read_text() or None,
            15,
        )
        # Read while both still run: stopping them one after the other lets the second
        # take the Lease over from the first, which is no part of this test.
        old_log = logs[old].read_text()
    by: dict[str, list[str]] = {old: [], new: []}
    for name, created_at in flow.created.items():
        record = decision(api, flow.pods, name)
        by[record["instance"]].append(name)
        scheduled = [e for e in events(api, namespace, name) if e["reason"] == "Scheduled"]
        assert len(scheduled) == 1, (name, scheduled)
        if record["instance"] == old:
            pod = api.get(f"{flow.pods}/{name}")
            condition = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
            # Decided and bound (whole seconds, rounded down) before the takeover.
            assert record["at"] < takeover, (name, record, takeover)
            assert _time(condition["lastTransitionTime"]) < takeover, (name, condition)
        if created_at > takeover:
            assert record["instance"] == new, (name, record)
    assert by[old] and by[new], by
    # The old leader did not even try: a binding it tried would have met a conflict.
    assert not re.search(r"binding \S+ to \S+: conflict", old_log), old_log
    assert f"{old} now leads (term 2)" not in old_log
