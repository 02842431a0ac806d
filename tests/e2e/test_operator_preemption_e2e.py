"""End to end with the real Job controller: team-a's opted-in Job fills every GPU; team-b's
pod fits only by reclaim. With ``--preemption`` the operator marks a victim
``DisruptionTarget``, deletes it, and binds team-b's pod on its node; the Job's
``podFailurePolicy`` ignores the disruption, makes the pod again and completes with no
failure counted. A gang of team-b (an indexed Job) takes back as one preemptor: both its
pods are bound in the same pass, on the victims' nodes. With preemption off the same
stream deletes nothing. With ``max_preemptions=1`` a Job preempted once is not preempted
again by a restarted operator: the count is in its ConfigMap."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hybrid_lab.devcluster.testing import DevCluster
from hybrid_lab.devcluster.workload import fresh_namespace, training_pod, wait_for
from hybrid_operator.k8s.preempt import DISRUPTION_TARGET, PREEMPTIBLE
from hybrid_operator.preemption_ledger import DATA_KEY
from operator_helpers import bound_node, events, follow_watch, instance_args, running_operator

pytestmark = pytest.mark.e2e
SCHEDULER = "hybrid-scheduler-preempt"
JOB_LABEL = "batch.kubernetes.io/job-name"
RULES = "min_runtime_s=2,trigger_delay_s=0,max_plans=1"
GANG = "hybrid-scheduler.io/gang"
DECISION = "hybrid-scheduler.io/decision"
#: The operator's pass interval in these tests (``operator_helpers``): records of bindings
#: made in one pass are this close in time.
PASS_S = 0.5


def _job(name: str, pods: int, gpus: int, runtime: str) -> dict[str, Any]:
    """``pods`` opted-in pods of ``gpus`` GPUs each, running ``runtime``; a disruption
    by the scheduler is ignored (the pod is made again), any other failure fails it."""
    template = training_pod(
        "x", gpus=gpus, cpu="1", memory="1Gi", runtime=runtime, scheduler_name=SCHEDULER
    )
    template["metadata"].pop("name")
    template["metadata"]["annotations"][PREEMPTIBLE] = "true"
    ignore = {"action": "Ignore", "onPodConditions": [{"type": DISRUPTION_TARGET}]}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "parallelism": pods,
            "completions": pods,
            "backoffLimit": 0,
            "podFailurePolicy": {"rules": [ignore]},
            "template": {"metadata": template["metadata"], "spec": template["spec"]},
        },
    }


def _gang_job(name: str, pods: int, gpus: int, runtime: str) -> dict[str, Any]:
    """An indexed Job of ``pods`` pods of ``gpus`` GPUs, a gang by its pods' annotation."""
    template = training_pod(
        "x", gpus=gpus, cpu="1", memory="1Gi", runtime=runtime, scheduler_name=SCHEDULER
    )
    template["metadata"].pop("name")
    template["metadata"]["annotations"][GANG] = "true"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "completionMode": "Indexed",
            "parallelism": pods,
            "completions": pods,
            "backoffLimit": 0,
            "template": {"metadata": template["metadata"], "spec": template["spec"]},
        },
    }


@dataclass
class PodWatch:
    """Every pod of a Job seen, by UID, those that carried ``DisruptionTarget``, and how
    many were bound after each event (every state the watch observed)."""

    api: Any
    namespace: str
    job: str
    seen: dict[str, str] = field(default_factory=dict)
    disrupted: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, str] = field(default_factory=dict)
    #: (monotonic time, pods bound) after each event that changed the count.
    bound: list[tuple[float, int]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        path = f"/api/v1/namespaces/{self.namespace}/pods"
        selector = f"{JOB_LABEL}={self.job}"
        listed = self.api.get(path, labelSelector=selector)
        for pod in listed["items"]:
            self.observe(pod)
        params = {
            "labelSelector": selector, "timeoutSeconds": "180",
            "resourceVersion": listed["metadata"]["resourceVersion"],
        }  # fmt: skip
        follow_watch(self.api, path, params, self.stop, self.observe)

    def observe(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        self.seen[uid] = pod["metadata"]["name"]
        conditions = pod["status"].get("conditions") or []
        if any(c.get("type") == DISRUPTION_TARGET for c in conditions):
            self.disrupted[uid] = pod["spec"].get("nodeName", "")
        node = pod["spec"].get("nodeName")
        if node and uid not in self.nodes:
            self.nodes[uid] = node
            self.bound.append((time.monotonic(), len(self.nodes)))

    def partly_bound_s(self, need: int) -> float:
        """How long some but fewer than ``need`` pods were bound (0 when never)."""
        first = self.bound[0][0] if self.bound else None
        whole = next((t for t, n in self.bound if n >= need), None)
        if first is None:
            return 0.0
        return (time.monotonic() if whole is None else whole) - first


@contextmanager
def _watching(api: Any, namespace: str, job: str) -> Iterator[PodWatch]:
    watch = PodWatch(api, namespace, job)
    thread = threading.Thread(target=watch.run, daemon=True)
    thread.start()
    wait_for("the watch of the Job's pods", lambda: bool(watch.seen) or None, 10)
    try:
        yield watch
    finally:
        watch.stop.set()
        thread.join(timeout=5)


@contextmanager
def _stream(dev_cluster: DevCluster, runtime: str) -> Iterator[tuple[str, str, str, int, int]]:
    """team-a and team-b namespaces, and team-a's Job filling every GPU, running: yields
    the namespaces, the Job's name, its pods' GPUs and how many they are."""
    api = dev_cluster.admin
    gpus = [int(n["status"]["allocatable"]["nvidia.com/gpu"]) for n in api.items("/api/v1/nodes")]
    suffix = uuid.uuid4().hex[:6]
    with ExitStack() as stack:
        team_a, team_b = (
            stack.enter_context(fresh_namespace(api, f"e2e-{team}-{suffix}"))
            for team in ("team-a", "team-b")
        )
        job = f"train-{suffix}"
        jobs = f"/apis/batch/v1/namespaces/{team_a}/jobs"
        api.create(jobs, _job(job, len(gpus), min(gpus), runtime))
        pods = f"/api/v1/namespaces/{team_a}/pods"

        def running() -> bool | None:
            items = api.items(pods, labelSelector=f"{JOB_LABEL}={job}")
            phases = [p["status"].get("phase") for p in items]
            return True if phases.count("Running") == len(gpus) else None

        wait_for("team-a's Job to fill every node", running, 30)
        yield team_a, team_b, job, min(gpus), len(gpus)


def _completed(api: Any, namespace: str, job: str, count: int, timeout_s: float) -> Any:
    """The Job's status once ``count`` pods succeeded."""

    def done() -> dict[str, Any] | None:
        status: dict[str, Any] = api.get(f"/apis/batch/v1/namespaces/{namespace}/jobs/{job}")[
            "status"
        ]
        return status if status.get("succeeded") == count else None

    return wait_for("team-a's Job to complete", done, timeout_s)


def test_a_team_below_its_share_takes_back_a_node_and_the_job_survives(
    dev_cluster: DevCluster, tmp_path: Path
) -> None:
    api = dev_cluster.admin
    args = instance_args(SCHEDULER, "--no-leader-election", "--preemption", RULES)
    with (
        running_operator(dev_cluster, tmp_path / "operator.log", *args),
        _stream(dev_cluster, "20s") as (team_a, team_b, job, gpus, count),
        _watching(api, team_a, job) as watch,
    ):
        pods_b = f"/api/v1/namespaces/{team_b}/pods"
        api.create(pods_b, training_pod("bert", gpus=gpus, cpu="1", memory="1Gi",
                                        runtime="5s", scheduler_name=SCHEDULER))  # fmt: skip
        node = bound_node(api, pods_b, "bert")
        assert list(watch.disrupted.values()) == [node]  # one victim, on that very node
        [victim] = [watch.seen[uid] for uid in watch.disrupted]
        [preempted] = [
            e["message"] for e in events(api, team_a, victim) if e["reason"] == "Preempted"
        ]
        assert preempted.startswith(f"preempted by {team_b}/bert on {node}: {team_a} holds 1.00")

        status = _completed(api, team_a, job, count, 60)
    assert status.get("failed", 0) == 0
    assert len(watch.seen) == count + 1  # the victim's pod was made again, once


def test_with_preemption_off_the_same_stream_deletes_nothing(
    dev_cluster: DevCluster, tmp_path: Path
) -> None:
    api = dev_cluster.admin
    args = instance_args(SCHEDULER, "--no-leader-election")
    with (
        running_operator(dev_cluster, tmp_path / "operator.log", *args),
        _stream(dev_cluster, "12s") as (team_a, team_b, job, gpus, count),
        _watching(api, team_a, job) as watch,
    ):
        pods_b = f"/api/v1/namespaces/{team_b}/pods"
        api.create(pods_b, training_pod("bert", gpus=gpus, cpu="1", memory="1Gi",
                                        runtime="5s", scheduler_name=SCHEDULER))  # fmt: skip
        bound_node(api, pods_b, "bert")  # once team-a's pods finish
        status = _completed(api, team_a, job, count, 30)
    assert watch.disrupted == {}
    assert len(watch.seen) == count  # no pod was deleted and made again
    assert status.get("failed", 0) == 0


def test_a_gang_takes_back_as_one_and_is_bound_in_one_pass(
    dev_cluster: DevCluster, tmp_path: Path
) -> None:
    api = dev_cluster.admin
    args = instance_args(
        SCHEDULER, "--no-leader-election", "--policy", "binpack-gang", "--preemption", RULES
    )
    with (
        running_operator(dev_cluster, tmp_path / "operator.log", *args),
        _stream(dev_cluster, "12s") as (team_a, team_b, job, gpus, count),
        _watching(api, team_a, job) as victims,
    ):
        gang = f"llama-{uuid.uuid4().hex[:4]}"
        api.create(f"/apis/batch/v1/namespaces/{team_b}/jobs", _gang_job(gang, 2, gpus, "4s"))
        with _watching(api, team_b, gang) as members:
            wait_for(
                "both of team-b's pods to be bound", lambda: len(members.nodes) == 2 or None, 30
            )
            partly_s = members.partly_bound_s(2)
        pods = api.items(f"/api/v1/namespaces/{team_b}/pods", labelSelector=f"{JOB_LABEL}={gang}")
        records = [json.loads(p["metadata"]["annotations"][DECISION]) for p in pods]
        preempting = [
            e["message"]
            for p in pods
            for e in events(api, team_b, p["metadata"]["name"])
            if e["reason"] == "Preempting"
        ]
        told = {
            victims.seen[uid]: events(api, team_a, victims.seen[uid]) for uid in victims.disrupted
        }
        status = _completed(api, team_a, job, count, 60)
    assert partly_s < PASS_S, members.bound  # never one bound on its own for longer
    assert [r["path"] for r in records] == ["preemption", "preemption"]
    assert abs(records[0]["at"] - records[1]["at"]) < PASS_S / 2  # bound in the same pass
    assert sorted(victims.disrupted.values()) == sorted(members.nodes.values())  # their nodes
    assert len(preempting) == 2, preempting
    assert all(m.startswith(f"gang {team_b}/{gang}: preempting ") for m in preempting)
    for victim, said in told.items():
        preempted = [e["message"] for e in said if e["reason"] == "Preempted"]
        assert preempted, victim
        assert preempted[0].startswith(f"preempted by gang {team_b}/{gang} on "), preempted
    assert status.get("failed", 0) == 0  # the victims' Job survives
    assert len(victims.seen) == count + 2  # each victim made again, once


def test_a_restarted_operator_preempts_a_job_no_more_than_max_preemptions(
    dev_cluster: DevCluster, tmp_path: Path
) -> None:
    api = dev_cluster.admin
    lease = f"ledger-{uuid.uuid4().hex[:6]}"
    ledger = f"/api/v1/namespaces/default/configmaps/{lease}-preemptions"
    # Without the take-back guard, so that the count alone keeps the Job from a second
    # preemption.
    rules = "min_runtime_s=2,trigger_delay_s=0,max_plans=1,max_preemptions=1,guard=none"
    args = instance_args(SCHEDULER, "--no-leader-election", "--lease-name", lease,
                         "--preemption", rules)  # fmt: skip
    first = ExitStack()  # the first operator, stopped halfway
    try:
        with ExitStack() as stack:
            stack.callback(first.close)
            first.enter_context(running_operator(dev_cluster, tmp_path / "first.log", *args))
            team_a, team_b, job, gpus, count = stack.enter_context(_stream(dev_cluster, "45s"))
            watch = stack.enter_context(_watching(api, team_a, job))
            pods_b = f"/api/v1/namespaces/{team_b}/pods"

            def team_b_pod(name: str) -> None:
                pod = training_pod(
                    name, gpus=gpus, cpu="1", memory="1Gi", runtime="3s", scheduler_name=SCHEDULER
                )
                api.create(pods_b, pod)

            team_b_pod("bert")
            bound_node(api, pods_b, "bert")
            assert len(watch.disrupted) == 1
            first.close()  # the operator stops
            counts = json.loads(api.get(ledger)["data"][DATA_KEY])
            job_uid = api.get(f"/apis/batch/v1/namespaces/{team_a}/jobs/{job}")["metadata"]["uid"]
            assert {k: v["count"] for k, v in counts.items()} == {job_uid: 1}
            with running_operator(dev_cluster, tmp_path / "second.log", *args) as log:
                # The Job's pod made again runs once bert is done, long enough to be a victim.
                wait_for("the Job's new pod to be bound",
                         lambda: len(watch.nodes) == count + 1 or None, 20)  # fmt: skip
                time.sleep(2.5)
                team_b_pod("gpt")
                time.sleep(4)  # the first preemption took one pass (0.5 s) after bert came
                assert api.get(f"{pods_b}/gpt")["spec"].get("nodeName") is None
                assert len(watch.disrupted) == 1  # no pod of the Job taken a second time
                assert len(watch.seen) == count + 1
                assert f"read 1 preemption counts from ConfigMap default/{lease}" in log.read_text()
            counts = json.loads(api.get(ledger)["data"][DATA_KEY])
            assert {k: v["count"] for k, v in counts.items()} == {job_uid: 1}
    finally:
        api.delete(ledger)
