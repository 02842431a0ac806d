"""The predictor restricted to some of its sources (the ablation by source), alone in the
core, through a simulated run, and as the ``simulate --predictor-sources`` option."""

import dataclasses
from pathlib import Path

import pytest

from builders import make_pod
from cli_helpers import refused
from hybrid_lab.matrix import run_one
from hybrid_policy.domain import PendingPod
from hybrid_policy.prediction import PredictionSource, PredictorSettings, RuntimePredictor
from hybrid_policy.prediction.model import describe_sources, parse_sources
from hybrid_policy.scenario.loader import load_scenario
from hybrid_policy.scenario.model import UserEstimateSpec
from hybrid_policy.scenario.workload import prepare_workload

PROGRESS = PredictionSource.PROGRESS
ESTIMATE = PredictionSource.USER_ESTIMATE
HISTORY = PredictionSource.HISTORY
PRIOR = PredictionSource.PRIOR
DEFAULT = PredictionSource.DEFAULT


def _pod(name: str, estimate: float | None = None) -> PendingPod:
    pod = make_pod(name, gpus=2, namespace="team-a")
    return dataclasses.replace(pod, task_type="nlp", expected_runtime_s=estimate)


def _predictor(*sources: PredictionSource) -> RuntimePredictor:
    """A predictor using ``sources`` with three finished pods of 300 s in its history."""
    settings = PredictorSettings(default_prior_s=77.0, sources=frozenset(sources))
    predictor = RuntimePredictor(settings, priors={"nlp": 660.0})
    for i in range(3):
        done = _pod(f"done-{i}")
        predictor.started(done, "n0", 0.0, 100.0)
        predictor.finished(done.uid, 300.0)
    return predictor


def _answer(predictor: RuntimePredictor, pod: PendingPod) -> tuple[float, PredictionSource]:
    prediction = predictor.duration(pod, now_s=1000.0)
    return prediction.seconds, prediction.source


def test_every_source_answers_by_default_most_specific_first() -> None:
    predictor = _predictor(PROGRESS, ESTIMATE, HISTORY, PRIOR)
    assert predictor.settings.sources == PredictorSettings().sources
    assert _answer(predictor, _pod("p", estimate=50.0)) == (50.0, ESTIMATE)
    assert _answer(predictor, _pod("p")) == (300.0, HISTORY)


@pytest.mark.parametrize(
    ("sources", "with_estimate", "without_estimate"),
    [
        ((ESTIMATE,), (50.0, ESTIMATE), (77.0, DEFAULT)),
        ((HISTORY,), (300.0, HISTORY), (300.0, HISTORY)),
        ((PRIOR,), (660.0, PRIOR), (660.0, PRIOR)),
        ((PROGRESS,), (77.0, DEFAULT), (77.0, DEFAULT)),
    ],
)
def test_a_source_left_out_is_never_asked(
    sources: tuple[PredictionSource, ...],
    with_estimate: tuple[float, PredictionSource],
    without_estimate: tuple[float, PredictionSource],
) -> None:
    predictor = _predictor(*sources)
    assert _answer(predictor, _pod("p", estimate=50.0)) == with_estimate
    assert _answer(predictor, _pod("p")) == without_estimate


def test_history_alone_answers_the_fixed_default_before_it_has_samples() -> None:
    settings = PredictorSettings(default_prior_s=77.0, sources=frozenset({HISTORY}))
    predictor = RuntimePredictor(settings, priors={"nlp": 660.0})
    assert _answer(predictor, _pod("p")) == (77.0, DEFAULT)


@pytest.mark.parametrize(
    ("sources", "expected"), [((PROGRESS,), (400.0, PROGRESS)), ((HISTORY,), (200.0, HISTORY))]
)
def test_progress_reports_are_used_only_when_progress_is_a_source(
    sources: tuple[PredictionSource, ...], expected: tuple[float, PredictionSource]
) -> None:
    predictor = _predictor(*sources)
    running = _pod("run")
    predictor.started(running, "n0", 1000.0, 100.0)
    predictor.progress(running.uid, 0.2, 1100.0)  # a fifth done after 100 s: 500 s in all
    left = predictor.remaining(running.uid, now_s=1100.0)
    assert (left.seconds, left.source) == expected


def test_settings_refuse_no_source_and_the_default_as_a_source() -> None:
    with pytest.raises(ValueError, match="sources"):
        PredictorSettings(sources=frozenset())
    with pytest.raises(ValueError, match="sources"):
        PredictorSettings(sources=frozenset({DEFAULT}))


def test_sources_are_parsed_and_named() -> None:
    assert parse_sources("all") == PredictorSettings().sources
    assert parse_sources("history, user-estimate") == frozenset({HISTORY, ESTIMATE})
    assert describe_sources(frozenset({HISTORY, ESTIMATE})) == "user-estimate+history"
    assert describe_sources(parse_sources("prior,history,user-estimate,progress")) == "all"
    with pytest.raises(ValueError, match="unknown prediction source 'guess'"):
        parse_sources("history,guess")
    with pytest.raises(ValueError, match="no prediction source named"):
        parse_sources(" , ")


def test_a_restricted_run_is_named_for_its_sources_and_scores_only_them(
    tiny_scenario_path: Path,
) -> None:
    scenario = dataclasses.replace(
        load_scenario(str(tiny_scenario_path)),
        user_estimates=UserEstimateSpec(sigma=0.5, bias=1.5, coverage=1.0),
    )
    workload = prepare_workload(scenario, "heavy", 3)
    everything = run_one(workload, "fair-easy")
    estimates = run_one(workload, "fair-easy", sources=frozenset({ESTIMATE}))
    untouched = run_one(workload, "binpack", sources=frozenset({ESTIMATE}))
    assert everything.policy == "fair-easy"
    assert estimates.policy == "fair-easy[user-estimate]"
    assert untouched.policy == "binpack"
    seen = {source for kind in estimates.prediction_error.values() for source in kind}
    assert seen == {ESTIMATE.value}
    everything_seen = {source for kind in everything.prediction_error.values() for source in kind}
    assert PROGRESS.value in everything_seen


def test_simulate_names_a_bad_predictor_source(capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(capsys, ["simulate", "--policies", "binpack", "--predictor-sources", "guess"])
    assert line == (
        "hybrid-scheduler simulate: --predictor-sources: unknown prediction source 'guess' "
        "(known: all, progress, user-estimate, history, prior)"
    )


def test_the_estimates_scenario_is_the_seed_paper_with_over_estimates() -> None:
    root = Path(__file__).resolve().parents[2]
    with_estimates = load_scenario(str(root / "scenarios" / "seed-paper-estimates.yaml"))
    spec = with_estimates.user_estimates
    assert spec is not None
    assert spec.bias > 1.0 and spec.sigma > 0.0 and spec.coverage == 1.0
    plain = load_scenario("seed-paper")
    same = dataclasses.replace(
        with_estimates, name=plain.name, source=plain.source, user_estimates=None
    )
    assert same == plain
