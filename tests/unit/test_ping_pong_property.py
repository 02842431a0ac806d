"""Two teams flooding the cluster in turn never make preemption thrash: over drawn
alternating bursts (sizes, gaps, job lengths, pod widths) the simulator, with the default
reasons and with wide and defragment added, answers no take at once (the share test of
``preemption/fairness.py``), takes back no job that took from the preemptor's team before
it ran ``min_runtime_s``, and stops no job more than ``max_preemptions`` times, even
without the take-back guard (``guard=none``). With the default settings, which have the
guard (``guard=takeback``), no pair of teams takes back and forth at all: no back and
forth and no team reversal, however long after."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybrid_policy.policies import build_policy
from hybrid_policy.preemption.options import parse_settings
from hybrid_policy.resources import GIB, GPU
from hybrid_policy.scenario.jobs import Job, build_nodes
from hybrid_policy.scenario.loader import load_scenario
from hybrid_policy.scenario.model import NodeGroup, PreemptionCostSpec
from hybrid_policy.scenario.workload import Workload
from hybrid_policy.sim.engine import Simulation
from hybrid_policy.sim.result import RunResult

SCENARIO = Path(__file__).parents[2] / "scenarios" / "ping-pong.yaml"
TEAMS = ("team-a", "team-b")
REASONS = ("reclaim+priority", "reclaim+priority+wide+defragment")


@dataclasses.dataclass(frozen=True)
class Bursts:
    """A drawn workload: per burst its jobs' (run time, GPUs), the gap before the next
    burst, and the cluster's node count (8 GPUs each)."""

    jobs: tuple[tuple[tuple[float, int], ...], ...]
    gaps_s: tuple[float, ...]
    nodes: int

    def to_jobs(self) -> list[Job]:
        """The bursts as jobs, team-a first and the teams in turn, each burst's jobs a
        second apart."""
        out: list[Job] = []
        start = 0.0
        for k, (burst, gap) in enumerate(zip(self.jobs, self.gaps_s, strict=True)):
            for i, (runtime_s, gpus) in enumerate(burst):
                requests = {GPU: gpus, "cpu": 4000 * gpus, "memory": 32 * GIB * gpus}
                out.append(
                    Job(
                        len(out),
                        start + i,
                        runtime_s,
                        requests,
                        TEAMS[k % 2],
                        "training",
                        {GPU: 0.9},
                    )
                )
            start += gap
        return out


#: A job's run time (s) and GPUs; a burst of 2 to 8 of them.
job = st.tuples(st.floats(900.0, 7200.0), st.sampled_from([1, 2, 4, 8]))
burst = st.lists(job, min_size=2, max_size=8).map(tuple)
bursts = st.integers(2, 5).flatmap(
    lambda n: st.builds(
        Bursts,
        jobs=st.lists(burst, min_size=n, max_size=n).map(tuple),
        gaps_s=st.lists(st.floats(300.0, 2400.0), min_size=n, max_size=n).map(tuple),
        nodes=st.integers(1, 3),
    )
)


def _run(drawn: Bursts, policy_name: str, preemption: str) -> RunResult:
    nodes = (NodeGroup(count=drawn.nodes, gpus=8, cpu=64, memory_gib=512),)
    cost = PreemptionCostSpec(opt_in=1.0, checkpoint_interval_s=600.0, restart_overhead_s=120.0)
    scenario = dataclasses.replace(load_scenario(str(SCENARIO)), nodes=nodes, preemption=cost)
    jobs = drawn.to_jobs()
    horizon = max(j.submit_s for j in jobs) + 1.0
    workload = Workload(scenario, "flood", 0, build_nodes(scenario), jobs, horizon)
    policy = build_policy(policy_name, np.random.default_rng(0))
    policy = dataclasses.replace(policy, preemption=parse_settings(preemption))
    return Simulation(workload, policy, 0, drain_factor=1000.0).run()


#: The searches' settings: derandomised and without an example database, so every run
#: tries the same examples.
SEARCH = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@SEARCH
@given(
    drawn=bursts,
    policy_name=st.sampled_from(["drf", "fair-easy"]),
    reasons=st.sampled_from(REASONS),
    min_runtime_s=st.sampled_from([300.0, 900.0, 1800.0]),
    max_preemptions=st.integers(1, 3),
)
def test_alternating_bursts_never_thrash(
    drawn: Bursts, policy_name: str, reasons: str, min_runtime_s: float, max_preemptions: int
) -> None:
    preemption = (
        f"reasons={reasons},min_runtime_s={min_runtime_s:g},max_preemptions={max_preemptions},"
        "guard=none"
    )
    result = _bounded(_run(drawn, policy_name, preemption), min_runtime_s, max_preemptions)
    assert result.takes.total == int(result.stops_per_job.sum())


@SEARCH
@given(
    drawn=bursts,
    policy_name=st.sampled_from(["drf", "fair-easy", "hybrid-reserve"]),
    reasons=st.sampled_from(REASONS),
    min_runtime_s=st.sampled_from([300.0, 900.0, 1800.0]),
    max_preemptions=st.integers(1, 3),
)
def test_by_default_no_pair_of_teams_takes_back_at_all(
    drawn: Bursts, policy_name: str, reasons: str, min_runtime_s: float, max_preemptions: int
) -> None:
    # No guard named: the default's (the take-back guard).
    preemption = (
        f"reasons={reasons},min_runtime_s={min_runtime_s:g},max_preemptions={max_preemptions}"
    )
    result = _bounded(_run(drawn, policy_name, preemption), min_runtime_s, max_preemptions)
    takes = result.takes
    assert takes.back_and_forth == 0, takes
    assert takes.reversals == 0, takes
    # Every stop is still one of the phase's takes, counted under its pair.
    assert takes.total == int(result.stops_per_job.sum())


def _bounded(result: RunResult, min_runtime_s: float, max_preemptions: int) -> RunResult:
    """``result`` after the checks every run passes: no take answered at once, no back
    and forth sooner than ``min_runtime_s``, no job stopped more than ``max_preemptions``
    times, every job ended."""
    takes = result.takes
    assert takes.reversals_at_once == 0, takes
    gap = takes.shortest_gap_s
    assert math.isnan(gap) or gap >= min_runtime_s, takes
    assert int(result.stops_per_job.max(initial=0)) <= max_preemptions
    assert not np.isnan(result.end_s).any()
    return result
