"""Paths and fallbacks are typed, and rendered to the text records have always shown."""

from pathlib import Path

import numpy as np
import pytest

from hybrid_policy.framework.paths import (
    FallbackReason,
    ModelFallback,
    PassPath,
    ScorerFallback,
    SolverPath,
)
from hybrid_policy.game.program import game_path
from hybrid_policy.policies import ModelOptions, Policy, build_policy


def test_paths_render_as_decision_records_show_them() -> None:
    assert str(PassPath("sequential")) == "sequential"
    assert str(game_path(SolverPath.UNCONTENDED)) == "uncontended"
    assert str(game_path(SolverPath.EQUILIBRIUM)) == "equilibrium"
    timeout = game_path(SolverPath.FALLBACK, FallbackReason.TIMEOUT)
    assert str(timeout) == "greedy-fallback:timeout"
    status = game_path(SolverPath.FALLBACK, FallbackReason.STATUS, "optimal-inaccurate")
    assert str(status) == "greedy-fallback:status-optimal-inaccurate"
    error = game_path(SolverPath.FALLBACK, FallbackReason.ERROR, "SolverError")
    assert str(error) == "greedy-fallback:error-SolverError"


def test_a_fallback_path_and_only_one_has_a_reason() -> None:
    with pytest.raises(ValueError, match="has a reason"):
        game_path(SolverPath.FALLBACK)
    with pytest.raises(ValueError, match="has a reason"):
        game_path(SolverPath.EQUILIBRIUM, FallbackReason.TIMEOUT)


def test_model_fallback_reads_the_settings_spelling_and_names_a_bad_value() -> None:
    assert ModelOptions(None, "binpack").fallback is ModelFallback.BINPACK
    assert ModelOptions().fallback is ModelFallback.NONE
    assert ModelOptions(fallback=ModelFallback.BINPACK).fallback is ModelFallback.BINPACK
    with pytest.raises(ValueError, match=r"must be one of none, binpack \(got 'kube-default'\)"):
        ModelOptions(None, "kube-default")


def test_a_degraded_policy_says_what_runs_instead_and_why(tmp_path: Path) -> None:
    missing = tmp_path / "gone.pt"
    policy = build_policy("hybrid", np.random.default_rng(0), ModelOptions(missing, "binpack"))
    assert policy.fallback is not None
    assert policy.fallback.replacement is ModelFallback.BINPACK
    assert policy.fallback_part == "binpack"
    assert str(policy.fallback) == f"binpack: {policy.fallback.problem}"
    assert str(missing) in policy.fallback.problem


def test_fallback_part_of_a_policy_running_as_named_is_empty() -> None:
    profile = build_policy("binpack", np.random.default_rng(0)).profile
    assert Policy("binpack", "", profile).fallback_part == ""
    degraded = Policy("dqn", "", profile, fallback=ScorerFallback(ModelFallback.BINPACK, "x"))
    assert degraded.fallback_part == "binpack"
