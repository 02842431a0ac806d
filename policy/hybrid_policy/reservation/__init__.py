"""Fair order, reservation and backfill: when a wide pod gets its node.

The fair order (weighted dominant shares across namespaces, queue order inside each, an
ageing rule over both) says whose turn it is. When the pod whose turn it is fits nowhere,
the node where it is predicted to start earliest is reserved for it; other pods may use
that node only where, by the predictions, they do not delay that start (EASY backfill:
one reservation; conservative: one per waiting pod that fits nowhere, a bounded number).
See docs/reservation.md.
"""

from hybrid_policy.reservation.arbiter import ReservingArbitrator
from hybrid_policy.reservation.model import BackfillMode, OrderRule, ReservationSettings

__all__ = ["BackfillMode", "OrderRule", "ReservationSettings", "ReservingArbitrator"]
