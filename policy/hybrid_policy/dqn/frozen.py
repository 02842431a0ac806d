"""A trained Q-network's forward pass in numpy, for scoring on the CPU.

Scoring runs the network once per pod on that pod's few candidate rows (a dozen at 100
nodes), where torch's per-call machinery costs more than the arithmetic: the same layers
as numpy matrix products take about a third of the time. The weights are copied once, so
this is only for a network that no longer changes (a loaded checkpoint); training scores
through torch, with the weights it is updating. Float32 throughout, like the network; the
values agree with torch's to float32 rounding (``tests/unit/test_dqn_frozen.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from torch import nn

from hybrid_policy.dqn.network import QNetwork

Float32Array = npt.NDArray[np.float32]


@dataclass(frozen=True)
class FrozenQNetwork:
    """The layers of a :class:`QNetwork` as numpy arrays: per linear layer the weight,
    transposed and contiguous, and the bias; ReLU between them."""

    layers: tuple[tuple[Float32Array, Float32Array], ...]
    #: The network's input mask, or None when it keeps every column.
    input_mask: Float32Array | None

    @classmethod
    def of(cls, network: QNetwork) -> FrozenQNetwork | None:
        """A copy of ``network``'s weights; None unless it is Linear layers with ReLU
        between them (the only shape :class:`QNetwork` builds), on the CPU."""
        if network.input_mask.device.type != "cpu":
            return None
        modules = list(network.body)
        linear = modules[0::2]
        between = modules[1::2]
        if not all(isinstance(m, nn.Linear) for m in linear) or len(between) != len(linear) - 1:
            return None
        if not all(isinstance(m, nn.ReLU) for m in between):
            return None
        layers = tuple(
            (  # copies (a one-column weight's transpose would otherwise be a view)
                np.array(m.weight.detach().numpy().T, dtype=np.float32, order="C", copy=True),
                np.array(m.bias.detach().numpy(), dtype=np.float32, copy=True),
            )
            for m in linear
            if isinstance(m, nn.Linear) and m.bias is not None
        )
        if len(layers) != len(linear):
            return None
        mask = network.input_mask.detach().numpy().astype(np.float32)
        return cls(layers, None if bool(mask.all()) else mask)

    def q_values(self, features: Float32Array) -> npt.NDArray[np.float64]:
        """Q-value of every row of ``features`` (rows x the network's inputs)."""
        h = features * self.input_mask if self.input_mask is not None else features
        last = len(self.layers) - 1
        for i, (weight, bias) in enumerate(self.layers):
            h = h @ weight
            h += bias
            if i < last:
                np.maximum(h, 0.0, out=h)
        return h[:, 0].astype(np.float64)
