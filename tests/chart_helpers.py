"""Helpers for the Helm chart's tests: the cached helm, rendering, reading documents."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from hybrid_lab.devcluster.build import KIND_CHECKER, SERVICEMONITOR_CRD, find_binary
from hybrid_lab.devcluster.settings import ClusterSettings
from hybrid_lab.manifests import Chart

ROOT = Path(__file__).resolve().parents[1]
CHART_DIR = ROOT / "helm" / "hybrid-scheduler"
EVERYTHING_ON = CHART_DIR / "ci" / "everything-on-values.yaml"


def cached(name: str) -> Path:
    """A file the dev cluster's build puts in the cache; the test fails if it is missing."""
    path = find_binary(ClusterSettings(), name)
    if not path.exists():
        pytest.fail(f"{path} is missing: run 'hybrid-scheduler dev-cluster build'", pytrace=False)
    return path


def helm() -> Path:
    return cached("helm")


def kind_checker() -> Path:
    return cached(KIND_CHECKER)


def servicemonitor_crd() -> Path:
    return cached(SERVICEMONITOR_CRD)


def chart() -> Chart:
    return Chart(helm(), CHART_DIR)


def documents(text: str) -> list[dict[str, Any]]:
    """The objects of a multi-document YAML text (empty documents dropped)."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def render(
    *args: str, release: str = "hybrid-scheduler", namespace: str = "ml"
) -> list[dict[str, Any]]:
    return documents(chart().template(*args, release=release, namespace=namespace))


def one(objects: list[dict[str, Any]], kind: str, suffix: str = "") -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, f"{len(found)} {kind} objects named *{suffix}"
    return found[0]


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm()), *args], capture_output=True, text=True, check=False)


def collection_path(api: Any, obj: dict[str, Any], namespace: str | None = None) -> str:
    """The API path to POST ``obj`` to, found through the API server's discovery."""
    version = obj["apiVersion"]
    prefix = "/api/v1" if version == "v1" else f"/apis/{version}"
    resources = api.get(prefix)["resources"]
    matches = [r for r in resources if r["kind"] == obj["kind"] and "/" not in r["name"]]
    assert len(matches) == 1, f"{obj['kind']} in {version}: {len(matches)} resources"
    resource = matches[0]
    if not resource["namespaced"]:
        return f"{prefix}/{resource['name']}"
    ns = obj["metadata"].get("namespace") or namespace
    assert ns, f"{obj['kind']} {obj['metadata']['name']} needs a namespace"
    return f"{prefix}/namespaces/{ns}/{resource['name']}"
