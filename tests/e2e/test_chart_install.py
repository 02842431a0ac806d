"""The Helm chart on the dev cluster's real API server (Kubernetes v1.34.4): every rendered
object passes server-side validation, the chart installs, upgrades and uninstalls without
leftovers, and the operator runs with nothing but its ServiceAccount's permissions."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from builders import usable
from chart_helpers import (
    CHART_DIR,
    EVERYTHING_ON,
    chart,
    collection_path,
    documents,
    helm,
    servicemonitor_crd,
)
from hybrid_lab.devcluster.apiserver import ApiServer
from hybrid_lab.devcluster.errors import ClusterApiError
from hybrid_lab.devcluster.pki import write_kubeconfig
from hybrid_lab.devcluster.testing import DevCluster
from hybrid_lab.devcluster.workload import training_pod, wait_for
from hybrid_operator.certificates import issue
from hybrid_operator.k8s.api import KubeApi, WriteConflictError, load_client
from hybrid_operator.k8s.convert import pending_pod
from hybrid_operator.k8s.preempt import DISRUPTION_TARGET, PREEMPTION_BY_SCHEDULER, DeleteOutcome
from hybrid_operator.shadow import SHADOW_ANNOTATION
from operator_helpers import bound_node, decision, events, free_port, running_operator

pytestmark = pytest.mark.e2e
STRICT = {"dryRun": "All", "fieldValidation": "Strict"}
NOT_AFTER = "hybrid-scheduler.io/certificate-not-after"
CLUSTER_SCOPED = [
    "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
    "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
    "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
    "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies",
    "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings",
    "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
    "/apis/scheduling.k8s.io/v1/priorityclasses",
    "/api/v1/namespaces",
    "/api/v1/persistentvolumes",
]
NAMESPACED = [
    "/api/v1/namespaces/{ns}/serviceaccounts",
    "/api/v1/namespaces/{ns}/configmaps",
    "/api/v1/namespaces/{ns}/secrets",
    "/api/v1/namespaces/{ns}/services",
    "/apis/apps/v1/namespaces/{ns}/deployments",
    "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
    "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
    "/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets",
]


@pytest.fixture(scope="module")
def servicemonitor_kind(dev_cluster: DevCluster) -> Iterator[None]:
    """The ServiceMonitor CRD (prometheus-operator's own), for the everything-on render."""
    api = dev_cluster.admin
    crd = yaml.safe_load(servicemonitor_crd().read_text())
    path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}"
    created = api.request("GET", path).status_code == 404
    if created:
        api.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)

    def established() -> bool | None:
        conditions = (api.get(path).get("status") or {}).get("conditions") or []
        ok = any(c["type"] == "Established" and c["status"] == "True" for c in conditions)
        return True if ok else None

    wait_for("the ServiceMonitor CRD", established, 30)
    try:
        yield
    finally:
        if created:
            api.delete(path)


def _helm(dev_cluster: DevCluster, *args: str) -> str:
    kubeconfig = str(dev_cluster.settings.kubeconfig)
    result = subprocess.run(
        [str(helm()), "--kubeconfig", kubeconfig, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, f"helm {args[0]}: {result.stderr}"
    return result.stdout


@pytest.mark.parametrize(
    "values",
    [(), ("-f", str(EVERYTHING_ON)), ("--set", "webhook.enabled=false")],
    ids=["defaults", "everything-on", "plain-manifests"],
)
def test_every_rendered_object_passes_strict_server_side_validation(
    dev_cluster: DevCluster, namespace: str, servicemonitor_kind: None, values: tuple[str, ...]
) -> None:
    api = dev_cluster.admin
    release = f"v-{uuid.uuid4().hex[:6]}"
    objects = documents(chart().template(*values, release=release, namespace=namespace))
    core = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    assert core | {"ConfigMap", "Service", "Deployment"} <= {o["kind"] for o in objects}
    for obj in objects:
        path = collection_path(api, obj, namespace)
        try:
            api.call("POST", path, obj, params=STRICT)
        except ClusterApiError as exc:
            pytest.fail(f"{obj['kind']} {obj['metadata']['name']}: {exc}")


def test_strict_validation_refuses_an_unknown_field(
    dev_cluster: DevCluster, namespace: str
) -> None:
    # The check above would be worthless if the server accepted anything.
    deployment = next(
        o for o in documents(chart().template(namespace=namespace)) if o["kind"] == "Deployment"
    )
    deployment["spec"]["replicaz"] = 2
    api = dev_cluster.admin
    path = collection_path(api, deployment, namespace)
    with pytest.raises(ClusterApiError, match=re.escape('unknown field "spec.replicaz"')):
        api.call("POST", path, deployment, params=STRICT)


def _labelled(api: ApiServer, release: str, namespace: str) -> list[str]:
    selector = f"app.kubernetes.io/instance={release}"
    found = []
    for path in [*CLUSTER_SCOPED, *(p.format(ns=namespace) for p in NAMESPACED)]:
        for item in api.items(path, labelSelector=selector):
            found.append(f"{item.get('kind', path)} {item['metadata']['name']}")
    return found


def test_install_upgrade_uninstall(dev_cluster: DevCluster, namespace: str) -> None:
    api = dev_cluster.admin
    release = f"hs-{uuid.uuid4().hex[:6]}"
    fullname = f"{release}-hybrid-scheduler"
    chart_dir = str(CHART_DIR)
    _helm(dev_cluster, "install", release, chart_dir, "-n", namespace)
    try:
        deployment = api.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{fullname}")
        assert deployment["spec"]["replicas"] == 2
        for path in (
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{fullname}",
            f"/api/v1/namespaces/{namespace}/services/{fullname}",
            f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{fullname}",
            f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{fullname}",
            f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles/{fullname}-leader-election",
        ):
            assert api.get(path)["metadata"]["name"]
        configmap = f"/api/v1/namespaces/{namespace}/configmaps/{fullname}"
        assert 'policy: "kube-default"' in api.get(configmap)["data"]["settings.yaml"]
        secret_path = f"/api/v1/namespaces/{namespace}/secrets/{fullname}-webhook-tls"
        webhook_path = (
            f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{fullname}"
        )
        secret = api.get(secret_path)["data"]
        ca_bundle = api.get(webhook_path)["webhooks"][0]["clientConfig"]["caBundle"]
        assert ca_bundle == secret["ca.crt"]
        checksum = deployment["spec"]["template"]["metadata"]["annotations"]["checksum/settings"]

        _helm(
            dev_cluster,
            "upgrade",
            release,
            chart_dir,
            "-n",
            namespace,
            "--reuse-values",
            "--set",
            "replicaCount=1",
            "--set",
            "settings.policy=binpack",
        )
        deployment = api.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{fullname}")
        assert deployment["spec"]["replicas"] == 1
        assert 'policy: "binpack"' in api.get(configmap)["data"]["settings.yaml"]
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["checksum/settings"] != checksum, "a new settings file rolls the pods"
        # The certificate made at install survives the upgrade, and the CA with it.
        assert api.get(secret_path)["data"] == secret
        assert api.get(webhook_path)["webhooks"][0]["clientConfig"]["caBundle"] == ca_bundle
        _renewal_near_expiry(dev_cluster, release, namespace, secret)
        assert _labelled(api, release, namespace)
    finally:
        _helm(dev_cluster, "uninstall", release, "-n", namespace, "--wait")
    assert _labelled(api, release, namespace) == []
    for path in CLUSTER_SCOPED:
        names = [i["metadata"]["name"] for i in api.items(path)]
        assert not [n for n in names if n.startswith(release)], path
    helm_records = api.items(
        f"/api/v1/namespaces/{namespace}/secrets", labelSelector=f"name={release}"
    )
    assert helm_records == []


def _renewal_near_expiry(
    dev_cluster: DevCluster, release: str, namespace: str, before: dict[str, str]
) -> None:
    """An upgrade that finds the certificate within 30 days of expiry makes a new one,
    rolls the pods and trusts the old CA too; the next upgrade keeps the new one."""
    api = dev_cluster.admin
    fullname = f"{release}-hybrid-scheduler"
    secret_path = f"/api/v1/namespaces/{namespace}/secrets/{fullname}-webhook-tls"
    webhook_path = f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{fullname}"
    deployment_path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{fullname}"

    def checksum() -> str:
        annotations = api.get(deployment_path)["spec"]["template"]["metadata"]["annotations"]
        return str(annotations["checksum/webhook-tls"])

    rolled_from = checksum()
    stored = api.get(secret_path)
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=10)
    stored["metadata"]["annotations"][NOT_AFTER] = soon.strftime("%Y-%m-%dT%H:%M:%SZ")
    api.call("PUT", secret_path, stored)
    upgrade = ("upgrade", release, str(CHART_DIR), "-n", namespace, "--reuse-values")
    _helm(dev_cluster, *upgrade)
    renewed = api.get(secret_path)
    assert renewed["data"]["tls.crt"] != before["tls.crt"]
    assert renewed["data"]["ca-previous.crt"] == before["ca.crt"]
    expires = dt.datetime.fromisoformat(renewed["metadata"]["annotations"][NOT_AFTER])
    assert expires > dt.datetime.now(dt.UTC) + dt.timedelta(days=364)
    bundle = api.get(webhook_path)["webhooks"][0]["clientConfig"]["caBundle"]
    trusted = base64.b64decode(renewed["data"]["ca.crt"]) + base64.b64decode(before["ca.crt"])
    assert base64.b64decode(bundle) == trusted
    assert checksum() != rolled_from, "a renewed certificate rolls the pods"
    _helm(dev_cluster, *upgrade)
    assert api.get(secret_path)["data"] == renewed["data"]


def _token(api: ApiServer, namespace: str, account: str) -> str:
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": 3600},
    }
    path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token"
    token: str = api.create(path, request)["status"]["token"]
    return token


@contextmanager
def _installed(dev_cluster: DevCluster, namespace: str, *values: str) -> Iterator[tuple[str, str]]:
    """The chart installed with one replica and ``values`` (``--set`` arguments)."""
    release = f"rb-{uuid.uuid4().hex[:6]}"
    sets = [a for v in ("replicaCount=1", *values) for a in ("--set", v)]
    _helm(dev_cluster, "install", release, str(CHART_DIR), "-n", namespace, *sets)
    try:
        yield release, f"{release}-hybrid-scheduler"
    finally:
        _helm(dev_cluster, "uninstall", release, "-n", namespace, "--wait")


@pytest.fixture
def chart_release(dev_cluster: DevCluster, namespace: str) -> Iterator[tuple[str, str]]:
    """The chart installed (webhook off: the test runs the operator's out of the cluster)."""
    with _installed(dev_cluster, namespace, "webhook.enabled=false") as names:
        yield names


def _gang_status_written(admin: ApiServer, namespace: str, scheduler: str) -> None:
    """A PodGroup's pods bound and its status written (podgroups list and watch, the
    status subresource's patch; the Job watch runs beside them). Helm installed the CRD."""
    groups = f"/apis/scheduling.x-k8s.io/v1alpha1/namespaces/{namespace}/podgroups"
    group = {
        "apiVersion": "scheduling.x-k8s.io/v1alpha1",
        "kind": "PodGroup",
        "metadata": {"name": "pair"},
        "spec": {"minMember": 2},
    }
    admin.create(groups, group)
    pods = f"/api/v1/namespaces/{namespace}/pods"
    for i in range(2):
        pod = training_pod(f"pair-{i}", gpus=1, cpu="1", memory="1Gi", scheduler_name=scheduler)
        pod["metadata"]["labels"]["scheduling.x-k8s.io/pod-group"] = "pair"
        admin.create(pods, pod)
    for i in range(2):
        bound_node(admin, pods, f"pair-{i}")

    def written() -> dict[str, Any] | None:
        status = admin.get(f"{groups}/pair").get("status") or {}
        return status if status.get("scheduled") == 2 else None

    status = wait_for("the PodGroup's status", written, 30)
    assert status["phase"] in ("Scheduled", "Running", "Finished")


def _account_kubeconfig(
    dev_cluster: DevCluster, namespace: str, account: str, path: Path
) -> tuple[str, str]:
    """A kubeconfig at ``path`` with a token of the chart's ServiceAccount; the token and
    the cluster's CA file."""
    token = _token(dev_cluster.admin, namespace, account)
    ca = yaml.safe_load(dev_cluster.settings.kubeconfig.read_text())["clusters"][0]["cluster"][
        "certificate-authority"
    ]
    user = f"system:serviceaccount:{namespace}:{account}"
    write_kubeconfig(path, dev_cluster.settings.server_url, Path(ca), user, token)
    return token, ca


def _image_change(pod: dict[str, Any]) -> dict[str, Any]:
    container = pod["spec"]["containers"][0]["name"]
    return {"spec": {"containers": [{"name": container, "image": "example.invalid/other:2"}]}}


def _refused(call: Any) -> ApiException:
    with pytest.raises(ApiException) as refused:
        call()
    assert refused.value.status == 403, refused.value
    return refused.value


def test_the_service_account_can_schedule_and_nothing_more(
    dev_cluster: DevCluster, namespace: str, chart_release: tuple[str, str], tmp_path: Path
) -> None:
    admin = dev_cluster.admin
    release, fullname = chart_release
    kubeconfig = tmp_path / "service-account.kubeconfig"
    token, ca = _account_kubeconfig(dev_cluster, namespace, fullname, kubeconfig)
    settings = tmp_path / "settings.yaml"
    configmap = admin.get(f"/api/v1/namespaces/{namespace}/configmaps/{fullname}")
    settings.write_text(configmap["data"]["settings.yaml"])
    # The webhook in the chart's mode: a certificate from files, a configuration made by
    # someone else (here the admin, pointing at this process), no permission on it.
    port = free_port()
    tls = issue(["127.0.0.1"], tmp_path / "tls")
    name = f"sa-{uuid.uuid4().hex[:6]}"
    webhook_config = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "opt-in.hybrid-scheduler.io",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Ignore",
                "timeoutSeconds": 5,
                "clientConfig": {
                    "url": f"https://127.0.0.1:{port}/opt-in",
                    "caBundle": base64.b64encode(tls.ca_pem).decode(),
                },
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["pods"],
                        "operations": ["CREATE"],
                    }
                ],
            }
        ],
    }
    webhooks = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
    admin.create(webhooks, webhook_config)
    pods = f"/api/v1/namespaces/{namespace}/pods"
    args = (
        "--kubeconfig",
        str(kubeconfig),
        "--config",
        str(settings),
        "--scheduler-name",
        name,
        "--http-port",
        "0",
        "--webhook",
        "--webhook-cert-dir",
        str(tls.certfile.parent),
        "--webhook-addr",
        "127.0.0.1",
        "--webhook-port",
        str(port),
    )
    try:
        with running_operator(dev_cluster, tmp_path / "operator.log", *args) as log:
            # Bind, post Scheduled, write the decision record (pods/binding, events, pods).
            admin.create(
                pods, training_pod("fits", gpus=1, cpu="1", memory="1Gi", scheduler_name=name)
            )
            node = bound_node(admin, pods, "fits")
            assert decision(admin, pods, "fits")["node"] == node
            wait_for(
                "the Scheduled event",
                lambda: (
                    [e for e in events(admin, namespace, "fits") if e["reason"] == "Scheduled"]
                    or None
                ),
                30,
            )
            # FailedScheduling and the PodScheduled condition (events, pods/status).
            admin.create(
                pods, training_pod("too-big", gpus=64, cpu="1", memory="1Gi", scheduler_name=name)
            )

            def unschedulable() -> bool | None:
                conditions = admin.get(f"{pods}/too-big").get("status", {}).get("conditions", [])
                ok = any(
                    c["type"] == "PodScheduled" and c["reason"] == "Unschedulable"
                    for c in conditions
                )
                return True if ok else None

            wait_for("PodScheduled=False on too-big", unschedulable, 30)
            assert [
                e for e in events(admin, namespace, "too-big") if e["reason"] == "FailedScheduling"
            ]
            # The Lease the Role names (leases).
            lease = admin.get(
                f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{fullname}"
            )
            assert lease["spec"]["holderIdentity"]
            # Opt-in through the webhook, served from the certificate directory.
            annotated = training_pod("opted-in", gpus=1, cpu="1", memory="1Gi")
            annotated["metadata"]["annotations"]["hybrid-scheduler.io/enabled"] = "true"
            admin.create(pods, annotated)
            assert admin.get(f"{pods}/opted-in")["spec"]["schedulerName"] == name
            bound_node(admin, pods, "opted-in")
            _labelled_namespace_opt_in(admin, namespace, name)
            _gang_status_written(admin, namespace, name)
            text = log.read_text()
            assert "Traceback" not in text
            assert "Forbidden" not in text, text  # nothing the operator calls is refused
            assert "could not" not in text, text  # a refused Event, condition or annotation
            assert "leader election: cannot" not in text, text
    finally:
        admin.delete(f"{webhooks}/{name}")
    # The operator in the certificate-directory mode never touched a webhook configuration.
    assert admin.request("GET", f"{webhooks}/hybrid-scheduler.io").status_code == 404

    # The same token, making real calls the operator never makes: every one is refused.
    account = ApiServer(dev_cluster.settings.server_url, token, ca)
    assert account.get("/api/v1/nodes")["items"], "the token works for what is granted"
    node_name = node
    refused = [
        ("GET", f"/api/v1/namespaces/{namespace}/secrets", None),
        ("GET", "/api/v1/secrets", None),
        ("GET", f"/api/v1/namespaces/{namespace}/secrets/sh.helm.release.v1.{release}.v1", None),
        ("GET", f"{pods}/fits", None),
        ("GET", f"{pods}/fits/log", None),
        ("DELETE", f"{pods}/fits", None),
        ("POST", pods, training_pod("intruder", gpus=0, cpu="1", memory="1Gi")),
        (
            "POST",
            f"{pods}/fits/eviction",
            {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "fits"}},
        ),
        (
            "POST",
            f"/apis/apps/v1/namespaces/{namespace}/deployments",
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}},
        ),
        ("PATCH", f"/api/v1/nodes/{node_name}", {"metadata": {"labels": {"x": "y"}}}),
        ("DELETE", f"/api/v1/nodes/{node_name}", None),
        ("GET", f"/api/v1/namespaces/{namespace}/configmaps", None),
        (
            "POST",
            f"/api/v1/namespaces/{namespace}/configmaps",
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}},
        ),
        ("GET", webhooks, None),
        (
            "POST",
            webhooks,
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "MutatingWebhookConfiguration",
                "metadata": {"name": "x"},
            },
        ),
        ("DELETE", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{fullname}", None),
        ("GET", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-scheduler", None),
        (
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "x"},
            },
        ),
        ("DELETE", f"/api/v1/namespaces/{namespace}", None),
        (
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{fullname}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
        ),
        ("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", None),
    ]
    for method, path, body in refused:
        status = account.request(method, path, body).status_code
        assert status == 403, f"{method} {path}: {status}, expected 403"
    # Shadow mode is off: the operator's own client may patch no pod, not even an annotation.
    client = KubeApi(load_client(str(kubeconfig)), "rbac-check")
    body = admin.get(f"{pods}/fits")
    _refused(lambda: client.annotate(usable(pending_pod(body)), SHADOW_ANNOTATION, {"node": node}))
    _refused(lambda: client.core.patch_namespaced_pod("fits", namespace, _image_change(body)))
    # Preemption is off: the operator's own deletion of a pod is refused too.
    uid = str(admin.get(f"{pods}/fits")["metadata"]["uid"])
    assert client.delete_pod(namespace, "fits", uid).outcome is DeleteOutcome.FORBIDDEN


def _labelled_namespace_opt_in(admin: ApiServer, namespace: str, ours: str) -> None:
    """In a namespace labelled for the webhook: a pod naming no scheduler comes to us, one
    annotated enabled "false" keeps the default scheduler, one naming another keeps it."""
    path = f"/api/v1/namespaces/{namespace}"
    body = admin.get(path)
    body["metadata"].setdefault("labels", {})["hybrid-scheduler.io/enabled"] = "true"
    admin.call("PUT", path, body)
    pods = f"{path}/pods"
    probes = iter(range(1000))

    def label_seen() -> bool | None:
        probe = training_pod(f"probe-{next(probes)}", gpus=0, cpu="100m", memory="64Mi")
        return True if admin.create(pods, probe)["spec"]["schedulerName"] == ours else None

    wait_for("the webhook to see the namespace label", label_seen, 30)
    keep = training_pod("keeps-default", gpus=0, cpu="100m", memory="64Mi")
    keep["metadata"]["annotations"]["hybrid-scheduler.io/enabled"] = "false"
    assert admin.create(pods, keep)["spec"]["schedulerName"] == "default-scheduler"
    other = training_pod(
        "names-another", gpus=0, cpu="100m", memory="64Mi", scheduler_name="someone-else"
    )
    assert admin.create(pods, other)["spec"]["schedulerName"] == "someone-else"


def test_shadow_mode_lets_the_service_account_patch_only_its_annotation(
    dev_cluster: DevCluster, namespace: str, tmp_path: Path
) -> None:
    admin = dev_cluster.admin
    pods = f"/api/v1/namespaces/{namespace}/pods"
    values = ("webhook.enabled=false", "settings.shadowOf=default-scheduler")
    with _installed(dev_cluster, namespace, *values) as (_, fullname):
        kubeconfig = tmp_path / "service-account.kubeconfig"
        _account_kubeconfig(dev_cluster, namespace, fullname, kubeconfig)
        client = KubeApi(load_client(str(kubeconfig)), "shadow-check")
        admin.create(pods, training_pod("watched", gpus=0, cpu="100m", memory="64Mi"))
        body = admin.get(f"{pods}/watched")
        attempts = iter(range(1000))

        def label_change_refused() -> bool | None:
            # The admission policy applies a moment after it is created.
            label = {"metadata": {"labels": {"attempt": str(next(attempts))}}}
            try:
                client.core.patch_namespaced_pod("watched", namespace, label)
            except ApiException as exc:
                return True if exc.status == 403 else None
            return None

        wait_for("the shadow policy to refuse a label change", label_change_refused, 30)
        client.annotate(usable(pending_pod(body)), SHADOW_ANNOTATION, {"wouldBe": "n1"})
        annotations = admin.get(f"{pods}/watched")["metadata"]["annotations"]
        assert json.loads(annotations[SHADOW_ANNOTATION]) == {"wouldBe": "n1"}
        image = _refused(
            lambda: client.core.patch_namespaced_pod("watched", namespace, _image_change(body))
        )
        assert "may not change a pod's spec" in str(image.body)
        other = {"metadata": {"annotations": {"hybrid-scheduler.io/decision": "{}"}}}
        refused = _refused(lambda: client.core.patch_namespaced_pod("watched", namespace, other))
        assert "may change no pod annotation but" in str(refused.body)
        after = admin.get(f"{pods}/watched")
        assert after["spec"]["containers"] == body["spec"]["containers"]


def test_preemption_lets_the_service_account_mark_and_delete_pods(
    dev_cluster: DevCluster, namespace: str, tmp_path: Path
) -> None:
    admin = dev_cluster.admin
    pods = f"/api/v1/namespaces/{namespace}/pods"
    values = ("webhook.enabled=false", "preemption.enabled=true")
    with _installed(dev_cluster, namespace, *values) as (_, fullname):
        kubeconfig = tmp_path / "service-account.kubeconfig"
        _account_kubeconfig(dev_cluster, namespace, fullname, kubeconfig)
        client = KubeApi(load_client(str(kubeconfig)), "preemption-check")
        admin.create(pods, training_pod("victim", gpus=0, cpu="100m", memory="64Mi"))
        uid = admin.get(f"{pods}/victim")["metadata"]["uid"]
        client.mark_disruption_target(namespace, "victim", "preempted by x/y on n1")
        conditions = admin.get(f"{pods}/victim")["status"]["conditions"]
        [marked] = [c for c in conditions if c["type"] == DISRUPTION_TARGET]
        assert (marked["status"], marked["reason"]) == ("True", PREEMPTION_BY_SCHEDULER)
        wrong = client.delete_pod(namespace, "victim", "not-its-uid")
        assert wrong.outcome is DeleteOutcome.PRECONDITION, wrong
        assert client.delete_pod(namespace, "victim", uid).deleted
        _preemption_counts_written(client, namespace, fullname)


def _preemption_counts_written(client: KubeApi, namespace: str, fullname: str) -> None:
    """The ConfigMap of the preemption counts (named after the Lease) may be created, read
    and updated; no other ConfigMap may be read or updated."""
    ledger = f"{fullname}-preemptions"
    assert client.read_config_map(namespace, ledger) is None
    created = client.write_config_map(namespace, ledger, {"counts.json": "{}"}, None)
    updated = client.write_config_map(namespace, ledger, {"counts.json": '{"j":1}'}, created)
    stored = client.read_config_map(namespace, ledger)
    assert stored is not None and (stored.version, stored.data) == (
        updated,
        {"counts.json": '{"j":1}'},
    )
    with pytest.raises(WriteConflictError):  # the version read is no longer the object's
        client.write_config_map(namespace, ledger, {}, created)
    _refused(lambda: client.read_config_map(namespace, fullname))
    _refused(lambda: client.write_config_map(namespace, fullname, {}, updated))
