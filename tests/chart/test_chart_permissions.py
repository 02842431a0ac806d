"""The chart's permissions without a cluster: the ClusterRole grants what the operator calls
and nothing more; pods may be patched only in shadow mode, and then only its annotation,
and deleted only with preemption on, which also grants the one ConfigMap of its
preemption counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chart_helpers import CHART_DIR, one, render, run_helm
from hybrid_operator.settings import OperatorSettings
from hybrid_operator.settings_file import load_settings
from hybrid_operator.shadow import SHADOW_ANNOTATION

#: (API group, resource) -> verbs: each one a call of the operator (helm/README.md).
CLUSTER_WIDE = {
    ("", "pods"): {"list", "watch"},
    ("", "pods/binding"): {"create"},
    ("", "pods/status"): {"patch"},
    ("", "nodes"): {"list", "watch"},
    ("", "namespaces"): {"list", "watch", "get"},
    ("", "events"): {"create"},
    ("scheduling.x-k8s.io", "podgroups"): {"list", "watch"},
    ("scheduling.x-k8s.io", "podgroups/status"): {"patch"},
    ("batch", "jobs"): {"list", "watch"},
}
#: Without the webhook, no namespace is read on its own.
WITHOUT_WEBHOOK = {**CLUSTER_WIDE, ("", "namespaces"): {"list", "watch"}}
SHADOW = ("--set", "settings.shadowOf=default-scheduler")


def _grants(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    grants: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule, rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                grants.setdefault((group, resource), set()).update(rule["verbs"])
    return grants


def test_the_cluster_role_grants_exactly_what_the_operator_calls() -> None:
    objects = render()
    assert _grants(one(objects, "ClusterRole")) == CLUSTER_WIDE
    without = render("--set", "webhook.enabled=false")
    assert _grants(one(without, "ClusterRole")) == WITHOUT_WEBHOOK
    assert not [o for o in objects if o["kind"].startswith("ValidatingAdmissionPolicy")]
    lease = one(objects, "Role", "leader-election")["rules"]
    assert [(r["verbs"], r.get("resourceNames")) for r in lease] == [
        (["create"], None),
        (["get", "update"], ["hybrid-scheduler"]),
    ]


def test_shadow_mode_may_patch_pods_but_only_its_annotation(tmp_path: Path) -> None:
    objects = render(*SHADOW)
    grants = _grants(one(objects, "ClusterRole"))
    assert grants == {**CLUSTER_WIDE, ("", "pods"): {"list", "watch", "patch"}}
    policy = one(objects, "ValidatingAdmissionPolicy")
    binding = one(objects, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"] == {
        "policyName": policy["metadata"]["name"],
        "validationActions": ["Deny"],
    }
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail"
    (condition,) = spec["matchConditions"]
    assert '"system:serviceaccount:ml:hybrid-scheduler"' in condition["expression"]
    (rule,) = spec["matchConstraints"]["resourceRules"]
    assert (rule["resources"], rule["operations"]) == (["pods"], ["UPDATE"])
    checks = " ".join(v["expression"] for v in spec["validations"])
    assert "object.spec == oldObject.spec" in checks
    assert f'k == "{SHADOW_ANNOTATION}"' in checks
    assert {v["reason"] for v in spec["validations"]} == {"Forbidden"}
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text(one(objects, "ConfigMap", "hybrid-scheduler")["data"]["settings.yaml"])
    assert load_settings(settings_file).shadow_of == "default-scheduler"


def test_shadow_mode_is_off_by_default(tmp_path: Path) -> None:
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text(
        one(render(), "ConfigMap", "hybrid-scheduler")["data"]["settings.yaml"]
    )
    assert load_settings(settings_file).shadow_of == ""


def test_a_shadowed_scheduler_that_is_no_name_is_refused() -> None:
    result = run_helm("template", "x", str(CHART_DIR), "--set", "settings.shadowOf=Not A Name")
    assert result.returncode != 0
    assert "at '/settings/shadowOf'" in result.stderr, result.stderr


PREEMPTION = ("--set", "preemption.enabled=true")


def _settings(objects: list[dict[str, Any]], tmp_path: Path) -> OperatorSettings:
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text(one(objects, "ConfigMap", "hybrid-scheduler")["data"]["settings.yaml"])
    return load_settings(settings_file)


def test_preemption_is_off_by_default_and_then_no_pod_may_be_deleted(tmp_path: Path) -> None:
    objects = render("--set", "preemption.allPodsOptIn=true")
    assert "delete" not in _grants(one(objects, "ClusterRole"))[("", "pods")]
    assert not [o for o in objects if "preemptions" in o["metadata"]["name"]]  # no ConfigMap
    settings = _settings(objects, tmp_path)
    assert settings.preemption_settings() is None
    assert not settings.preemption_all_pods


def test_preemption_enabled_may_delete_pods_and_sets_the_rules(tmp_path: Path) -> None:
    objects = render(*PREEMPTION)
    grants = _grants(one(objects, "ClusterRole"))
    assert grants == {**CLUSTER_WIDE, ("", "pods"): {"list", "watch", "delete"}}
    settings = _settings(objects, tmp_path)
    assert settings.preemption == "on"
    # The ConfigMap of the preemption counts, beside the Lease, and nothing else.
    ledger = f"{settings.lease_name}-preemptions"
    role = one(objects, "Role", "preemptions")
    assert role["metadata"]["namespace"] == settings.lease_namespace
    assert [(r["resources"], r["verbs"], r.get("resourceNames")) for r in role["rules"]] == [
        (["configmaps"], ["create"], None),
        (["configmaps"], ["get", "update"], [ledger]),
    ]
    binding = one(objects, "RoleBinding", "preemptions")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == one(objects, "RoleBinding", "leader-election")["subjects"]
    ruled = render(
        *PREEMPTION,
        "--set",
        "preemption.rules=max_plans=1",
        "--set",
        "preemption.allPodsOptIn=true",
    )
    settings = _settings(ruled, tmp_path)
    rules = settings.preemption_settings()
    assert rules is not None and rules.max_plans == 1
    assert settings.preemption_all_pods


def test_preemption_rules_that_are_no_key_values_are_refused() -> None:
    result = run_helm(
        "template", "x", str(CHART_DIR), *PREEMPTION, "--set", "preemption.rules=soon please"
    )
    assert result.returncode != 0
    assert "at '/preemption/rules'" in result.stderr, result.stderr
