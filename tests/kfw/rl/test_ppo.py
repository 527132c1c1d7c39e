"""PPO's pieces against their formulas, determinism, and a short run that learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kfw.rl.ppo import (
    PPO,
    PPOConfig,
    bootstrap_truncated,
    explained_variance,
    gae,
    policy_loss,
    value_loss,
)


def test_gae_matches_a_hand_computation_truncation_bootstrapped_termination_not() -> None:
    gamma, lam = 0.9, 0.8
    value = np.array([[0.5], [0.4], [0.3], [0.2]])
    last = np.array([7.0])
    # the episode is cut by a time limit at t=1 (V(s_final) = 10), and terminates at t=3
    reward = bootstrap_truncated(
        np.array([[1.0], [2.0], [3.0], [4.0]]),
        np.array([[False], [True], [False], [False]]),
        np.array([[0.0], [10.0], [0.0], [0.0]]),
        gamma,
    )
    assert reward[:, 0].tolist() == [1.0, 2.0 + 0.9 * 10.0, 3.0, 4.0]
    done = np.array([[0.0], [1.0], [0.0], [1.0]])
    adv, ret = gae(reward, value, done, last, gamma, lam)
    a3 = 4 - 0.2  # terminal: nothing after it
    a2 = (3 + 0.9 * 0.2 - 0.3) + 0.9 * 0.8 * a3
    a1 = 2 + 9 - 0.4  # the cut: its bootstrap, and no advantage flows back across it
    a0 = (1 + 0.9 * 0.4 - 0.5) + 0.9 * 0.8 * a1
    np.testing.assert_allclose(adv[:, 0], [a0, a1, a2, a3], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ret, adv + value)
    # had the episode terminated at t=1 instead, no value would have been added
    terminated, _ = gae(np.array([[1.0], [2.0], [3.0], [4.0]]), value, done, last, gamma, lam)
    assert terminated[1, 0] == pytest.approx(2 - 0.4)
    # a rollout that ends mid-episode bootstraps from V(s_T)
    open_end, _ = gae(
        np.array([[1.0], [2.0], [3.0], [4.0]]), value, np.zeros((4, 1)), last, gamma, lam
    )
    assert open_end[3, 0] == pytest.approx(4 + 0.9 * 7.0 - 0.2)


def test_gae_with_lambda_one_is_the_discounted_return_minus_the_value() -> None:
    rng = np.random.default_rng(0)
    reward, value = rng.normal(size=(6, 2)), rng.normal(size=(6, 2))
    last, gamma = rng.normal(size=2), 0.97
    adv, _ = gae(reward, value, np.zeros((6, 2)), last, gamma, 1.0)
    discounted = np.array(
        [
            sum(gamma**k * reward[t + k] for k in range(6 - t)) + gamma ** (6 - t) * last
            for t in range(6)
        ]
    )
    np.testing.assert_allclose(adv, discounted - value, atol=1e-12)


def test_the_clipped_loss_and_its_gradient_follow_equation_7() -> None:
    ratio = torch.tensor([0.5, 0.7, 1.5, 1.5], dtype=torch.float64)
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=torch.float64)
    logratio = ratio.log().requires_grad_(True)
    loss, stats = policy_loss(logratio, adv, "clip", 0.2, beta=0.0)
    # min(r A, clip(r, 0.8, 1.2) A) per sample: 0.5 (unclipped), -0.8, 1.2 (clipped), -1.5 (unclipped)
    assert float(loss) == pytest.approx(-(0.5 - 0.8 + 1.2 - 1.5) / 4)
    loss.backward()
    # d/dlog r of -r A / n where the unclipped term is the minimum, zero where the clip holds
    np.testing.assert_allclose(logratio.grad.numpy(), [-0.5 / 4, 0.0, 0.0, 1.5 / 4], atol=1e-12)
    assert stats["clipfrac"] == 1.0
    assert stats["approx_kl"] == pytest.approx(float(((ratio - 1) - ratio.log()).mean()))


def test_the_unclipped_and_kl_penalty_objectives() -> None:
    ratio = torch.tensor([0.5, 1.5], dtype=torch.float64)
    adv = torch.tensor([2.0, 1.0], dtype=torch.float64)
    none, _ = policy_loss(ratio.log(), adv, "none", 0.2, beta=0.0)
    assert float(none) == pytest.approx(-(0.5 * 2 + 1.5 * 1) / 2)
    kl = float(((ratio - 1) - ratio.log()).mean())
    for objective in ("kl_fixed", "kl_adaptive"):
        penalised, _ = policy_loss(ratio.log(), adv, objective, 0.2, beta=3.0)
        assert float(penalised) == pytest.approx(float(none) + 3.0 * kl)


def test_value_clipping_takes_the_larger_loss() -> None:
    new, old, ret = torch.tensor([2.0]), torch.tensor([1.0]), torch.tensor([3.0])
    assert float(value_loss(new, old, ret, None)) == pytest.approx(0.5)
    # clipped value 1.2: (1.2 - 3)^2 = 3.24 is larger than (2 - 3)^2 = 1
    assert float(value_loss(new, old, ret, 0.2)) == pytest.approx(0.5 * 3.24)


def test_explained_variance() -> None:
    y = np.array([1.0, 2.0, 3.0])
    assert explained_variance(y, y) == 1.0
    assert explained_variance(np.zeros(3), y) == pytest.approx(1 - np.var(y) / np.var(y) + 0.0)


def _episodes(seed: int, iterations: int = 3) -> tuple[list, dict]:
    torch.set_num_threads(1)
    agent = PPO(PPOConfig(steps=512 * iterations, n_steps=128), "CartPole-v1", seed)
    found = []
    for _ in range(iterations):
        found += agent.iterate().episodes
    return found, {k: v.clone() for k, v in agent.net.state_dict().items()}


def test_the_same_seed_gives_the_same_returns_and_weights() -> None:
    a, wa = _episodes(3)
    b, wb = _episodes(3)
    c, _ = _episodes(4)
    assert a == b and a != c
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
def test_a_short_cartpole_run_rises_well_above_a_random_policy() -> None:
    torch.set_num_threads(1)
    agent = PPO(PPOConfig(steps=40_000), "CartPole-v1", 1)
    returns = []
    while agent.step < agent.cfg.steps:
        returns += [r for _, r, _ in agent.iterate().episodes]
    # a random policy averages about 22 on CartPole
    assert np.mean(returns[-20:]) > 100, returns[-20:]


def test_continuous_actions_and_a_shared_trunk_run() -> None:
    torch.set_num_threads(1)
    agent = PPO(
        PPOConfig(steps=256, n_envs=2, n_steps=64, n_minibatches=2, separate=False),
        "Pendulum-v1",
        0,
    )
    assert not agent.space.discrete and agent.net.trunk is not None
    stats = agent.iterate().stats
    assert np.isfinite(stats["pg_loss"]) and np.isfinite(stats["v_loss"])
    action = agent.policy(np.zeros((3, 3), np.float32))
    assert action.shape == (3, 1) and np.all(np.abs(action) <= 2.0)  # within the action bounds


def test_the_adaptive_penalty_halves_and_doubles_beta() -> None:
    agent = PPO(
        PPOConfig(steps=1024, objective="kl_adaptive", kl_target=1e-9, kl_beta=1.0),
        "CartPole-v1",
        0,
    )
    agent.iterate()  # any update moves the policy by more than 1.5 x 1e-9: beta doubles per pass
    assert agent.beta == 2.0**agent.cfg.update_epochs
    calm = PPO(
        PPOConfig(steps=1024, objective="kl_adaptive", kl_target=10.0, kl_beta=1.0),
        "CartPole-v1",
        0,
    )
    calm.iterate()
    assert calm.beta == 0.5**calm.cfg.update_epochs
