"""The DQN update: double-DQN targets with masking, Huber loss, gradient clipping, a
target network synchronised every few updates, and the epsilon schedule."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from hybrid_policy.dqn.network import QNetwork, masked_argmax
from hybrid_policy.dqn.replay import Batch


@dataclass(frozen=True)
class LearnerConfig:
    """Hyper-parameters of the update."""

    gamma: float = 0.8
    learning_rate: float = 5e-4
    grad_clip_norm: float = 10.0
    target_sync_updates: int = 500


def epsilon_at(step: int, start: float, end: float, decay_steps: int) -> float:
    """Linear decay from ``start`` to ``end`` over ``decay_steps``, then flat."""
    if decay_steps <= 0 or step >= decay_steps:
        return end
    return start + (end - start) * step / decay_steps


class DqnLearner:
    """Online and target networks and their optimiser."""

    def __init__(self, online: QNetwork, config: LearnerConfig, device: torch.device) -> None:
        self.config = config
        self.device = device
        self.online = online.to(device)
        self.target = copy.deepcopy(self.online).eval()
        for p in self.target.parameters():
            p.requires_grad_(False)
        self.optimiser = torch.optim.Adam(self.online.parameters(), lr=config.learning_rate)
        self.loss_fn = nn.SmoothL1Loss()
        self.updates = 0

    def _tensors(self, batch: Batch) -> tuple[torch.Tensor, ...]:
        dev = self.device
        return (
            torch.from_numpy(batch.state).to(dev),
            torch.from_numpy(batch.mask).to(dev),
            torch.from_numpy(batch.action).to(dev),
            torch.from_numpy(batch.reward).to(dev),
            torch.from_numpy(batch.next_state).to(dev),
            torch.from_numpy(batch.next_mask).to(dev),
            torch.from_numpy(batch.done).to(dev),
        )

    def target_values(self, batch: Batch) -> torch.Tensor:
        """``r + gamma * Q_target(s', argmax_a' Q_online(s', a'))`` over feasible ``a'``."""
        _, _, _, reward, next_state, next_mask, done = self._tensors(batch)
        with torch.no_grad():
            choice = masked_argmax(self.online(next_state), next_mask)
            value = self.target(next_state).gather(1, choice.unsqueeze(1)).squeeze(1)
            alive = (1.0 - done) * next_mask.any(dim=1).float()
            target: torch.Tensor = reward + self.config.gamma * alive * value
        return target

    def update(self, batch: Batch) -> float:
        """One gradient step on ``batch``; returns the Huber loss."""
        state, _, action, *_ = self._tensors(batch)
        target = self.target_values(batch)
        q = self.online(state).gather(1, action.unsqueeze(1)).squeeze(1)
        loss = self.loss_fn(q, target)
        self.optimiser.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.online.parameters(), self.config.grad_clip_norm)
        self.optimiser.step()
        self.updates += 1
        if self.updates % self.config.target_sync_updates == 0:
            self.target.load_state_dict(self.online.state_dict())
        return float(loss.item())
