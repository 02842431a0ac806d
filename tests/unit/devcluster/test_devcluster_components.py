"""Command lines, identities and kwok stages of the dev cluster, checked without running it."""

from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path

import pytest
import yaml

from hybrid_lab.devcluster import components, pki
from hybrid_lab.devcluster.settings import PORT_OFFSET_ENV, ClusterSettings


def test_every_process_listens_on_loopback_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("shutil.which", lambda _: "/usr/bin/prometheus")
    # The default ports, whatever offset the environment of this run asks for.
    monkeypatch.delenv(PORT_OFFSET_ENV, raising=False)
    settings = ClusterSettings(
        state_dir=tmp_path, cache_dir=tmp_path / "cache", kube_scheduler=True, prometheus=True
    )
    plan = components.plan(settings, pki.Pki(tmp_path / "pki"))
    assert [c.name for c in plan] == [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
        "utilisation-exporter",
        "prometheus",
    ]
    for component in plan:
        command = " ".join(component.argv)
        assert "0.0.0.0" not in command
        assert "localhost" not in command
    apiserver = " ".join(plan[1].argv)
    assert "--authorization-mode=RBAC" in apiserver
    assert "--token-auth-file=" in apiserver
    assert "--endpoint-reconciler-type=none" in apiserver
    scrape = yaml.safe_load((tmp_path / "prometheus.yml").read_text())
    assert scrape["global"]["scrape_interval"] == "5s"
    assert scrape["scrape_configs"][0]["static_configs"][0]["targets"] == ["127.0.0.1:19400"]


def test_optional_processes_are_left_out(tmp_path: Path) -> None:
    settings = ClusterSettings(state_dir=tmp_path, cache_dir=tmp_path / "cache")
    names = [c.name for c in components.plan(settings, pki.Pki(tmp_path / "pki"))]
    assert names == ["etcd", "kube-apiserver", "kube-controller-manager", "kwok"]


def test_pki_tokens_and_kubeconfigs(tmp_path: Path) -> None:
    made = pki.create_pki(tmp_path / "pki")
    for path in (made.ca_cert, made.serving_cert, made.serving_key, made.sa_key, made.sa_pub):
        assert path.stat().st_size > 0
    pki.write_tokens_and_kubeconfigs(made, tmp_path, "https://127.0.0.1:16443")
    rows = list(csv.reader(made.token_file.read_text().splitlines()))
    users = {row[1]: row[3] for row in rows}
    assert users["admin"] == "system:masters"
    assert users["viewer"] == "hybrid-scheduler:viewers"
    assert "system:masters" not in users["developer"]
    assert len({row[0] for row in rows}) == len(rows)
    config = yaml.safe_load((tmp_path / pki.VIEWER.kubeconfig_name).read_text())
    assert config["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:16443"
    assert config["clusters"][0]["cluster"]["certificate-authority"] == str(made.ca_cert)
    assert config["users"][0]["user"]["token"] in {row[0] for row in rows}


def test_kwok_stages_cover_the_pod_life_cycle() -> None:
    text = (
        resources.files("hybrid_lab.devcluster") / "assets" / "kwok" / "stages.yaml"
    ).read_text()
    stages = {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all(text)}
    assert set(stages) == {
        "hybrid-node-ready",
        "hybrid-node-heartbeat",
        "hybrid-pod-running",
        "hybrid-pod-succeeded",
        "hybrid-pod-terminate",
        "hybrid-pod-delete",
    }
    succeeded = stages["hybrid-pod-succeeded"]["spec"]
    assert "hybrid-scheduler.io/sim-runtime" in succeeded["delay"]["durationFrom"]["expressionFrom"]
    assert "phase: Succeeded" in succeeded["next"]["statusTemplate"]
    # A deleted pod ends Failed before it goes (the Job controller counts it only then).
    assert "phase: Failed" in stages["hybrid-pod-terminate"]["spec"]["next"]["statusTemplate"]
    ended = stages["hybrid-pod-delete"]["spec"]["selector"]["matchExpressions"][1]
    assert ended["values"] == ["Succeeded", "Failed"]
