"""Deep Q-Networks (Mnih et al. 2015, Nature 518:529), with Double DQN (van Hasselt et al. 2016).

One environment acts epsilon-greedily on the online network, epsilon falling linearly from
``start_e`` to ``end_e`` over ``exploration_fraction`` of the run; every transition goes into
an experience-replay buffer; after ``learning_starts`` steps, every ``train_frequency`` steps a
minibatch drawn uniformly from the buffer regresses Q(s, a) on
``r + gamma * max_a' Q_target(s', a') * (1 - terminated)`` (Double DQN: the online network
chooses ``a'``, the target network values it), with a Huber or squared loss; every
``target_network_frequency`` steps the target network takes the online weights
(``tau = 1``; a smaller ``tau`` moves it part of the way). A time-limit truncation stores the
state it stopped in as ``s'`` and is bootstrapped; only a termination zeroes the future.

The paper's ablation switches are ``replay`` (False: train on the latest ``batch_size``
transitions only, in order) and ``target`` (False: the online network is its own target).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from kfw.errors import ConfigError
from kfw.rl.envs import VecEnv, spaces
from kfw.rl.ppo import Iteration


@dataclass
class DQNConfig:
    """DQN's settings; the defaults are CleanRL's ``dqn.py`` for classic control."""

    steps: int = 500_000
    lr: float = 2.5e-4
    buffer_size: int = 10_000
    gamma: float = 0.99
    tau: float = 1.0  # 1: a hard copy every target_network_frequency steps
    target_network_frequency: int = 500
    batch_size: int = 128
    start_e: float = 1.0
    end_e: float = 0.05
    exploration_fraction: float = 0.5
    learning_starts: int = 10_000
    train_frequency: int = 10
    loss: str = "mse"  # mse (CleanRL) or huber (the paper's clipped error term)
    double: bool = False  # Double DQN (van Hasselt et al. 2016)
    replay: bool = True  # experience replay (False: the latest batch_size transitions)
    target: bool = True  # a target network (False: the online network bootstraps itself)
    hidden: tuple[int, ...] = (120, 84)
    log_every: int = 1_000  # environment steps per reported iteration

    def check(self) -> None:
        if self.loss not in ("mse", "huber"):
            raise ConfigError(f"loss {self.loss!r}: mse or huber")
        if self.batch_size > self.buffer_size:
            raise ConfigError("batch_size must not exceed buffer_size")


ENV_DEFAULTS: dict[str, dict[str, Any]] = {
    "CartPole-v1": {"steps": 500_000},
    "Acrobot-v1": {"steps": 500_000},
}


def epsilon(step: int, cfg: DQNConfig) -> float:
    """The linear schedule: ``start_e`` to ``end_e`` over ``exploration_fraction * steps``."""
    duration = cfg.exploration_fraction * cfg.steps
    slope = (cfg.end_e - cfg.start_e) / duration
    return max(slope * step + cfg.start_e, cfg.end_e)


class ReplayBuffer:
    """A circular buffer of transitions; :meth:`sample` draws uniformly, with ``rng``."""

    def __init__(self, capacity: int, obs_dim: int) -> None:
        self.capacity, self.size, self.pos = capacity, 0, 0
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.action = np.zeros(capacity, np.int64)
        self.reward = np.zeros(capacity, np.float32)
        self.terminated = np.zeros(capacity, np.float32)

    def add(self, obs, action, reward, next_obs, terminated) -> None:
        i = self.pos
        self.obs[i], self.action[i], self.reward[i] = obs, action, reward
        self.next_obs[i], self.terminated[i] = next_obs, terminated
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        idx = rng.integers(0, self.size, size=batch)
        return self.take(idx)

    def latest(self, batch: int) -> tuple[np.ndarray, ...]:
        """The last ``batch`` transitions, oldest first (training without replay)."""
        idx = (self.pos - batch + np.arange(batch)) % self.capacity
        return self.take(idx)

    def take(self, idx: np.ndarray) -> tuple[np.ndarray, ...]:
        return (
            self.obs[idx],
            self.action[idx],
            self.reward[idx],
            self.next_obs[idx],
            self.terminated[idx],
        )

    def state(self) -> dict[str, Any]:
        return {
            "arrays": {
                k: torch.from_numpy(getattr(self, k).copy())
                for k in ("obs", "next_obs", "action", "reward", "terminated")
            },
            "size": self.size,
            "pos": self.pos,
        }

    def load(self, state: dict[str, Any]) -> None:
        for k, v in state["arrays"].items():
            setattr(self, k, v.numpy().copy())
        self.size, self.pos = int(state["size"]), int(state["pos"])


def _qnet(obs_dim: int, hidden: tuple[int, ...], n_actions: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(obs_dim, width), nn.ReLU()]
        obs_dim = width
    layers.append(nn.Linear(obs_dim, n_actions))
    return nn.Sequential(*layers)


def td_target(
    reward: torch.Tensor,
    next_obs: torch.Tensor,
    terminated: torch.Tensor,
    online: nn.Module,
    target: nn.Module,
    gamma: float,
    double: bool,
) -> torch.Tensor:
    """``r + gamma * Q_target(s', a') * (1 - terminated)``; ``a'`` the target's argmax, or the
    online network's with ``double``."""
    with torch.no_grad():
        q_next = target(next_obs)
        if double:
            best = online(next_obs).argmax(dim=1, keepdim=True)
            value = q_next.gather(1, best).squeeze(1)
        else:
            value = q_next.max(dim=1).values
        return reward + gamma * value * (1.0 - terminated)


class DQN:
    """The agent, its environment, buffer and networks; :meth:`iterate` runs ``log_every`` steps."""

    algorithm = "dqn"

    def __init__(self, cfg: DQNConfig, env_id: str, seed: int) -> None:
        cfg.check()
        self.cfg, self.env_id, self.seed = cfg, env_id, seed
        self.envs = VecEnv(env_id, 1, seed)
        self.space = spaces(self.envs.envs[0], "dqn")
        torch.manual_seed(seed)
        self.q = _qnet(self.space.obs_dim, tuple(cfg.hidden), self.space.n_actions)
        self.q_target = _qnet(self.space.obs_dim, tuple(cfg.hidden), self.space.n_actions)
        self.q_target.load_state_dict(self.q.state_dict())
        self.opt = torch.optim.Adam(self.q.parameters(), lr=cfg.lr)
        capacity = cfg.buffer_size if cfg.replay else cfg.batch_size
        self.buffer = ReplayBuffer(capacity, self.space.obs_dim)
        self.rng = np.random.default_rng(seed)
        self.step = 0
        self.updates = 0
        self.obs = self.envs.reset()

    @property
    def n_iterations(self) -> int:
        return max(1, -(-self.cfg.steps // self.cfg.log_every))

    def iterate(self) -> Iteration:
        cfg = self.cfg
        started = time.perf_counter()
        episodes, losses, qs = [], [], []
        for _ in range(min(cfg.log_every, cfg.steps - self.step)):
            eps = epsilon(self.step, cfg)
            if self.rng.random() < eps:
                action = int(self.rng.integers(self.space.n_actions))
            else:
                with torch.no_grad():
                    action = int(self.q(torch.from_numpy(self.obs)).argmax(dim=1)[0])
            out = self.envs.step(np.array([action]))
            self.step += 1
            # the state the step ended in: a truncated episode's last state, not the reset's
            self.buffer.add(
                self.obs[0], action, out.reward[0], out.final_obs[0], float(out.terminated[0])
            )
            episodes += [(self.step, r, length) for r, length in out.episodes]
            self.obs = out.obs
            if self.step > cfg.learning_starts and self.step % cfg.train_frequency == 0:
                loss, q = self._train()
                losses.append(loss)
                qs.append(q)
            if cfg.target and self.step % cfg.target_network_frequency == 0:
                self._sync_target()
        stats = {"epsilon": epsilon(self.step, cfg), "seconds": time.perf_counter() - started}
        if losses:
            stats.update(td_loss=float(np.mean(losses)), q_values=float(np.mean(qs)))
        return Iteration(self.step, episodes, stats)

    def _sync_target(self) -> None:
        """The target network moves ``tau`` of the way to the online one (1: a copy)."""
        tau = self.cfg.tau
        with torch.no_grad():
            for tp, p in zip(self.q_target.parameters(), self.q.parameters(), strict=True):
                tp.copy_(tau * p + (1.0 - tau) * tp)

    def _train(self) -> tuple[float, float]:
        cfg = self.cfg
        if cfg.replay:
            batch = self.buffer.sample(cfg.batch_size, self.rng)
        else:
            batch = self.buffer.latest(min(cfg.batch_size, self.buffer.size))
        obs, action, reward, next_obs, terminated = (torch.from_numpy(a) for a in batch)
        bootstrap = self.q_target if cfg.target else self.q
        target = td_target(reward, next_obs, terminated, self.q, bootstrap, cfg.gamma, cfg.double)
        q = self.q(obs).gather(1, action.unsqueeze(1)).squeeze(1)
        loss = (
            nn.functional.mse_loss(q, target)
            if cfg.loss == "mse"
            else nn.functional.smooth_l1_loss(q, target)
        )
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.updates += 1
        return float(loss.detach()), float(q.detach().mean())

    def state(self) -> dict[str, Any]:
        return {
            "q": self.q.state_dict(),
            "q_target": self.q_target.state_dict(),
            "opt": self.opt.state_dict(),
            "buffer": self.buffer.state(),
            "step": self.step,
            "updates": self.updates,
            "obs": torch.from_numpy(self.obs.copy()),
        }

    def load(self, state: dict[str, Any]) -> None:
        self.q.load_state_dict(state["q"])
        self.q_target.load_state_dict(state["q_target"])
        self.opt.load_state_dict(state["opt"])
        self.buffer.load(state["buffer"])
        self.step, self.updates = int(state["step"]), int(state["updates"])
        self.obs = state["obs"].numpy()

    def policy(self, obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.q(torch.from_numpy(np.asarray(obs, dtype=np.float32))).argmax(dim=1).numpy()
