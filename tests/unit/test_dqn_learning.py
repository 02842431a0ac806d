import numpy as np
import pytest
import torch

from hybrid_policy.dqn.learner import DqnLearner, LearnerConfig, epsilon_at
from hybrid_policy.dqn.network import QNetwork, masked_argmax, masked_max
from hybrid_policy.dqn.replay import Batch, ReplayBuffer

F = 3
torch.set_num_threads(1)


class ColumnNetwork(QNetwork):
    """Q-value = one feature column, so targets can be checked by hand."""

    def __init__(self, column: int) -> None:
        super().__init__(F, (4,))
        self.column = column

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        q: torch.Tensor = features[..., self.column] + 0.0 * self.body(features).squeeze(-1)
        return q


def test_network_scores_any_node_count_with_shared_weights() -> None:
    torch.manual_seed(0)
    net = QNetwork(F)
    one = torch.randn(5, F)
    batched = net(torch.stack([one, one]))
    assert batched.shape == (2, 5)
    torch.testing.assert_close(net(one), batched[0])
    torch.testing.assert_close(net(one[:2]), net(one)[:2])


def test_masking_keeps_infeasible_nodes_out() -> None:
    q = torch.tensor([[5.0, 1.0, 2.0], [0.0, 0.0, 0.0]])
    mask = torch.tensor([[False, True, True], [False, False, False]])
    assert masked_argmax(q, mask)[0].item() == 2
    torch.testing.assert_close(masked_max(q, mask), torch.tensor([2.0, 0.0]))


def test_epsilon_schedule() -> None:
    assert epsilon_at(0, 1.0, 0.1, 100) == 1.0
    assert epsilon_at(50, 1.0, 0.1, 100) == pytest.approx(0.55)
    assert epsilon_at(500, 1.0, 0.1, 100) == 0.1


def _batch() -> Batch:
    # Next state: node 0 is infeasible and best for the online net; node 2 is padding.
    next_state = np.zeros((1, 3, F), dtype=np.float32)
    next_state[0, :, 0] = [9.0, 1.0, 7.0]  # online net's values
    next_state[0, :, 1] = [100.0, 3.0, 50.0]  # target net's values
    next_mask = np.array([[False, True, False]])
    return Batch(
        state=np.zeros((1, 3, F), dtype=np.float32),
        mask=np.array([[True, True, False]]),
        action=np.array([1]),
        reward=np.array([-1.0], dtype=np.float32),
        next_state=next_state,
        next_mask=next_mask,
        done=np.array([0.0], dtype=np.float32),
    )


def test_double_dqn_target_uses_online_choice_target_value_and_mask() -> None:
    learner = DqnLearner(ColumnNetwork(0), LearnerConfig(gamma=0.5), torch.device("cpu"))
    learner.target = ColumnNetwork(1)
    target = learner.target_values(_batch())
    # online picks node 1 (node 0 masked, node 2 padding); target values it at 3.
    assert target.item() == pytest.approx(-1.0 + 0.5 * 3.0)


def test_terminal_and_empty_next_states_bootstrap_nothing() -> None:
    learner = DqnLearner(ColumnNetwork(0), LearnerConfig(gamma=0.5), torch.device("cpu"))
    b = _batch()
    done = Batch(b.state, b.mask, b.action, b.reward, b.next_state, b.next_mask, np.ones(1, "f4"))
    assert learner.target_values(done).item() == pytest.approx(-1.0)
    empty = Batch(b.state, b.mask, b.action, b.reward, b.next_state, np.zeros((1, 3), bool), b.done)
    assert learner.target_values(empty).item() == pytest.approx(-1.0)


def test_updates_fit_a_fixed_reward_and_sync_the_target() -> None:
    torch.manual_seed(0)
    cfg = LearnerConfig(gamma=0.0, learning_rate=2e-2, target_sync_updates=10)
    learner = DqnLearner(QNetwork(F, (16,)), cfg, torch.device("cpu"))
    rng = np.random.default_rng(0)
    replay = ReplayBuffer(64, 4, F)
    for _ in range(64):
        state = rng.random((3, F)).astype(np.float32)
        replay.add(state, 0, float(state[0, 0]), None)
    losses = [learner.update(replay.sample(32, rng)) for _ in range(150)]
    assert np.mean(losses[-20:]) < 0.1 * np.mean(losses[:20])
    for a, b in zip(learner.online.parameters(), learner.target.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_replay_pads_and_masks() -> None:
    replay = ReplayBuffer(2, 4, F)
    replay.add(np.ones((2, F), np.float32), 1, -0.5, np.ones((3, F), np.float32))
    replay.add(np.ones((4, F), np.float32), 3, -1.0, None)
    replay.add(np.ones((1, F), np.float32), 0, -2.0, None)  # overwrites the oldest
    assert len(replay) == 2
    assert replay.mask[0].tolist() == [True, False, False, False]
    assert replay.done.tolist() == [1.0, 1.0]
    batch = replay.sample(5, np.random.default_rng(0))
    assert batch.state.shape == (5, 4, F)
    with pytest.raises(ValueError, match="exceed"):
        replay.add(np.ones((5, F), np.float32), 0, 0.0, None)
