"""The preemption counts outlive the operator: written to their ConfigMap before any victim
is touched, read by a restarted operator and by each new leadership term before it plans,
merged by maximum when another writer got there first; a write that fails ends the hold
with no victim called; data that cannot be read is logged and left out entry by entry."""

import asyncio
import json
import logging
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from builders import k8s_node, k8s_pod, rfc3339
from electors import SwitchedElector
from fake_api import FakeApi
from hybrid_operator.leader import LeaderElector
from hybrid_operator.preemption_ledger import (
    DATA_KEY,
    OWED_KEY,
    PRUNE_AFTER_S,
    READ_RETRY_S,
    Entry,
    parse,
    parse_owed,
)
from hybrid_operator.preemption_takes import Owed
from hybrid_operator.scheduler import Scheduler
from hybrid_operator.settings import OperatorSettings

NOW = 1_000_000.0
RULES = "min_runtime_s=60,trigger_delay_s=0,max_preemptions=1"
LEDGER = ("default", "hybrid-scheduler-preemptions")


def _running(name: str, node: str, job: str | None, opted_in: bool = True) -> dict[str, Any]:
    """A team-a pod of Job ``job`` holding all 4 GPUs of ``node``, running for 10 minutes."""
    status = {"startTime": rfc3339(NOW - 600)}
    annotations = {"hybrid-scheduler.io/preemptible": "true" if opted_in else "false"}
    pod = k8s_pod(name, gpus=4, node=node, phase="Running", status=status, annotations=annotations)
    if job is not None:
        owner = {"kind": "Job", "name": job, "uid": job, "controller": True}
        pod["metadata"]["ownerReferences"] = [owner]
    return pod


def _operator(
    api: FakeApi, clock: list[float], elector: LeaderElector | None = None, a1: str = "a1"
) -> Scheduler:
    """Job ``job-a``'s pod ``a1`` on n1 (opted in), a pod that opted out on n2; team-b's
    4-GPU pod ``b1`` waits."""
    settings = OperatorSettings(preemption=RULES)
    scheduler = Scheduler(settings, api, clock=lambda: clock[0], elector=elector)
    for node in ("n1", "n2"):
        scheduler.on_node(None, k8s_node(node, gpus=4))
    scheduler.on_pod(None, _running(a1, "n1", "job-a"))
    scheduler.on_pod(None, _running("kept", "n2", "job-k", opted_in=False))
    scheduler.on_pod(None, k8s_pod("b1", gpus=4, ns="team-b"))
    return scheduler


def _pass(scheduler: Scheduler, clock: list[float]) -> None:
    asyncio.run(scheduler.schedule_once())
    clock[0] += 1.0


def _stored(api: FakeApi) -> dict[str, Any]:
    counts: dict[str, Any] = json.loads(str(api.config_maps[LEDGER].data[DATA_KEY]))
    return counts


def _put(api: FakeApi, counts: dict[str, Any], owed: dict[str, Any] | None = None) -> None:
    data: dict[str, object] = {DATA_KEY: json.dumps(counts)}
    if owed is not None:
        data[OWED_KEY] = json.dumps(owed)
    api.put_config_map(*LEDGER, data)


def _deleted(api: FakeApi) -> list[str]:
    return [key for call, key, _ in api.calls if call == "delete"]


def _told(api: FakeApi, name: str) -> list[str]:
    return [m for pod, reason, m, _ in api.events if pod == name and reason == "FailedScheduling"]


class Recording(FakeApi):
    """Remembers what the ledger held when each victim got its condition."""

    def __init__(self) -> None:
        super().__init__()
        self.ledger_at_condition: list[dict[str, Any]] = []

    def mark_disruption_target(self, namespace: str, name: str, message: str) -> None:
        self.ledger_at_condition.append(_stored(self) if LEDGER in self.config_maps else {})
        super().mark_disruption_target(namespace, name, message)


def test_the_count_is_written_first_and_a_restarted_operator_takes_no_pod_past_the_limit() -> None:
    api, clock = Recording(), [NOW]
    first = _operator(api, clock)
    _pass(first, clock)
    assert _deleted(api) == ["team-a/a1"]
    [seen] = api.ledger_at_condition  # counted before the victim was touched
    assert seen == {"job-a": {"count": 1, "at": NOW}}
    # The operator restarts; the Job made a1 again, and another pod of team-b waits.
    clock[0] += 600
    restarted = _operator(api, clock, a1="a1-again")
    for _ in range(3):
        _pass(restarted, clock)
    assert _deleted(api) == ["team-a/a1"]  # a1-again is at max_preemptions=1
    assert restarted.preemption and restarted.preemption.ledger.counts() == {"job-a": 1}
    assert ("read", "/".join(LEDGER)) in api.config_map_calls


def test_each_new_term_reads_the_counts_another_leader_wrote() -> None:
    api, clock, elector = FakeApi(), [NOW], SwitchedElector()
    scheduler = _operator(api, clock, elector)
    scheduler.on_pod("DELETED", k8s_pod("b1", gpus=4, ns="team-b"))
    _pass(scheduler, clock)  # term 1 reads an empty ledger; nothing to preempt for
    elector.lose()
    _put(api, {"job-a": {"count": 1, "at": NOW}})  # another replica led, and preempted
    elector.win()  # a new term: this replica leads again
    scheduler.on_pod(None, k8s_pod("b1", gpus=4, ns="team-b"))
    for _ in range(3):
        _pass(scheduler, clock)
    assert _deleted(api) == []
    assert scheduler.preemption and scheduler.preemption.ledger.counts() == {"job-a": 1}
    assert [call for call, _ in api.config_map_calls] == ["read", "read"]  # once per term


def test_no_plan_before_the_counts_are_read_and_a_failed_read_is_tried_again() -> None:
    api, clock = FakeApi(), [NOW]
    api.read_failures.append(ApiException(status=503, reason="Service Unavailable"))
    scheduler = _operator(api, clock)
    for _ in range(3):
        _pass(scheduler, clock)
    assert api.calls == [] and [c for c, _ in api.config_map_calls] == ["read"]
    clock[0] += READ_RETRY_S
    _pass(scheduler, clock)
    assert _deleted(api) == ["team-a/a1"]


@pytest.mark.parametrize(
    ("failure", "said"),
    [
        (ApiException(status=403, reason="Forbidden"), "403 Forbidden"),
        (TimeoutError(), "TimeoutError"),
    ],
)
def test_a_write_that_fails_ends_the_hold_and_no_victim_is_touched(
    failure: Exception, said: str
) -> None:
    api, clock = FakeApi(), [NOW]
    api.write_failures.append(failure)
    scheduler = _operator(api, clock)
    _pass(scheduler, clock)
    assert api.calls == []  # no condition, no deletion, no nomination
    [told] = _told(api, "b1")
    why = f"could not write the preemption counts to ConfigMap {'/'.join(LEDGER)} ({said})"
    assert f"preemption on n1 failed: {why}" in told
    assert "uid-b1" in scheduler.queue and not scheduler.cache.held


def test_a_conflict_is_read_again_merged_by_maximum_and_written_once_more() -> None:
    api, clock = FakeApi(), [NOW]
    _put(api, {"job-x": {"count": 2, "at": NOW - 60}})
    scheduler = _operator(api, clock)

    def another_writer() -> None:  # overtakes the first write only
        api.before_write = None
        _put(api, {"job-x": {"count": 3, "at": NOW - 30}, "job-y": {"count": 1, "at": NOW - 5}})

    api.before_write = another_writer
    _pass(scheduler, clock)
    assert _stored(api) == {
        "job-a": {"count": 1, "at": NOW},
        "job-x": {"count": 3, "at": NOW - 30},
        "job-y": {"count": 1, "at": NOW - 5},
    }
    assert [c for c, _ in api.config_map_calls] == ["read", "write", "read", "write"]
    assert _deleted(api) == ["team-a/a1"]


def test_a_second_conflict_ends_the_hold() -> None:
    api, clock = FakeApi(), [NOW]
    scheduler = _operator(api, clock)
    api.before_write = lambda: _put(api, {})  # someone writes before every write
    _pass(scheduler, clock)
    assert api.calls == []
    [told] = _told(api, "b1")
    assert "(409 the object has been modified)" in told


def test_an_owner_without_a_pod_for_an_hour_is_pruned_on_write() -> None:
    api, clock = FakeApi(), [NOW]
    old = NOW - PRUNE_AFTER_S - 1
    _put(api, {"job-gone": {"count": 1, "at": old}, "job-k": {"count": 1, "at": old}})
    scheduler = _operator(api, clock)
    _pass(scheduler, clock)
    # job-k's pod is in the cache: kept, however old its latest preemption.
    assert sorted(_stored(api)) == ["job-a", "job-k"]


def test_data_that_cannot_be_read_is_logged_and_only_bad_entries_are_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    api, clock = FakeApi(), [NOW]
    counts = {"job-a": {"count": "many", "at": NOW}, "job-b": {"count": 2, "at": NOW}}
    _put(api, counts)
    scheduler = _operator(api, clock)
    with caplog.at_level(logging.WARNING, logger="hybrid_scheduler"):
        _pass(scheduler, clock)
    [line] = [r.getMessage() for r in caplog.records if DATA_KEY in r.getMessage()]
    assert line == (
        f"ConfigMap {'/'.join(LEDGER)}: data[{DATA_KEY}][job-a].count='many': "
        "not a whole number >= 0; leaving it out of the preemption counts"
    )
    assert _deleted(api) == ["team-a/a1"]  # job-a's bad entry counts nothing
    assert _stored(api)["job-b"] == {"count": 2, "at": NOW}


@pytest.mark.parametrize(
    ("raw", "field", "value"),
    [
        ("{not json", f"data[{DATA_KEY}]", "'{not json'"),
        ("[1, 2]", f"data[{DATA_KEY}]", "'[1, 2]'"),
        ('{"j": 3}', f"data[{DATA_KEY}][j]", "3"),
        ('{"": {"count": 1, "at": 0}}', f"data[{DATA_KEY}][]", "{'count': 1, 'at': 0}"),
        ('{"j": {"count": true, "at": 0}}', f"data[{DATA_KEY}][j].count", "True"),
        ('{"j": {"count": -1, "at": 0}}', f"data[{DATA_KEY}][j].count", "-1"),
        ('{"j": {"count": 1.5, "at": 0}}', f"data[{DATA_KEY}][j].count", "1.5"),
        ('{"j": {"count": 1, "at": "noon"}}', f"data[{DATA_KEY}][j].at", "'noon'"),
        ('{"j": {"count": 1}}', f"data[{DATA_KEY}][j].at", "None"),
    ],
)
def test_each_unreadable_part_is_named_with_its_value_and_left_out(
    raw: str, field: str, value: str
) -> None:
    entries, problems = parse({DATA_KEY: raw})
    assert entries == {}
    [problem] = problems
    assert problem.message.startswith(f"{field}={value}: ")


def test_good_entries_beside_bad_ones_are_kept() -> None:
    raw = json.dumps({"ok": {"count": 2, "at": 5}, "bad": {"count": "x", "at": 5}})
    entries, problems = parse({DATA_KEY: raw})
    assert entries == {"ok": Entry(2, 5.0)} and len(problems) == 1
    assert parse({}) == ({}, [])  # a ConfigMap without counts yet


@pytest.mark.parametrize(
    ("raw", "field", "value"),
    [
        ("{not json", f"data[{OWED_KEY}]", "'{not json'"),
        ('{"j": 3}', f"data[{OWED_KEY}][j]", "3"),
        ('{"j": {"team": "", "takers": [], "held": []}}', f"data[{OWED_KEY}][j].team", "''"),
        ('{"j": {"team": "a", "takers": "b", "held": []}}', f"data[{OWED_KEY}][j].takers", "'b'"),
        ('{"j": {"team": "a", "takers": ["b"], "held": [1]}}', f"data[{OWED_KEY}][j].held", "[1]"),
    ],
)
def test_each_unreadable_owed_owner_is_named_with_its_value_and_left_out(
    raw: str, field: str, value: str
) -> None:
    owed, problems = parse_owed({OWED_KEY: raw})
    assert owed == {}
    [problem] = problems
    assert problem.message.startswith(f"{field}={value}: ")
    assert problem.message.endswith("leaving it out of the take-back guard's memory")


def test_the_owed_owners_are_written_with_the_counts_and_merged_on_read() -> None:
    api, clock = FakeApi(), [NOW]
    theirs = {"job-x": {"team": "team-c", "takers": ["team-a"], "held": ["uid-x1"]}}
    _put(api, {}, owed=theirs)
    scheduler = _operator(api, clock)
    _pass(scheduler, clock)  # team-b's b1 takes team-a's a1 (of job-a)
    stored = api.config_maps[LEDGER].data
    owed, problems = parse_owed(stored)
    assert problems == []
    assert owed["job-x"] == Owed("team-c", {"team-a"}, {"uid-x1"})
    assert owed["job-a"].team == "team-a" and owed["job-a"].takers == {"team-b"}
