"""DQN's pieces: the exploration schedule, the replay buffer, the target network and its
update schedule, the TD target, determinism, and a short run that learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kfw.rl.dqn import DQN, DQNConfig, ReplayBuffer, epsilon, td_target


def test_epsilon_falls_linearly_then_stays() -> None:
    cfg = DQNConfig(steps=1000, start_e=1.0, end_e=0.1, exploration_fraction=0.5)
    assert epsilon(0, cfg) == 1.0
    assert epsilon(250, cfg) == pytest.approx(0.55)
    assert epsilon(500, cfg) == pytest.approx(0.1)
    assert epsilon(900, cfg) == pytest.approx(0.1)


def test_the_replay_buffer_overwrites_the_oldest_and_samples_uniformly() -> None:
    buffer = ReplayBuffer(4, obs_dim=1)
    for i in range(6):  # 0 and 1 are overwritten by 4 and 5
        buffer.add([i], i, float(i), [i + 1], 0.0)
    assert buffer.size == 4 and sorted(buffer.action.tolist()) == [2, 3, 4, 5]
    assert buffer.latest(3)[1].tolist() == [3, 4, 5]  # oldest first
    draws = buffer.sample(40_000, np.random.default_rng(0))[1]
    counts = np.bincount(draws, minlength=6)[2:]
    assert counts.min() > 9_500 and counts.max() < 10_500  # each about a quarter
    obs, action, reward, next_obs, _ = buffer.take(np.array([0]))
    assert (obs[0, 0], action[0], reward[0], next_obs[0, 0]) == (4, 4, 4.0, 5)


def test_td_target_zeroes_the_future_only_when_terminated_and_double_lets_online_choose() -> None:
    online = torch.nn.Linear(1, 2, bias=False)
    target = torch.nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        online.weight.copy_(torch.tensor([[1.0], [2.0]]))  # online prefers action 1
        target.weight.copy_(torch.tensor([[5.0], [3.0]]))  # target prefers action 0
    next_obs = torch.ones(2, 1)
    reward, terminated = torch.tensor([1.0, 1.0]), torch.tensor([0.0, 1.0])
    plain = td_target(reward, next_obs, terminated, online, target, 0.5, double=False)
    double = td_target(reward, next_obs, terminated, online, target, 0.5, double=True)
    assert plain.tolist() == [1 + 0.5 * 5, 1.0]
    assert double.tolist() == [1 + 0.5 * 3, 1.0]  # the online argmax (1), valued by the target


def test_the_target_network_changes_only_on_its_schedule() -> None:
    torch.set_num_threads(1)
    cfg = DQNConfig(
        steps=600,
        learning_starts=100,
        train_frequency=1,
        target_network_frequency=250,
        log_every=1,
        batch_size=32,
        buffer_size=500,
    )
    agent = DQN(cfg, "CartPole-v1", 0)
    changes = []
    previous = [p.clone() for p in agent.q_target.parameters()]
    while agent.step < cfg.steps:
        agent.iterate()
        now = list(agent.q_target.parameters())
        if any(not torch.equal(a, b) for a, b in zip(previous, now, strict=True)):
            changes.append(agent.step)
            assert all(torch.equal(a, b) for a, b in zip(now, agent.q.parameters(), strict=True))
        previous = [p.clone() for p in now]
    assert changes == [250, 500]  # a hard copy (tau = 1) every 250 steps, after learning began


def test_a_soft_update_moves_tau_of_the_way() -> None:
    agent = DQN(DQNConfig(steps=10, tau=0.25, learning_starts=1), "CartPole-v1", 0)
    with torch.no_grad():
        for p in agent.q.parameters():
            p.fill_(1.0)
        for p in agent.q_target.parameters():
            p.fill_(0.0)
    agent._sync_target()
    assert all(torch.allclose(p, torch.full_like(p, 0.25)) for p in agent.q_target.parameters())


def test_without_replay_it_trains_on_the_latest_transitions_and_without_target_on_itself() -> None:
    agent = DQN(
        DQNConfig(steps=400, replay=False, target=False, learning_starts=200, batch_size=16),
        "CartPole-v1",
        0,
    )
    assert agent.buffer.capacity == 16
    while agent.step < agent.cfg.steps:
        agent.iterate()
    assert agent.updates == (400 - 200) // 10
    # the target network was never synchronised: it still holds the initial weights
    fresh = DQN(DQNConfig(steps=10), "CartPole-v1", 0)
    assert all(
        torch.equal(a, b)
        for a, b in zip(agent.q_target.parameters(), fresh.q_target.parameters(), strict=True)
    )


def _run(seed: int) -> list:
    torch.set_num_threads(1)
    agent = DQN(DQNConfig(steps=3000, learning_starts=500, log_every=500), "CartPole-v1", seed)
    found = []
    while agent.step < agent.cfg.steps:
        found += agent.iterate().episodes
    return found


def test_the_same_seed_gives_the_same_returns() -> None:
    assert _run(5) == _run(5)
    assert _run(5) != _run(6)


@pytest.mark.slow
def test_a_short_cartpole_run_learns_a_greedy_policy_far_better_than_random() -> None:
    torch.set_num_threads(1)
    cfg = DQNConfig(
        steps=40_000, learning_starts=2_000, exploration_fraction=0.3, target_network_frequency=250
    )
    agent = DQN(cfg, "CartPole-v1", 1)
    while agent.step < cfg.steps:
        agent.iterate()
    import gymnasium as gym

    env = gym.make("CartPole-v1")
    returns = []
    for e in range(10):
        obs, _ = env.reset(seed=100 + e)
        total, done = 0.0, False
        while not done:
            obs, r, term, trunc, _ = env.step(int(agent.policy(obs[None])[0]))
            total += r
            done = term or trunc
        returns.append(total)
    assert np.mean(returns) > 100, returns  # a random policy averages about 22
