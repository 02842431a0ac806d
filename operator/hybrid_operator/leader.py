"""Leader election over a coordination.k8s.io Lease, with kube-scheduler's timings.

Several replicas watch and keep their caches warm; only the holder of the Lease runs
scheduling passes, so a takeover needs no warm-up. The rules are client-go's
``leaderelection``, which kube-scheduler uses:

- every replica runs one round each ``retry_period_s``: the holder renews, the others
  check whether the Lease has lapsed;
- a standby takes the Lease over only when it has seen no change to the Lease record for
  the record's ``leaseDurationSeconds`` by its own monotonic clock, counted from the moment
  it *observed* the change, never from the remote ``renewTime`` (immune to clock skew);
- the holder leads only while ``now - last successful renewal < renew_deadline_s``,
  checked on every read of :attr:`LeaderElector.is_leader`, so a leader whose renewal
  hangs stops at the deadline even though the renewing call has not returned;
- every Lease call has a request timeout of half the renew deadline (client-go gives all
  the attempts of one renewal the renew deadline), so a slow API server slows the rounds
  down without ending leadership; rounds begin every ``retry_period_s`` however long the
  calls took, or at once after a round that took longer;
- every write carries the Lease's resourceVersion, so two replicas racing for it cannot
  both win.

A renewal counts from the moment its round began (before the read), which is no later
than the moment any other replica can observe it: a stalled leader stops at most
``renew_deadline_s`` after it, a standby takes over at least ``lease_duration_s`` after
it. Each term of leadership has an :attr:`~LeaderElector.epoch`; the loop passes the epoch
it decided under to :meth:`~LeaderElector.may_act` before binding.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("hybrid_scheduler")


@dataclass(frozen=True)
class LeaseTimings:
    """kube-scheduler's ``leaderElection`` durations, in seconds (its defaults)."""

    #: How long a standby waits, after it last saw the record change, before taking over.
    lease_duration_s: float = 15.0
    #: How long the holder keeps leading without a successful renewal.
    renew_deadline_s: float = 10.0
    #: How often every replica runs a round (renew, or check for a lapsed Lease).
    retry_period_s: float = 2.0

    @property
    def request_timeout_s(self) -> float:
        """Timeout of one Lease call: a read and a write fit in one renew deadline."""
        return self.renew_deadline_s / 2

    def pause_after(self, started: float, now: float) -> float:
        """How long to wait at ``now`` before the next round, the last one having begun
        at ``started``: rounds begin every retry period, at once after a slow one."""
        return max(self.retry_period_s - (now - started), 0.0)


@dataclass(frozen=True)
class LeaseRecord:
    """The Lease's election record; a change to any field counts as a renewal."""

    holder: str
    renew_time: datetime | None
    acquire_time: datetime | None
    duration_s: int | None
    transitions: int

    @classmethod
    def of(cls, spec: client.V1LeaseSpec) -> LeaseRecord:
        """The record of a Lease's spec."""
        return cls(
            spec.holder_identity or "",
            spec.renew_time,
            spec.acquire_time,
            spec.lease_duration_seconds,
            spec.lease_transitions or 0,
        )


@dataclass(frozen=True)
class _Observation:
    record: LeaseRecord
    #: Local monotonic time at which this record was first seen.
    at: float


@dataclass(frozen=True)
class _Term:
    epoch: int
    #: Local monotonic time at which the last successful renewal's round began.
    renewed_at: float


class LeaderElector:
    """Holds or watches one Lease."""

    def __init__(
        self,
        api_client: client.ApiClient,
        identity: str,
        namespace: str = "default",
        name: str = "hybrid-scheduler",
        timings: LeaseTimings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = client.CoordinationV1Api(api_client)
        self.identity = identity
        self.namespace = namespace
        self.name = name
        self.timings = timings or LeaseTimings()
        self.clock = clock
        self._term: _Term | None = None
        self._epochs = 0
        self._seen: _Observation | None = None

    # -- what the scheduling loop reads -------------------------------------------------

    @property
    def is_leader(self) -> bool:
        """Whether this replica leads now: it renewed less than ``renew_deadline_s`` ago."""
        return self._live_term() is not None

    @property
    def epoch(self) -> int:
        """The current (or last) term of leadership; it grows each time leadership begins."""
        return self._epochs

    def may_act(self, epoch: int | None = None) -> bool:
        """Whether a binding may go out now, decided under ``epoch`` (any term if None)."""
        term = self._live_term()
        return term is not None and (epoch is None or term.epoch == epoch)

    def _live_term(self) -> _Term | None:
        term = self._term
        if term is None or self.clock() - term.renewed_at >= self.timings.renew_deadline_s:
            return None
        return term

    # -- one round ----------------------------------------------------------------------

    def try_acquire_or_renew(self) -> bool:
        """One round of the election; returns whether this replica leads after it."""
        started = self.clock()
        timeout = self.timings.request_timeout_s
        try:
            lease = self.api.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=timeout
            )
        except ApiException as exc:
            if exc.status != 404:
                log.warning("leader election: cannot read the Lease: %s %s", exc.status, exc.reason)
                return self.is_leader  # a failed round: leadership ends at the deadline
            body = client.V1Lease(
                metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
                spec=self._spec(acquired=None, transitions=0),
            )
            return self._write(started, body, create=True)
        spec = lease.spec or client.V1LeaseSpec()
        seen = self._observe(LeaseRecord.of(spec))
        holder = seen.record.holder
        if holder and holder != self.identity and not self._lapsed(seen):
            return self._stand_by(holder)
        if holder == self.identity:
            lease.spec = self._spec(spec.acquire_time, seen.record.transitions)
        else:
            log.info("leader election: %s stopped renewing; taking over", holder or "nobody")
            lease.spec = self._spec(acquired=None, transitions=seen.record.transitions + 1)
        return self._write(started, lease, create=False)

    def _observe(self, record: LeaseRecord) -> _Observation:
        if self._seen is None or self._seen.record != record:
            self._seen = _Observation(record, self.clock())
        return self._seen

    def _lapsed(self, seen: _Observation) -> bool:
        duration = seen.record.duration_s or self.timings.lease_duration_s
        return self.clock() - seen.at >= duration

    def _spec(self, acquired: datetime | None, transitions: int) -> client.V1LeaseSpec:
        now = datetime.now(UTC)
        return client.V1LeaseSpec(
            holder_identity=self.identity,
            # Whole seconds in the API; rounded up so that nobody waits less than configured.
            lease_duration_seconds=math.ceil(self.timings.lease_duration_s),
            acquire_time=acquired or now,
            renew_time=now,
            lease_transitions=transitions,
        )

    def _write(self, started: float, lease: client.V1Lease, create: bool) -> bool:
        timeout = self.timings.request_timeout_s
        try:
            if create:
                self.api.create_namespaced_lease(self.namespace, lease, _request_timeout=timeout)
            else:
                self.api.replace_namespaced_lease(
                    self.name, self.namespace, lease, _request_timeout=timeout
                )
        except ApiException as exc:
            if exc.status == 409:  # someone else wrote first: they hold it now
                return self._stand_by("another replica")
            log.warning("leader election: cannot write the Lease: %s %s", exc.status, exc.reason)
            return self.is_leader
        self._renewed(started, LeaseRecord.of(lease.spec or client.V1LeaseSpec()))
        return self.is_leader

    def _renewed(self, started: float, written: LeaseRecord) -> None:
        now = self.clock()
        self._seen = _Observation(written, now)
        if now - started >= self.timings.renew_deadline_s:
            # The round began a deadline ago (the process was stopped meanwhile): the
            # write landed, but it leads nobody now; the next round renews or stands by.
            return
        term = self._term
        if term is None or now - term.renewed_at >= self.timings.renew_deadline_s:
            self._epochs += 1
            term = _Term(self._epochs, started)
            log.info("leader election: %s now leads (term %d)", self.identity, term.epoch)
        self._term = _Term(term.epoch, started)

    def _stand_by(self, holder: str) -> bool:
        if self._term is not None:
            log.warning(
                "leader election: %s stopped leading: %s holds the Lease; pausing scheduling",
                self.identity,
                holder,
            )
        self._term = None
        return False

    # -- the loop -----------------------------------------------------------------------

    def _note_deadline(self) -> None:
        """Log once, and end the term, when the renew deadline passed without a renewal."""
        if self._term is not None and self._live_term() is None:
            log.warning(
                "leader election: %s stopped leading: no renewal within %g s; pausing scheduling",
                self.identity,
                self.timings.renew_deadline_s,
            )
            self._term = None

    async def run_forever(self, stop: asyncio.Event) -> None:
        """A round every ``retry_period_s`` until ``stop`` is set."""
        while not stop.is_set():
            started = self.clock()
            try:
                await asyncio.to_thread(self.try_acquire_or_renew)
            except Exception as exc:  # a failed round must never end the operator
                log.warning("leader election round failed: %s", exc)
            self._note_deadline()
            pause = self.timings.pause_after(started, self.clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=pause)
