"""The Lease election with a fake clock and a fake Lease API: renew deadline, takeover by
local observation, request timeouts, optimistic concurrency."""

import asyncio
import copy
import logging
import math
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import ReadTimeoutError

from hybrid_operator.leader import LeaderElector, LeaseTimings

LEASE = "hybrid-scheduler"


def _version(lease: client.V1Lease | None) -> str | None:
    return lease.metadata.resource_version if lease is not None and lease.metadata else None


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeLeases:
    """A Lease store with the API server's optimistic concurrency.

    ``hold`` makes writes wait until it is set (a hung call); ``error`` is raised by every
    call; every call's ``_request_timeout`` is kept in ``timeouts``.
    """

    def __init__(self) -> None:
        self.lease: client.V1Lease | None = None
        self.version = 0
        self.timeouts: list[Any] = []
        self.hold: threading.Event | None = None
        self.holding = threading.Event()
        self.error: Exception | None = None
        self.lock = threading.Lock()
        #: A slow API server: each call takes ``latency_s`` on ``clock`` (or times out).
        self.clock: FakeClock | None = None
        self.latency_s = 0.0
        #: Called at the start and the end of every call (to sample an elector).
        self.observe: Callable[[], None] = lambda: None

    def _call(self, kw: dict[str, Any]) -> None:
        timeout = kw.get("_request_timeout")
        self.timeouts.append(timeout)
        self.observe()
        if self.clock is not None and self.latency_s > 0:
            self.clock.now += min(self.latency_s, timeout or math.inf)
            self.observe()
            if timeout is not None and self.latency_s > timeout:
                raise ReadTimeoutError(None, "/leases", "Read timed out.")  # type: ignore[arg-type]
        if self.error is not None:
            raise self.error

    def read_namespaced_lease(self, name: str, namespace: str, **kw: Any) -> client.V1Lease:
        self._call(kw)
        if self.lease is None:
            raise ApiException(status=404, reason="Not Found")
        return copy.deepcopy(self.lease)

    def create_namespaced_lease(
        self, namespace: str, body: client.V1Lease, **kw: Any
    ) -> client.V1Lease:
        self._call(kw)
        if self.lease is not None:
            raise ApiException(status=409, reason="AlreadyExists")
        return self._store(body)

    def replace_namespaced_lease(
        self, name: str, namespace: str, body: client.V1Lease, **kw: Any
    ) -> client.V1Lease:
        self._call(kw)
        if self.hold is not None:
            self.holding.set()
            self.hold.wait()
        with self.lock:  # the API server checks and writes atomically
            if self.lease is None or _version(body) != _version(self.lease):
                raise ApiException(status=409, reason="Conflict")
            return self._store(body)

    def _store(self, body: client.V1Lease) -> client.V1Lease:
        self.version += 1
        body = copy.deepcopy(body)
        assert body.metadata is not None
        body.metadata.resource_version = str(self.version)
        self.lease = body
        return body

    def rewrite(self, **fields: Any) -> None:
        """Another writer changes the record."""
        lease = self.read_namespaced_lease(LEASE, "default")
        spec = lease.spec or client.V1LeaseSpec()
        for name, value in fields.items():
            setattr(spec, name, value)
        self.replace_namespaced_lease(LEASE, "default", lease)

    def spec(self) -> client.V1LeaseSpec:
        assert self.lease is not None and self.lease.spec is not None
        spec: client.V1LeaseSpec = self.lease.spec
        return spec


def _elector(store: Any, identity: str, clock: FakeClock) -> LeaderElector:
    elector = LeaderElector(client.ApiClient(), identity, timings=LeaseTimings(), clock=clock)
    elector.api = store
    return elector


def test_one_leader_renews_and_a_standby_takes_over_after_the_lease_lapses() -> None:
    store, clock = FakeLeases(), FakeClock()
    a, b = _elector(store, "a", clock), _elector(store, "b", clock)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    for _ in range(10):  # a keeps renewing: b never takes over
        clock.now += 2.0
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
    clock.now += 14.9  # b saw a's last renewal 14.9 s ago: not yet
    assert not b.try_acquire_or_renew()
    clock.now += 0.1
    assert b.try_acquire_or_renew()
    assert store.spec().holder_identity == "b"
    assert store.spec().lease_transitions == 1
    assert not a.try_acquire_or_renew()  # the old leader sees b and stands by
    assert not a.is_leader


def test_a_stalled_renewal_ends_leadership_at_the_deadline_while_the_call_hangs() -> None:
    store, clock = FakeLeases(), FakeClock()
    a = _elector(store, "a", clock)
    assert a.try_acquire_or_renew()
    first = a.epoch
    clock.now = 2.0
    store.hold = threading.Event()
    renewal = threading.Thread(target=a.try_acquire_or_renew)
    renewal.start()
    assert store.holding.wait(5)
    clock.now = 9.99  # 9.99 s after the last successful renewal (round begun at 0)
    assert a.is_leader and a.may_act() and a.may_act(first)
    clock.now = 10.0  # the renewal still hangs: leadership ends at the deadline anyway
    assert renewal.is_alive()
    assert not a.is_leader
    assert not a.may_act() and not a.may_act(first)
    clock.now = 11.0
    store.hold.set()  # the hung renewal (round begun at 2) lands late, but it did land
    renewal.join(5)
    assert a.is_leader
    # Leadership lapsed in between: a new term, and passes decided in the old one may not bind.
    assert a.epoch == first + 1
    assert a.may_act(a.epoch) and not a.may_act(first)
    clock.now = 12.0  # counted from when that round began, not when it returned
    assert not a.is_leader


def test_a_renewal_that_returns_a_deadline_after_its_round_began_starts_no_term() -> None:
    store, clock = FakeLeases(), FakeClock()
    a = _elector(store, "a", clock)
    assert a.try_acquire_or_renew()
    first = a.epoch
    clock.now = 2.0
    store.hold = threading.Event()
    renewal = threading.Thread(target=a.try_acquire_or_renew)
    renewal.start()
    assert store.holding.wait(5)
    clock.now = 12.0  # the process was stopped: the round began 10 s ago
    store.hold.set()
    renewal.join(5)
    assert not a.is_leader
    assert a.epoch == first  # no term that could never act
    store.hold = None
    clock.now = 13.0
    assert a.try_acquire_or_renew()  # the next round renews: a new term, live
    assert a.epoch == first + 1 and a.may_act(a.epoch)


def test_a_standby_counts_the_lease_from_its_own_observation_not_remote_times() -> None:
    for skew in (timedelta(days=-3650), timedelta(days=1)):  # remote clock behind, ahead
        store, clock = FakeLeases(), FakeClock()
        a, b = _elector(store, "a", clock), _elector(store, "b", clock)
        assert a.try_acquire_or_renew()
        remote = datetime.now(UTC) + skew
        store.rewrite(renew_time=remote, acquire_time=remote)
        clock.now = 100.0
        assert not b.try_acquire_or_renew()  # first sight of this record: the clock starts
        clock.now = 114.9
        assert not b.try_acquire_or_renew(), skew
        clock.now = 115.0
        assert b.try_acquire_or_renew(), skew


def test_a_conflict_on_update_leaves_one_leader() -> None:
    store, clock = FakeLeases(), FakeClock()
    assert _elector(store, "a", clock).try_acquire_or_renew()
    b, c = _elector(store, "b", clock), _elector(store, "c", clock)
    assert not b.try_acquire_or_renew() and not c.try_acquire_or_renew()
    clock.now = 20.0
    # Both read the lapsed Lease before either writes: the second write carries a stale
    # resourceVersion and is refused.
    store.hold = threading.Event()
    rounds = [threading.Thread(target=e.try_acquire_or_renew) for e in (b, c)]
    for thread in rounds:
        thread.start()
    for _ in range(500):  # until b and c have both read and are writing: 4 + 2 * 2 calls
        if len(store.timeouts) == 8:
            break
        threading.Event().wait(0.01)
    store.hold.set()
    for thread in rounds:
        thread.join(5)
    assert [b.is_leader, c.is_leader].count(True) == 1
    assert store.spec().holder_identity == ("b" if b.is_leader else "c")
    assert store.spec().lease_transitions == 1


def test_a_conflict_on_renewal_ends_leadership_at_once() -> None:
    store, clock = FakeLeases(), FakeClock()
    a = _elector(store, "a", clock)
    assert a.try_acquire_or_renew()
    stale = store.read_namespaced_lease(LEASE, "default")
    store.rewrite(holder_identity="b")
    a.api = type(  # a read the Lease before b wrote it
        "Stale",
        (),
        {
            "read_namespaced_lease": lambda *_, **__: copy.deepcopy(stale),
            "replace_namespaced_lease": store.replace_namespaced_lease,
        },
    )()
    clock.now = 2.0  # well within a's renew deadline
    assert not a.try_acquire_or_renew()
    assert not a.is_leader and store.spec().holder_identity == "b"


def test_at_most_one_leader_while_the_leader_stalls_and_resumes() -> None:
    store, clock = FakeLeases(), FakeClock()
    a, b = _elector(store, "a", clock), _elector(store, "b", clock)
    stalled = (20.0, 50.0)  # a runs no round in between (a frozen process)
    b_led_at = None
    for step in range(0, 280):
        clock.now = step * 0.25
        if step % 8 == 0 and not stalled[0] <= clock.now < stalled[1]:
            a.try_acquire_or_renew()
        if step % 8 == 3:
            b.try_acquire_or_renew()
        assert not (a.is_leader and b.is_leader), clock.now
        if b.is_leader and b_led_at is None:
            b_led_at = clock.now
        if stalled[0] <= clock.now < stalled[1]:
            # a's last renewal began at 18: it stops at 28, b takes over after 33.
            assert a.is_leader == (clock.now < 28.0), clock.now
    assert b_led_at is not None and 33.0 <= b_led_at <= 36.0
    assert not a.is_leader and b.is_leader


def test_an_unreadable_lease_ends_leadership_at_the_renew_deadline() -> None:
    store, clock = FakeLeases(), FakeClock()
    a = _elector(store, "a", clock)
    assert a.try_acquire_or_renew()
    store.error = ApiException(status=500, reason="Internal Server Error")
    for now in (2.0, 4.0, 6.0, 8.0, 9.9):  # failed rounds: still within the deadline
        clock.now = now
        assert a.try_acquire_or_renew()
    clock.now = 10.0
    assert not a.try_acquire_or_renew()
    assert not a.is_leader


def test_a_slow_api_server_slows_the_rounds_down_but_the_leader_keeps_leading() -> None:
    store, clock = FakeLeases(), FakeClock()
    a = _elector(store, "a", clock)
    timings = a.timings
    # Each call takes a fifth of the renew deadline: twice the retry period's half, so a
    # round (a read and a write) takes twice the retry period.
    store.clock, store.latency_s = clock, timings.renew_deadline_s / 5
    leading: list[bool] = []
    store.observe = lambda: leading.append(a.is_leader)
    for _ in range(10):
        started = clock.now
        a.try_acquire_or_renew()
        clock.now += timings.pause_after(started, clock.now)
    first = leading.index(True)
    assert first == 4  # the end of the first round's write (a read, a create)
    assert all(leading[first:]), "leadership lapsed between two slow renewals"
    assert len(leading[first:]) > 30


def test_every_lease_call_has_a_timeout_that_fits_a_round_in_the_renew_deadline() -> None:
    store, clock = FakeLeases(), FakeClock()
    a, b = _elector(store, "a", clock), _elector(store, "b", clock)
    for now in (0.0, 2.0, 4.0):  # a creates, then renews; b reads
        clock.now = now
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
    clock.now = 30.0
    assert b.try_acquire_or_renew()  # b reads and takes over
    assert len(store.timeouts) == 11
    assert set(store.timeouts) == {5.0}
    assert all(0 < 2 * t <= LeaseTimings().renew_deadline_s for t in store.timeouts)


def test_the_loop_retries_failed_rounds_and_stops_leading_at_the_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, clock = FakeLeases(), FakeClock()
    a = _elector(store, "a", clock)
    a.timings = LeaseTimings(retry_period_s=0.01)

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(a.run_forever(stop))
        while not a.is_leader:
            await asyncio.sleep(0.01)
        store.error = ReadTimeoutError(None, "/leases", "Read timed out.")  # type: ignore[arg-type]
        clock.now = 9.0
        while "Read timed out" not in caplog.text:  # a failed round: still leading
            await asyncio.sleep(0.01)
        assert a.is_leader
        clock.now = 10.0
        while "no renewal within 10 s" not in caplog.text:
            await asyncio.sleep(0.01)
        stop.set()
        await task

    with caplog.at_level(logging.INFO, logger="hybrid_scheduler"):
        asyncio.run(asyncio.wait_for(scenario(), 10))
    assert "a now leads (term 1)" in caplog.text
    assert not a.is_leader
