"""Experience replay: a fixed-size ring of transitions, node rows padded to a maximum.

A transition is (candidate features, feasibility mask, chosen node, reward, next state's
candidate features and mask, done). Padded rows are masked out, so they are never chosen
and never enter the target's max.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hybrid_policy.features import Float32Array


@dataclass(frozen=True)
class Batch:
    """A sampled minibatch as numpy arrays."""

    state: Float32Array
    mask: npt.NDArray[np.bool_]
    action: npt.NDArray[np.int64]
    reward: Float32Array
    next_state: Float32Array
    next_mask: npt.NDArray[np.bool_]
    done: Float32Array


class ReplayBuffer:
    """Uniform replay over the last ``capacity`` transitions."""

    def __init__(self, capacity: int, max_nodes: int, feature_count: int) -> None:
        self.capacity = capacity
        self.max_nodes = max_nodes
        shape = (capacity, max_nodes, feature_count)
        self.state = np.zeros(shape, dtype=np.float32)
        self.next_state = np.zeros(shape, dtype=np.float32)
        self.mask = np.zeros((capacity, max_nodes), dtype=bool)
        self.next_mask = np.zeros((capacity, max_nodes), dtype=bool)
        self.action = np.zeros(capacity, dtype=np.int64)
        self.reward = np.zeros(capacity, dtype=np.float32)
        self.done = np.zeros(capacity, dtype=np.float32)
        self.size = 0
        self._at = 0

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        state: Float32Array,
        action: int,
        reward: float,
        next_state: Float32Array | None,
    ) -> None:
        """Store one transition; ``next_state`` None ends the episode."""
        if state.shape[0] > self.max_nodes:
            raise ValueError(f"{state.shape[0]} candidates exceed the buffer's {self.max_nodes}")
        i = self._at
        n = state.shape[0]
        self.state[i, :n] = state
        self.state[i, n:] = 0.0
        self.mask[i] = False
        self.mask[i, :n] = True
        self.action[i] = action
        self.reward[i] = reward
        self.next_mask[i] = False
        self.next_state[i] = 0.0
        if next_state is None:
            self.done[i] = 1.0
        else:
            m = next_state.shape[0]
            self.next_state[i, :m] = next_state
            self.next_mask[i, :m] = True
            self.done[i] = 0.0
        self._at = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        """A uniform minibatch (with replacement)."""
        idx = rng.integers(0, self.size, size=batch_size)
        return Batch(
            self.state[idx],
            self.mask[idx],
            self.action[idx],
            self.reward[idx],
            self.next_state[idx],
            self.next_mask[idx],
            self.done[idx],
        )
