"""The operator acts on reservations: nominatedNodeName, the Reserved Event, every pass,
across batches and across a restart."""

import asyncio
import math
import re
from typing import Any

import numpy as np
import pytest

from builders import k8s_node, k8s_pod, rfc3339
from fake_api import FakeApi
from hybrid_operator.k8s.calls import Listing
from hybrid_operator.k8s.convert import RUNTIME_ANNOTATION, Body
from hybrid_operator.scheduler import Scheduler, policy_from
from hybrid_operator.settings import OperatorSettings, SettingsError
from hybrid_policy.reservation import (
    BackfillMode,
    OrderRule,
    ReservationSettings,
    ReservingArbitrator,
)

NOW = 1_000_000.0
WIDE = "team-a/wide"


def _running(name: str, node: str, gpus: int, runtime: str) -> dict[str, Any]:
    """A team-b pod of ours running for 10 minutes, expected to run ``runtime``."""
    return k8s_pod(
        name, gpus=gpus, node=node, phase="Running", ns="team-b",
        annotations={RUNTIME_ANNOTATION: runtime}, status={"startTime": rfc3339(NOW - 600)},
    )  # fmt: skip


def _cluster(n2_runtime: str = "2h", n2_gpus: int = 2) -> list[dict[str, Any]]:
    """n1 frees 4 GPUs in 50 min; n2 has 6 free; pods: the running team-b ones."""
    return [_running("b1", "n1", 4, "1h"), _running("b2", "n2", n2_gpus, n2_runtime)]


def _scheduler(clock: list[float], reservation: str = "") -> tuple[Scheduler, FakeApi]:
    api = FakeApi()
    settings = OperatorSettings(policy="fair-easy", reservation=reservation).validate()
    scheduler = Scheduler(settings, api, clock=lambda: clock[0])
    return scheduler, api


def _started(clock: list[float], reservation: str = "") -> tuple[Scheduler, FakeApi]:
    scheduler, api = _scheduler(clock, reservation)
    for name in ("n1", "n2"):
        scheduler.on_node(None, k8s_node(name))
    for body in _cluster():
        scheduler.on_pod(None, body)
    scheduler.on_pod(None, k8s_pod("wide", gpus=8))
    return scheduler, api


def _pass(scheduler: Scheduler, clock: list[float], seconds: float = 1.0) -> None:
    asyncio.run(scheduler.schedule_once())
    clock[0] += seconds


def _metric(scheduler: Scheduler, name: str) -> float | None:
    return scheduler.metrics.registry.get_sample_value(name)


def test_a_wide_pod_gets_its_node_nominated_and_one_reserved_event() -> None:
    clock = [NOW]
    scheduler, api = _started(clock)
    for _ in range(3):
        _pass(scheduler, clock)
    assert api.nominations == [(WIDE, "n1")]
    reserved = [(m, w) for name, r, m, w in api.events if r == "Reserved"]
    assert len(reserved) == 1
    message, warning = reserved[0]
    assert not warning
    pattern = (
        r"^waiting for n1: predicted start in 50 min \(\d\d:\d\d:\d\d UTC\) from the user's "
        r"estimate \(reserved; 1st in team-a's queue; team-a holds 0.00 of an entitled 0.50\)$"
    )
    assert re.match(pattern, message), message
    assert not [e for e in api.events if e[1] == "FailedScheduling"]
    assert _metric(scheduler, "hybrid_scheduler_reservations_held") == 1


def test_the_holder_is_decided_on_every_pass_and_later_batches_respect_its_node() -> None:
    clock = [NOW]
    scheduler, api = _started(clock)
    _pass(scheduler, clock)
    # A long pod that fits both nodes arrives in a later batch: binpack prefers n1, but
    # there it would still run when the wide pod is predicted to start.
    long_pod = k8s_pod("long", gpus=4, ns="team-c", annotations={RUNTIME_ANNOTATION: "10h"})
    scheduler.on_pod(None, long_pod)
    decisions = asyncio.run(scheduler.schedule_once())
    assert {d.pod.name for d in decisions} == {"wide", "long"}
    assert ("team-c/long", "n2") in api.binds
    assert api.nominations == [(WIDE, "n1")]


def test_a_short_pod_is_backfilled_onto_the_reserved_node_and_counted() -> None:
    clock = [NOW]
    scheduler, api = _started(clock)
    _pass(scheduler, clock)
    short = k8s_pod("short", gpus=4, ns="team-c", annotations={RUNTIME_ANNOTATION: "10m"})
    scheduler.on_pod(None, short)
    _pass(scheduler, clock)
    assert ("team-c/short", "n1") in api.binds
    assert _metric(scheduler, "hybrid_scheduler_backfilled_placements_total") == 1


def test_a_dropped_reservation_clears_the_nominated_node() -> None:
    clock = [NOW]
    scheduler, api = _started(clock)
    _pass(scheduler, clock)
    # Neither node could ever take 8 GPUs now: the reservation ends.
    scheduler.on_node("MODIFIED", k8s_node("n1", gpus=4))
    scheduler.on_node("MODIFIED", k8s_node("n2", gpus=4))
    _pass(scheduler, clock)
    assert api.nominations == [(WIDE, "n1"), (WIDE, None)]
    assert [e[1] for e in api.events if e[0] == "wide"] == ["Reserved", "FailedScheduling"]
    assert _metric(scheduler, "hybrid_scheduler_reservations_held") == 0


def test_a_bound_pod_left_with_a_nominated_node_has_it_cleared_once() -> None:
    clock = [NOW]
    scheduler, api = _started(clock)
    _pass(scheduler, clock)
    bound = k8s_pod("wide", gpus=8, node="n1", status={"nominatedNodeName": "n1"})
    scheduler.on_pod("MODIFIED", bound)
    _pass(scheduler, clock)
    scheduler.on_pod("MODIFIED", bound)  # the watch has not shown the clearing yet
    _pass(scheduler, clock)
    assert api.nominations == [(WIDE, "n1"), (WIDE, None)]
    assert scheduler.arbitrator is not None and scheduler.arbitrator.book == {}


def test_a_restarted_operator_holds_the_node_written_on_the_pod() -> None:
    clock = [NOW]
    scheduler, api = _scheduler(clock)
    # Both nodes free room at the same predicted time: without the restored
    # reservation the pass would pick n1 (node order).
    pods = [*_cluster(n2_runtime="1h", n2_gpus=4)]
    pods.append(k8s_pod("wide", gpus=8, status={"nominatedNodeName": "n2"}))
    listing = Listing([], [k8s_node("n1"), k8s_node("n2")], list[Body](pods))
    scheduler.reconcile(listing, scheduler.cache.ticks())
    _pass(scheduler, clock)
    assert scheduler.arbitrator is not None
    assert [h.node for h in scheduler.arbitrator.book.values()] == ["n2"]
    assert api.nominations == []
    assert not [e for e in api.events if e[0] == "wide"]


def test_a_holder_still_settling_keeps_its_node_from_the_next_pass() -> None:
    clock = [NOW]
    scheduler, _ = _started(clock)
    first = scheduler.decide()  # the holder's verdict is not settled before the next pass
    clock[0] += 1
    long_pod = k8s_pod("long", gpus=4, ns="team-c", annotations={RUNTIME_ANNOTATION: "10h"})
    scheduler.on_pod(None, long_pod)
    second = scheduler.decide()
    assert [(d.pod.name, d.node) for d in second] == [("long", "n2")]
    assert scheduler.arbitrator is not None and list(scheduler.arbitrator.book) == ["uid-wide"]
    asyncio.run(scheduler.settle_all([*first, *second]))


def test_a_reservation_that_moves_writes_the_new_node_and_tells_it_once() -> None:
    clock = [NOW]
    scheduler, api = _started(clock)
    _pass(scheduler, clock)
    # A node whose pod ends 40 minutes before n1's: the wide pod starts there sooner.
    scheduler.on_node(None, k8s_node("n3"))
    scheduler.on_pod(None, _running("b3", "n3", 4, "20m"))
    for _ in range(2):
        _pass(scheduler, clock)
    assert api.nominations == [(WIDE, "n1"), (WIDE, "n3")]
    reserved = [m for name, r, m, w in api.events if r == "Reserved"]
    assert [m.split(":")[0] for m in reserved] == ["waiting for n1", "waiting for n3"]


def test_the_reservation_setting_changes_the_policys_settings_and_nothing_else() -> None:
    settings = OperatorSettings(
        policy="fair-easy", reservation="max_wait_s=none, order=capped,level_slack=-0.05"
    ).validate()
    arbitrator = policy_from(settings, np.random.default_rng(0)).profile.arbitrator
    assert isinstance(arbitrator, ReservingArbitrator)
    assert arbitrator.settings == ReservationSettings(
        mode=BackfillMode.EASY, max_wait_s=math.inf, order=OrderRule.CAPPED, level_slack=-0.05
    )
    plain = policy_from(OperatorSettings(policy="fair-easy"), np.random.default_rng(0))
    assert isinstance(plain.profile.arbitrator, ReservingArbitrator)
    assert plain.profile.arbitrator.settings == ReservationSettings()


@pytest.mark.parametrize(
    ("policy", "text", "message"),
    [
        (
            "drf",
            "max_wait_s=600",
            "reservation: policy 'drf' does not reserve (got 'max_wait_s=600'",
        ),
        (
            "fair-easy",
            "ageing=1h",
            "reservation: 'ageing=1h': expected KEY=VALUE with KEY one of mode",
        ),
        ("hybrid-reserve", "order=fifo", "reservation: order='fifo': expected one of drf, capped"),
        ("fair-easy", "backfill_factor=0", "reservation: reservation settings out of range"),
    ],
)
def test_a_bad_reservation_setting_names_the_setting_and_value(
    policy: str, text: str, message: str
) -> None:
    with pytest.raises(SettingsError, match=f"^{re.escape(message)}"):
        OperatorSettings(policy=policy, reservation=text).validate()


def test_with_reservations_off_the_wide_pod_gets_no_node_and_says_why() -> None:
    clock = [NOW]
    scheduler, api = _started(clock, reservation="mode=none")
    for _ in range(3):
        _pass(scheduler, clock)
    assert api.nominations == []
    assert not [e for e in api.events if e[1] == "Reserved"]
    assert [e for e in api.events if e[1] == "FailedScheduling" and e[0] == "wide"]


def test_a_closed_reservation_keeps_even_a_short_pod_off_the_reserved_node() -> None:
    clock = [NOW]
    scheduler, api = _started(clock, reservation="mode=reserve")
    _pass(scheduler, clock)
    assert api.nominations == [(WIDE, "n1")]
    short = k8s_pod("short", gpus=4, ns="team-c", annotations={RUNTIME_ANNOTATION: "10m"})
    scheduler.on_pod(None, short)
    _pass(scheduler, clock)
    assert ("team-c/short", "n2") in api.binds
    assert _metric(scheduler, "hybrid_scheduler_backfilled_placements_total") in (None, 0)
