"""Environments: episode boundaries handed back right, and one line for what is missing."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from kfw.errors import ConfigError
from kfw.rl.envs import VecEnv, check_env_id, make, spaces


class Count(gym.Env):
    """Observation = steps taken; action 1 at step >= 2 terminates; a time limit cuts at 3."""

    observation_space = gym.spaces.Box(0, 100, shape=(1,), dtype=np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, render_mode=None):
        self.render_mode = render_mode

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([self.t], np.float32), 1.0, bool(action == 1 and self.t >= 2), False, {}


gym.register("kfw-test/Count-v0", entry_point=Count, max_episode_steps=3)


def test_a_truncated_episode_hands_back_where_it_stopped_and_restarts() -> None:
    envs = VecEnv("kfw-test/Count-v0", 2, seed=0)
    envs.reset()
    for _ in range(2):
        out = envs.step(np.array([0, 0]))
        assert not out.truncated.any()
    out = envs.step(np.array([0, 1]))  # copy 0 hits the time limit, copy 1 terminates
    assert out.truncated.tolist() == [True, False]
    assert out.terminated.tolist() == [False, True]
    assert out.final_obs[:, 0].tolist() == [3.0, 3.0]  # where the episodes stopped
    assert out.obs[:, 0].tolist() == [0.0, 0.0]  # fresh episodes
    assert out.episodes == [(3.0, 3), (3.0, 3)]


def test_an_unknown_environment_names_the_nearest_ids() -> None:
    with pytest.raises(
        ConfigError, match="unknown environment 'CartPole-v7'; did you mean CartPole-v1"
    ):
        check_env_id("CartPole-v7")


def test_dqn_refuses_a_continuous_action_space_and_ppo_takes_it() -> None:
    env = make("Pendulum-v1")
    with pytest.raises(ConfigError, match="Box action space .* use ppo for continuous actions"):
        spaces(env, "dqn")
    assert not spaces(env, "ppo").discrete
