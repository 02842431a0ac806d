"""The numpy copy of a trained Q-network scores as torch does, and stays a copy."""

import numpy as np
import pytest
import torch
from torch import nn

from hybrid_policy.dqn.frozen import FrozenQNetwork
from hybrid_policy.dqn.network import QNetwork
from hybrid_policy.dqn.scorer import DqnScore, load_scorer
from hybrid_policy.features import FEATURE_COUNT


def _rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, FEATURE_COUNT)).astype(np.float32)


def _torch_q(network: QNetwork, rows: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        q: np.ndarray = network(torch.from_numpy(rows)).numpy().astype(np.float64)
    return q


@pytest.mark.parametrize("dropped", [(), (3, 7, 20)])
@pytest.mark.parametrize("n", [1, 14, 300])
def test_the_numpy_forward_pass_gives_torchs_values(dropped: tuple[int, ...], n: int) -> None:
    torch.manual_seed(1)
    network = QNetwork(FEATURE_COUNT, dropped_columns=dropped)
    frozen = FrozenQNetwork.of(network)
    assert frozen is not None and (frozen.input_mask is None) == (not dropped)
    rows = _rows(n)
    np.testing.assert_allclose(frozen.q_values(rows), _torch_q(network, rows), rtol=1e-5, atol=1e-6)


def test_the_shipped_scorer_is_frozen_and_scores_like_its_network() -> None:
    scorer = load_scorer()
    assert isinstance(scorer, DqnScore) and scorer.frozen is not None
    rows = _rows(50, seed=3)
    np.testing.assert_allclose(
        scorer.q_values(rows), _torch_q(scorer.network, rows), rtol=1e-5, atol=1e-6
    )


def test_a_frozen_copy_keeps_its_weights_while_a_training_scorer_follows_the_network() -> None:
    torch.manual_seed(2)
    network = QNetwork(FEATURE_COUNT)
    frozen, live = DqnScore(network, frozen=True), DqnScore(network)
    rows = _rows(20)
    before = frozen.q_values(rows)
    with torch.no_grad():
        for p in network.parameters():
            p.add_(0.5)  # an optimiser step, in place
    np.testing.assert_array_equal(frozen.q_values(rows), before)
    np.testing.assert_allclose(live.q_values(rows), _torch_q(network, rows), rtol=1e-6)
    assert not np.allclose(live.q_values(rows), before)


def test_a_network_of_another_shape_is_scored_through_torch() -> None:
    network = QNetwork(FEATURE_COUNT)
    network.body = nn.Sequential(nn.Linear(FEATURE_COUNT, 8), nn.Tanh(), nn.Linear(8, 1))
    assert FrozenQNetwork.of(network) is None
    scorer = DqnScore(network, frozen=True)
    assert scorer.frozen is None
    rows = _rows(5)
    np.testing.assert_allclose(scorer.q_values(rows), _torch_q(network, rows), rtol=1e-6)
