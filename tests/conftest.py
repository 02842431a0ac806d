"""Shared fixtures."""

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture
def tiny_scenario_path() -> Path:
    return DATA / "tiny.yaml"
