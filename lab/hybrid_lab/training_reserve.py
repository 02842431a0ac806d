"""Training with the reserving discipline in the loop: the DQN scorer learns inside
``hybrid-reserve``.

``hybrid-scheduler train --discipline reserve`` runs every episode with the
``hybrid-reserve`` policy as shipped (fair order, one sticky reservation, EASY backfill,
DQN + binpack node scores at weights 1 and ``HYBRID_BINPACK_WEIGHT``) whose DQN is the
network being trained. The learning actor is the arbitrator's :class:`NodeChooser`: it
is asked only for a pod the pass starts (the holder or the pod whose turn it is, or a
backfilled one), and only among the nodes where that pod delays no reservation, so each
transition is a decision hybrid-reserve really makes, and the next state's candidates
(the target's max) are the next pod's allowed nodes. Gangs are placed whole by the
framework, not through the chooser: their pods are no actions (the training scenarios
have no gangs).

**What the actor learns: the DQN part alone, acting on the combined score.** Its greedy
choice maximises the score the policy maximises (min-max normalised Q-values plus the
binpack score), so the states it visits and the placements it learns from are the
policy's; exploration picks a uniformly random allowed node; the warm start follows
binpack as in the plain discipline. The Q-learning target stays the network's own value
(double DQN over the next allowed nodes). The combined score cannot be the learnt value:
each term is min-max normalised over one pod's candidates, so its scale changes from one
decision to the next and is no return, and binpack is fixed, not learnt. Learning Q alone
keeps the checkpoint a plain node scorer (same format and features), which the policy
combines exactly as it was combined while learning.

Validation runs ``hybrid-reserve`` with the candidate network on the validation
workloads, against ``binpack`` and against ``hybrid-reserve`` with the network shipped as
``dqn-default.pt``; the best network is chosen as in the plain discipline (mean JCT
relative to ``binpack``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hybrid_lab.matrix import run_one
from hybrid_policy.domain import PendingPod
from hybrid_policy.dqn.checkpoint import default_checkpoint_path
from hybrid_policy.dqn.env import LearningActor
from hybrid_policy.dqn.network import QNetwork
from hybrid_policy.dqn.scorer import DqnScore
from hybrid_policy.features import Float32Array, pair_features
from hybrid_policy.framework.cycle import ScoreTable
from hybrid_policy.framework.snapshot import ClusterSnapshot, FloatArray, IntArray
from hybrid_policy.policies import ModelOptions, Policy, hybrid_reserve_with
from hybrid_policy.report.summary import summarise
from hybrid_policy.reservation import ReservingArbitrator
from hybrid_policy.scenario.workload import Workload
from hybrid_policy.sim.engine import Simulation

#: The baseline naming the shipped network inside hybrid-reserve.
SHIPPED_IN_RESERVE = "hybrid-reserve[dqn-default]"


@dataclass(frozen=True)
class _Scored:
    """The feature rows of the last pod the recording scorer rated."""

    uid: str
    candidates: IntArray
    features: Float32Array


class RecordingDqnScore(DqnScore):
    """The DQN score, remembering the feature rows it computed for the last pod, so the
    actor can take the rows of the nodes the pass allows without computing them again."""

    def __init__(self, network: QNetwork) -> None:
        super().__init__(network)
        self.last: _Scored | None = None

    def score(self, pod: PendingPod, snapshot: ClusterSnapshot, candidates: IntArray) -> FloatArray:
        """Q-values of the candidates; their feature rows are kept."""
        features = pair_features(pod, snapshot, candidates)
        self.last = _Scored(pod.uid, candidates, features)
        return self.q_values(features)

    def score_alike(
        self, pods: Sequence[PendingPod], snapshot: ClusterSnapshot, candidates: IntArray
    ) -> list[FloatArray]:
        """One pod at a time, so the rows kept are those of the pod scored last."""
        return [self.score(p, snapshot, candidates) for p in pods]

    def rows_of(self, pod: PendingPod, nodes: IntArray) -> Float32Array:
        """The feature rows of ``nodes`` (a subset of the candidates ``pod`` was scored on)."""
        last = self.last
        if last is None or last.uid != pod.uid:
            raise RuntimeError(f"pod {pod.uid} was not the last pod scored")
        at = np.searchsorted(last.candidates, nodes)
        if np.any(at >= last.candidates.size) or np.any(last.candidates[at] != nodes):
            raise RuntimeError(f"pod {pod.uid}: nodes outside the candidates it was scored on")
        rows: Float32Array = last.features[at]
        return rows


class ReservingActor:
    """The arbitrator's node chooser while training: the learning actor picks among the
    nodes the pass allows, greedy on the policy's combined score (see the module doc)."""

    def __init__(self, scorer: RecordingDqnScore, actor: LearningActor) -> None:
        self.scorer = scorer
        self.actor = actor

    def choose(self, table: ScoreTable, snapshot: ClusterSnapshot, rng: np.random.Generator) -> int:
        """Node row for ``table.pod``; the actor records the transition and learns."""
        features = self.scorer.rows_of(table.pod, table.candidates)
        index = self.actor.act(table.pod, snapshot, table.candidates, features, table.scores)
        return int(table.candidates[index])


def reserve_training_policy(network: QNetwork, actor: LearningActor) -> Policy:
    """``hybrid-reserve`` with ``network`` as its DQN and ``actor`` choosing the nodes."""
    scorer = RecordingDqnScore(network)
    policy = hybrid_reserve_with(scorer)
    arbitrator = policy.profile.arbitrator
    assert isinstance(arbitrator, ReservingArbitrator)
    arbitrator.chooser = ReservingActor(scorer, actor)
    return policy


@dataclass(frozen=True)
class ReserveValidation:
    """Mean JCT (minutes) and Jain's index of hybrid-reserve with a candidate network."""

    jct_min: float
    jain: float


def evaluate_in_reserve(network: QNetwork, workloads: Sequence[Workload]) -> ReserveValidation:
    """``hybrid-reserve`` with the greedy ``network`` over ``workloads`` (averaged)."""
    records = []
    for wl in workloads:
        policy = hybrid_reserve_with(DqnScore(network))
        records.append(summarise(Simulation(wl, policy, wl.seed).run()))
    jct = float(np.mean([r.jct_s.mean for r in records])) / 60.0
    return ReserveValidation(jct, float(np.mean([r.jain_fairness for r in records])))


def reserve_baselines(workloads: Sequence[Workload]) -> dict[str, float]:
    """Mean JCT (minutes) of ``binpack`` and of hybrid-reserve with the shipped network."""
    shipped = ModelOptions(default_checkpoint_path())
    runs = {
        "binpack": [run_one(w, "binpack") for w in workloads],
        SHIPPED_IN_RESERVE: [run_one(w, "hybrid-reserve", model=shipped) for w in workloads],
    }
    return {name: float(np.mean([r.jct_s.mean for r in rs])) / 60.0 for name, rs in runs.items()}
