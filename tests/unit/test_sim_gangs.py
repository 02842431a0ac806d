"""Gang jobs in the simulator: generated from the scenario, started only whole, paced by
their slowest node; pod-by-pod policies hold GPUs idle (and can deadlock) where gang-aware
ones never do."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from builders import scenario_doc
from hybrid_lab.matrix import run_one
from hybrid_policy.policies import build_policy
from hybrid_policy.report.summary import summarise
from hybrid_policy.report.table import gang_table
from hybrid_policy.resources import GPU
from hybrid_policy.scenario.fields import ScenarioError
from hybrid_policy.scenario.jobs import Job, build_nodes, generate_jobs
from hybrid_policy.scenario.loader import load_scenario, parse_scenario
from hybrid_policy.scenario.model import GangSpec, NodeGroup, Scenario
from hybrid_policy.scenario.workload import Workload, prepare_workload
from hybrid_policy.sim.engine import Simulation

GANGS = GangSpec(share=0.2, members={2: 0.5, 4: 0.5}, gpus_per_pod=8)


def _scenario(path: object, **changes: object) -> Scenario:
    return dataclasses.replace(load_scenario(str(path)), **changes)  # type: ignore[arg-type]


def _with_gangs(path: object) -> Scenario:
    nodes = (NodeGroup(count=6, gpus=8, cpu=64, memory_gib=512, performance=(60.0, 100.0)),)
    return _scenario(path, nodes=nodes, gangs=GANGS)


def test_a_scenario_without_gangs_draws_what_it_did(tiny_scenario_path: object) -> None:
    plain = _scenario(tiny_scenario_path)
    none = dataclasses.replace(plain, gangs=GangSpec(share=0.0, members={2: 1.0}))
    assert generate_jobs(plain, "heavy", 3) == generate_jobs(none, "heavy", 3)
    assert all(job.members == 1 for job in generate_jobs(plain, "heavy", 3))


def test_gang_jobs_are_whole_node_pods_in_the_share_asked(tiny_scenario_path: object) -> None:
    scenario = dataclasses.replace(_with_gangs(tiny_scenario_path), horizon_hours=200.0)
    jobs = generate_jobs(scenario, "heavy", 1)
    gangs = [job for job in jobs if job.is_gang]
    assert len(gangs) / len(jobs) == pytest.approx(0.2, abs=0.03)
    assert {job.members for job in gangs} == {2, 4}
    assert all(job.requests[GPU] == 8 and job.gpus == 8 * job.members for job in gangs)
    # The arrival rate counts a gang's GPUs: the offered load stays the level asked.
    record = run_one(prepare_workload(scenario, "heavy", 1), "binpack-gang")
    assert record.offered_load == pytest.approx(0.95, abs=0.08)
    assert record.gang_jobs == len(gangs)


def test_the_scenario_file_names_a_bad_gang_field() -> None:
    doc = scenario_doc()
    for gangs, field in (
        ({"share": 0.2, "members": {1: 1.0}}, "gangs.members.1"),
        ({"share": 1.5, "members": {2: 1.0}}, "gangs.share"),
        ({"share": 0.2, "members": {2: 0.5}}, "gangs.members"),
        ({"share": 0.2, "members": {2: 1.0}, "width": 8}, "gangs"),
    ):
        with pytest.raises(ScenarioError, match=field.replace(".", r"\.")):
            parse_scenario({**doc, "gangs": gangs}, "test.yaml")


def _workload(path: object, jobs: list[Job], performance: tuple[float, ...]) -> Workload:
    groups = tuple(
        NodeGroup(count=1, gpus=8, cpu=64, memory_gib=512, performance=(p, p)) for p in performance
    )
    scenario = _scenario(path, nodes=groups)
    return Workload(scenario, "heavy", 0, build_nodes(scenario), jobs, 3600.0)


def _gang_job(job_id: int, members: int, runtime_s: float, namespace: str = "team-a") -> Job:
    requests = {GPU: 8, "cpu": 8000, "memory": 2**34}
    return Job(job_id, 0.0, runtime_s, requests, namespace, "nlp", {GPU: 0.8}, members)


def test_a_gang_runs_at_the_pace_of_its_slowest_node(tiny_scenario_path: object) -> None:
    workload = _workload(tiny_scenario_path, [_gang_job(0, 2, 100.0)], (100.0, 50.0))
    result = Simulation(workload, build_policy("binpack-gang", np.random.default_rng(0)), 0).run()
    assert result.start_s[0] == 0.0
    assert result.end_s[0] == pytest.approx(200.0)
    assert result.idle_gang_gpu_s == 0.0


@pytest.mark.parametrize("policy", ["binpack-gang", "hybrid", "hybrid-reserve", "srtf-oracle"])
def test_two_gangs_too_wide_to_share_the_cluster_both_finish(
    tiny_scenario_path: object, policy: str
) -> None:
    # Each needs 3 of the 4 nodes: placed whole, one after the other.
    jobs = [_gang_job(0, 3, 600.0), _gang_job(1, 3, 600.0, namespace="team-b")]
    workload = _workload(tiny_scenario_path, jobs, (100.0,) * 4)
    result = Simulation(workload, build_policy(policy, np.random.default_rng(0)), 0).run()
    assert not np.isnan(result.end_s).any()
    assert sorted(result.end_s) == pytest.approx([600.0, 1200.0])
    assert result.idle_gang_gpu_s == 0.0


def test_pod_by_pod_placement_holds_a_partial_gangs_gpus_idle(
    tiny_scenario_path: object,
) -> None:
    # The first gang takes 3 nodes, the second's first pod the last one, where it waits
    # (8 GPUs doing nothing) until the first gang ends and its other pods can follow.
    jobs = [_gang_job(0, 3, 600.0), _gang_job(1, 3, 600.0, namespace="team-b")]
    workload = _workload(tiny_scenario_path, jobs, (100.0,) * 4)
    result = Simulation(workload, build_policy("kube-default", np.random.default_rng(0)), 0).run()
    assert list(result.start_s) == [0.0, 600.0]
    assert result.idle_gang_gpu_s == pytest.approx(8 * 600.0)
    assert summarise(result).idle_gang_gpu_hours == pytest.approx(8 * 600.0 / 3600.0)


def _job(job_id: int, submit_s: float, runtime_s: float, gpus: int, members: int = 1) -> Job:
    requests = {GPU: gpus, "cpu": 1000 * gpus, "memory": 2**32 * gpus}
    return Job(job_id, submit_s, runtime_s, requests, "team-a", "nlp", {GPU: 0.8}, members)


def test_pod_by_pod_placement_can_deadlock_two_gangs(tiny_scenario_path: object) -> None:
    # Two 4-GPU pods share one node (binpack); the 8-GPU gang takes the two free nodes and
    # waits for a whole node; the 4-GPU gang takes the halves the single pods free. Each
    # then holds what the other needs: neither ever starts.
    jobs = [
        _job(0, 0.0, 10_000.0, 4),
        _job(1, 0.0, 100.0, 4),
        _job(2, 1.0, 600.0, 8, members=3),
        _job(3, 2.0, 600.0, 4, members=3),
    ]
    workload = _workload(tiny_scenario_path, jobs, (100.0,) * 3)
    stuck = Simulation(workload, build_policy("binpack", np.random.default_rng(0)), 0).run()
    assert list(np.isnan(stuck.end_s)) == [False, False, True, True]
    assert (stuck.partial_gangs, stuck.deadlocked_gangs) == (2, 2)
    summary = summarise(stuck)
    assert (summary.deadlocked_gangs, summary.never_finished) == (2, 2)
    whole = Simulation(workload, build_policy("binpack-gang", np.random.default_rng(0)), 0).run()
    assert not np.isnan(whole.end_s).any()
    assert (whole.partial_gangs, whole.deadlocked_gangs) == (0, 0)


def test_only_pod_by_pod_policies_hold_gang_gpus_idle(tiny_scenario_path: object) -> None:
    workload = prepare_workload(_with_gangs(tiny_scenario_path), "heavy", 4)
    aware = run_one(workload, "binpack-gang")
    assert aware.gang_jobs > 10
    assert aware.idle_gang_gpu_hours == 0.0
    assert aware.completed == aware.jobs
    plain = run_one(prepare_workload(_with_gangs(tiny_scenario_path), "heavy", 4), "binpack")
    assert plain.idle_gang_gpu_hours > 0.0
    table = gang_table([aware, plain])
    assert "idle gang GPU-h" in table
    (aware_row,) = [line for line in table.splitlines() if "binpack-gang" in line]
    assert aware_row.split()[-3:] == [str(aware.gang_jobs), "0", "0.0"]
    assert (
        gang_table(
            [run_one(prepare_workload(_scenario(tiny_scenario_path), "heavy", 4), "binpack")]
        )
        == ""
    )
