from pathlib import Path

import pytest
import yaml

from hybrid_policy.scenario.fields import ScenarioError
from hybrid_policy.scenario.loader import load_scenario

TINY = Path(__file__).parents[1] / "data" / "tiny.yaml"


def _write(
    tmp_path: Path, change: dict[str, object] | None = None, drop: str | None = None
) -> Path:
    data = yaml.safe_load(TINY.read_text())
    if drop:
        del data[drop]
    for key, value in (change or {}).items():
        target = data
        parts = key.split(".")
        for part in parts[:-1]:
            target = target[int(part)] if part.isdigit() else target[part]
        target[parts[-1]] = value
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_tiny_scenario_loads() -> None:
    scenario = load_scenario(str(TINY))
    assert scenario.name == "tiny"
    assert scenario.total_gpus == 24
    assert [t.name for t in scenario.task_types] == ["image-classification", "nlp"]


@pytest.mark.parametrize(
    ("change", "drop", "message"),
    [
        (None, "nodes", "nodes: is required"),
        ({"nodes.0.gpus": -1}, None, "nodes[0].gpus: must be >= 0 (got -1)"),
        ({"nodes.0.cpu": "lots"}, None, "nodes[0].cpu: must be a number (got 'lots')"),
        ({"nodes.0.count": 1.5}, None, "nodes[0].count: must be a whole number (got 1.5)"),
        ({"nodes.0.performance": [90, 50]}, None, "nodes[0].performance: low must not exceed high"),
        ({"horizon_hours": -3}, None, "horizon_hours: must be >= 0 (got -3)"),
        ({"namespaces.0.weight": 0}, None, "namespaces[0].weight: must be > 0 (got 0)"),
        (
            {"namespaces.0.job_share": 0.9},
            None,
            "namespaces[*].job_share: must add up to 1 (got 1.2)",
        ),
        ({"task_types.0.gpus": {1: 0.5}}, None, "task_types[0].gpus: must add up to 1 (got 0.5)"),
        (
            {"task_types.0.runtime_minutes": {"median": 9, "mean": 8}},
            None,
            "task_types[0].runtime_minutes.mean: must be >= 9 (got 8)",
        ),
        ({"workloads": {"heavy": "high"}}, None, "workloads.heavy: must be a number (got 'high')"),
        ({"workload": {"heavy": 1}}, None, "workload: unknown field"),
        (
            {"trace": {"path": "x.csv", "format": "parquet"}},
            None,
            "trace.format: must be 'canonical' or 'philly'",
        ),
    ],
)
def test_bad_scenarios_name_file_field_and_value(
    tmp_path: Path, change: dict[str, object] | None, drop: str | None, message: str
) -> None:
    path = _write(tmp_path, change, drop)
    with pytest.raises(ScenarioError) as err:
        load_scenario(str(path))
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_unknown_scenario_name_lists_built_ins() -> None:
    with pytest.raises(ScenarioError, match="built-in scenarios: seed-paper"):
        load_scenario("seed-papr")


def test_invalid_yaml_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("nodes: [\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(str(path))
