"""The node list of ``dev-cluster up``: seed-paper, --nodes, and the scenario file reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybrid_lab.devcluster.errors import ScenarioError
from hybrid_lab.devcluster.scenario import resolve


def test_seed_paper_is_ten_eight_gpu_nodes_with_seeded_performance() -> None:
    nodes = resolve("seed-paper", None)
    assert len(nodes) == 10
    assert {(n.gpus, n.cpu, n.memory_gib) for n in nodes} == {(8, 64, 512)}
    assert all(50 <= n.performance <= 100 for n in nodes)
    assert len({n.name for n in nodes}) == 10
    assert resolve("seed-paper", None) == nodes


def test_nodes_flag_gives_that_many_seed_paper_shaped_nodes() -> None:
    nodes = resolve(None, 1000)
    assert len(nodes) == 1000
    assert nodes[0].name == "node-000"
    assert nodes[-1].name == "node-999"


def test_nodes_must_be_positive() -> None:
    with pytest.raises(ScenarioError, match="--nodes must be at least 1"):
        resolve(None, 0)


def test_scenario_file_gives_the_simulators_nodes(tiny_scenario_path: Path) -> None:
    from hybrid_policy.scenario.jobs import build_nodes
    from hybrid_policy.scenario.loader import load_scenario

    nodes = resolve(str(tiny_scenario_path), None)
    simulated = build_nodes(load_scenario(str(tiny_scenario_path)))
    assert [(n.name, n.gpus, n.performance) for n in nodes] == [
        (s.name, s.allocatable["nvidia.com/gpu"], round(s.performance)) for s in simulated
    ]
    assert [(n.gpus, n.cpu, n.memory_gib) for n in nodes] == [
        (8, 64, 512),
        (8, 64, 512),
        (4, 32, 256),
        (4, 32, 256),
    ]


def test_bad_scenario_file_is_named_with_field_and_value(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        (Path(__file__).parents[2] / "data" / "tiny.yaml")
        .read_text()
        .replace("count: 2, gpus: 8", "count: 2, gpus: -8")
    )
    with pytest.raises(ScenarioError) as caught:
        resolve(str(path), None)
    assert str(caught.value) == f"{path}: nodes[0].gpus: must be >= 0 (got -8)"


def test_missing_scenario_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no such scenario file"):
        resolve(str(tmp_path / "nope.yaml"), None)
