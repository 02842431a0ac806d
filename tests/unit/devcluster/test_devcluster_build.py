"""The Go wrapper modules and what a failed build tells the user."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybrid_lab.devcluster import build, gomod
from hybrid_lab.devcluster.errors import BuildError, MissingToolError
from hybrid_lab.devcluster.settings import ClusterSettings

UPSTREAM = """module k8s.io/kubernetes

require (
\tk8s.io/api v0.0.0
\tgithub.com/x/y v1.0.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tgithub.com/x/y => github.com/x/y v1.0.1
)
"""


def test_staging_modules_come_from_the_replace_block() -> None:
    assert gomod.staging_modules(UPSTREAM) == ["k8s.io/api", "k8s.io/client-go"]


def test_wrapper_go_mod_pins_every_staging_module() -> None:
    text = gomod.wrapper_go_mod(
        "kubernetes", {"k8s.io/kubernetes": "v1.34.4"}, {"k8s.io/api": "v0.34.4"}
    )
    assert "require k8s.io/kubernetes v1.34.4" in text
    assert "\tk8s.io/api => k8s.io/api v0.34.4" in text


def test_staging_version_follows_kubernetes_version() -> None:
    assert ClusterSettings().versions.staging == "v0." + ClusterSettings().versions.kubernetes[3:]


def test_missing_steps_lists_only_absent_binaries(tmp_path: Path) -> None:
    settings = ClusterSettings(cache_dir=tmp_path)
    assert len(build.missing_steps(settings)) == 8
    present = build.binary_path(settings, build.build_steps(settings)[0])
    present.parent.mkdir(parents=True)
    present.write_text("")
    assert build.missing_steps(settings)[0].binary == "kube-controller-manager"


def test_failed_build_names_its_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_go = tmp_path / "go"
    fake_go.write_text("#!/bin/sh\necho 'compile error: something broke' >&2\nexit 1\n")
    fake_go.chmod(0o755)
    monkeypatch.setenv(build.GO_ENV, str(fake_go))
    monkeypatch.setenv("GOSUMDB", "off")
    settings = ClusterSettings(cache_dir=tmp_path / "cache")
    with pytest.raises(BuildError) as caught:
        build.build_missing(settings, show_progress=False)
    log = caught.value.log_path
    assert str(log) in str(caught.value)
    assert "building kube-apiserver failed" in str(caught.value)
    assert "compile error: something broke" in log.read_text()
    assert not build.binary_path(settings, build.build_steps(settings)[0]).exists()


def test_missing_go_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(build.GO_ENV, str(tmp_path / "no-go"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(build, "DEFAULT_GO", str(tmp_path / "also-no-go"))
    with pytest.raises(MissingToolError, match="Go toolchain was not found"):
        build.GoBuilder(ClusterSettings(cache_dir=tmp_path))
