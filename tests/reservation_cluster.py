"""A small reserving cluster for tests: nodes of 8 GPUs, pods running on them, and a
reserving policy fed as a driver feeds it (predictions are the pods' user estimates)."""

import numpy as np

from builders import make_node
from hybrid_policy.domain import Namespace, PendingPod
from hybrid_policy.framework.cycle import Decision
from hybrid_policy.framework.plugins import ScorePlugin
from hybrid_policy.framework.snapshot import ClusterSnapshot
from hybrid_policy.plugins.scores import binpack_scorer
from hybrid_policy.policies import Policy, reserving_policy
from hybrid_policy.reservation import BackfillMode, ReservationSettings

NAMESPACES = [Namespace("team-a"), Namespace("team-b"), Namespace("team-c")]


class Cluster:
    """Nodes of 8 GPUs, pods running on them, and a reserving policy fed like a driver."""

    def __init__(
        self,
        nodes: int,
        mode: BackfillMode,
        scorer: ScorePlugin | None = None,
        **settings: object,
    ) -> None:
        self.snapshot = ClusterSnapshot([make_node(f"n{i}") for i in range(nodes)], NAMESPACES)
        scorers = [(scorer or binpack_scorer(), 1.0)]
        # Backfill takes predicted durations at face value unless a test says otherwise.
        settings = {"backfill_factor": 1.0, **settings}
        config = ReservationSettings(mode=mode, **settings)  # type: ignore[arg-type]
        self.policy: Policy = reserving_policy("test", scorers, config)
        assert self.policy.predictor is not None
        self.predictor = self.policy.predictor
        self.rng = np.random.default_rng(0)

    def run(self, pod: PendingPod, node: int, since_s: float = 0.0) -> None:
        self.snapshot.assume(pod, node)
        self.predictor.started(pod, f"n{node}", since_s, 100.0)

    def schedule(self, batch: list[PendingPod], now_s: float) -> dict[str, Decision]:
        self.snapshot.now_s = now_s
        decisions = self.policy.profile.schedule_batch(batch, self.snapshot, self.rng)
        for d in decisions:
            if d.placed:
                self.predictor.started(d.pod, str(d.node), now_s, 100.0)
        return {d.pod.name: d for d in decisions}
