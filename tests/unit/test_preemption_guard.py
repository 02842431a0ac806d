"""The take-back guard (``guard=takeback``): across teams, a running pod that took from
the preemptor's team is never its victim, a team owed a waiting job takes nothing from
the team that stopped it (for every reason, a gang's plan included, and within one
phase), and within a team nothing changes."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from builders import make_node, make_pod
from hybrid_policy.domain import Gang, Namespace, PendingPod
from hybrid_policy.framework.snapshot import BoolArray, ClusterSnapshot
from hybrid_policy.preemption.guard import Guard
from hybrid_policy.preemption.model import PreemptionReason, PreemptionRules, RunningPod
from hybrid_policy.preemption.options import parse_settings, settings_help
from hybrid_policy.preemption.phase import PhasePlan, PreemptionSettings, plan_preemptions

NOW = 10_000.0
RULES = PreemptionRules(min_runtime_s=300, trigger_delay_s=60)
#: Without the guard (the default has it), so that each test sets it on or off.
BY_PRIORITY = PreemptionSettings(
    rules=RULES, reasons=frozenset({PreemptionReason.PRIORITY}), guard=Guard.NONE
)
BY_RECLAIM = PreemptionSettings(
    rules=RULES, reasons=frozenset({PreemptionReason.RECLAIM}), guard=Guard.NONE
)


@dataclasses.dataclass(frozen=True)
class Run:
    """One 8-GPU node's single running pod: its team, how long it ran, whom it took from."""

    team: str
    ran_s: float
    took_from: frozenset[str] = frozenset()


def _phase(
    runs: Mapping[str, Run],
    waiting: Sequence[PendingPod],
    settings: PreemptionSettings,
    owed: Mapping[str, frozenset[str]] | None = None,
) -> list[PhasePlan]:
    teams = [Namespace("team-a"), Namespace("team-b"), Namespace("team-c")]
    snapshot = ClusterSnapshot([make_node(name) for name in runs], teams)
    running = []
    for row, (node, run) in enumerate(runs.items()):
        pod = make_pod(f"run-{node}", gpus=8, cpu=0, memory_gib=0, namespace=run.team)
        snapshot.assume(pod, row)
        running.append(
            RunningPod(
                run.team,
                pod.name,
                pod.uid,
                node,
                pod.requests,
                NOW - run.ran_s,
                opted_in=True,
                took_from=run.took_from,
            )
        )
    masks: dict[str, BoolArray] = {p.uid: np.ones(len(snapshot), dtype=bool) for p in waiting}
    since = {p.uid: NOW - 120 for p in waiting}
    return plan_preemptions(snapshot, waiting, masks, running, since, NOW, settings, owed=owed)


def _guarded(settings: PreemptionSettings) -> PreemptionSettings:
    return dataclasses.replace(settings, guard=Guard.TAKEBACK)


def _pod(name: str, team: str, priority: int = 0, created_at_s: float = 0.0) -> PendingPod:
    return make_pod(
        name,
        gpus=8,
        cpu=0,
        memory_gib=0,
        namespace=team,
        priority=priority,
        created_at_s=created_at_s,
    )


def _victims(plans: Sequence[PhasePlan]) -> list[list[str]]:
    return [sorted(v.node for v in made.victims) for made in plans]


def test_a_pod_that_took_from_a_team_is_never_its_victim() -> None:
    # n1 is the cheapest victim, but it got its place by taking from team-a.
    a = frozenset({"team-a"})
    runs = {"n1": Run("team-b", 400, a), "n2": Run("team-b", 900, frozenset({"team-c"}))}
    waiting = [_pod("w", "team-a", priority=10)]
    for settings in (BY_RECLAIM, BY_PRIORITY):
        assert _victims(_phase(runs, waiting, settings)) == [["n1"]]
        # The guard sends team-a to n2, which took from team-c only.
        assert _victims(_phase(runs, waiting, _guarded(settings))) == [["n2"]]
    both = {"n1": Run("team-b", 400, a), "n2": Run("team-b", 900, a)}
    assert _phase(both, waiting, _guarded(BY_RECLAIM)) == []


def test_a_team_owed_a_waiting_job_takes_nothing_from_the_team_that_stopped_it() -> None:
    runs = {"n1": Run("team-b", 400), "n2": Run("team-c", 900)}
    waiting = [_pod("w", "team-a", priority=10)]
    owed = {"team-a": frozenset({"team-b"})}
    assert _victims(_phase(runs, waiting, BY_PRIORITY, owed)) == [["n1"]]
    assert _victims(_phase(runs, waiting, _guarded(BY_PRIORITY), owed)) == [["n2"]]
    # Owed by no one, team-a takes the cheapest again.
    assert _victims(_phase(runs, waiting, _guarded(BY_PRIORITY))) == [["n1"]]


def test_a_gang_is_guarded_as_a_pod_alone() -> None:
    a = frozenset({"team-a"})
    runs = {f"n{i}": Run("team-b", 400 + 100 * i, a if i < 3 else frozenset()) for i in range(4)}
    gang = [
        dataclasses.replace(_pod(f"g{k}", "team-a", priority=10), gang=Gang("g", 2))
        for k in range(2)
    ]
    assert _victims(_phase(runs, gang, BY_PRIORITY)) == [["n0", "n1"]]
    assert _phase(runs, gang, _guarded(BY_PRIORITY)) == []
    runs["n1"] = Run("team-b", 500)
    assert _victims(_phase(runs, gang, _guarded(BY_PRIORITY))) == [["n1", "n3"]]


def test_a_take_of_the_phase_is_not_answered_in_the_same_phase() -> None:
    # team-c's pod (first in the queue) takes team-a's cheap node; team-a's pod could then
    # take team-c's node only by answering that take.
    runs = {"n1": Run("team-a", 400), "n2": Run("team-c", 5_000)}
    waiting = [_pod("c", "team-c", 10, created_at_s=0.0), _pod("a", "team-a", 10, 1.0)]
    made = _phase(runs, waiting, BY_PRIORITY)
    assert [m.binds[0][0].name for m in made] == ["c", "a"]
    assert _victims(made) == [["n1"], ["n2"]]
    guarded = _phase(runs, waiting, _guarded(BY_PRIORITY))
    assert [m.binds[0][0].name for m in guarded] == ["c"]


def test_within_a_team_nothing_changes() -> None:
    own = frozenset({"team-a"})
    runs = {"n1": Run("team-a", 400, own)}
    waiting = [_pod("w", "team-a", priority=10)]
    owed = {"team-a": own}
    assert _victims(_phase(runs, waiting, _guarded(BY_PRIORITY), owed)) == [["n1"]]


def test_the_setting_is_parsed_on_by_default_and_a_bad_value_named() -> None:
    assert PreemptionSettings().guard is Guard.TAKEBACK
    assert parse_settings("on").guard is Guard.TAKEBACK
    assert parse_settings("reasons=reclaim").guard is Guard.TAKEBACK
    assert parse_settings("reasons=reclaim,guard=none").guard is Guard.NONE
    assert "guard (none|takeback; default takeback)" in settings_help()
    with pytest.raises(ValueError, match="guard='always': expected one of none, takeback"):
        parse_settings("guard=always")
