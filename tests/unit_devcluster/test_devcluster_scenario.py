"""The node list of ``dev-cluster up``: seed-paper, --nodes, and the scenario file reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybrid_operator.devcluster.errors import ScenarioError
from hybrid_operator.devcluster.scenario import read_node_groups, resolve


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
    assert nodes[0].name == "kwok-node-000"
    assert nodes[-1].name == "kwok-node-999"


def test_nodes_must_be_positive() -> None:
    with pytest.raises(ScenarioError, match="--nodes must be at least 1"):
        resolve(None, 0)


def test_scenario_file_groups_expand_in_order(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "seed: 3\nnodes:\n"
        "  - {count: 2, gpus: 4, cpu: 32, memory_gib: 256, performance: [60, 60]}\n"
        "  - {count: 1, cpu: 16, memory_gib: 64}\n"
    )
    nodes = resolve(str(path), None)
    assert [(n.gpus, n.cpu, n.memory_gib, n.performance) for n in nodes] == [
        (4, 32, 256, 60), (4, 32, 256, 60), (0, 16, 64, 100)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nodes: []", "field 'nodes' must be a non-empty list"),
        ("- 1", "expected a mapping"),
        ("nodes: [{count: 0, cpu: 1, memory_gib: 1}]", r"nodes\[0\].count: expected an integer"),
        ("nodes: [{count: 1, memory_gib: 1}]", r"nodes\[0\]: missing field 'cpu'"),
        ("nodes: [{count: 1, cpu: 1, memory_gib: 1, gpu: 8}]", "unknown field 'gpu'"),
        ("nodes: [{count: 1, cpu: x, memory_gib: 1}]", r"nodes\[0\].cpu: .* got 'x'"),
        ("nodes: [{count: 1, cpu: 1, memory_gib: 1, performance: [9, 2]}]",
         r"nodes\[0\].performance: .* got \[9, 2\]"),
        ("seed: abc\nnodes: [{count: 1, cpu: 1, memory_gib: 1}]", "field 'seed'"),
        ("nodes: [", "not valid YAML"),
    ],
)
def test_bad_scenario_files_name_file_field_and_value(tmp_path: Path, text: str,
                                                      message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=message) as caught:
        read_node_groups(path)
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_scenario_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read scenario file"):
        resolve(str(tmp_path / "nope.yaml"), None)
