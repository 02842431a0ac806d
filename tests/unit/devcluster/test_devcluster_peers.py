"""The peers' wrapper module, configuration files, webhook rewriting and command lines,
checked without their binaries."""

from __future__ import annotations

import base64
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from hybrid_lab.devcluster import build, cluster, gomod, peer_components, peers, state
from hybrid_lab.devcluster.command import settings_from
from hybrid_lab.devcluster.components import Component
from hybrid_lab.devcluster.errors import StartupError
from hybrid_lab.devcluster.settings import PORT_OFFSET_ENV, ClusterSettings, Ports, Versions
from hybrid_lab.devcluster.state import ClusterState
from hybrid_operator.cli import build_parser, main

UPSTREAM = """module sigs.k8s.io/scheduler-plugins

require (
\tk8s.io/api v0.34.7
\tk8s.io/kubernetes v1.34.7
)

replace (
\tk8s.io/api => k8s.io/api v0.34.7
\tk8s.io/kubernetes => k8s.io/kubernetes v1.34.7
\tk8s.io/legacy-cloud-providers => k8s.io/legacy-cloud-providers v0.31.8
\tgithub.com/x/y => ./third_party/y
\tgithub.com/a/b => github.com/fork/b v1.2.0
)

replace k8s.io/externaljwt => k8s.io/externaljwt v0.34.7
"""
CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_replaces_come_from_blocks_and_single_lines_but_not_paths_or_forks() -> None:
    assert gomod.module_replaces(UPSTREAM) == {
        "k8s.io/api": "v0.34.7",
        "k8s.io/kubernetes": "v1.34.7",
        "k8s.io/legacy-cloud-providers": "v0.31.8",
        "k8s.io/externaljwt": "v0.34.7",
    }


def test_kubernetes_pins_move_to_the_clusters_version_and_others_stay() -> None:
    versions = Versions(kubernetes="v1.34.4")
    pinned = gomod.replaces_pinned_to(gomod.module_replaces(UPSTREAM), versions)
    assert pinned == {
        "k8s.io/api": "v0.34.4",
        "k8s.io/kubernetes": "v1.34.4",
        "k8s.io/legacy-cloud-providers": "v0.31.8",
        "k8s.io/externaljwt": "v0.34.4",
    }


def test_scheduler_plugins_builds_upstream_main_through_a_pinned_wrapper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream = tmp_path / "upstream.mod"
    upstream.write_text(UPSTREAM)
    fake_go = tmp_path / "go"
    # ``mod download -json`` names the upstream go.mod; ``build -o OUT`` writes OUT.
    fake_go.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = mod ]; then echo \'{{"GoMod": "{upstream}"}}\'; exit 0; fi\n'
        'while [ "$1" != -o ]; do shift; done; echo binary > "$2"\n'
    )
    fake_go.chmod(0o755)
    monkeypatch.setenv(build.GO_ENV, str(fake_go))
    monkeypatch.setenv("GOSUMDB", "off")
    settings = ClusterSettings(cache_dir=tmp_path / "cache", peers=True)
    step = next(s for s in build.build_steps(settings) if s.binary == "scheduler-plugins")
    build.GoBuilder(settings).build(step)
    source = tmp_path / "cache" / "src" / f"scheduler-plugins-{step.version}"
    go_mod = (source / "go.mod").read_text()
    assert f"require sigs.k8s.io/scheduler-plugins {step.version}" in go_mod
    assert "\tk8s.io/kubernetes => k8s.io/kubernetes v1.34.4" in go_mod
    assert "\tk8s.io/api => k8s.io/api v0.34.4" in go_mod
    log = (tmp_path / "cache" / "logs" / f"scheduler-plugins-{step.version}.log").read_text()
    assert log.rstrip().endswith("sigs.k8s.io/scheduler-plugins/cmd/scheduler")
    assert build.binary_path(settings, step).read_text() == "binary\n"


def test_peers_are_built_only_when_asked_for(tmp_path: Path) -> None:
    without = {s.binary for s in build.build_steps(ClusterSettings(cache_dir=tmp_path))}
    with_peers = {
        s.binary for s in build.build_steps(ClusterSettings(cache_dir=tmp_path, peers=True))
    }
    assert with_peers - without == {
        "scheduler-plugins",
        "scheduler-plugins-manifests",
        "kueue",
        "kueue-manifests",
    }


def test_scheduler_plugins_runs_as_a_second_scheduler_with_coscheduling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PORT_OFFSET_ENV, raising=False)
    settings = ClusterSettings(state_dir=tmp_path, cache_dir=tmp_path / "cache", peers=True)
    component = peer_components.scheduler_plugins(settings)
    assert component.argv[0].endswith("bin/scheduler-plugins-v0.34.7/scheduler-plugins")
    assert "--secure-port=16261" in component.argv
    assert "--bind-address=127.0.0.1" in component.argv
    assert component.before_start is not None
    config = yaml.safe_load((tmp_path / "scheduler-plugins.yaml").read_text())
    assert f"--config={tmp_path / 'scheduler-plugins.yaml'}" in component.argv
    assert config["leaderElection"] == {"leaderElect": False}
    assert config["clientConnection"]["kubeconfig"] == str(
        tmp_path / "scheduler-plugins.kubeconfig"
    )
    [profile] = config["profiles"]
    assert profile["schedulerName"] == "scheduler-plugins"
    multi_point = profile["plugins"]["multiPoint"]
    assert multi_point["enabled"] == [{"name": "Coscheduling"}, {"name": "CapacityScheduling"}]
    assert multi_point["disabled"] == [{"name": "PrioritySort"}]


def test_kueue_config_serves_on_loopback_with_our_certificate_jobs_and_fair_sharing() -> None:
    ports = Ports(kueue_webhook=20001, kueue_metrics=20002, kueue_health=20003)
    config = peers.kueue_config(ports, Path("/state/kueue/certs"))
    assert config["webhook"] == {
        "host": "127.0.0.1",
        "port": 20001,
        "certDir": "/state/kueue/certs",
    }
    assert config["metrics"]["bindAddress"] == "127.0.0.1:20002"
    assert config["health"]["healthProbeBindAddress"] == "127.0.0.1:20003"
    assert config["internalCertManagement"] == {"enable": False}
    assert config["leaderElection"] == {"leaderElect": False}
    # The client limits every compared scheduler gets, not Kueue's own 20 and 30.
    assert config["clientConnection"] == {"qps": 50, "burst": 100}
    assert config["integrations"]["frameworks"] == ["batch/job"]
    assert config["fairSharing"]["preemptionStrategies"] == [
        "LessThanOrEqualToFinalShare",
        "LessThanInitialShare",
    ]


def _service(path: str) -> dict[str, Any]:
    return {"service": {"name": "webhook-service", "namespace": "system", "path": path}}


def test_webhooks_are_called_by_url_on_the_loopback_with_our_ca() -> None:
    documents: list[dict[str, Any]] = [
        {
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "mutating-webhook-configuration"},
            "webhooks": [
                {"name": "mjob.kb.io", "clientConfig": _service("/mutate-batch-v1-job")},
                {"name": "mpod.kb.io", "clientConfig": _service("/mutate--v1-pod")},
            ],
        },
        {"kind": "Service", "metadata": {"name": "webhook-service"}},
    ]
    [configuration] = peers.loopback_webhooks(documents, Ports(kueue_webhook=20001), CA)
    assert configuration["metadata"]["name"] == "kueue-mutating-webhook-configuration"
    job, pod = configuration["webhooks"]
    assert job["clientConfig"] == {
        "url": "https://127.0.0.1:20001/mutate-batch-v1-job",
        "caBundle": base64.b64encode(CA).decode(),
    }
    assert "namespaceSelector" not in job
    [expression] = pod["namespaceSelector"]["matchExpressions"]
    assert expression["values"] == ["kube-system", "kueue-system"]
    # The upstream documents are left as they were.
    assert documents[0]["metadata"] == {"name": "mutating-webhook-configuration"}


def test_conversion_webhooks_of_the_enabled_patches_only() -> None:
    crds = [
        {"metadata": {"name": "workloads.kueue.x-k8s.io"}, "spec": {}},
        {"metadata": {"name": "resourceflavors.kueue.x-k8s.io"}, "spec": {}},
    ]
    patch = {
        "metadata": {"name": "workloads.kueue.x-k8s.io"},
        "spec": {
            "conversion": {
                "strategy": "Webhook",
                "webhook": {
                    "clientConfig": _service("/convert"),
                    "conversionReviewVersions": ["v1"],
                },
            }
        },
    }
    kustomization = {"patches": [{"path": "patches/webhook_in_workloads.yaml"}]}
    assert peers.enabled_patches(kustomization) == ["patches/webhook_in_workloads.yaml"]
    workloads, flavors = peers.conversion_patched(crds, [patch], Ports(kueue_webhook=20001), CA)
    webhook = workloads["spec"]["conversion"]["webhook"]
    assert webhook["clientConfig"]["url"] == "https://127.0.0.1:20001/convert"
    assert webhook["conversionReviewVersions"] == ["v1"]
    assert "conversion" not in flavors["spec"]


def test_kueue_runs_with_its_metrics_certificate_under_a_private_etc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}")
    settings = ClusterSettings(state_dir=tmp_path, cache_dir=tmp_path / "cache", peers=True)
    component = peer_components.kueue(settings)
    argv = component.argv
    assert argv[:4] == ["/usr/bin/unshare", "--mount", "--propagation", "private"]
    overlay = Path(argv[argv.index(peer_components.ETC_OVERLAY) + 2])
    certs = overlay / "kueue" / "metrics" / "certs"
    assert (certs / "tls.crt").read_bytes() == (tmp_path / "kueue/certs/tls.crt").read_bytes()
    assert (certs / "tls.key").exists()
    assert argv[argv.index(str(overlay)) + 1].endswith("bin/kueue-v0.17.0/kueue")
    assert f"--kubeconfig={tmp_path / 'kueue.kubeconfig'}" in argv
    assert component.before_start is not None and component.after_ready is not None
    # The certificate is issued once: a restarted manager keeps the CA its webhooks trust.
    ca = (tmp_path / "kueue" / "certs" / "ca.crt").read_bytes()
    peer_components.kueue(settings)
    assert (tmp_path / "kueue" / "certs" / "ca.crt").read_bytes() == ca


def test_up_checks_the_peers_ports_only_with_peers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PORT_OFFSET_ENV, "600")
    plain = cluster.required_ports(ClusterSettings())
    with_peers = cluster.required_ports(ClusterSettings(peers=True))
    assert set(with_peers) - set(plain) == {
        "scheduler-plugins",
        "kueue webhooks",
        "kueue metrics",
        "kueue health probes",
    }
    assert with_peers["kueue webhooks"] == 19443 + 600


def test_peers_flag_of_build_and_up(tmp_path: Path) -> None:
    parser = build_parser()
    for action in ("build", "up"):
        args = parser.parse_args(["dev-cluster", action, "--peers", "--state-dir", str(tmp_path)])
        assert settings_from(args).peers
        args = parser.parse_args(["dev-cluster", action, "--state-dir", str(tmp_path)])
        assert not settings_from(args).peers


def test_up_with_the_kueue_webhook_port_busy_names_it_and_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(build, "build_missing", _no_build)
    # Clear of a dev cluster the test run itself may have up on the default ports.
    monkeypatch.setenv(PORT_OFFSET_ENV, "2345")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        argv = ["dev-cluster", "up", "--quiet", "--peers", "--state-dir", str(tmp_path)]
        argv += ["--cache-dir", str(tmp_path / "cache"), "--port", f"kueue_webhook={port}"]
        assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"port 127.0.0.1:{port} (needed for kueue webhooks) is already in use" in err
    assert state.load(tmp_path) is None
    assert not (tmp_path / "cache").exists()


def test_up_with_peers_without_unshare_names_its_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None if name == "unshare" else name)
    monkeypatch.setattr(build, "build_missing", _no_build)
    argv = ["dev-cluster", "up", "--quiet", "--peers", "--state-dir", str(tmp_path)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "unshare is not installed" in err and "util-linux" in err
    assert state.load(tmp_path) is None


def _no_build(*_args: object, **_kwargs: object) -> list[build.BuildStep]:
    raise AssertionError("up went on to build")


def test_a_missing_manifest_is_one_line_naming_the_peer(tmp_path: Path) -> None:
    settings = ClusterSettings(state_dir=tmp_path, cache_dir=tmp_path / "cache", peers=True)

    def install() -> None:
        peer_components.load_documents([tmp_path / "absent.yaml"])

    component = Component("kueue", ["true"], lambda: True, before_start=install)
    with pytest.raises(StartupError, match=r"cannot set up kueue: FileNotFoundError: .*absent"):
        cluster.start_one(settings, component, ClusterState())
