"""The operator's model settings: an unusable checkpoint refuses to start, naming the
file, or with ``model_fallback: binpack`` starts degraded and says so everywhere."""

import asyncio
from pathlib import Path

import numpy as np
import pytest

from builders import k8s_node, k8s_pod
from fake_api import FakeApi
from hybrid_operator.cli import main
from hybrid_operator.scheduler import DECISION_ANNOTATION, Scheduler, policy_from
from hybrid_operator.settings import OperatorSettings
from hybrid_operator.settings_file import load_settings
from hybrid_policy.dqn.checkpoint import CheckpointError, default_checkpoint_path
from hybrid_policy.dqn.scorer import DqnScore
from hybrid_policy.framework.paths import ModelFallback


def _corrupt(tmp_path: Path) -> Path:
    path = tmp_path / "corrupt.pt"
    path.write_bytes(b"this is not a checkpoint")
    return path


def _missing(tmp_path: Path) -> Path:
    return tmp_path / "missing.pt"


@pytest.mark.parametrize(
    ("make", "problem"),
    [(_missing, "no such checkpoint file"), (_corrupt, "not a readable checkpoint")],
)
@pytest.mark.parametrize("policy", ["dqn", "hybrid", "hybrid-reserve"])
def test_an_unusable_model_refuses_to_start_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: object, problem: str, policy: str
) -> None:
    assert callable(make)
    path = make(tmp_path)
    settings = OperatorSettings(policy=policy, model_path=str(path))
    with pytest.raises(CheckpointError, match=problem):
        policy_from(settings, np.random.default_rng(0))
    # The command stops before connecting anywhere, with exit status 2.
    assert main(["run", "--policy", policy, "--model-path", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"hybrid-scheduler run: model_path: {path}: {problem}" in err


def test_the_shipped_model_is_the_default_and_a_path_is_used() -> None:
    shipped = policy_from(OperatorSettings(policy="dqn"), np.random.default_rng(0))
    assert isinstance(shipped.profile.scorers[0][0], DqnScore)
    assert shipped.fallback is None and shipped.fallback_part == ""
    named = OperatorSettings(policy="dqn", model_path=str(default_checkpoint_path()))
    assert isinstance(policy_from(named, np.random.default_rng(0)).profile.scorers[0][0], DqnScore)


def test_with_the_binpack_fallback_it_starts_and_records_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _corrupt(tmp_path)
    settings = OperatorSettings(policy="dqn", model_path=str(path), model_fallback="binpack")
    api = FakeApi()
    with caplog.at_level("WARNING", logger="hybrid_scheduler"):
        scheduler = Scheduler(settings, api)
    assert scheduler.policy.name == "dqn"
    fallback = scheduler.policy.fallback
    assert fallback is not None and fallback.replacement is ModelFallback.BINPACK
    assert str(fallback).startswith(f"binpack: {path}: not a readable checkpoint")
    assert f"scheduling with binpack: {path}" in caplog.text
    scheduler.on_node(None, k8s_node("n1"))
    scheduler.on_pod(None, k8s_pod("a"))
    asyncio.run(scheduler.schedule_once())
    record = api.annotations["team-a/a"][DECISION_ANNOTATION]
    assert (record["policy"], record["path"]) == ("dqn", "sequential, binpack fallback")
    fallbacks = scheduler.metrics.registry.get_sample_value(
        "hybrid_scheduler_fallbacks_total", {"reason": "model-unavailable"}
    )
    assert fallbacks == 1.0


def test_a_usable_model_is_not_a_fallback() -> None:
    api = FakeApi()
    scheduler = Scheduler(OperatorSettings(policy="dqn", model_fallback="binpack"), api)
    scheduler.on_node(None, k8s_node("n1"))
    scheduler.on_pod(None, k8s_pod("a"))
    asyncio.run(scheduler.schedule_once())
    assert api.annotations["team-a/a"][DECISION_ANNOTATION]["path"] == "sequential"
    assert (
        scheduler.metrics.registry.get_sample_value(
            "hybrid_scheduler_fallbacks_total", {"reason": "model-unavailable"}
        )
        is None
    )


def test_model_settings_from_the_file_and_bad_values(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("policy: hybrid\nmodel_path: /models/dqn.pt\nmodel_fallback: binpack\n")
    settings = load_settings(path)
    assert (settings.model_path, settings.model_fallback) == ("/models/dqn.pt", "binpack")
    path.write_text("model_fallback: kube-default\n")
    with pytest.raises(ValueError, match="model_fallback: must be one of none, binpack"):
        load_settings(path)
