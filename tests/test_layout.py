"""The source layout must not shadow the standard library."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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
