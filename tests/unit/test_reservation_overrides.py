"""Changing the reserving policies' settings for a run (``simulate --reservation``), as the
tuning in docs/benchmarks.md does: parsed in the core, applied to a built policy, named in
the records, and refused with one line when wrong."""

from pathlib import Path

import numpy as np
import pytest

from cli_helpers import refused
from hybrid_lab.matrix import run_one
from hybrid_policy.policies import build_policy, override_reservation
from hybrid_policy.reservation import (
    BackfillMode,
    OrderRule,
    ReservationSettings,
    ReservingArbitrator,
)
from hybrid_policy.scenario.loader import load_scenario
from hybrid_policy.scenario.workload import prepare_workload


def test_overrides_are_read_with_their_types() -> None:
    changed = ReservationSettings().overridden(
        "backfill_factor=0.5, max_wait_s=none,mode=conservative,max_reservations=2"
    )
    assert changed == ReservationSettings(
        mode=BackfillMode.CONSERVATIVE,
        max_reservations=2,
        max_wait_s=float("inf"),
        backfill_factor=0.5,
    )
    assert ReservationSettings().overridden("") == ReservationSettings()
    assert ReservationSettings().overridden("order=capped,level_slack=-0.05") == (
        ReservationSettings(order=OrderRule.CAPPED, level_slack=-0.05)
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("factor=1", "expected KEY=VALUE with KEY one of mode, max_reservations"),
        ("mode=greedy", "mode='greedy': expected one of none, reserve, easy, conservative"),
        ("backfill_factor=lots", "backfill_factor='lots': not a number"),
        ("backfill_factor=0", "reservation settings out of range"),
        ("switch_margin_s=inf", "switch_margin_s='inf': must be finite"),
        ("order=fifo", "order='fifo': expected one of drf, capped"),
        ("level_slack=-1", "level_slack: must be > -1 (got -1.0)"),
    ],
)
def test_bad_overrides_name_the_key_and_value(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ReservationSettings().overridden(text)


def test_an_override_changes_a_built_reserving_policy_and_nothing_else() -> None:
    policy = build_policy("fair-easy", np.random.default_rng(0))
    changed = override_reservation(policy, "mode=conservative,max_wait_s=none")
    assert changed is not None
    arbitrator = changed.profile.arbitrator
    assert isinstance(arbitrator, ReservingArbitrator)
    assert arbitrator.settings.mode is BackfillMode.CONSERVATIVE
    assert arbitrator.settings.max_wait_s == float("inf")
    assert changed.queue_heads == 4  # conservative holds up to four
    assert (
        override_reservation(build_policy("binpack", np.random.default_rng(0)), "mode=easy") is None
    )


def test_a_run_with_overrides_is_named_by_them(tiny_scenario_path: Path) -> None:
    workload = prepare_workload(load_scenario(str(tiny_scenario_path)), "heavy", 3)
    plain = run_one(workload, "fair-reserve")
    closed = run_one(workload, "fair-reserve", reservation="mode=none")
    assert closed.policy == "fair-reserve[mode=none]"
    assert plain.policy == "fair-reserve"
    assert run_one(workload, "fair-order").jct_s == closed.jct_s  # mode none: fair order alone
    assert run_one(workload, "binpack", reservation="mode=none").policy == "binpack"


def test_simulate_refuses_a_bad_override_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(capsys, ["simulate", "--policies", "fair-easy", "--reservation", "factor=2"])
    assert line.startswith("hybrid-scheduler simulate: ")
    assert "--reservation" in line and "'factor=2'" in line
