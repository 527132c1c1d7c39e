"""Gymnasium environments for the agents: created with one clear line for what is missing, and
stepped in lockstep with the episode boundaries the algorithms need.

:class:`VecEnv` steps ``n`` copies of an environment one after another in this process (what
gymnasium's ``SyncVectorEnv`` does), resetting a copy as soon as its episode ends and handing
back the observation it ended on (``final_obs``), so that a time-limit *truncation* can be
bootstrapped from the value of the state it stopped in while a *termination* is not.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import numpy as np

from kfw.errors import ConfigError

# what to install for the environments whose physics is a separate package
_BOX2D = "pip install box2d pygame (LunarLander, BipedalWalker and CarRacing need both)"
_NEEDS = {
    "box2d": _BOX2D,
    "pygame": _BOX2D + "; rendering any classic-control task needs pygame too",
    "mujoco": "pip install 'gymnasium[mujoco]' (the MuJoCo tasks need the mujoco wheel)",
}


def check_env_id(env_id: str) -> None:
    """Refuse an id gymnasium does not know, naming the nearest ones it does."""
    import gymnasium as gym

    if env_id in gym.registry:
        return
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(
        f"unknown environment {env_id!r}{hint} (gymnasium's ids: "
        "python -c 'import gymnasium; gymnasium.pprint_registry()')"
    )


def make(env_id: str, render_mode: str | None = None) -> Any:
    """``gymnasium.make(env_id)``, or one line naming what to install or pass."""
    import gymnasium as gym

    check_env_id(env_id)
    try:
        return gym.make(env_id, render_mode=render_mode)
    except gym.error.DependencyNotInstalled as exc:
        text = str(exc)
        need = next((v for k, v in _NEEDS.items() if k.lower() in text.lower()), None)
        raise ConfigError(
            f"{env_id} needs a package that is not installed: {need or text.splitlines()[0]}"
        ) from None


@dataclass(frozen=True)
class Spaces:
    """What an agent needs to know of an environment's spaces."""

    obs_dim: int
    discrete: bool
    n_actions: int  # discrete: the number of actions; continuous: the action's dimension
    low: np.ndarray | None = None  # continuous: the action bounds
    high: np.ndarray | None = None


def spaces(env: Any, algorithm: str) -> Spaces:
    """The spaces of ``env``, refused in one line when ``algorithm`` cannot act in them."""
    from gymnasium import spaces as s

    obs, act = env.observation_space, env.action_space
    if not isinstance(obs, s.Box) or len(obs.shape) != 1:
        raise ConfigError(
            f"{env.spec.id}: {algorithm} here takes a flat vector of observations, not {obs}"
        )
    if isinstance(act, s.Discrete):
        return Spaces(int(obs.shape[0]), True, int(act.n))
    if isinstance(act, s.Box) and algorithm == "ppo":
        return Spaces(int(obs.shape[0]), False, int(np.prod(act.shape)), act.low, act.high)
    raise ConfigError(
        f"{env.spec.id} has a {type(act).__name__} action space ({act}); {algorithm.upper()} "
        "picks among a finite set of actions (a Discrete space): use ppo for continuous actions"
        if algorithm == "dqn"
        else f"{env.spec.id}: {algorithm} does not support the action space {act}"
    )


@dataclass
class Step:
    """One lockstep of every copy."""

    obs: np.ndarray  # (n, obs_dim): the next observations (a fresh episode's after a reset)
    reward: np.ndarray  # (n,)
    terminated: np.ndarray  # (n,) bool: the episode ended in a terminal state
    truncated: np.ndarray  # (n,) bool: stopped by a time limit, not terminal
    final_obs: np.ndarray  # (n, obs_dim): where ended episodes stopped (else equal to obs)
    episodes: list[tuple[float, int]]  # (return, length) of the episodes that ended


class VecEnv:
    """``n`` copies of ``env_id``, stepped one after another, each reset as its episode ends.

    Copy ``i`` is seeded with ``seed + i`` at the first reset; later resets continue its own
    random stream, so the same seed gives the same episodes.
    """

    def __init__(self, env_id: str, n: int, seed: int) -> None:
        self.envs = [make(env_id) for _ in range(n)]
        self.env_id, self.n, self.seed = env_id, n, seed
        self.returns = np.zeros(n)
        self.lengths = np.zeros(n, dtype=np.int64)
        self.obs: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        self.obs = np.stack(
            [
                np.asarray(env.reset(seed=self.seed + i)[0], dtype=np.float32)
                for i, env in enumerate(self.envs)
            ]
        )
        for i, env in enumerate(self.envs):
            env.action_space.seed(self.seed + i)
        return self.obs

    def step(self, actions: np.ndarray) -> Step:
        n = self.n
        obs = np.empty_like(self.obs)
        final = np.empty_like(self.obs)
        reward = np.empty(n)
        terminated = np.zeros(n, dtype=bool)
        truncated = np.zeros(n, dtype=bool)
        episodes = []
        for i, env in enumerate(self.envs):
            o, r, term, trunc, _ = env.step(actions[i])
            o = np.asarray(o, dtype=np.float32)
            reward[i], terminated[i], truncated[i] = r, term, trunc and not term
            self.returns[i] += r
            self.lengths[i] += 1
            final[i] = o
            if term or trunc:
                episodes.append((float(self.returns[i]), int(self.lengths[i])))
                self.returns[i], self.lengths[i] = 0.0, 0
                o = np.asarray(env.reset()[0], dtype=np.float32)
            obs[i] = o
        self.obs = obs
        return Step(obs, reward, terminated, truncated, final, episodes)

    def close(self) -> None:
        for env in self.envs:
            env.close()
