"""What the simulator tells policies about run times: true run times to the oracle only,
user estimates and progress reports as the scenario says, and the predictors' errors."""

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.cycle import Decision
from hybrid_policy.framework.snapshot import ClusterSnapshot
from hybrid_policy.policies import build_policy
from hybrid_policy.report.record import RunSummary
from hybrid_policy.report.summary import summarise
from hybrid_policy.scenario.fields import ScenarioError
from hybrid_policy.scenario.loader import load_scenario, parse_scenario
from hybrid_policy.scenario.model import ProgressSpec, Scenario, UserEstimateSpec
from hybrid_policy.scenario.workload import prepare_workload
from hybrid_policy.sim.engine import Simulation
from hybrid_policy.sim.information import user_estimates

POLICIES = ["kube-default", "binpack", "drf", "random", "fair-easy", "srtf-oracle"]


def _scenario(path: Path, **changes: object) -> Scenario:
    scenario = load_scenario(str(path))
    return dataclasses.replace(scenario, **{"horizon_hours": 2.0, **changes})  # type: ignore[arg-type]


def _told(sim: Simulation) -> dict[str, set[float | None]]:
    """Run ``sim``, recording every run time its policy was given, per pod UID."""
    seen: dict[str, set[float | None]] = {}
    schedule = sim.profile.schedule_batch

    def spy(
        pods: Sequence[PendingPod],
        snapshot: ClusterSnapshot,
        rng: np.random.Generator,
        explain: bool = True,
    ) -> list[Decision]:
        for pod in pods:
            seen.setdefault(pod.uid, set()).add(pod.expected_runtime_s)
        return schedule(pods, snapshot, rng, explain)

    sim.profile.schedule_batch = spy  # type: ignore[method-assign]
    sim.run()
    return seen


@pytest.mark.parametrize("policy", POLICIES)
def test_only_the_oracle_is_told_true_run_times(tiny_scenario_path: Path, policy: str) -> None:
    estimates = UserEstimateSpec(sigma=0.5, bias=1.2, coverage=0.5)
    workload = prepare_workload(_scenario(tiny_scenario_path, user_estimates=estimates), "heavy", 1)
    sim = Simulation(workload, build_policy(policy, np.random.default_rng(0)), 1)
    told = _told(sim)
    truth = {f"job-{j.job_id}": j.runtime_s for j in workload.jobs}
    given = {f"job-{j.job_id}": e for j, e in zip(workload.jobs, sim.estimates, strict=True)}
    assert len(told) > 50
    if policy == "srtf-oracle":
        # The oracle plans with the true work left: the full run time before a job starts.
        assert all(truth[uid] in values for uid, values in told.items() if len(values) == 1)
        return
    assert all(values == {given[uid]} for uid, values in told.items())
    assert not any(truth[uid] in values for uid, values in told.items())
    assert sum(v is None for v in given.values()) > 10  # coverage 0.5: some have none


def test_without_user_estimates_pods_carry_no_run_time(tiny_scenario_path: Path) -> None:
    workload = prepare_workload(_scenario(tiny_scenario_path), "heavy", 1)
    sim = Simulation(workload, build_policy("fair-easy", np.random.default_rng(0)), 1)
    assert {v for values in _told(sim).values() for v in values} == {None}


def test_user_estimates_follow_the_error_model(tiny_scenario_path: Path) -> None:
    jobs = prepare_workload(_scenario(tiny_scenario_path, horizon_hours=40.0), "heavy", 2).jobs
    spec = UserEstimateSpec(sigma=0.4, bias=1.5, coverage=1.0)
    drawn = user_estimates(jobs, spec, 2)
    ratios = np.log([(e or 0.0) / j.runtime_s for e, j in zip(drawn, jobs, strict=True)])
    assert len(jobs) > 500
    assert float(np.mean(ratios)) == pytest.approx(np.log(1.5), abs=0.05)
    assert float(np.std(ratios)) == pytest.approx(0.4, abs=0.05)
    exact = user_estimates(jobs, UserEstimateSpec(sigma=0.0, bias=1.0), 2)
    assert exact == [j.runtime_s for j in jobs]
    assert user_estimates(jobs, None, 2) == [None] * len(jobs)


def _errors(path: Path, **changes: object) -> RunSummary:
    workload = prepare_workload(_scenario(path, horizon_hours=4.0, **changes), "heavy", 3)
    return summarise(
        Simulation(workload, build_policy("fair-easy", np.random.default_rng(0)), 3).run()
    )


def test_prediction_errors_are_reported_per_source(tiny_scenario_path: Path) -> None:
    noisy = _errors(tiny_scenario_path, user_estimates=UserEstimateSpec(0.5, 1.0, 0.5))
    assert set(noisy.prediction_error) == {"duration", "remaining"}
    assert {"user-estimate", "prior"} <= set(noisy.prediction_error["duration"])
    assert "history" in noisy.prediction_error["duration"]
    progress = noisy.prediction_error["remaining"]["progress"]
    assert progress["count"] > 100 and progress["mean_abs_error_s"] > 0
    exact = _errors(
        tiny_scenario_path,
        user_estimates=UserEstimateSpec(0.0, 1.0, 1.0),
        progress=ProgressSpec(interval_s=60.0, warmup_s=60.0, noise=0.0),
    )
    for kind in ("duration", "remaining"):
        for source, stats in exact.prediction_error[kind].items():
            assert stats["median_abs_relative_error"] < 1e-6, (kind, source)
    assert RunSummary.from_json(noisy.to_json()).prediction_error == noisy.prediction_error


def test_policies_that_predict_nothing_report_no_prediction_error(tiny_scenario_path: Path) -> None:
    workload = prepare_workload(_scenario(tiny_scenario_path), "heavy", 3)
    record = summarise(
        Simulation(workload, build_policy("binpack", np.random.default_rng(0)), 3).run()
    )
    assert record.prediction_error == {}


def test_without_progress_reports_running_pods_are_predicted_from_durations(
    tiny_scenario_path: Path,
) -> None:
    record = _errors(tiny_scenario_path, progress=ProgressSpec(interval_s=0.0))
    assert "remaining" not in record.prediction_error


BASE = {
    "name": "s",
    "nodes": [{"count": 1, "gpus": 8, "cpu": 64, "memory_gib": 512}],
    "namespaces": [{"name": "a", "weight": 1, "job_share": 1}],
    "task_types": [
        {
            "name": "t",
            "share": 1,
            "gpus": {1: 1},
            "cpu_per_gpu": 1,
            "memory_gib_per_gpu": 1,
            "runtime_minutes": {"median": 5, "mean": 6},
        },
    ],
    "workloads": {"light": 0.5},
    "horizon_hours": 1,
}


def test_scenario_fields_for_estimates_and_progress() -> None:
    plain = parse_scenario(BASE, "s.yaml")
    assert plain.user_estimates is None and plain.progress == ProgressSpec()
    given = parse_scenario(
        {**BASE, "user_estimates": {"sigma": 0.3, "bias": 2}, "progress": {"noise": 0.1}}, "s.yaml"
    )
    assert given.user_estimates == UserEstimateSpec(sigma=0.3, bias=2.0, coverage=1.0)
    assert given.progress == ProgressSpec(interval_s=60.0, warmup_s=60.0, noise=0.1)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("user_estimates", {"bias": 0}, "s.yaml: user_estimates.bias: must be > 0 (got 0)"),
        ("user_estimates", {"sigma": -1}, "s.yaml: user_estimates.sigma: must be >= 0 (got -1)"),
        ("user_estimates", {"coverage": 2}, "user_estimates.coverage: must be <= 1 (got 2)"),
        ("user_estimates", {"sigmaa": 1}, "user_estimates.sigmaa: unknown field"),
        ("progress", {"noise": 1.5}, "s.yaml: progress.noise: must be <= 1 (got 1.5)"),
        ("progress", {"interval_s": -5}, "progress.interval_s: must be >= 0 (got -5)"),
    ],
)
def test_bad_estimate_and_progress_fields_are_named(
    field: str, value: object, message: str
) -> None:
    with pytest.raises(ScenarioError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_scenario({**BASE, field: value}, "s.yaml")
