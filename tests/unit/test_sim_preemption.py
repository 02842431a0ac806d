"""Preemption in the simulator: a team below its share takes back a node, the victim
loses the work since its checkpoint and pays the restart overhead, and the results count
it; the scenario block and the command's options that set it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from builders import scenario_doc
from hybrid_policy.policies import build_policy
from hybrid_policy.preemption.model import PreemptionReason
from hybrid_policy.preemption.options import SETTING_KEYS, parse_cost, parse_settings, settings_help
from hybrid_policy.report.summary import summarise
from hybrid_policy.report.table import preemption_table
from hybrid_policy.resources import GPU
from hybrid_policy.scenario.fields import ScenarioError
from hybrid_policy.scenario.jobs import Job, build_nodes
from hybrid_policy.scenario.loader import load_scenario, parse_scenario
from hybrid_policy.scenario.model import NodeGroup, PreemptionCostSpec
from hybrid_policy.scenario.workload import Workload
from hybrid_policy.sim.engine import Simulation
from hybrid_policy.sim.result import RunResult

COST = PreemptionCostSpec(opt_in=1.0, checkpoint_interval_s=300.0, restart_overhead_s=60.0)


def _job(job_id: int, submit_s: float, runtime_s: float, namespace: str) -> Job:
    requests = {GPU: 8, "cpu": 8000, "memory": 2**34}
    return Job(job_id, submit_s, runtime_s, requests, namespace, "nlp", {GPU: 0.8})


def _run(path: object, cost: PreemptionCostSpec, preempt: str | None) -> RunResult:
    """team-a fills both nodes at 0 for an hour; team-b (weight 2) arrives at 600 s."""
    nodes = (NodeGroup(count=2, gpus=8, cpu=64, memory_gib=512, performance=(100.0, 100.0)),)
    scenario = dataclasses.replace(load_scenario(str(path)), nodes=nodes, preemption=cost)
    jobs = [_job(0, 0.0, 3600.0, "team-a"), _job(1, 0.0, 3600.0, "team-a")]
    jobs.append(_job(2, 600.0, 600.0, "team-b"))
    workload = Workload(scenario, "heavy", 0, build_nodes(scenario), jobs, 3600.0)
    policy = build_policy("fair-easy", np.random.default_rng(0))
    if preempt is not None:
        policy = dataclasses.replace(policy, preemption=parse_settings(preempt))
    return Simulation(workload, policy, 0).run()


def test_a_team_below_its_share_takes_a_node_back_and_the_victim_pays(
    tiny_scenario_path: object,
) -> None:
    result = _run(tiny_scenario_path, COST, "on")
    # team-b may trigger once it has waited 60 s; one of team-a's jobs (both lose the
    # same: the node's name decides) loses the 60 s since its checkpoint at 600 s, owes
    # 60 s of restart, and starts again when team-b's job ends.
    assert result.start_s[2] == pytest.approx(660.0)
    assert result.end_s[2] == pytest.approx(1260.0)
    assert sorted(result.stops_per_job[:2]) == [0, 1] and result.stops_per_job[2] == 0
    victim, other = (0, 1) if result.stops_per_job[0] else (1, 0)
    assert result.lost_gpu_s == pytest.approx(60.0 * 8)
    assert result.end_s[victim] == pytest.approx(1260.0 + 3600.0 - 600.0 + 60.0)
    assert result.end_s[other] == pytest.approx(3600.0)
    summary = summarise(result)
    assert summary.preemptions_per_job == pytest.approx(1 / 3)
    assert summary.most_preemptions == 1
    assert summary.preemption_counts == {"0": 2, "1": 1}
    assert "lost GPU-h" in preemption_table([summary])


def test_without_preemption_or_opted_in_jobs_nobody_is_stopped(tiny_scenario_path: object) -> None:
    for result in (
        _run(tiny_scenario_path, COST, None),
        _run(tiny_scenario_path, dataclasses.replace(COST, opt_in=0.0), "on"),
    ):
        assert result.start_s[2] == pytest.approx(3600.0)
        assert not result.stops_per_job.any() and result.lost_gpu_s == 0.0
        assert preemption_table([summarise(result)]) == ""


def test_no_checkpoint_loses_everything_and_a_short_min_runtime_waits(
    tiny_scenario_path: object,
) -> None:
    none = _run(tiny_scenario_path, dataclasses.replace(COST, checkpoint_interval_s=None), "on")
    assert none.lost_gpu_s == pytest.approx(660.0 * 8)
    late = _run(tiny_scenario_path, COST, "min_runtime_s=900")
    assert late.start_s[2] > 660.0  # the victims were too young at 660 s
    assert late.stops_per_job.sum() == 1


def test_the_options_name_a_bad_key_or_value() -> None:
    assert parse_settings("reasons=reclaim,max_plans=1").max_plans == 1
    assert parse_settings("max_preemptions=1").rules.max_preemptions == 1
    for text, problem in (
        ("reasons=foo", "reasons='foo'"),
        ("max_plans=x", "max_plans='x'"),
        ("trigger_delay_s=-1", ">= 0"),
        ("speed=3", "KEY one of"),
    ):
        with pytest.raises(ValueError, match=problem):
            parse_settings(text)
    spec = parse_cost("checkpoint_interval_minutes=none,opt_in=0.5", PreemptionCostSpec())
    assert spec.checkpoint_interval_s is None and spec.opt_in == 0.5


def test_the_help_names_every_key_and_reason_the_options_take() -> None:
    text = settings_help()
    listed = [part.split(" ")[0] for part in text.split(", ")]
    assert [k for k in SETTING_KEYS if k not in listed] == []
    assert all(reason.value in text for reason in PreemptionReason)
    assert "default priority+reclaim" in text
    with pytest.raises(ValueError, match="between 0 and 1"):
        parse_cost("opt_in=1.5", PreemptionCostSpec())


def test_the_scenario_block_is_read_and_checked() -> None:
    doc = scenario_doc()
    block = {"opt_in": 0.5, "checkpoint_interval_minutes": 5, "restart_overhead_s": 60}
    scenario = parse_scenario({**doc, "preemption": block}, "test.yaml")
    assert scenario.preemption == PreemptionCostSpec(0.5, 300.0, 60.0)
    never = parse_scenario({**doc, "preemption": {"checkpoint_interval_minutes": "none"}}, "t")
    assert never.preemption.checkpoint_interval_s is None
    assert parse_scenario(doc, "t").preemption == PreemptionCostSpec()
    for bad, field in (
        ({"opt_in": 2}, "preemption.opt_in"),
        ({"checkpoint_interval_minutes": "often"}, "preemption.checkpoint_interval_minutes"),
        ({"restart": 1}, "preemption"),
    ):
        with pytest.raises(ScenarioError, match=field.replace(".", r"\.")):
            parse_scenario({**doc, "preemption": bad}, "test.yaml")
