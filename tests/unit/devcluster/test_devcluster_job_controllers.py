"""The job controllers of the dev cluster (training-operator): its build, command line,
prerequisites and certificate hand-over; the PyTorchJob builder and the gang monitor,
checked without their binaries or a cluster."""

from __future__ import annotations

import base64
import socket
from pathlib import Path
from typing import Any

import pytest

from hybrid_lab.devcluster import build, cluster, job_controllers, state
from hybrid_lab.devcluster.command import settings_from
from hybrid_lab.devcluster.errors import BuildError
from hybrid_lab.devcluster.settings import PORT_OFFSET_ENV, ClusterSettings
from hybrid_lab.devcluster.testing import PODGROUP_LABEL, GangMonitor
from hybrid_lab.devcluster.workload import job_succeeded, pytorch_job
from hybrid_operator.cli import build_parser, main

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def _fake_go(tmp_path: Path, script: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_go = tmp_path / "go"
    fake_go.write_text("#!/bin/sh\n" + script)
    fake_go.chmod(0o755)
    monkeypatch.setenv(build.GO_ENV, str(fake_go))
    monkeypatch.setenv("GOSUMDB", "off")


def _step(settings: ClusterSettings, binary: str) -> build.BuildStep:
    return next(s for s in build.build_steps(settings) if s.binary == binary)


def test_job_controllers_are_built_only_when_asked_for(tmp_path: Path) -> None:
    without = {s.binary for s in build.build_steps(ClusterSettings(cache_dir=tmp_path))}
    settings = ClusterSettings(cache_dir=tmp_path, job_controllers=True)
    steps = {s.binary: s for s in build.build_steps(settings)}
    assert set(steps) - without == {"training-operator.v1", "training-operator-manifests"}
    assert build.binary_path(settings, steps["training-operator.v1"]) == (
        tmp_path / "bin" / "training-operator-v1.8.1" / "training-operator.v1"
    )


def test_training_operator_is_go_installed_at_its_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install = 'mkdir -p "$GOBIN"\necho binary > "$GOBIN/training-operator.v1"\n'
    _fake_go(tmp_path, install, monkeypatch)
    settings = ClusterSettings(cache_dir=tmp_path / "cache", job_controllers=True)
    step = _step(settings, "training-operator.v1")
    build.GoBuilder(settings).build(step)
    log = (tmp_path / "cache" / "logs" / "training-operator.v1-v1.8.1.log").read_text()
    assert log.rstrip().endswith(
        "install -trimpath -ldflags -s -w "
        "github.com/kubeflow/training-operator/cmd/training-operator.v1@v1.8.1"
    )
    assert build.binary_path(settings, step).read_text() == "binary\n"


def test_a_failed_training_operator_build_names_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_go(tmp_path, "echo 'go: module not found' >&2\nexit 1\n", monkeypatch)
    settings = ClusterSettings(cache_dir=tmp_path / "cache", job_controllers=True)
    step = _step(settings, "training-operator.v1")
    with pytest.raises(BuildError) as caught:
        build.GoBuilder(settings).build(step)
    assert "building training-operator.v1 failed; see the log at " in str(caught.value)
    assert "go: module not found" in caught.value.log_path.read_text()
    assert not build.binary_path(settings, step).exists()


def test_training_operator_runs_with_its_own_cert_dir_gangs_for_us_and_loopback_ports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setenv(PORT_OFFSET_ENV, "2000")
    settings = ClusterSettings(
        state_dir=tmp_path, cache_dir=tmp_path / "cache", job_controllers=True
    )
    [component] = job_controllers.plan(settings)
    argv = component.argv
    assert argv[:4] == ["/usr/bin/unshare", "--mount", "--propagation", "private"]
    script = argv.index(job_controllers.PRIVATE_CERT_DIR)
    # The cluster's own directory is what the process sees as /tmp/k8s-webhook-server.
    assert argv[script + 2 : script + 4] == [
        str(tmp_path / "training-operator" / "k8s-webhook-server"),
        "/tmp/k8s-webhook-server",
    ]
    assert argv[script + 4].endswith("bin/training-operator-v1.8.1/training-operator.v1")
    assert argv[script + 5 :] == [
        f"--kubeconfig={tmp_path / 'kubeconfig'}",
        "--enable-scheme=pytorchjob",
        "--gang-scheduler-name=hybrid-scheduler",
        "--metrics-bind-address=127.0.0.1:21446",
        "--health-probe-bind-address=127.0.0.1:21447",
        "--webhook-server-port=21448",
    ]
    assert component.before_start is not None


def test_up_checks_the_job_controllers_ports_only_with_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PORT_OFFSET_ENV, "600")
    plain = cluster.required_ports(ClusterSettings())
    wanted = cluster.required_ports(ClusterSettings(job_controllers=True))
    assert set(wanted) - set(plain) == {
        "training-operator metrics",
        "training-operator health probes",
        "training-operator webhooks",
    }
    assert wanted["training-operator webhooks"] == 19448 + 600


def test_job_controllers_flag_of_build_and_up(tmp_path: Path) -> None:
    parser = build_parser()
    for action in ("build", "up"):
        argv = ["dev-cluster", action, "--state-dir", str(tmp_path)]
        assert settings_from(parser.parse_args([*argv, "--job-controllers"])).job_controllers
        assert not settings_from(parser.parse_args(argv)).job_controllers


def test_up_with_the_training_operator_port_busy_names_it_and_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setenv(PORT_OFFSET_ENV, "2345")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        argv = ["dev-cluster", "up", "--quiet", "--job-controllers", "--state-dir", str(tmp_path)]
        argv += ["--cache-dir", str(tmp_path / "cache")]
        argv += ["--port", f"training_operator_health={port}"]
        assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"port 127.0.0.1:{port} (needed for training-operator health probes)" in err
    assert state.load(tmp_path) is None
    assert not (tmp_path / "cache").exists()


class RecordingApi:
    """Answers the calls training-operator's set-up makes, and records them."""

    def __init__(self, secret: dict[str, Any] | None = None) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.bodies: dict[str, dict[str, Any]] = {}
        self.secret = secret or {}

    def apply_server_side(
        self, collection: str, body: dict[str, Any], field_manager: str
    ) -> dict[str, Any]:
        self.calls.append(("APPLY", collection, body["metadata"]["name"]))
        return body

    def create(self, path: str, body: dict[str, Any], exist_ok: bool = False) -> dict[str, Any]:
        assert exist_ok
        self.calls.append(("CREATE", path, body["metadata"]["name"]))
        self.bodies[body["metadata"]["name"]] = body
        return body

    def get(self, path: str, **_params: str) -> dict[str, Any]:
        return {"status": {"conditions": [{"type": "Established", "status": "True"}]}}

    def call(self, method: str, path: str, **_kw: Any) -> dict[str, Any]:
        self.calls.append((method, path, ""))
        return self.secret


def test_prerequisites_apply_the_crds_and_make_what_the_rotator_needs(tmp_path: Path) -> None:
    crd = tmp_path / "pytorchjobs.yaml"
    crd.write_text("apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
                   "metadata:\n  name: pytorchjobs.kubeflow.org\n")  # fmt: skip
    api = RecordingApi()
    job_controllers.install_prerequisites(api, crd, ClusterSettings())  # type: ignore[arg-type]
    webhooks = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
    assert api.calls == [
        ("APPLY", CRDS, "pytorchjobs.kubeflow.org"),
        ("CREATE", CRDS, "podgroups.scheduling.x-k8s.io"),
        ("CREATE", "/api/v1/namespaces", "kubeflow"),
        ("CREATE", "/api/v1/namespaces/kubeflow/secrets", "training-operator-webhook-cert"),
        ("CREATE", webhooks, "validating-webhook-configuration"),
        ("CREATE", webhooks, "validator.training-operator.kubeflow.org"),
    ]
    assert api.bodies["validator.training-operator.kubeflow.org"]["webhooks"] == []
    assert "data" not in api.bodies["training-operator-webhook-cert"]


def test_the_certificate_is_handed_over_once_the_rotator_wrote_it(tmp_path: Path) -> None:
    api = RecordingApi()
    ready: list[bool] = []

    def probe() -> bool:
        ready.append(True)
        return True

    handover = job_controllers.CertificateHandOver(lambda: api, tmp_path / "certs", probe)  # type: ignore[arg-type,return-value]
    assert handover() is False
    assert not (tmp_path / "certs").exists() and ready == []
    pem = {name: f"-----{name}-----\n".encode() for name in ("tls.crt", "tls.key", "ca.crt")}
    api.secret = {"data": {k: base64.b64encode(v).decode() for k, v in pem.items()}}
    assert handover() is True
    assert {p.name: p.read_bytes() for p in (tmp_path / "certs").iterdir()} == pem
    assert ready == [True]


def test_a_pytorchjob_of_one_master_and_workers_run_by_kwok_for_a_scheduler() -> None:
    job = pytorch_job("llm", workers=3, gpus=4, runtime="8s", scheduler_name="ours")
    replicas = job["spec"]["pytorchReplicaSpecs"]
    assert {role: spec["replicas"] for role, spec in replicas.items()} == {"Master": 1, "Worker": 3}
    for spec in replicas.values():
        template = spec["template"]
        assert spec["restartPolicy"] == "Never"
        assert template["metadata"]["annotations"] == {"hybrid-scheduler.io/sim-runtime": "8s"}
        assert template["spec"]["schedulerName"] == "ours"
        assert "restartPolicy" not in template["spec"]
        [container] = template["spec"]["containers"]
        assert container["name"] == "pytorch"
        assert container["resources"]["limits"] == {"nvidia.com/gpu": "4"}
    assert not job_succeeded(job)
    job["status"] = {"conditions": [{"type": "Succeeded", "status": "True"}]}
    assert job_succeeded(job)


class ClusterView:
    """PodGroups and pods of one namespace, as the monitor lists them."""

    def __init__(self) -> None:
        self.groups: dict[str, int] = {}
        self.pods: dict[str, tuple[str, str | None]] = {}

    def items(self, path: str, **_params: str) -> list[dict[str, Any]]:
        if path.endswith("/podgroups"):
            return [
                {"metadata": {"name": g}, "spec": {"minMember": m}} for g, m in self.groups.items()
            ]
        return [
            {"metadata": {"name": pod, "labels": {PODGROUP_LABEL: group}}, "spec": {"nodeName": n}}
            for pod, (group, n) in self.pods.items()
        ]


def test_the_monitor_records_partial_stretches_and_when_a_group_is_whole() -> None:
    view = ClusterView()
    monitor = GangMonitor(view, ["team"])  # type: ignore[arg-type]
    view.groups = {"a": 2, "b": 2}
    view.pods = {"a-0": ("a", "n1"), "a-1": ("a", None), "b-0": ("b", "n2"), "b-1": ("b", "n3")}
    monitor.observe(1.0)
    view.pods["a-1"] = ("a", None)
    monitor.observe(2.0)
    # The job ended: training-operator deleted the PodGroup; the group is still followed.
    view.groups = {}
    view.pods["a-1"] = ("a", "n4")
    monitor.observe(4.5)
    assert monitor.whole_at == {"team/b": 1.0, "team/a": 4.5}
    [span] = monitor.partial
    assert (span.group, span.bound, span.min_member, span.since, span.until) == (
        "team/a", 1, 2, 1.0, 4.5
    )  # fmt: skip
    assert monitor.partial_longer_than(3.0) == [span]
    assert monitor.partial_longer_than(3.5) == []
