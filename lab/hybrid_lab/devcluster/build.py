"""Building the cluster's Go binaries into a versioned cache, only when missing.

kube-apiserver, kube-controller-manager and kube-scheduler cannot be ``go install``-ed
(k8s.io/kubernetes requires its staging modules at v0.0.0 through replace directives), so
they are built from a small wrapper module of ours whose go.mod replaces every staging
module with its published version; the list is derived from the upstream go.mod. etcd
gets the same treatment; kwok and helm install directly. Two more things for the chart's
tests come from the module proxy too: ``kind-config-check``, a few lines of ours that
decode a kind configuration with kind's own v1alpha4 types, and the ServiceMonitor CRD
from the prometheus-operator module. The peers (``--peers``) come the same ways:
scheduler-plugins' kube-scheduler from a wrapper module (its go.mod replaces Kubernetes'
modules too), Kueue's manager by ``go install``, and the manifests each needs (CRDs,
webhook configurations) copied from its module. So do the job controllers
(``--job-controllers``): training-operator by ``go install`` and its PyTorchJob CRD from its
module. Every build logs to a file that is named when it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import requests
from tqdm import tqdm

from hybrid_lab.devcluster.errors import BuildError, MissingToolError
from hybrid_lab.devcluster.gomod import (
    module_replaces,
    replaces_pinned_to,
    staging_modules,
    wrapper_go_mod,
)
from hybrid_lab.devcluster.settings import ClusterSettings

KUBE_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
KIND_CHECKER = "kind-config-check"
SERVICEMONITOR_CRD = "monitoring.coreos.com_servicemonitors.yaml"
#: Where the CRD lies inside the prometheus-operator module.
CRD_DIRECTORY = "example/prometheus-operator-crd"
SCHEDULER_PLUGINS = "scheduler-plugins"
KUEUE = "kueue"
SCHEDULER_PLUGINS_MODULE = "sigs.k8s.io/scheduler-plugins"
KUEUE_MODULE = "sigs.k8s.io/kueue"
TRAINING_OPERATOR = "training-operator"
TRAINING_OPERATOR_MODULE = "github.com/kubeflow/training-operator"
#: The executable ``go install`` names after its main package.
TRAINING_OPERATOR_BINARY = "training-operator.v1"
TRAINING_OPERATOR_MANIFESTS = "training-operator-manifests"
#: Manifests copied from a peer's or job controller's module: name -> (module, paths in it).
MODULE_MANIFESTS = {
    "scheduler-plugins-manifests": (
        SCHEDULER_PLUGINS_MODULE,
        ("manifests/coscheduling/crd.yaml", "manifests/capacityscheduling/crd.yaml"),
    ),
    "kueue-manifests": (
        KUEUE_MODULE,
        ("config/components/crd", "config/components/webhook/manifests.yaml"),
    ),
    TRAINING_OPERATOR_MANIFESTS: (
        TRAINING_OPERATOR_MODULE,
        ("manifests/base/crds/kubeflow.org_pytorchjobs.yaml",),
    ),
}
GO_ENV = "HYBRID_SCHEDULER_GO"
DEFAULT_GO = "/usr/local/go/bin/go"


@dataclass(frozen=True)
class BuildStep:
    """One binary to build into the cache."""

    component: str
    """Cache component name, e.g. ``kubernetes`` (directory ``<component>-<version>``)."""
    version: str
    """Upstream version tag."""
    binary: str
    """File name inside the component directory: an executable, or a fetched CRD."""


def build_steps(settings: ClusterSettings) -> list[BuildStep]:
    """Every binary the dev cluster can use, in build order."""
    versions = settings.versions
    steps = [BuildStep("kubernetes", versions.kubernetes, name) for name in KUBE_BINARIES]
    steps += [
        BuildStep("etcd", versions.etcd, "etcd"),
        BuildStep("kwok", versions.kwok, "kwok"),
        BuildStep("helm", versions.helm, "helm"),
        BuildStep("kind", versions.kind, KIND_CHECKER),
        BuildStep("prometheus-operator", versions.prometheus_operator, SERVICEMONITOR_CRD),
    ]
    if settings.peers:
        steps += [
            BuildStep(SCHEDULER_PLUGINS, versions.scheduler_plugins, SCHEDULER_PLUGINS),
            BuildStep(SCHEDULER_PLUGINS, versions.scheduler_plugins, "scheduler-plugins-manifests"),
            BuildStep(KUEUE, versions.kueue, KUEUE),
            BuildStep(KUEUE, versions.kueue, "kueue-manifests"),
        ]
    if settings.job_controllers:
        version = versions.training_operator
        steps += [
            BuildStep(TRAINING_OPERATOR, version, TRAINING_OPERATOR_BINARY),
            BuildStep(TRAINING_OPERATOR, version, TRAINING_OPERATOR_MANIFESTS),
        ]
    return steps


def binary_path(settings: ClusterSettings, step: BuildStep) -> Path:
    """Where the built executable of ``step`` lives."""
    return settings.bin_dir(step.component, step.version) / step.binary


def find_binary(settings: ClusterSettings, binary: str) -> Path:
    """Path of a cached binary by executable name (it must have been built)."""
    for step in build_steps(settings):
        if step.binary == binary:
            return binary_path(settings, step)
    raise KeyError(binary)


def missing_steps(settings: ClusterSettings) -> list[BuildStep]:
    """The steps whose binaries are not in the cache yet."""
    return [step for step in build_steps(settings) if not binary_path(settings, step).exists()]


def build_missing(settings: ClusterSettings, show_progress: bool = True) -> list[BuildStep]:
    """Build every missing binary; return the steps that were built."""
    todo = missing_steps(settings)
    if not todo:
        return []
    builder = GoBuilder(settings)
    with tqdm(todo, desc="building", unit="binary", disable=not show_progress) as bar:
        for step in bar:
            bar.set_postfix_str(f"{step.binary} {step.version}")
            builder.build(step)
    return todo


class GoBuilder:
    """Runs ``go build`` / ``go install`` with the project's caches and settings."""

    def __init__(self, settings: ClusterSettings) -> None:
        self.settings = settings
        self.go = _find_go()
        go_cache = settings.cache_dir / "go"
        self.env = {
            **os.environ,
            "GOTOOLCHAIN": "local",
            "CGO_ENABLED": "0",
            "GOMODCACHE": str(go_cache / "mod"),
            "GOCACHE": str(go_cache / "build"),
            "GOFLAGS": "-mod=mod",
        }
        if "GOSUMDB" not in os.environ and not _sumdb_reachable():
            # Modules still come over TLS from the proxy; only the transparency-log check
            # is skipped, because this network cannot reach the checksum database.
            tqdm.write("note: sum.golang.org is unreachable; building with GOSUMDB=off")
            self.env["GOSUMDB"] = "off"

    def build(self, step: BuildStep) -> None:
        """Build one binary into the cache, logging to ``logs/<binary>-<version>.log``."""
        log_dir = self.settings.cache_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{step.binary}-{step.version}.log"
        target = binary_path(self.settings, step)
        target.parent.mkdir(parents=True, exist_ok=True)
        builders: dict[str, Callable[[BuildStep, Path, Path], None]] = {
            "kubernetes": self._build_kubernetes,
            "etcd": self._build_etcd,
            "kwok": self._install_module,
            "helm": self._install_module,
            "kind": self._build_kind_checker,
            "prometheus-operator": self._fetch_crd,
            SCHEDULER_PLUGINS: self._build_scheduler_plugins,
            KUEUE: self._install_module,
            TRAINING_OPERATOR: self._install_module,
        }
        builder = self._copy_manifests if step.binary in MODULE_MANIFESTS else None
        with log_path.open("w", encoding="utf-8") as log:
            log.write(f"# building {step.binary} {step.version}\n")
        try:
            (builder or builders[step.component])(step, target, log_path)
        except BuildError:
            raise
        except OSError as err:
            raise BuildError(step.binary, log_path) from err

    def _run(
        self,
        argv: list[str],
        cwd: Path,
        log_path: Path,
        binary: str,
        env: dict[str, str] | None = None,
    ) -> None:
        with log_path.open("a", encoding="utf-8") as log:
            log.write("$ " + " ".join(argv) + "\n")
            log.flush()
            result = subprocess.run(
                argv,
                cwd=cwd,
                env=env or self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if result.returncode != 0:
            raise BuildError(binary, log_path)

    def _source_dir(self, step: BuildStep, asset: str | None) -> Path:
        # Sources are refreshed in place, so a go.sum from an earlier build is kept.
        source = self.settings.cache_dir / "src" / f"{step.component}-{step.version}"
        if asset is None:
            source.mkdir(parents=True, exist_ok=True)
            return source
        files = resources.files("hybrid_lab.devcluster") / "assets" / "go" / asset
        with resources.as_file(files) as packaged:
            shutil.copytree(packaged, source, dirs_exist_ok=True)
        return source

    def _build_kubernetes(self, step: BuildStep, target: Path, log_path: Path) -> None:
        source = self._source_dir(step, "kubernetes")
        if not (source / "go.mod").exists():
            upstream = self._download_go_mod(
                "k8s.io/kubernetes", step.version, log_path, step.binary
            )
            staging = staging_modules(upstream.read_text(encoding="utf-8"))
            (source / "go.mod").write_text(
                wrapper_go_mod(
                    "kubernetes",
                    {"k8s.io/kubernetes": step.version},
                    dict.fromkeys(staging, self.settings.versions.staging),
                ),
                encoding="utf-8",
            )
        ldflags = kubernetes_ldflags(step.version)
        self._go_build(source, f"./cmd/{step.binary}", ldflags, target, log_path, step.binary)

    def _build_scheduler_plugins(self, step: BuildStep, target: Path, log_path: Path) -> None:
        # No Go file of ours: the wrapper only carries the replace directives, and builds
        # the upstream main package from the module cache.
        source = self._source_dir(step, None)
        if not (source / "go.mod").exists():
            upstream = self._download_go_mod(
                SCHEDULER_PLUGINS_MODULE, step.version, log_path, step.binary
            )
            replaces = module_replaces(upstream.read_text(encoding="utf-8"))
            (source / "go.mod").write_text(
                wrapper_go_mod(
                    SCHEDULER_PLUGINS,
                    {SCHEDULER_PLUGINS_MODULE: step.version},
                    replaces_pinned_to(replaces, self.settings.versions),
                ),
                encoding="utf-8",
            )
        ldflags = kubernetes_ldflags(self.settings.versions.kubernetes)
        package = f"{SCHEDULER_PLUGINS_MODULE}/cmd/scheduler"
        self._go_build(source, package, ldflags, target, log_path, step.binary)

    def _copy_manifests(self, step: BuildStep, target: Path, log_path: Path) -> None:
        module, paths = MODULE_MANIFESTS[step.binary]
        directory = self._download_module(module, step.version, log_path, step.binary, "Dir")
        partial = target.with_suffix(".partial")
        shutil.rmtree(partial, ignore_errors=True)
        for path in paths:
            source = directory / path
            files = sorted(source.rglob("*.yaml")) if source.is_dir() else [source]
            for file in files:
                copied = partial / file.relative_to(directory)
                copied.parent.mkdir(parents=True, exist_ok=True)
                # A plain copy: files in the module cache are read-only.
                copied.write_bytes(file.read_bytes())
        partial.replace(target)

    def _build_etcd(self, step: BuildStep, target: Path, log_path: Path) -> None:
        source = self._source_dir(step, "etcd")
        if not (source / "go.mod").exists():
            (source / "go.mod").write_text(
                wrapper_go_mod("etcd", {"go.etcd.io/etcd/server/v3": step.version}, {}),
                encoding="utf-8",
            )
        self._go_build(source, ".", "-s -w", target, log_path, step.binary)

    def _build_kind_checker(self, step: BuildStep, target: Path, log_path: Path) -> None:
        source = self._source_dir(step, "kindcheck")
        if not (source / "go.mod").exists():
            (source / "go.mod").write_text(
                wrapper_go_mod("kindcheck", {"sigs.k8s.io/kind": step.version}, {}),
                encoding="utf-8",
            )
        self._go_build(source, ".", "-s -w", target, log_path, step.binary)

    def _fetch_crd(self, step: BuildStep, target: Path, log_path: Path) -> None:
        module = "github.com/prometheus-operator/prometheus-operator"
        directory = self._download_module(module, step.version, log_path, step.binary, "Dir")
        shutil.copyfile(directory / CRD_DIRECTORY / step.binary, target)

    def _go_build(
        self, source: Path, package: str, ldflags: str, target: Path, log_path: Path, binary: str
    ) -> None:
        partial = target.with_suffix(".partial")
        self._run(
            [self.go, "build", "-trimpath", "-ldflags", ldflags, "-o", str(partial), package],
            source,
            log_path,
            binary,
        )
        partial.replace(target)

    def _install_module(self, step: BuildStep, target: Path, log_path: Path) -> None:
        module = {
            "kwok": "sigs.k8s.io/kwok/cmd/kwok",
            "helm": "helm.sh/helm/v3/cmd/helm",
            KUEUE: f"{KUEUE_MODULE}/cmd/kueue",
            TRAINING_OPERATOR: f"{TRAINING_OPERATOR_MODULE}/cmd/{TRAINING_OPERATOR_BINARY}",
        }
        staging = target.parent / ".install"
        env = {**self.env, "GOBIN": str(staging)}
        # ``go install pkg@version`` builds outside any module, where -mod is not allowed.
        env.pop("GOFLAGS")
        self._run(
            [
                self.go,
                "install",
                "-trimpath",
                "-ldflags",
                "-s -w",
                f"{module[step.component]}@{step.version}",
            ],
            target.parent,
            log_path,
            step.binary,
            env,
        )
        (staging / step.binary).replace(target)
        shutil.rmtree(staging, ignore_errors=True)

    def _download_go_mod(self, module: str, version: str, log_path: Path, binary: str) -> Path:
        return self._download_module(module, version, log_path, binary, "GoMod")

    def _download_module(
        self, module: str, version: str, log_path: Path, binary: str, field: str
    ) -> Path:
        """``go mod download`` one module; the path it reports as ``field`` (GoMod, Dir)."""
        argv = [self.go, "mod", "download", "-json", f"{module}@{version}"]
        result = subprocess.run(argv, env=self.env, capture_output=True, text=True, check=False)
        with log_path.open("a", encoding="utf-8") as log:
            log.write("$ " + " ".join(argv) + "\n" + result.stdout + result.stderr)
        match = re.search(rf'"{field}":\s*"([^"]+)"', result.stdout)
        if result.returncode != 0 or match is None:
            raise BuildError(binary, log_path)
        return Path(match.group(1))


def kubernetes_ldflags(version: str) -> str:
    """Linker flags stamping a Kubernetes ``version`` into component-base, as upstream does."""
    major, minor = version.removeprefix("v").split(".")[:2]
    stamp = "k8s.io/component-base/version"
    return (
        f"-s -w -X {stamp}.gitVersion={version} -X {stamp}.gitMajor={major} "
        f"-X {stamp}.gitMinor={minor} -X {stamp}.gitTreeState=clean"
    )


def _find_go() -> str:
    candidates = [os.environ.get(GO_ENV), shutil.which("go"), DEFAULT_GO]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return candidate
    raise MissingToolError(
        f"the Go toolchain was not found (looked at ${GO_ENV}, PATH, {DEFAULT_GO}); "
        "install Go 1.24 or newer"
    )


def _sumdb_reachable() -> bool:
    try:
        requests.head("https://sum.golang.org/latest", timeout=5)
    except requests.RequestException:
        return False
    return True
