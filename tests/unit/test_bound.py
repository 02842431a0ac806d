"""The completion-time lower bounds: a case worked by hand, and below every simulated policy."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from hybrid_lab.matrix import run_one
from hybrid_operator.cli import main
from hybrid_policy.domain import NodeInfo
from hybrid_policy.report.bound import capacity_bound
from hybrid_policy.resources import CPU, GIB, GPU, MEMORY
from hybrid_policy.scenario.jobs import Job
from hybrid_policy.scenario.loader import load_scenario
from hybrid_policy.scenario.workload import Workload, prepare_workload

HOUR = 3600.0


def _node(name: str, performance: float) -> NodeInfo:
    return NodeInfo(name, {GPU: 1, CPU: 8000, MEMORY: 64 * GIB}, performance=performance)


def _job(i: int, submit_s: float) -> Job:
    requests = {GPU: 1, CPU: 1000, MEMORY: GIB}
    return Job(i, submit_s, HOUR, requests, "team-a", "image-classification", {GPU: 1.0})


def test_slow_node_share_is_paid_when_the_fast_node_is_full() -> None:
    # One fast GPU (1 job an hour) and one half-speed GPU (1 job every 2 hours) take
    # 1.5 jobs an hour between them, which is the arrival rate: in the long run two jobs
    # of three run fast (1 h) and one runs slow (2 h), 80 minutes on average.
    jobs = [_job(i, i * HOUR / 1.5) for i in range(600)]
    nodes = [_node("fast", 100.0), _node("slow", 50.0)]
    workload = Workload(load_scenario("seed-paper"), "medium", 0, nodes, jobs, 400 * HOUR)
    bound = capacity_bound(workload)
    assert bound.fastest_node_s == pytest.approx(HOUR)
    assert 78 * 60 < bound.capacity_s <= 80 * 60 + 1e-6


def test_no_slow_node_needed_below_the_fast_nodes_capacity() -> None:
    jobs = [_job(i, i * 2 * HOUR) for i in range(50)]
    nodes = [_node("fast", 100.0), _node("slow", 50.0)]
    workload = Workload(load_scenario("seed-paper"), "light", 0, nodes, jobs, 100 * HOUR)
    assert capacity_bound(workload).capacity_s == pytest.approx(HOUR, rel=1e-6)


@pytest.mark.parametrize("policy", ["kube-default", "binpack", "srtf-oracle"])
def test_bound_is_below_what_policies_reach(policy: str) -> None:
    scenario = dataclasses.replace(load_scenario("seed-paper"), horizon_hours=6.0)
    workload = prepare_workload(scenario, "heavy", 3)
    bound = capacity_bound(workload)
    record = run_one(workload, policy)
    assert bound.fastest_node_s <= bound.capacity_s <= record.jct_s.mean


def test_bound_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "b.json"
    argv = ["bound", "--workload", "light", "--seeds", "1", "--json", str(out), "--quiet"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "| light | 1 |" in text
    bounds = json.loads(out.read_text())["bounds"]
    assert bounds[0]["capacity_s"] >= bounds[0]["fastest_node_s"] > 0


def test_bound_command_names_a_bad_level(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bound", "--workload", "extreme", "--quiet"]) == 2
    assert "no level 'extreme'" in capsys.readouterr().err
