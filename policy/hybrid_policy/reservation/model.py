"""The reservation settings and what a reservation holds, across passes and within one."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from enum import Enum

from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.snapshot import FloatArray
from hybrid_policy.overrides import key_values


class BackfillMode(Enum):
    """What the arbitrator does for the pod whose turn it is when it fits nowhere."""

    #: Nothing: it is skipped and the pass goes on in fair order (work conserving).
    NONE = "none"
    #: One reservation, and its node is closed to every other pod until the pod starts.
    RESERVE = "reserve"
    #: One reservation; other pods use its node only where they do not delay it (EASY).
    EASY = "easy"
    #: A reservation for each waiting pod that fits nowhere, in fair order, up to
    #: ``max_reservations``; other pods may delay none of them (conservative backfill).
    CONSERVATIVE = "conservative"


class OrderRule(Enum):
    """Which namespace gives the next unit of a pass (after the aged units)."""

    #: Weighted DRF: the namespace with the smallest dominant share over its weight.
    DRF = "drf"
    #: Oldest first among the namespaces whose dominant share over weight is at most the
    #: pass's water level (times ``1 + level_slack``); the others after them, by DRF.
    CAPPED = "capped"


@dataclass(frozen=True)
class ReservationSettings:
    """The arbitrator's tunables (defaults chosen on tuning seeds 0-9, docs/benchmarks.md)."""

    mode: BackfillMode = BackfillMode.EASY
    #: Reservations held at once in conservative mode (EASY and RESERVE hold one).
    max_reservations: int = 4
    #: Ageing: a pod pending this long goes before the fair order, oldest first.
    max_wait_s: float = 7200.0
    #: Sticky rule: a reservation moves only to a node predicted to start it at least
    #: this much earlier than the node it holds.
    switch_margin_s: float = 60.0
    #: Backfill counts a pod's predicted duration times this factor: below 1 it backfills
    #: on the chance that a pod is shorter than the mean of its class (run times are
    #: long-tailed: most are shorter), at the risk of delaying a reserved start; above 1
    #: it guards reserved starts against under-estimates.
    backfill_factor: float = 0.35
    #: How the fair order picks the next namespace.
    order: OrderRule = OrderRule.DRF
    #: With the capped order: how far above the water level a namespace's share may be
    #: and still be served oldest first (0: up to the level; negative: below it).
    level_slack: float = -0.1

    def __post_init__(self) -> None:
        if self.max_reservations < 1:
            raise ValueError(f"max_reservations: must be >= 1 (got {self.max_reservations})")
        if self.max_wait_s <= 0 or self.switch_margin_s < 0 or self.backfill_factor <= 0:
            raise ValueError(f"reservation settings out of range: {self}")
        if self.level_slack <= -1:
            raise ValueError(f"level_slack: must be > -1 (got {self.level_slack})")

    def overridden(self, text: str) -> ReservationSettings:
        """These settings with ``text`` (``key=value`` pairs, comma-separated) applied, as
        ``simulate --reservation`` takes them; ValueError names a bad key or value."""
        changes = {
            key: _override_value(key, raw) for key, raw in key_values(text, _OVERRIDABLE).items()
        }
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @property
    def bound(self) -> int:
        """How many reservations may be held at once."""
        if self.mode is BackfillMode.NONE:
            return 0
        return self.max_reservations if self.mode is BackfillMode.CONSERVATIVE else 1


#: Settings ``simulate --reservation`` may change, and how each value is read.
_OVERRIDABLE = (
    "mode",
    "max_reservations",
    "max_wait_s",
    "switch_margin_s",
    "backfill_factor",
    "order",
    "level_slack",
)


def _override_value(key: str, raw: str) -> object:
    """One override's value: a mode or order name, a whole number, or a number
    (``max_wait_s`` also ``none``: no ageing)."""
    if key in ("mode", "order"):
        names = {m.value: m for m in (BackfillMode if key == "mode" else OrderRule)}
        if raw not in names:
            raise ValueError(f"{key}={raw!r}: expected one of {', '.join(names)}")
        return names[raw]
    if key == "max_wait_s" and raw == "none":
        return math.inf
    try:
        value = int(raw) if key == "max_reservations" else float(raw)
    except ValueError:
        raise ValueError(f"{key}={raw!r}: not a number") from None
    if not math.isfinite(value) and key != "max_wait_s":
        raise ValueError(f"{key}={raw!r}: must be finite")
    return value


@dataclass(slots=True)
class Hold:
    """A reservation's claim on a node: the pod's need from ``start_s`` to ``end_s``."""

    uid: str
    node: int
    start_s: float
    end_s: float
    need: FloatArray


@dataclass(slots=True)
class Held:
    """A reservation kept across passes (sticky): the pod, its node and when it was made."""

    uid: str
    node: str
    predicted_start_s: float
    made_at_s: float
    #: The pod, once a pass has served it (a reservation restored by a driver has none).
    pod: PendingPod | None = None
