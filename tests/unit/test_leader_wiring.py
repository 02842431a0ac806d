"""Leader election wired into the operator: its settings, flags and file keys, and the
loop's check before each binding."""

import asyncio
from pathlib import Path

import pytest

from builders import k8s_node, k8s_pod
from electors import SwitchedElector
from fake_api import FakeApi
from hybrid_operator.cli import build_parser, main
from hybrid_operator.commands.run_cmd import settings_from
from hybrid_operator.scheduler import Scheduler
from hybrid_operator.settings import OperatorSettings, SettingsError
from hybrid_operator.settings_file import load_settings


def test_kube_scheduler_timings_by_default() -> None:
    settings = OperatorSettings().validate()
    timings = (settings.lease_duration_s, settings.renew_deadline_s, settings.retry_period_s)
    assert timings == (15.0, 10.0, 2.0)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"retry_period_s": 0.0}, "retry_period_s: must be a number > 0 (got 0.0)"),
        ({"renew_deadline_s": -1.0}, "renew_deadline_s: must be a number > 0 (got -1.0)"),
        ({"lease_duration_s": float("nan")}, "lease_duration_s: must be a number > 0 (got nan)"),
        (
            {"lease_duration_s": 6.0},
            "renew_deadline_s: must be less than lease_duration_s (6) (got 10.0)",
        ),
        (
            {"renew_deadline_s": 15.0},
            "renew_deadline_s: must be less than lease_duration_s (15) (got 15.0)",
        ),
        (
            {"retry_period_s": 10.0},
            "retry_period_s: must be less than renew_deadline_s (10) (got 10.0)",
        ),
    ],
)
def test_impossible_lease_timings_are_refused_naming_setting_and_value(
    values: dict[str, float], message: str
) -> None:
    with pytest.raises(SettingsError) as err:
        OperatorSettings(**values).validate()  # type: ignore[arg-type]
    assert str(err.value) == message


def test_lease_timings_from_the_file_and_the_flags(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("lease_duration_s: 8\nrenew_deadline_s: 5\nretry_period_s: 1\n")
    settings = load_settings(path)
    assert (settings.lease_duration_s, settings.renew_deadline_s, settings.retry_period_s) == (
        8.0,
        5.0,
        1.0,
    )
    args = build_parser().parse_args(
        ["run", "--config", str(path), "--renew-deadline", "6", "--retry-period", "0.5"]
    )
    merged = settings_from(args)
    assert (merged.lease_duration_s, merged.renew_deadline_s, merged.retry_period_s) == (
        8.0,
        6.0,
        0.5,
    )
    path.write_text("renew_deadline_s: 20\n")
    with pytest.raises(SettingsError) as err:
        load_settings(path)
    assert str(err.value) == (
        f"{path}: renew_deadline_s: must be less than lease_duration_s (15) (got 20.0)"
    )


def test_run_refuses_impossible_lease_timings_with_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run", "--lease-duration", "6"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "hybrid-scheduler run: renew_deadline_s: must be less than lease_duration_s (6) "
        "(got 10.0)\n"
    )
    assert main(["run", "--retry-period", "-2"]) == 2
    assert "retry_period_s: must be a number > 0 (got -2.0)" in capsys.readouterr().err


def test_a_pass_decided_before_leadership_ended_binds_nothing() -> None:
    api, elector = FakeApi(), SwitchedElector()
    scheduler = Scheduler(OperatorSettings(), api, clock=lambda: 1000.0, elector=elector)
    scheduler.on_node(None, k8s_node("n1"))
    for name in ("a", "b"):
        scheduler.on_pod(None, k8s_pod(name))
    decisions = scheduler.decide()
    assert [d.node for d in decisions] == ["n1", "n1"]
    elector.leading = False
    asyncio.run(scheduler.settle_all(decisions))
    assert api.binds == [] and api.events == []
    # Not bound, no longer assumed, queued again for whoever leads next.
    assert not any(scheduler.cache.is_placed(d.pod.uid) for d in decisions)
    assert len(scheduler.queue.pop_batch(1000.0, lambda p: (p.name,), 10)) == 2
