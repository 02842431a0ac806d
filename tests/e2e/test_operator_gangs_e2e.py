"""Gangs end to end on the dev cluster: PodGroups (the chart's CRD, created through the API)
and indexed Jobs run by the real Job controller are bound whole or not at all, a late
member is bound alone, a pod that names a missing PodGroup waits for it, a PodGroup whose
minResources exceed the cluster waits with the reason until they are lowered, and PodGroup
status follows the pods to Running and Finished."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from hybrid_lab.devcluster.apiserver import ApiServer
from hybrid_lab.devcluster.testing import DevCluster
from hybrid_lab.devcluster.workload import training_pod, wait_for
from hybrid_operator.cli import main
from operator_helpers import SCHEDULER, bound_node, events, follow_watch, running_operator

pytestmark = pytest.mark.e2e
CRD_FILE = (
    Path(__file__).parents[2] / "helm/hybrid-scheduler/crds/scheduling.x-k8s.io_podgroups.yaml"
)
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
CRD_NAME = "podgroups.scheduling.x-k8s.io"
GROUP_LABEL = "scheduling.x-k8s.io/pod-group"
JOB_LABEL = "batch.kubernetes.io/job-name"
#: Bindings of one pass go out together; a gang partly bound for longer was split.
BINDING_WINDOW_S = 3.0


@pytest.fixture(scope="module")
def pod_group_crd(dev_cluster: DevCluster) -> Iterator[None]:
    """The chart's PodGroup CRD, created through the API unless it is there already."""
    api = dev_cluster.admin
    crd = yaml.safe_load(CRD_FILE.read_text())
    found = api.call("GET", f"{CRDS}/{CRD_NAME}", allow=(404,))
    created = found.get("kind") != "CustomResourceDefinition"
    if created:
        api.create(CRDS, crd)

    def established() -> bool | None:
        conditions = (api.get(f"{CRDS}/{CRD_NAME}").get("status") or {}).get("conditions") or []
        ok = any(c["type"] == "Established" and c["status"] == "True" for c in conditions)
        return True if ok else None

    wait_for("the PodGroup CRD to be established", established, 30)
    yield
    if created:
        api.delete(f"{CRDS}/{CRD_NAME}")


@pytest.fixture(scope="module")
def operator_log(
    dev_cluster: DevCluster, pod_group_crd: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    with running_operator(dev_cluster, log, "--policy", "binpack-gang", "--http-port", "0"):
        yield log
    assert "Traceback" not in log.read_text()


def groups_path(namespace: str) -> str:
    return f"/apis/scheduling.x-k8s.io/v1alpha1/namespaces/{namespace}/podgroups"


def create_group(api: ApiServer, namespace: str, name: str, min_member: int, **spec: Any) -> None:
    body = {
        "apiVersion": "scheduling.x-k8s.io/v1alpha1",
        "kind": "PodGroup",
        "metadata": {"name": name},
        "spec": {"minMember": min_member, **spec},
    }
    api.create(groups_path(namespace), body)


def member(name: str, group: str, gpus: int = 8, runtime: str = "4s") -> dict[str, Any]:
    pod = training_pod(
        name, gpus=gpus, cpu="1", memory="1Gi", runtime=runtime, scheduler_name=SCHEDULER
    )
    pod["metadata"]["labels"][GROUP_LABEL] = group
    return pod


@dataclass
class GangWatch:
    """Watches a namespace's pods; on every event, notes when each gang first had a pod
    bound and when it had ``need`` bound, and every pod's last phase."""

    api: ApiServer
    namespace: str
    label: str
    need: dict[str, int]
    first_bound: dict[str, float] = field(default_factory=dict)
    whole: dict[str, float] = field(default_factory=dict)
    nodes: dict[str, tuple[str, str]] = field(default_factory=dict)
    phases: dict[str, str] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        path = f"/api/v1/namespaces/{self.namespace}/pods"
        version = self.api.get(path)["metadata"]["resourceVersion"]
        params = {"resourceVersion": version, "timeoutSeconds": "120"}
        follow_watch(self.api, path, params, self.stop, self.observe)

    def observe(self, pod: dict[str, Any]) -> None:
        gang = (pod["metadata"].get("labels") or {}).get(self.label)
        node = pod["spec"].get("nodeName")
        self.phases[pod["metadata"]["name"]] = pod["status"].get("phase", "")
        if gang not in self.need or not node:
            return
        self.nodes[pod["metadata"]["name"]] = (gang, node)
        now = time.monotonic()
        self.first_bound.setdefault(gang, now)
        bound = sum(1 for g, _ in self.nodes.values() if g == gang)
        if bound >= self.need[gang]:
            self.whole.setdefault(gang, now)

    def split(self) -> dict[str, float | None]:
        """Gangs that had some but fewer than ``need`` pods bound for longer than the
        binding window (None: never whole)."""
        out: dict[str, float | None] = {}
        for gang, first in self.first_bound.items():
            whole = self.whole.get(gang)
            if whole is None or whole - first > BINDING_WINDOW_S:
                out[gang] = None if whole is None else whole - first
        return out


@pytest.fixture
def watched() -> Iterator[list[GangWatch]]:
    """The watches a test starts, stopped after it."""
    started: list[GangWatch] = []
    yield started
    for watch in started:
        watch.stop.set()


def start(watch: GangWatch, registry: list[GangWatch]) -> GangWatch:
    threading.Thread(target=watch.run, daemon=True).start()
    registry.append(watch)
    time.sleep(0.5)  # the watch is open before anything is created
    return watch


def all_succeeded(api: ApiServer, namespace: str, names: list[str]) -> bool | None:
    pods = {p["metadata"]["name"]: p for p in api.items(f"/api/v1/namespaces/{namespace}/pods")}
    done = all(pods.get(n, {}).get("status", {}).get("phase") == "Succeeded" for n in names)
    return True if done else None


def finished_status(
    api: ApiServer, namespace: str, gang: str
) -> Callable[[], dict[str, Any] | None]:
    """A probe for PodGroup ``gang``'s status once its phase is Finished."""

    def probe() -> dict[str, Any] | None:
        status: dict[str, Any] = api.get(f"{groups_path(namespace)}/{gang}").get("status") or {}
        return status if status.get("phase") == "Finished" else None

    return probe


def test_two_wide_podgroups_are_never_split_and_both_finish_with_their_status(
    dev_cluster: DevCluster, namespace: str, operator_log: Path, watched: list[GangWatch]
) -> None:
    api = dev_cluster.admin
    pods = f"/api/v1/namespaces/{namespace}/pods"
    watch = start(GangWatch(api, namespace, GROUP_LABEL, {"a": 3, "b": 3}), watched)
    create_group(api, namespace, "a", 3)
    create_group(api, namespace, "b", 3)
    names = []
    # 4 nodes x 8 GPUs: each gang needs 3 whole nodes, more than half the cluster.
    for i in range(3):
        for gang in ("a", "b"):
            api.create(pods, member(f"{gang}-{i}", gang))
            names.append(f"{gang}-{i}")
    phases: dict[str, set[str]] = {"a": set(), "b": set()}

    def finished() -> bool | None:
        for gang in phases:
            status = api.get(f"{groups_path(namespace)}/{gang}").get("status") or {}
            phases[gang].add(status.get("phase", ""))
        return all_succeeded(api, namespace, names)

    wait_for("both gangs to finish", finished, 120, interval_seconds=0.2)
    assert watch.split() == {}
    assert set(watch.whole) == {"a", "b"}
    first, second = sorted(watch.whole, key=watch.whole.__getitem__)
    assert watch.first_bound[second] > watch.whole[first]  # in turn, never side by side
    for gang in ("a", "b"):
        status = wait_for(
            f"{gang}'s status to say Finished", finished_status(api, namespace, gang), 30
        )
        assert (status["succeeded"], status["running"], status["failed"]) == (3, 0, 0)
        assert status["scheduleStartTime"]
        assert "Running" in phases[gang]
    told = [e for e in events(api, namespace, second) if e["involvedObject"]["kind"] == "PodGroup"]
    assert any(
        e["type"] == "Warning" and e["message"].startswith(f"gang {namespace}/{second}: ")
        for e in told
    ), told


def test_a_late_member_is_bound_alone(
    dev_cluster: DevCluster, namespace: str, operator_log: Path
) -> None:
    api = dev_cluster.admin
    pods = f"/api/v1/namespaces/{namespace}/pods"
    create_group(api, namespace, "pair", 2)
    for i in range(2):
        api.create(pods, member(f"pair-{i}", "pair", gpus=1, runtime="60s"))
    for i in range(2):
        bound_node(api, pods, f"pair-{i}")
    api.create(pods, member("late", "pair", gpus=1, runtime="60s"))
    bound_node(api, pods, "late")


def test_a_pod_that_names_a_missing_podgroup_waits_then_binds_once_it_exists(
    dev_cluster: DevCluster, namespace: str, operator_log: Path
) -> None:
    api = dev_cluster.admin
    pods = f"/api/v1/namespaces/{namespace}/pods"
    api.create(pods, member("early", "later", gpus=1))

    def warned() -> dict[str, Any] | None:
        found = [e for e in events(api, namespace, "early") if e["reason"] == "FailedScheduling"]
        return found[0] if found else None

    event = wait_for("a FailedScheduling Event", warned, 30)
    assert event["type"] == "Warning"
    assert "PodGroup later does not exist" in event["message"]
    assert not api.get(f"{pods}/early")["spec"].get("nodeName")
    create_group(api, namespace, "later", 1)
    bound_node(api, pods, "early")


def indexed_job(name: str, parallelism: int, gpus: int) -> dict[str, Any]:
    template = training_pod(
        "x", gpus=gpus, cpu="1", memory="1Gi", runtime="3s", scheduler_name=SCHEDULER
    )
    template["metadata"].pop("name")
    template["metadata"]["annotations"]["hybrid-scheduler.io/gang"] = "true"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "completionMode": "Indexed",
            "parallelism": parallelism,
            "completions": parallelism,
            "backoffLimit": 0,
            "template": {"metadata": template["metadata"], "spec": template["spec"]},
        },
    }


def test_an_indexed_job_gang_is_bound_whole_once_it_fits(
    dev_cluster: DevCluster,
    namespace: str,
    operator_log: Path,
    watched: list[GangWatch],
    capsys: pytest.CaptureFixture[str],
) -> None:
    api = dev_cluster.admin
    pods = f"/api/v1/namespaces/{namespace}/pods"
    job = f"train-{uuid.uuid4().hex[:4]}"
    watch = start(GangWatch(api, namespace, JOB_LABEL, {job: 3}), watched)
    # Two nodes busy for a while: three 8-GPU pods do not fit until they finish.
    for i in range(2):
        api.create(pods, member(f"blocker-{i}", "blockers", runtime="15s"))
    create_group(api, namespace, "blockers", 2)
    for i in range(2):
        bound_node(api, pods, f"blocker-{i}")
    api.create(f"/apis/batch/v1/namespaces/{namespace}/jobs", indexed_job(job, 3, 8))

    def waiting_notice() -> tuple[str, str] | None:
        for pod in api.items(pods, labelSelector=f"{JOB_LABEL}={job}"):
            for c in pod["status"].get("conditions") or []:
                message = str(c.get("message", ""))
                # The Job controller creates its pods one by one: wait until all exist.
                if c["type"] == "PodScheduled" and message.endswith("until all fit"):
                    return pod["metadata"]["name"], message
        return None

    waiting, notice = wait_for("the gang's notice on a waiting pod", waiting_notice, 30)
    # How many would fit depends on what other tests left running; none is bound.
    assert notice.startswith(f"gang {namespace}/{job}: ")
    assert notice.endswith(" of 3 pods would fit; none is placed until all fit")
    assert watch.first_bound == {}
    kubeconfig = str(dev_cluster.settings.kubeconfig)
    assert main(["explain", f"{namespace}/{waiting}", "--kubeconfig", kubeconfig]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[1] == f"gang:            {namespace}/{job}: 0 bound, 3 exist, 3 needed"
    assert shown[2].startswith("waiting:         ")

    def complete() -> bool | None:
        status = api.get(f"/apis/batch/v1/namespaces/{namespace}/jobs/{job}").get("status", {})
        return True if status.get("succeeded") == 3 else None

    wait_for("the Job to complete", complete, 90)
    assert set(watch.whole) == {job}
    assert watch.split() == {}


def test_a_podgroup_whose_min_resources_exceed_the_cluster_waits_then_binds_once_lowered(
    dev_cluster: DevCluster, namespace: str, operator_log: Path, watched: list[GangWatch]
) -> None:
    api = dev_cluster.admin
    pods = f"/api/v1/namespaces/{namespace}/pods"
    watch = start(GangWatch(api, namespace, GROUP_LABEL, {"big": 2}), watched)
    # 4 nodes x 8 GPUs: 64 GPUs are never free, though the two 1-GPU pods would fit.
    create_group(api, namespace, "big", 2, minResources={"nvidia.com/gpu": "64"})
    for i in range(2):
        api.create(pods, member(f"big-{i}", "big", gpus=1))

    def told() -> dict[str, Any] | None:
        found = [
            e for e in events(api, namespace, "big") if e["reason"] == "InsufficientMinResources"
        ]
        return found[0] if found else None

    event = wait_for("the PodGroup's InsufficientMinResources Event", told, 30)
    assert event["type"] == "Warning"
    assert event["message"].startswith(
        f"gang {namespace}/big: minResources nvidia.com/gpu=64 is more than the "
    )
    assert event["message"].endswith(
        " free in the cluster; none of its 2 pods is placed until they are free"
    )
    assert watch.first_bound == {}
    group = api.get(f"{groups_path(namespace)}/big")
    group["spec"]["minResources"] = {"nvidia.com/gpu": "2"}
    api.call("PUT", f"{groups_path(namespace)}/big", group)
    for i in range(2):
        bound_node(api, pods, f"big-{i}")
    wait_for("the watch to see the gang bound", lambda: watch.whole.get("big"), 10)
    assert watch.split() == {}
