"""The source layout must not shadow the standard library."""

import argparse
import builtins
import re
import shutil
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_stdlib_operator_is_not_shadowed_from_repo_root() -> None:
    code = "import operator, asyncio; print(operator.__file__); operator.itemgetter(0)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "hybrid" not in out.stdout
    assert Path(out.stdout.strip()).parent != ROOT / "operator"


def test_source_roots_have_no_init() -> None:
    assert not (ROOT / "operator" / "__init__.py").exists()
    assert not (ROOT / "policy" / "__init__.py").exists()


def test_packages_import_under_distinct_names() -> None:
    import hybrid_operator
    import hybrid_policy

    assert Path(hybrid_operator.__file__).parent == ROOT / "operator" / "hybrid_operator"
    assert Path(hybrid_policy.__file__).parent == ROOT / "policy" / "hybrid_policy"


def test_tooling_is_its_own_source_root() -> None:
    import hybrid_lab

    assert Path(hybrid_lab.__file__).parent == ROOT / "lab" / "hybrid_lab"
    assert not (ROOT / "lab" / "__init__.py").exists()
    # The operator holds no Go sources and none of the tooling's modules.
    assert not list((ROOT / "operator").rglob("*.go"))
    for gone in ("devcluster", "clusterbench", "demo.py", "manifests.py", "launch.py"):
        assert not (ROOT / "operator" / "hybrid_operator" / gone).exists(), gone


def _image_wheel_files(tmp_path: Path) -> list[str]:
    """The files of the wheel built from what the Dockerfile copies into the image."""
    from hatchling.builders.wheel import WheelBuilder

    copies = re.findall(r"^COPY (?!--from)(.+) \S+$", (ROOT / "Dockerfile").read_text(), re.M)
    names = [name for line in copies for name in line.split()]
    assert set(names) == {"pyproject.toml", "README.md", "policy", "operator"}
    for name in names:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, tmp_path / name)
    builder = WheelBuilder(str(tmp_path))
    return [str(Path(f.path).relative_to(tmp_path)) for f in builder.recurse_included_files()]


def test_image_carries_neither_the_tooling_nor_go_sources(tmp_path: Path) -> None:
    files = _image_wheel_files(tmp_path)
    assert any(f.startswith("operator/hybrid_operator/") for f in files)
    assert any(f.startswith("policy/hybrid_policy/") for f in files)
    assert not [f for f in files if f.startswith("lab/") or f.endswith(".go")]


def _closure(requirements: list[str]) -> set[str]:
    """Every distribution that ``requirements`` install, without extras, as installed here."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            todo.extend(Requirement(r) for r in distribution(name).requires or [])
        except PackageNotFoundError:
            continue
    return seen


def test_operator_install_brings_no_plotting_or_progress_bars() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = _closure(project["dependencies"])
    assert "kopf" in runtime and "torch" in runtime
    assert "matplotlib" not in runtime
    assert "tqdm" not in runtime
    lab = _closure(project["optional-dependencies"]["lab"])
    assert "matplotlib" in lab


def test_cli_without_the_tooling_offers_run_and_explain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hybrid_operator import cli

    # The entry point is still declared, but its package is missing, as in the image.
    real_import = builtins.__import__

    def no_lab(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("hybrid_lab"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    for module in [m for m in sys.modules if m.startswith("hybrid_lab")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setattr(builtins, "__import__", no_lab)
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(commands.choices) == {"run", "explain"}


def test_cli_with_the_tooling_offers_every_command() -> None:
    from hybrid_operator import cli

    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert {"run", "explain", "simulate", "train", "dev-cluster", "cluster-bench"} <= set(
        commands.choices
    )


def test_test_modules_have_distinct_names() -> None:
    # Test folders are not packages: pytest imports each test module by its file name, so
    # two with one name in different tiers cannot be collected in one run.
    names = Counter(path.name for path in (ROOT / "tests").rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
