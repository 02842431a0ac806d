"""The Q-network: one small MLP applied to every (pod, node) feature row.

Weights are shared across nodes, so the same network rates a 10-node or a 5,000-node
cluster, and all feasible nodes of a pod go through one batched forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional

DEFAULT_HIDDEN: tuple[int, ...] = (64, 64)


class QNetwork(nn.Module):
    """Maps ``(..., nodes, features)`` to one Q-value per node, ``(..., nodes)``."""

    def __init__(
        self,
        feature_count: int,
        hidden: Sequence[int] = DEFAULT_HIDDEN,
        dropped_columns: Sequence[int] = (),
    ) -> None:
        super().__init__()
        self.feature_count = feature_count
        self.hidden = tuple(hidden)
        keep = torch.ones(feature_count)
        keep[list(dropped_columns)] = 0.0
        #: 0 for feature columns the network must not see (ablations); saved with it.
        self.input_mask: torch.Tensor
        self.register_buffer("input_mask", keep)
        layers: list[nn.Module] = []
        width = feature_count
        for size in self.hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Q-value of every node row."""
        q: torch.Tensor = self.body(features * self.input_mask).squeeze(-1)
        return q

    def infer(self, features: torch.Tensor, masked: bool = True) -> torch.Tensor:
        """:meth:`forward` without the modules' call machinery (the same kernels, so the
        same values): scoring calls it once per pod, where that machinery cost as much as
        the arithmetic. ``masked=False`` leaves out the input mask, for a caller that
        knows it keeps every column (multiplying by 1 changes nothing)."""
        h = features * self.input_mask if masked else features
        for layer in self.body:
            if isinstance(layer, nn.Linear):
                h = functional.linear(h, layer.weight, layer.bias)
            elif isinstance(layer, nn.ReLU):
                h = torch.relu(h)
            else:
                h = layer(h)
        return h.squeeze(-1)


def masked_argmax(q: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Index of the best feasible node per row (infeasible nodes never win)."""
    return torch.where(mask, q, torch.full_like(q, -torch.inf)).argmax(dim=-1)


def masked_max(q: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Best feasible Q-value per row; 0 for rows with no feasible node."""
    best = torch.where(mask, q, torch.full_like(q, -torch.inf)).max(dim=-1).values
    return torch.where(mask.any(dim=-1), best, torch.zeros_like(best))
