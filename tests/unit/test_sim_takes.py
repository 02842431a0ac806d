"""The takes a simulation run counts (per ordered pair of teams, back and forth, team
reversals and those at once), their place in the records and the preemption table, and
the bursts of ``scenarios/ping-pong.yaml``."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from builders import scenario_doc
from hybrid_lab.commands.simulate_cmd import _finite
from hybrid_policy.policies import build_policy
from hybrid_policy.preemption.options import parse_settings
from hybrid_policy.report.record import RecordError, RunSummary
from hybrid_policy.report.summary import summarise
from hybrid_policy.report.table import preemption_table
from hybrid_policy.resources import GPU
from hybrid_policy.scenario.fields import ScenarioError
from hybrid_policy.scenario.loader import load_scenario, parse_scenario
from hybrid_policy.scenario.model import BurstSpec
from hybrid_policy.scenario.workload import prepare_workload
from hybrid_policy.sim.engine import Simulation
from hybrid_policy.sim.takes import TakeLedger

PING_PONG = Path(__file__).parents[2] / "scenarios" / "ping-pong.yaml"
A, B = "team-a", "team-b"


def _ledger() -> TakeLedger:
    """Jobs 0-2 of team-a, 3-5 of team-b."""
    return TakeLedger([A, A, A, B, B, B])


def test_the_ledger_says_whom_a_running_job_took_from_and_who_is_owed() -> None:
    ledger = _ledger()
    ledger.took(B, placed=[3], stopped=[0, 4], now_s=100.0)  # team-b also stops its own
    ledger.started(3)
    assert ledger.took_from(3) == frozenset({A, B}) and ledger.took_from(1) == frozenset()
    assert ledger.owed() == {A: frozenset({B})}  # within a team nobody is owed
    ledger.took(A, placed=[1], stopped=[3], now_s=900.0)
    assert ledger.took_from(3) == frozenset()  # stopped since
    assert ledger.owed() == {A: frozenset({B}), B: frozenset({A})}
    ledger.started(0)
    assert ledger.owed() == {B: frozenset({A})}


def test_a_take_of_the_job_that_took_from_the_team_is_back_and_forth() -> None:
    ledger = _ledger()
    ledger.took(B, placed=[3], stopped=[0], now_s=100.0)
    ledger.started(3)
    ledger.moved()
    ledger.took(A, placed=[1], stopped=[4], now_s=200.0)  # not the job that took
    ledger.took(A, placed=[0], stopped=[3], now_s=700.0)
    tally = ledger.tally()
    assert tally.by_pair == {"team-a->team-b": 2, "team-b->team-a": 1}
    assert (tally.back_and_forth, tally.shortest_gap_s) == (1, 600.0)


def test_a_job_stopped_since_its_take_is_no_longer_back_and_forth() -> None:
    ledger = _ledger()
    ledger.took(B, placed=[3], stopped=[0], now_s=100.0)
    ledger.took(B, placed=[5], stopped=[3], now_s=400.0)  # within the team
    ledger.started(3)
    ledger.took(A, placed=[1], stopped=[3], now_s=900.0)
    tally = ledger.tally()
    assert tally.back_and_forth == 0 and math.isnan(tally.shortest_gap_s)
    assert tally.by_pair["team-b->team-b"] == 1


def test_a_take_while_the_other_teams_victim_waits_is_a_reversal() -> None:
    ledger = _ledger()
    ledger.took(B, placed=[3], stopped=[0], now_s=100.0)
    ledger.took(A, placed=[1], stopped=[4], now_s=100.0)  # nothing moved between
    ledger.moved()
    ledger.took(A, placed=[2], stopped=[5], now_s=300.0)  # job 0 still waits
    tally = ledger.tally()
    assert (tally.reversals, tally.reversals_at_once) == (2, 1)


def test_a_victim_that_ran_again_makes_no_reversal() -> None:
    ledger = _ledger()
    ledger.took(B, placed=[3], stopped=[0], now_s=100.0)
    ledger.started(0)
    ledger.took(A, placed=[1], stopped=[4], now_s=100.0)
    ledger.took(B, placed=[5], stopped=[3], now_s=100.0)  # within the team
    assert ledger.tally().reversals == 0
    assert ledger.tally().total == 3


def test_a_run_counts_its_take_per_pair_and_the_record_keeps_it(tmp_path: Path) -> None:
    scenario = load_scenario(str(PING_PONG))
    workload = prepare_workload(scenario, "flood", 1)
    policy = build_policy("fair-easy", np.random.default_rng(0))
    policy = dataclasses.replace(policy, preemption=parse_settings("on"))
    result = Simulation(workload, policy, 1).run()
    takes = result.takes
    assert takes.total == int(result.stops_per_job.sum()) > 0
    assert set(takes.by_pair) <= {"team-a->team-b", "team-b->team-a"}
    summary = summarise(result)
    assert summary.preemptions_by_pair == takes.by_pair
    assert summary.team_reversals == takes.reversals
    written = json.loads(json.dumps(_finite(summary.to_json()), allow_nan=False))
    again = RunSummary.from_json(written)
    assert again.preemptions_by_pair == takes.by_pair
    assert (again.back_and_forth, again.team_reversals_at_once) == (
        takes.back_and_forth,
        takes.reversals_at_once,
    )
    table = preemption_table([summary])
    assert "back-and-forth" in table and "team-a->team-b" in table
    written["preemptions_by_pair"]["team-a->team-b"] = 1.5
    with pytest.raises(RecordError, match=r"preemptions_by_pair.team-a->team-b: not a whole"):
        RunSummary.from_json(written)


def test_bursts_flood_the_cluster_with_the_teams_in_turn() -> None:
    scenario = load_scenario(str(PING_PONG))
    assert scenario.bursts == BurstSpec(period_s=1800.0, spread_s=120.0)
    jobs = prepare_workload(scenario, "flood", 10).jobs
    capacity = scenario.total_gpus
    for k in range(int(scenario.horizon_s // 1800.0)):
        burst = [j for j in jobs if k * 1800.0 <= j.submit_s < k * 1800.0 + 120.0]
        assert {j.namespace for j in burst} == {(A, B)[k % 2]}
        gpus = sum(j.requests[GPU] for j in burst)
        assert capacity <= gpus < capacity + 8
    assert len(jobs) == sum(1 for j in jobs if (j.submit_s % 1800.0) < 120.0)
    assert [j.job_id for j in jobs] == list(range(len(jobs)))
    other = prepare_workload(scenario, "flood", 11).jobs
    assert [j.runtime_s for j in other] != [j.runtime_s for j in jobs[: len(other)]]


def test_the_bursts_block_is_checked() -> None:
    doc = scenario_doc()
    for bad, field in (
        ({"period_minutes": 0}, "bursts.period_minutes"),
        ({"period_minutes": 10, "spread_minutes": 20}, "bursts.spread_minutes"),
        ({"period_minutes": 10, "every": 2}, "bursts"),
    ):
        with pytest.raises(ScenarioError, match=field.replace(".", r"\.")):
            parse_scenario({**doc, "bursts": bad}, "test.yaml")
    cpu_only = {
        "bursts": {"period_minutes": 10},
        "nodes": [{**doc["nodes"][0], "gpus": 0}],
        "task_types": [{**doc["task_types"][0], "gpus": {0: 1}}],
    }
    no_gpus = parse_scenario({**doc, **cpu_only}, "test.yaml")
    with pytest.raises(ScenarioError, match="bursts: a burst is sized on the cluster's GPUs"):
        prepare_workload(no_gpus, next(iter(no_gpus.workloads)), 0)
    gangs = {"share": 0.5, "members": {2: 1.0}}
    with pytest.raises(ScenarioError, match="not to gangs"):
        parse_scenario({**doc, "bursts": {"period_minutes": 10}, "gangs": gangs}, "test.yaml")
