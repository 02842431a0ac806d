"""The Helm chart without a cluster: lint, the values schema, what it renders, and that the
chart, the plain manifests, the Dockerfile, the dashboard and kind-config.yaml agree with
the operator they describe."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from chart_helpers import (
    CHART_DIR,
    EVERYTHING_ON,
    ROOT,
    chart,
    documents,
    kind_checker,
    one,
    render,
    run_helm,
)
from hybrid_lab.manifests import OUTPUT_NAME, render_plain
from hybrid_operator.observability import OperatorMetrics
from hybrid_operator.settings_file import load_settings
from hybrid_operator.webhook import CERT_FILE, HANDLER_ID, KEY_FILE
from hybrid_policy.policies import (
    build_policy,
    override_reservation,
    policy_names,
    reserving_policy_names,
)


@pytest.mark.parametrize("values", [None, EVERYTHING_ON], ids=["defaults", "everything-on"])
def test_helm_lint(values: Path | None) -> None:
    args = ["lint", "--strict", str(CHART_DIR)] + (["-f", str(values)] if values else [])
    result = run_helm(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("replicaCount=-1", "at '/replicaCount': minimum: got -1, want 1"),
        ("replicaCount=0", "at '/replicaCount': minimum: got 0, want 1"),
        ("replicaCount=two", "at '/replicaCount': got string, want integer"),
        ("settings.policy=fastest", "at '/settings/policy': value must be one of"),
        ("settings.batchSize=0", "at '/settings/batchSize': minimum: got 0, want 1"),
        ("settings.modelFallback=maybe", "at '/settings/modelFallback': value must be one of"),
        ("settings.defaultWeight=0", "at '/settings/defaultWeight'"),
        ("webhook.port=70000", "at '/webhook/port': maximum"),
        ("webhook.failurePolicy=Sometimes", "at '/webhook/failurePolicy'"),
        ("leaderElection.enabled=yes", "at '/leaderElection/enabled': got string, want boolean"),
        ("leaderElection.retryPeriodSeconds=0", "at '/leaderElection/retryPeriodSeconds'"),
        ("metrics.serviceMonitor.interval=often", "at '/metrics/serviceMonitor/interval'"),
        ("settings.promql.disk=x", "additional properties 'disk' not allowed"),
        ("settings.progressQuery[0]=x", "at '/settings/progressQuery'"),
        ("settings.reservation=ageing", "at '/settings/reservation'"),
        ("replicas=2", "additional properties 'replicas' not allowed"),
    ],
)
def test_bad_values_are_refused_naming_the_field(value: str, message: str) -> None:
    for args in (["template", "x", str(CHART_DIR)], ["lint", str(CHART_DIR)]):
        result = run_helm(*args, "--set", value)
        assert result.returncode != 0, f"helm {args[0]} accepted {value}"
        assert message in result.stdout + result.stderr, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            ["leaderElection.leaseDurationSeconds=10"],
            "leaderElection.renewDeadlineSeconds: must be less than "
            "leaderElection.leaseDurationSeconds (10) (got 10)",
        ),
        (
            ["leaderElection.retryPeriodSeconds=12", "leaderElection.leaseDurationSeconds=20"],
            "leaderElection.retryPeriodSeconds: must be less than "
            "leaderElection.renewDeadlineSeconds (10) (got 12)",
        ),
    ],
)
def test_leader_election_timings_out_of_order_are_refused(values: list[str], message: str) -> None:
    result = run_helm("template", "x", str(CHART_DIR), *(f"--set={v}" for v in values))
    assert result.returncode != 0, values
    assert message in result.stderr, result.stderr


def test_reservation_changes_with_a_policy_that_does_not_reserve_are_refused() -> None:
    result = run_helm(
        "template", "x", str(CHART_DIR), "--set", "settings.reservation=max_wait_s=none"
    )
    assert result.returncode != 0
    assert (
        'settings.reservation: policy "kube-default" does not reserve (reserving policies: '
        + ", ".join(reserving_policy_names())
        + ")"
    ) in result.stderr, result.stderr
    accepted = run_helm(
        "template", "x", str(CHART_DIR),
        "--set", "settings.policy=fair-easy", "--set", "settings.reservation=max_wait_s=none",
    )  # fmt: skip
    assert accepted.returncode == 0, accepted.stderr
    assert 'reservation: "max_wait_s=none"' in accepted.stdout


def test_the_chart_knows_the_reserving_policies() -> None:
    template = (CHART_DIR / "templates" / "configmap.yaml").read_text()
    listed = re.search(r"\$reserving := list ((?:\"[a-z-]+\" ?)+)", template)
    assert listed is not None
    assert re.findall(r'"([a-z-]+)"', listed.group(1)) == reserving_policy_names()
    rng = np.random.default_rng(0)
    reserving = [n for n in policy_names() if override_reservation(build_policy(n, rng), "")]
    assert reserving == reserving_policy_names()


def test_the_schema_offers_every_deployable_policy() -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    offered = schema["properties"]["settings"]["properties"]["policy"]["enum"]
    rng = np.random.default_rng(0)
    deployable = [n for n in policy_names() if not build_policy(n, rng).preemptive]
    assert offered == deployable


@pytest.mark.parametrize("values", [None, EVERYTHING_ON], ids=["defaults", "everything-on"])
def test_the_settings_configmap_is_a_valid_settings_file(
    values: Path | None, tmp_path: Path
) -> None:
    objects = render(*(["-f", str(values)] if values else []), namespace="ml")
    path = tmp_path / "settings.yaml"
    path.write_text(one(objects, "ConfigMap", "hybrid-scheduler")["data"]["settings.yaml"])
    settings = load_settings(path)  # refuses unknown keys and wrong types
    source = yaml.safe_load((values or CHART_DIR / "values.yaml").read_text())["settings"]
    assert settings.policy == source["policy"]
    assert settings.namespaces == source["namespaces"]
    assert settings.batch_interval_s == source["batchIntervalSeconds"]
    assert settings.batch_size == source["batchSize"]
    assert settings.default_weight == source["defaultWeight"]
    assert (settings.prometheus_url or "") == source["prometheusUrl"]
    assert settings.promql == source["promql"]
    assert settings.progress_query == source["progressQuery"]
    assert settings.model_path == source["modelPath"]
    assert settings.model_fallback == source["modelFallback"]
    assert settings.shadow_of == source["shadowOf"]
    assert settings.reservation == source["reservation"]
    assert (settings.lease_namespace, settings.lease_name) == ("ml", "hybrid-scheduler")
    election = yaml.safe_load((values or CHART_DIR / "values.yaml").read_text())["leaderElection"]
    assert (settings.lease_duration_s, settings.renew_deadline_s, settings.retry_period_s) == (
        election["leaseDurationSeconds"],
        election["renewDeadlineSeconds"],
        election["retryPeriodSeconds"],
    )
    # The Role grants the Lease by this name, and the certificate is mounted where it is read.
    role = one(objects, "Role", "leader-election")
    assert role["rules"][1]["resourceNames"] == [settings.lease_name]
    deployment = one(objects, "Deployment")
    mounts = {
        m["name"]: m["mountPath"]
        for m in deployment["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    }
    assert settings.webhook
    assert mounts["webhook-tls"] == settings.webhook_cert_dir
    secret = one(objects, "Secret", "webhook-tls")
    assert {CERT_FILE, KEY_FILE} <= set(secret["data"])


def test_the_deployment_is_hardened() -> None:
    deployment = one(render(), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert "add" not in context["capabilities"]
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    assert set(container["resources"]["limits"]) == {"cpu", "memory"}
    # A read-only root filesystem needs somewhere to write: /tmp is an emptyDir.
    tmp = next(v for v in pod["volumes"] if v["name"] == "tmp")
    assert "emptyDir" in tmp
    assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/tmp"}
    probes = (
        container["livenessProbe"]["httpGet"]["path"],
        container["readinessProbe"]["httpGet"]["path"],
    )
    assert probes == ("/healthz", "/readyz")


def test_the_webhook_configuration_reaches_the_operators_handler() -> None:
    objects = render()
    webhook = one(objects, "MutatingWebhookConfiguration")["webhooks"][0]
    service = one(objects, "Service")
    assert webhook["clientConfig"]["service"]["path"] == f"/{HANDLER_ID}"
    assert webhook["clientConfig"]["service"]["name"] == service["metadata"]["name"]
    port = webhook["clientConfig"]["service"]["port"]
    assert any(p["port"] == port and p["targetPort"] == "webhook" for p in service["spec"]["ports"])
    assert webhook["failurePolicy"] == "Ignore"
    secret = one(objects, "Secret", "webhook-tls")
    assert webhook["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]


def test_optional_objects_are_off_by_default_and_on_when_asked() -> None:
    optional = {"ServiceMonitor", "PodDisruptionBudget"}
    default_kinds = {o["kind"] for o in render()}
    assert not optional & default_kinds
    assert not [o for o in render() if o["metadata"]["name"].endswith("-dashboard")]
    everything = render("-f", str(EVERYTHING_ON))
    assert optional <= {o["kind"] for o in everything}
    dashboard = one(everything, "ConfigMap", "-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["hybrid-scheduler.json"])["uid"] == "hybrid-scheduler"
    without = {o["kind"] for o in render("--set", "webhook.enabled=false")}
    assert not {"MutatingWebhookConfiguration", "Secret"} & without


def test_plain_manifests_match_the_chart() -> None:
    committed = (ROOT / "manifests" / OUTPUT_NAME).read_text()
    assert committed == render_plain(chart()), (
        "manifests/ drifted from the chart: run 'hybrid-scheduler manifests render'"
    )


def test_the_manifests_command_reports_drift(tmp_path: Path) -> None:
    from hybrid_operator.cli import main

    args = ["manifests", "render", "--chart", str(CHART_DIR), "--out", str(tmp_path)]
    assert main(args) == 0
    assert main([*args, "--check"]) == 0
    (tmp_path / OUTPUT_NAME).write_text((tmp_path / OUTPUT_NAME).read_text() + "# edited\n")
    assert main([*args, "--check"]) == 1


def _instruction(dockerfile: str, name: str) -> list[str]:
    return [
        line.split(None, 1)[1] for line in dockerfile.splitlines() if line.startswith(f"{name} ")
    ]


def test_the_dockerfile_runs_what_the_chart_runs() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    container = one(render(), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    (entrypoint,) = _instruction(dockerfile, "ENTRYPOINT")
    (cmd,) = _instruction(dockerfile, "CMD")
    assert json.loads(entrypoint) == container["command"]
    assert json.loads(cmd) == container["args"]
    stages = _instruction(dockerfile, "FROM")
    assert len(stages) >= 2, "multi-stage"
    final = dockerfile[dockerfile.rindex("\nFROM ") :]
    (user,) = _instruction(final, "USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) > 0, "the final stage runs as a numeric non-root user"
    pod = one(render(), "Deployment")["spec"]["template"]["spec"]
    assert int(uid) == pod["securityContext"]["runAsUser"]
    assert "download.pytorch.org/whl/cpu" in dockerfile
    assert (ROOT / ".dockerignore").exists()


def test_the_dashboard_queries_only_metrics_the_operator_exports() -> None:
    dashboard = json.loads((CHART_DIR / "files" / "dashboard.json").read_text())
    exported: set[str] = set()
    for family in OperatorMetrics().registry.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
        exported |= {family.name + s for s in suffixes.get(family.type, [""])}
    keywords = {
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "le",
    }
    used: set[str] = set()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            expr = re.sub(r'"[^"]*"', "", target["expr"])  # label values
            expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)  # matchers, ranges
            expr = re.sub(r"\b(by|without)\s*\([^)]*\)", "", expr)  # grouping labels
            names = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", expr)) - keywords
            assert names, target["expr"]
            assert names <= exported, f"{panel['title']}: {sorted(names - exported)} not exported"
            used |= names
    assert len(used) >= 8, "the dashboard shows most of the operator's metrics"


def _kind_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(kind_checker()), str(path)], capture_output=True, text=True, check=False
    )


def test_kind_config_decodes_with_kinds_own_types() -> None:
    result = _kind_check(ROOT / "kind-config.yaml")
    assert result.returncode == 0, result.stderr
    assert "1 control-plane and 3 worker nodes" in result.stdout
    config = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    workers = [n for n in config["nodes"] if n["role"] == "worker"]
    assert all("hybrid-scheduler.io/performance" in n["labels"] for n in workers)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda c: c["nodes"][1].update(lables={"a": "b"}),
            "field lables not found in type v1alpha4.Node",
        ),
        (
            lambda c: c.update(networking={"podSubnett": "10.0.0.0/16"}),
            "field podSubnett not found",
        ),
        (lambda c: c["nodes"][0].update(role="master"), 'nodes[0].role: "master" is neither'),
        (lambda c: c.update(apiVersion="kind.x-k8s.io/v1alpha3"), "want kind Cluster"),
    ],
)
def test_the_kind_checker_refuses_what_kind_refuses(
    tmp_path: Path, change: Any, message: str
) -> None:
    config = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    change(config)
    path = tmp_path / "kind.yaml"
    path.write_text(yaml.safe_dump(config))
    result = _kind_check(path)
    assert result.returncode == 1
    assert message in result.stderr


def test_example_workloads_use_three_weighted_namespaces() -> None:
    objects = [
        o
        for f in sorted((ROOT / "manifests" / "examples").glob("*.yaml"))
        for o in documents(f.read_text())
    ]
    namespaces = {o["metadata"]["name"]: o["metadata"] for o in objects if o["kind"] == "Namespace"}
    weights = {n: m["annotations"]["hybrid-scheduler.io/weight"] for n, m in namespaces.items()}
    assert weights == {"team-a": "1", "team-b": "2", "team-c": "4"}
    kinds = {o["kind"] for o in objects}
    assert {"Pod", "Job"} <= kinds
    for o in objects:
        if o["kind"] in ("Pod", "Job"):
            assert o["metadata"]["namespace"] in namespaces
