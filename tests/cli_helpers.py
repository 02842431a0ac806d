"""Helpers for the command-line tests: a refused command's one line, and a guard that
refused commands start no work."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybrid_operator.cli import main

TINY = str(Path(__file__).parent / "data" / "tiny.yaml")


def refused(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """The one stderr line of a command refused for its input (exit 2, no output)."""
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    return err.strip()


@pytest.fixture
def nothing_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Training, dev clusters and builds fail the test if a command starts them."""

    def forbidden(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("bad input must be refused before any work starts")

    from hybrid_lab import training
    from hybrid_lab.devcluster import build, cluster

    monkeypatch.setattr(training, "train", forbidden)
    monkeypatch.setattr(cluster, "running_state", forbidden)
    monkeypatch.setattr(cluster, "up", forbidden)
    monkeypatch.setattr(build, "build_missing", forbidden)
