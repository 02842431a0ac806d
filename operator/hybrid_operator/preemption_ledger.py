"""The preemption counts, kept where a restarted operator or a new leader finds them.

A pod is never preempted more than ``max_preemptions`` times, counted per controller (a
Job's pods share one count; a pod without a controller counts alone). The count cannot
live on the victim, which is deleted, nor on every kind of controller, which would take
write access to all of them; so it lives in one ConfigMap, ``<lease_name>-preemptions``
in ``lease_namespace``, beside the Lease: key :data:`DATA_KEY` holds JSON
``{owner_uid: {"count": n, "at": unix_s}}`` (``at``: the latest preemption). Key
:data:`OWED_KEY` holds the take-back guard's owed owners
(:mod:`hybrid_operator.preemption_takes`) as ``{owner_uid: {"team": ns, "takers": [ns],
"held": [pod_uid]}}``, read (checked as the counts are), merged (their union) and written
with the counts, so that a new leader does not let a team take back what was taken from
it.

- **Read** at the start of each leadership term (with leader election off, once, at the
  first pass), before any preemption is planned: the counts found are merged into the
  memory's by their maximum. No ConfigMap is an empty ledger. Data that cannot be read (not
  JSON, not an object, an entry whose ``count`` is no whole number >= 0 or whose ``at`` is
  no number) is logged, naming the field and the value, and only the bad entries are left
  out. Until a read succeeds the term plans no preemption (placements go on); a failed
  read is tried again no sooner than :data:`READ_RETRY_S`.
- **Written** after a pass that planned preemptions, before any victim gets its condition
  or is deleted: the whole ledger, as an update carrying the resourceVersion last read or
  written (a create when there was none). On a conflict the ConfigMap is read again, merged
  by maximum, and written once more. If that fails, every hold of the pass ends as a
  refused victim ends one (its preemptors wait again, told why) and no victim is touched.
  A plan counts when it is made, so a hold that ends, for this reason or any other, still
  counted: a count may be too high, never lost.
- **Pruned** on write: an owner none of whose pods the cache has held for
  :data:`PRUNE_AFTER_S` (or, after a restart, since its latest preemption) is dropped.

Both calls go through the API threads and the client's rate limit, as every other call
does. The read is awaited before the term's first planning pass decides, as training
progress is read before a pass (:meth:`hybrid_operator.scheduler.Scheduler.read_ledger`):
planning must not start without the counts, and it is one call per term. The write is
made with the preemption's other calls after the pass
(:mod:`hybrid_operator.preemption_calls`), so deciding never waits for it.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TypeVar

from hybrid_operator.k8s.api import ClusterApi, StoredMap, WriteConflictError, said
from hybrid_operator.k8s.calls import ApiThreads
from hybrid_operator.k8s.problems import Problem
from hybrid_operator.preemption_takes import Owed

__all__ = [
    "DATA_KEY",
    "OWED_KEY",
    "PRUNE_AFTER_S",
    "READ_RETRY_S",
    "Entry",
    "PreemptionLedger",
    "encode_owed",
    "parse",
    "parse_owed",
]
log = logging.getLogger("hybrid_scheduler")
#: The ConfigMap's data key holding the counts.
DATA_KEY = "counts.json"
#: Seconds an owner may have no pod in the cache before its count is dropped.
PRUNE_AFTER_S = 3600.0
#: Seconds between tries of a read of the ledger that failed.
READ_RETRY_S = 10.0
#: The ConfigMap's data key holding the take-back guard's owed owners.
OWED_KEY = "owed.json"
#: What is done with data that cannot be read.
LEFT_OUT = "leaving it out of the preemption counts"
OWED_LEFT_OUT = "leaving it out of the take-back guard's memory"
T = TypeVar("T")


@dataclass(frozen=True)
class Entry:
    """One owner's preemptions so far, and when (unix seconds) the latest was planned."""

    count: int
    at_s: float

    def merged(self, other: Entry) -> Entry:
        """The larger count and the later time of two readings of one owner."""
        return Entry(max(self.count, other.count), max(self.at_s, other.at_s))


def _table(
    data: Mapping[str, object],
    key: str,
    shape: str,
    read: Callable[[str, Mapping[str, object], list[Problem]], T | None],
    left_out: str,
) -> tuple[dict[str, T], list[Problem]]:
    """The JSON object of owners under ``key`` of a ConfigMap's data, each owner's value
    ``read`` (``shape`` says what it must look like), and what could not be read (left
    out, each with the field and the value)."""
    raw = data.get(key)
    if raw is None:
        return {}, []
    try:
        decoded = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        decoded = None
    if not isinstance(decoded, dict):
        return {}, [Problem(f"data[{key}]", raw, "not a JSON object", left_out)]
    problems: list[Problem] = []
    out = {}
    for owner, value in decoded.items():
        field = f"data[{key}][{owner}]"
        if not owner or not isinstance(value, Mapping):
            what = "an empty owner UID" if not owner else f"not {shape}"
            problems.append(Problem(field, value, what, left_out))
            continue
        item = read(field, value, problems)
        if item is not None:
            out[owner] = item
    return out, problems


def _entry(field: str, value: Mapping[str, object], problems: list[Problem]) -> Entry | None:
    count, at = value.get("count"), value.get("at")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        problems.append(Problem(f"{field}.count", count, "not a whole number >= 0", LEFT_OUT))
        return None
    if not isinstance(at, int | float) or isinstance(at, bool) or not math.isfinite(at):
        problems.append(Problem(f"{field}.at", at, "not a time in unix seconds", LEFT_OUT))
        return None
    return Entry(count, float(at))


def parse(data: Mapping[str, object]) -> tuple[dict[str, Entry], list[Problem]]:
    """The counts a ConfigMap's data holds, and what could not be read in it (left out)."""
    return _table(data, DATA_KEY, '{"count": n, "at": unix_s}', _entry, LEFT_OUT)


def _names(raw: object) -> set[str] | None:
    """A JSON list of non-empty strings as a set; None if it is not one."""
    if not isinstance(raw, list) or not all(isinstance(x, str) and x for x in raw):
        return None
    return set(raw)


def _owed(field: str, value: Mapping[str, object], problems: list[Problem]) -> Owed | None:
    team = value.get("team")
    if not isinstance(team, str) or not team:
        problems.append(Problem(f"{field}.team", team, "not a namespace name", OWED_LEFT_OUT))
        return None
    takers, held = _names(value.get("takers")), _names(value.get("held"))
    if takers is None:
        what = "not a list of namespace names"
        problems.append(Problem(f"{field}.takers", value.get("takers"), what, OWED_LEFT_OUT))
        return None
    if held is None:
        what = "not a list of pod UIDs"
        problems.append(Problem(f"{field}.held", value.get("held"), what, OWED_LEFT_OUT))
        return None
    return Owed(team, takers, held)


def parse_owed(data: Mapping[str, object]) -> tuple[dict[str, Owed], list[Problem]]:
    """The owed owners a ConfigMap's data holds, and what could not be read (left out)."""
    return _table(data, OWED_KEY, '{"team", "takers", "held"}', _owed, OWED_LEFT_OUT)


def encode_owed(waiting: Mapping[str, Owed]) -> str:
    """The JSON kept under :data:`OWED_KEY`."""
    body = {
        owner: {"team": o.team, "takers": sorted(o.takers), "held": sorted(o.held)}
        for owner, o in sorted(waiting.items())
    }
    return json.dumps(body, separators=(",", ":"))


def encoded(entries: Mapping[str, Entry], owed: Mapping[str, Owed]) -> dict[str, str]:
    """The ConfigMap data holding ``entries`` and the ``owed`` owners."""
    counts = {o: {"count": e.count, "at": round(e.at_s, 3)} for o, e in sorted(entries.items())}
    return {DATA_KEY: json.dumps(counts, separators=(",", ":")), OWED_KEY: encode_owed(owed)}


class PreemptionLedger:
    """The counts in memory, and the ConfigMap they are read from and written to."""

    def __init__(
        self,
        api: ClusterApi,
        threads: ApiThreads,
        namespace: str,
        name: str,
        clock: Callable[[], float],
    ) -> None:
        self.api = api
        self.threads = threads
        self.namespace = namespace
        self.name = name
        self.clock = clock
        self.entries: dict[str, Entry] = {}
        #: The take-back guard's owed owners (shared with its memory).
        self.owed: dict[str, Owed] = {}
        #: The resourceVersion last read or written; None: no ConfigMap seen.
        self.version: str | None = None
        #: The leadership term whose read succeeded (None: none yet).
        self.read_term: int | None = None
        #: A failed read is not tried again before this time.
        self.next_read_s = -math.inf
        #: When the cache last held a pod of each owner, as seen on a write.
        self.seen_s: dict[str, float] = {}

    @property
    def where(self) -> str:
        """``ConfigMap default/hybrid-scheduler-preemptions``."""
        return f"ConfigMap {self.namespace}/{self.name}"

    def count(self, owner: str) -> int:
        """Preemptions of ``owner`` so far."""
        entry = self.entries.get(owner)
        return 0 if entry is None else entry.count

    def counts(self) -> dict[str, int]:
        """Every owner's count."""
        return {owner: entry.count for owner, entry in self.entries.items()}

    def add(self, owner: str, now_s: float) -> None:
        """One more preemption of ``owner``, planned at ``now_s``."""
        self.entries[owner] = Entry(self.count(owner) + 1, now_s)

    def ready(self, term: int) -> bool:
        """Whether the counts were read in leadership term ``term``."""
        return self.read_term == term

    def _take(self, stored: StoredMap | None) -> None:
        """Merge what was read into memory by maximum; remember its resourceVersion."""
        if stored is None:
            self.version = None
            return
        self.version = stored.version
        entries, problems = parse(stored.data)
        owed, owed_problems = parse_owed(stored.data)
        for problem in (*problems, *owed_problems):
            log.warning("%s: %s", self.where, problem.message)
        for owner, entry in entries.items():
            known = self.entries.get(owner)
            self.entries[owner] = entry if known is None else known.merged(entry)
        for owner, read in owed.items():
            mine = self.owed.get(owner)
            if mine is None:
                self.owed[owner] = read
            else:
                mine.merge(read)

    async def read(self, term: int) -> None:
        """Read the ConfigMap once in term ``term`` (a failed read is logged, and tried
        again after :data:`READ_RETRY_S`)."""
        now = self.clock()
        if self.ready(term) or now < self.next_read_s:
            return
        try:
            stored = await self.threads.call(self.api.read_config_map, self.namespace, self.name)
        except Exception as exc:
            self.next_read_s = now + READ_RETRY_S
            log.warning(
                "could not read the preemption counts from %s (%s): planning no preemption "
                "until they are read",
                self.where,
                said(exc),
            )
            return
        self._take(stored)
        self.read_term = term
        log.info("read %d preemption counts from %s", len(self.entries), self.where)

    def prune(self, present: Collection[str]) -> None:
        """Drop the owners the cache has held no pod of for :data:`PRUNE_AFTER_S`;
        ``present`` are those it holds a pod of now."""
        now = self.clock()
        for owner in present:
            self.seen_s[owner] = now
        for owner, entry in list(self.entries.items()):
            if now - max(self.seen_s.get(owner, -math.inf), entry.at_s) > PRUNE_AFTER_S:
                del self.entries[owner]
                self.seen_s.pop(owner, None)

    async def write(self, present: Collection[str]) -> str | None:
        """Write the whole ledger (pruned first; ``present``: the owners the cache holds a
        pod of); None when written, else why not. On a conflict, read, merge by maximum,
        and write once more."""
        self.prune(present)
        try:
            try:
                await self._put()
            except WriteConflictError:
                self._take(
                    await self.threads.call(self.api.read_config_map, self.namespace, self.name)
                )
                await self._put()
        except Exception as exc:
            return f"could not write the preemption counts to {self.where} ({said(exc)})"
        return None

    async def _put(self) -> None:
        data = encoded(self.entries, self.owed)
        self.version = await self.threads.call(
            self.api.write_config_map, self.namespace, self.name, data, self.version
        )
