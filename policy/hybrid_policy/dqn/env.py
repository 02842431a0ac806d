"""The simulator as a training environment: one action per pod placed, shaped Decima reward.

An action is the node chosen for the pod being scored. The reward of a decision is minus
(the run time the placed job will take on the chosen node, plus the waiting-jobs integral
until the next decision), in units of :data:`REWARD_SCALE_S`. Summed over a run this is
minus the total time jobs spend in the system (Decima's reward), i.e. minus the sum of
completion times, so maximising return minimises mean JCT; crediting each job's running
time at its placement (it is fixed once placed: no preemption) instead of spreading it
over later steps only lowers the variance. The run time is known to the simulator, never
to the network. A trace's jobs run far longer than the generated scenarios' (hours, not
minutes), so a trace episode's unit is its own mean run time, and episodes of both kinds
weigh alike in the learning.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hybrid_policy.domain import PendingPod
from hybrid_policy.dqn.learner import DqnLearner, epsilon_at
from hybrid_policy.dqn.replay import ReplayBuffer
from hybrid_policy.features import Float32Array
from hybrid_policy.framework.snapshot import ClusterSnapshot, FloatArray, IntArray
from hybrid_policy.plugins.scores import binpack_scorer
from hybrid_policy.sim.engine import Simulation

REWARD_SCALE_S = 600.0


def reward_scale_s(sim: Simulation) -> float:
    """Reward unit: :data:`REWARD_SCALE_S` (about a generated job's mean run time at
    performance 100), or a trace workload's own mean run time."""
    if sim.workload.scenario.trace is None or not sim.jobs:
        return REWARD_SCALE_S
    return float(np.mean([job.runtime_s for job in sim.jobs]))


class StepBudgetSpentError(Exception):
    """Raised from inside a simulation when training has taken all its steps."""


@dataclass(frozen=True)
class ExplorationConfig:
    """How actions are chosen while learning."""

    total_steps: int
    warm_start_steps: int
    epsilon_start: float = 0.3
    epsilon_end: float = 0.02
    epsilon_decay_steps: int = 20_000
    learn_after: int = 1_000
    update_every: int = 2
    batch_size: int = 64


class TrainingSimulation(Simulation):
    """A simulation that also integrates the number of waiting pods over time."""

    wait_integral_s = 0.0
    _waiting_now = 0
    _last_s = 0.0

    def _schedule(self, now_s: float) -> None:
        self.wait_integral_s += self._waiting_now * (now_s - self._last_s)
        self._last_s = now_s
        super()._schedule(now_s)
        self._waiting_now = len(self.waiting)


@dataclass
class _Pending:
    features: Float32Array
    action: int
    run_s: float
    wait_mark_s: float


class LearningActor:
    """Epsilon-greedy (after a binpack warm start) acting, replay and updates."""

    def __init__(
        self,
        learner: DqnLearner,
        replay: ReplayBuffer,
        config: ExplorationConfig,
        rng: np.random.Generator,
    ) -> None:
        self.learner = learner
        self.replay = replay
        self.config = config
        self.rng = rng
        self.teacher = binpack_scorer()
        self.steps = 0
        self.losses: list[float] = []
        self.sim: TrainingSimulation | None = None
        self.runtime_s: dict[str, float] = {}
        self.reward_scale_s = REWARD_SCALE_S
        self._pending: _Pending | None = None

    def begin(self, sim: TrainingSimulation) -> None:
        """Start an episode on ``sim``."""
        self.sim = sim
        self.runtime_s = {
            pod.uid: sim.jobs[job].runtime_s for pod, job in zip(sim.pods, sim.job_of, strict=True)
        }
        self.reward_scale_s = reward_scale_s(sim)
        self._pending = None

    def end(self) -> None:
        """Close the episode: the last transition is terminal."""
        if self._pending is not None and self.sim is not None:
            self.replay.add(self._pending.features, self._pending.action, self._reward(), None)
        self._pending = None

    @property
    def epsilon(self) -> float:
        """Current exploration rate."""
        c = self.config
        return epsilon_at(
            max(self.steps - c.warm_start_steps, 0),
            c.epsilon_start,
            c.epsilon_end,
            c.epsilon_decay_steps,
        )

    def _reward(self) -> float:
        assert self._pending is not None and self.sim is not None
        waited = self.sim.wait_integral_s - self._pending.wait_mark_s
        return -(self._pending.run_s + waited) / self.reward_scale_s

    def _choose(
        self, pod: PendingPod, snapshot: ClusterSnapshot, candidates: IntArray, q: FloatArray
    ) -> int:
        if self.rng.random() < self.epsilon:
            return int(self.rng.integers(candidates.size))
        if self.steps < self.config.warm_start_steps:
            values = self.teacher.score(pod, snapshot, candidates)
        else:
            values = q
        top = np.flatnonzero(values == values.max())
        return int(top[0] if top.size == 1 else top[int(self.rng.integers(top.size))])

    def act(
        self,
        pod: PendingPod,
        snapshot: ClusterSnapshot,
        candidates: IntArray,
        features: Float32Array,
        q: FloatArray,
    ) -> int:
        """Record the previous transition, choose a node, learn; see the module doc."""
        if self.steps >= self.config.total_steps:
            raise StepBudgetSpentError
        assert self.sim is not None, "begin() an episode first"
        if self._pending is not None:
            self.replay.add(self._pending.features, self._pending.action, self._reward(), features)
        action = self._choose(pod, snapshot, candidates, q)
        node = int(candidates[action])
        run_s = self.runtime_s.get(pod.uid, 0.0) * 100.0 / float(snapshot.performance[node])
        self._pending = _Pending(features, action, run_s, self.sim.wait_integral_s)
        self.steps += 1
        c = self.config
        if len(self.replay) >= c.learn_after and self.steps % c.update_every == 0:
            batch = self.replay.sample(c.batch_size, self.rng)
            self.losses.append(self.learner.update(batch))
        return action
