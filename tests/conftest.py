"""Shared fixtures, and the test tiers: each folder under tests/ is one tier.

``tests/unit`` runs anywhere the project is installed; ``tests/chart`` (marker ``chart``)
needs helm; ``tests/e2e`` (marker ``e2e``) needs the dev cluster. ``pytest -m "not e2e
and not chart"`` runs the unit tier alone; the README's test command runs all three.
"""

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
TIERS = {"chart": pytest.mark.chart, "e2e": pytest.mark.e2e}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = Path(str(item.path)).relative_to(Path(__file__).parent).parts[0]
        if tier in TIERS:
            item.add_marker(TIERS[tier])


@pytest.fixture
def tiny_scenario_path() -> Path:
    return DATA / "tiny.yaml"
