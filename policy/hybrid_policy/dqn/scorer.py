"""The ``DqnScore`` Score plugin, and the hook training uses to act through it.

Scoring a pod computes the feature rows of all its feasible nodes and runs one batched
forward pass; the Q-values are the raw scores, min-max normalised to [0, 100] like any
other plugin. During training an :class:`Actor` may pick the node instead (exploration):
the plugin then returns 100 for that node and 0 elsewhere.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from hybrid_policy.domain import PendingPod
from hybrid_policy.dqn.checkpoint import CheckpointError, default_checkpoint_path, load_checkpoint
from hybrid_policy.dqn.network import QNetwork
from hybrid_policy.features import Float32Array, alike_features, pair_features
from hybrid_policy.framework.paths import ModelFallback
from hybrid_policy.framework.plugins import MinMaxNormalized, ScorePlugin
from hybrid_policy.framework.snapshot import ClusterSnapshot, FloatArray, IntArray
from hybrid_policy.plugins.scores import binpack_scorer


class Actor(Protocol):
    """Chooses a candidate index from features and Q-values (training only)."""

    def act(
        self,
        pod: PendingPod,
        snapshot: ClusterSnapshot,
        candidates: IntArray,
        features: Float32Array,
        q: FloatArray,
    ) -> int:
        """Index into the candidates of the node to place ``pod`` on."""
        ...


class DqnScore(MinMaxNormalized):
    """Rate feasible nodes by the Q-network's value of placing the pod there."""

    name = "DqnScore"

    def __init__(self, network: QNetwork, actor: Actor | None = None) -> None:
        # One pod's candidates are a small batch: extra intra-op threads only spin and,
        # on a busy machine, made scoring 8x slower. Scoring is single-threaded.
        torch.set_num_threads(1)
        self.network = network.eval()
        self.actor = actor
        self.device = network.input_mask.device
        #: Whether the network sees every column (then the input mask is not applied).
        self.sees_all = bool(network.input_mask.all())
        self._layers = _plain_layers(network) if self.device.type == "cpu" else None

    def q_values(self, features: Float32Array) -> FloatArray:
        """One batched forward pass over the candidate rows."""
        rows = torch.from_numpy(features)
        if self._layers is not None and self.sees_all:
            return _forward(self._layers, rows)
        if self.device.type != "cpu":
            rows = rows.to(self.device)
        with torch.inference_mode():
            q = self.network.infer(rows, masked=not self.sees_all)
        values: FloatArray = q.cpu().numpy().astype(np.float64)
        return values

    def score(self, pod: PendingPod, snapshot: ClusterSnapshot, candidates: IntArray) -> FloatArray:
        """Q-values of the candidates (or the actor's one-hot choice while training)."""
        features = pair_features(pod, snapshot, candidates)
        q = self.q_values(features)
        if self.actor is None:
            return q
        choice = self.actor.act(pod, snapshot, candidates, features, q)
        chosen: FloatArray = np.zeros(candidates.size)
        chosen[choice] = 1.0
        return chosen

    def score_alike(
        self, pods: Sequence[PendingPod], snapshot: ClusterSnapshot, candidates: IntArray
    ) -> list[FloatArray]:
        """:meth:`score` for pods of one feasibility key: the feature rows are built once
        and only the pods' own columns change (one forward pass each, so each pod gets
        exactly the values it would alone)."""
        if self.actor is not None:
            return [self.score(p, snapshot, candidates) for p in pods]
        first = pair_features(pods[0], snapshot, candidates)
        out = [self.q_values(first)]
        out += [self.q_values(alike_features(first, p)) for p in pods[1:]]
        return out


_Layer = tuple[torch.Tensor, torch.Tensor]


def _plain_layers(network: QNetwork) -> list[_Layer] | None:
    """The network's linear layers as (weight transposed, bias) views without autograd,
    when its body is linear layers with a ReLU between each two (None otherwise). The
    views share the parameters' storage, so training's in-place updates show in them."""
    body = list(network.body)
    linears = body[0::2]
    if not all(isinstance(m, nn.Linear) and m.bias is not None for m in linears) or not all(
        isinstance(m, nn.ReLU) for m in body[1::2]
    ):
        return None
    if len(body) % 2 == 0:
        return None
    return [(m.weight.detach().t(), m.bias.detach()) for m in linears if isinstance(m, nn.Linear)]


def _forward(layers: Sequence[_Layer], rows: torch.Tensor) -> FloatArray:
    """:meth:`QNetwork.infer` with the kernels ``functional.linear`` calls on a matrix
    (``addmm`` of the bias, the rows and the transposed weight), so the same values, with
    none of the per-call machinery: it ran once per pod placed and cost as much as the
    arithmetic on a pod's hundred candidates."""
    h = rows
    for weight_t, bias in layers[:-1]:
        h = torch.addmm(bias, h, weight_t).relu_()
    weight_t, bias = layers[-1]
    values: FloatArray = torch.addmm(bias, h, weight_t).numpy().reshape(-1).astype(np.float64)
    return values


def load_scorer(
    path: Path | None = None, fallback: ModelFallback = ModelFallback.NONE
) -> ScorePlugin:
    """The DQN scorer from ``path`` (default: the shipped model).

    With ``fallback`` ``BINPACK``, a checkpoint that cannot be used is reported on stderr and
    the binpack scorer is returned instead; without it the :class:`CheckpointError` stands.
    """
    scorer, problem = load_scorer_or_fallback(path, fallback)
    if problem is not None:
        print(f"DQN scorer unavailable, falling back to binpack: {problem}", file=sys.stderr)
    return scorer


def load_scorer_or_fallback(
    path: Path | None = None, fallback: ModelFallback = ModelFallback.NONE
) -> tuple[ScorePlugin, CheckpointError | None]:
    """The DQN scorer from ``path``, or with ``fallback`` ``BINPACK`` the binpack scorer
    and the problem that made it necessary (None when the checkpoint loaded).

    Without a fallback the :class:`CheckpointError` (naming the file) is raised.
    """
    target = path or default_checkpoint_path()
    try:
        return DqnScore(load_checkpoint(target).network), None
    except CheckpointError as exc:
        if fallback is not ModelFallback.BINPACK:
            raise
        return binpack_scorer(), exc
