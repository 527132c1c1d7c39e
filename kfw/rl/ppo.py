"""Proximal Policy Optimization (Schulman et al. 2017, arXiv:1707.06347), from the paper.

One iteration: ``n_envs`` copies act for ``n_steps`` steps with the current policy; generalised
advantage estimation (Schulman et al. 2016, arXiv:1506.02438) turns the rollout into
advantages and value targets; then ``update_epochs`` passes of ``n_minibatches`` minibatches
each optimise the surrogate objective (eq. 7, clipped; or eq. 6 unclipped, or eq. 8 with a
fixed or adaptive KL penalty: Table 1's objectives), the value loss and an entropy bonus.

The implementation details that decide whether PPO learns (Huang et al. 2022, "The 37
Implementation Details of Proximal Policy Optimization", ICLR blog track; numbered below as in
that post) are options of :class:`PPOConfig`, each with the default the post found to work,
and each documented where it is implemented.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from kfw.errors import ConfigError
from kfw.rl.envs import Spaces, VecEnv, spaces

OBJECTIVES = ("clip", "none", "kl_fixed", "kl_adaptive")


@dataclass
class PPOConfig:
    """PPO's settings; the defaults are CleanRL's ``ppo.py`` for classic control."""

    steps: int = 500_000  # environment steps in all (over every copy)
    n_envs: int = 4  # detail 1: vectorised environments
    n_steps: int = 128  # steps per copy per rollout
    lr: float = 2.5e-4
    anneal_lr: bool = True  # detail 4: the learning rate falls linearly to 0
    gamma: float = 0.99
    gae: bool = True  # detail 5: GAE; False: lambda = 1 (Monte Carlo returns, bootstrapped)
    gae_lambda: float = 0.95
    n_minibatches: int = 4  # detail 6: minibatches per epoch
    update_epochs: int = 4
    advnorm: bool = True  # detail 7: advantages normalised per minibatch
    objective: str = "clip"  # clip (eq. 7), none (eq. 6), kl_fixed / kl_adaptive (eq. 8)
    clip_coef: float = 0.2  # detail 8: epsilon of the clipped surrogate
    kl_beta: float = 1.0  # eq. 8's beta (fixed; or the adaptive one's start)
    kl_target: float = 0.01  # the adaptive penalty's d_targ
    vclip: bool = True  # detail 9: the value loss clipped around the old values
    ent_coef: float = 0.01  # detail 10: entropy bonus
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5  # detail 11: global gradient clipping (0: off)
    target_kl: float | None = None  # stop an update's epochs early past this approx-KL
    adam_eps: float = 1e-5  # detail 3: Adam's epsilon (torch's default 1e-8 is worse)
    ortho_init: bool = True  # detail 2: orthogonal weights, sqrt(2) / 0.01 / 1 gains
    separate: bool = True  # detail 13: separate actor and critic networks
    hidden: tuple[int, ...] = (64, 64)

    def check(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"objective {self.objective!r}: one of {', '.join(OBJECTIVES)}")
        if (self.n_envs * self.n_steps) % self.n_minibatches:
            raise ConfigError(
                f"n_envs x n_steps ({self.n_envs * self.n_steps}) must split into "
                f"n_minibatches ({self.n_minibatches}) equal minibatches"
            )


# what reaches the targets of issue 19: CleanRL's defaults for classic control; for
# LunarLander the RL Baselines3 Zoo's (16 x 1024 steps per rollout, minibatches of 64, gamma
# 0.999, lambda 0.98, a constant learning rate and no value clipping, as in Stable-Baselines3:
# with CleanRL's annealing and value clipping, 5 seeds reached 114.9 to 117.3 in training)
ENV_DEFAULTS: dict[str, dict[str, Any]] = {
    "CartPole-v1": {"steps": 500_000},
    "Acrobot-v1": {"steps": 500_000},
    "LunarLander-v3": {
        "steps": 1_000_000, "n_envs": 16, "n_steps": 1024, "n_minibatches": 256,
        "gamma": 0.999, "gae_lambda": 0.98, "update_epochs": 4, "lr": 3e-4,
        "anneal_lr": False, "vclip": False,
    },
}  # fmt: skip


# -- the pieces, each checked against its formula in tests/kfw/rl/test_ppo.py ---------------
def bootstrap_truncated(
    reward: np.ndarray, truncated: np.ndarray, final_value: np.ndarray, gamma: float
) -> np.ndarray:
    """Rewards with ``gamma * V(s_final)`` added where a time limit stopped the episode.

    A truncated episode did not end: its return continues past the cut, and the value of the
    state it was cut in estimates that continuation. A terminated one ended; nothing is added.
    (CleanRL's ``ppo.py`` treats both as terminal; detail "time limits", Pardo et al. 2018.)
    """
    return np.where(truncated, reward + gamma * final_value, reward)


def gae(
    reward: np.ndarray,
    value: np.ndarray,
    done: np.ndarray,
    last_value: np.ndarray,
    gamma: float,
    lam: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Generalised advantage estimates and value targets of a rollout (Schulman et al. 2016).

    Parameters
    ----------
    reward, value, done : arrays of shape (T, n)
        Per step: the reward (truncations already bootstrapped), V(s_t), and whether the
        episode ended at that step (terminated or truncated: no advantage flows across it).
    last_value : array of shape (n,)
        V(s_T), the state after the rollout's last step.

    Returns
    -------
    advantages, returns
        ``A_t = sum_l (gamma * lam)^l delta_{t+l}`` with
        ``delta_t = r_t + gamma * V(s_{t+1}) * (1 - done_t) - V(s_t)``, and ``A_t + V(s_t)``.
    """
    T = reward.shape[0]
    adv = np.zeros_like(value)
    running = np.zeros_like(last_value)
    for t in reversed(range(T)):
        next_value = last_value if t == T - 1 else value[t + 1]
        alive = 1.0 - done[t]
        delta = reward[t] + gamma * next_value * alive - value[t]
        running = delta + gamma * lam * alive * running
        adv[t] = running
    return adv, adv + value


def policy_loss(
    logratio: torch.Tensor,
    advantages: torch.Tensor,
    objective: str,
    clip_coef: float,
    beta: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The surrogate objective to minimise (the paper's L, negated) and its debug statistics.

    ``clip``: ``-E[min(r A, clip(r, 1 - eps, 1 + eps) A)]`` (eq. 7); ``none``: ``-E[r A]``
    (eq. 6); ``kl_fixed`` / ``kl_adaptive``: ``-E[r A] + beta KL[pi_old, pi]`` (eq. 8), the
    KL estimated from the sampled actions by ``(r - 1) - log r`` (unbiased, never negative).
    The statistics: ``approx_kl`` (that estimator) and ``clipfrac`` (how often ``|r - 1| >
    eps``), detail 12's diagnostics.
    """
    ratio = logratio.exp()
    kl = (ratio - 1) - logratio
    if objective == "clip":
        unclipped = -advantages * ratio
        clipped = -advantages * torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef)
        loss = torch.max(unclipped, clipped).mean()
    else:
        loss = (-advantages * ratio).mean()
        if objective.startswith("kl"):
            loss = loss + beta * kl.mean()
    with torch.no_grad():
        stats = {
            "approx_kl": float(kl.mean()),
            "clipfrac": float(((ratio - 1).abs() > clip_coef).float().mean()),
        }
    return loss, stats


def value_loss(
    new: torch.Tensor, old: torch.Tensor, returns: torch.Tensor, clip: float | None
) -> torch.Tensor:
    """``0.5 E[(V - R)^2]``; with ``clip`` (detail 9) the larger of that and the loss of the
    value kept within ``clip`` of the rollout's value."""
    unclipped = (new - returns) ** 2
    if clip is None:
        return 0.5 * unclipped.mean()
    clipped = (old + torch.clamp(new - old, -clip, clip) - returns) ** 2
    return 0.5 * torch.max(unclipped, clipped).mean()


def explained_variance(predicted: np.ndarray, target: np.ndarray) -> float:
    """``1 - Var[target - predicted] / Var[target]``: how much of the returns the critic explains."""
    var = np.var(target)
    return float("nan") if var == 0 else float(1 - np.var(target - predicted) / var)


# -- the networks ----------------------------------------------------------------------------
def _layer(n_in: int, n_out: int, gain: float, ortho: bool) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    if ortho:  # detail 2: orthogonal weights, zero biases
        nn.init.orthogonal_(layer.weight, gain)
        nn.init.constant_(layer.bias, 0.0)
    return layer


def _mlp(
    n_in: int, hidden: tuple[int, ...], n_out: int, out_gain: float, ortho: bool
) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [_layer(n_in, width, np.sqrt(2), ortho), nn.Tanh()]
        n_in = width
    layers.append(_layer(n_in, n_out, out_gain, ortho))
    return nn.Sequential(*layers)


class ActorCritic(nn.Module):
    """A policy (categorical, or a Gaussian with a state-independent log std) and a value."""

    def __init__(self, space: Spaces, cfg: PPOConfig) -> None:
        super().__init__()
        self.discrete = space.discrete
        ortho, hidden = cfg.ortho_init, tuple(cfg.hidden)
        if cfg.separate:
            # detail 13: separate networks; the policy's last layer starts near uniform (0.01)
            self.trunk = None
            self.actor = _mlp(space.obs_dim, hidden, space.n_actions, 0.01, ortho)
            self.critic = _mlp(space.obs_dim, hidden, 1, 1.0, ortho)
        else:
            self.trunk = _mlp(space.obs_dim, hidden[:-1], hidden[-1], np.sqrt(2), ortho)
            self.trunk.append(nn.Tanh())
            self.actor = _layer(hidden[-1], space.n_actions, 0.01, ortho)
            self.critic = _layer(hidden[-1], 1, 1.0, ortho)
        if not self.discrete:
            self.logstd = nn.Parameter(torch.zeros(space.n_actions))

    def _features(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (obs, obs) if self.trunk is None else (self.trunk(obs),) * 2

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(self._features(obs)[1]).squeeze(-1)

    def dist(self, obs: torch.Tensor) -> torch.distributions.Distribution:
        out = self.actor(self._features(obs)[0])
        if self.discrete:
            return torch.distributions.Categorical(logits=out)
        return torch.distributions.Normal(out, self.logstd.exp().expand_as(out))

    def act(
        self, obs: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A sampled action (drawn from ``generator``), its log-probability and V(obs)."""
        dist = self.dist(obs)
        if self.discrete:
            action = torch.multinomial(dist.probs, 1, generator=generator).squeeze(-1)
        else:
            noise = torch.randn(dist.mean.shape, generator=generator)
            action = dist.mean + dist.stddev * noise
        return action, self._logp(dist, action), self.value(obs)

    def evaluate(
        self, obs: torch.Tensor, action: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dist = self.dist(obs)
        entropy = dist.entropy() if self.discrete else dist.entropy().sum(-1)
        return self._logp(dist, action), entropy, self.value(obs)

    def greedy(self, obs: torch.Tensor) -> torch.Tensor:
        dist = self.dist(obs)
        return dist.probs.argmax(-1) if self.discrete else dist.mean

    def _logp(self, dist: torch.distributions.Distribution, action: torch.Tensor) -> torch.Tensor:
        logp = dist.log_prob(action)
        return logp if self.discrete else logp.sum(-1)


# -- the loop ----------------------------------------------------------------------------------
@dataclass
class Iteration:
    """What one rollout and update report."""

    step: int  # environment steps so far
    episodes: list[tuple[int, float, int]]  # (step it ended at, return, length)
    stats: dict[str, float] = field(default_factory=dict)


class PPO:
    """The agent, its environments and optimiser; :meth:`iterate` runs one rollout + update."""

    algorithm = "ppo"

    def __init__(self, cfg: PPOConfig, env_id: str, seed: int) -> None:
        cfg.check()
        self.cfg, self.env_id, self.seed = cfg, env_id, seed
        self.envs = VecEnv(env_id, cfg.n_envs, seed)
        self.space = spaces(self.envs.envs[0], "ppo")
        torch.manual_seed(seed)
        self.net = ActorCritic(self.space, cfg)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, eps=cfg.adam_eps)
        self.generator = torch.Generator().manual_seed(seed)
        self.step = 0
        self.iteration = 0
        self.beta = cfg.kl_beta
        self.obs = self.envs.reset()

    @property
    def n_iterations(self) -> int:
        return max(1, self.cfg.steps // (self.cfg.n_envs * self.cfg.n_steps))

    def iterate(self) -> Iteration:
        cfg, n, T = self.cfg, self.cfg.n_envs, self.cfg.n_steps
        started = time.perf_counter()
        if cfg.anneal_lr:  # detail 4: linear decay to zero over the run
            self.opt.param_groups[0]["lr"] = cfg.lr * (1.0 - self.iteration / self.n_iterations)
        obs_buf = np.zeros((T, n, self.space.obs_dim), dtype=np.float32)
        act_shape = (T, n) if self.space.discrete else (T, n, self.space.n_actions)
        act_buf = np.zeros(act_shape, dtype=np.int64 if self.space.discrete else np.float32)
        logp_buf, val_buf = np.zeros((T, n), np.float32), np.zeros((T, n), np.float32)
        rew_buf, done_buf = np.zeros((T, n)), np.zeros((T, n))
        episodes = []
        for t in range(T):
            obs_buf[t] = self.obs
            with torch.no_grad():
                action, logp, value = self.net.act(torch.from_numpy(self.obs), self.generator)
            act = action.numpy()
            env_act = act if self.space.discrete else np.clip(act, self.space.low, self.space.high)
            out = self.envs.step(env_act)
            self.step += n
            reward = out.reward
            if out.truncated.any():  # bootstrap a time-limit cut from V(s_final)
                with torch.no_grad():
                    final_value = self.net.value(torch.from_numpy(out.final_obs)).numpy()
                reward = bootstrap_truncated(reward, out.truncated, final_value, cfg.gamma)
            act_buf[t], logp_buf[t], val_buf[t] = act, logp.numpy(), value.numpy()
            rew_buf[t], done_buf[t] = reward, out.terminated | out.truncated
            episodes += [(self.step, r, length) for r, length in out.episodes]
            self.obs = out.obs
        with torch.no_grad():
            last_value = self.net.value(torch.from_numpy(self.obs)).numpy()
        lam = cfg.gae_lambda if cfg.gae else 1.0
        adv, ret = gae(
            rew_buf,
            val_buf.astype(np.float64),
            done_buf,
            last_value.astype(np.float64),
            cfg.gamma,
            lam,
        )
        stats = self._update(obs_buf, act_buf, logp_buf, val_buf, adv, ret)
        self.iteration += 1
        stats["seconds"] = time.perf_counter() - started
        stats["lr"] = self.opt.param_groups[0]["lr"]
        return Iteration(self.step, episodes, stats)

    def _update(self, obs, act, logp, val, adv, ret) -> dict[str, float]:
        cfg = self.cfg
        size = cfg.n_envs * cfg.n_steps
        b_obs = torch.from_numpy(obs.reshape(size, -1))
        b_act = torch.from_numpy(act.reshape(size, *act.shape[2:]))
        b_logp = torch.from_numpy(logp.reshape(size))
        b_val = torch.from_numpy(val.reshape(size))
        b_adv = torch.from_numpy(adv.reshape(size).astype(np.float32))
        b_ret = torch.from_numpy(ret.reshape(size).astype(np.float32))
        mb = size // cfg.n_minibatches
        totals: dict[str, list[float]] = {
            k: [] for k in ("pg_loss", "v_loss", "entropy", "approx_kl", "clipfrac")
        }
        for _ in range(cfg.update_epochs):
            order = torch.randperm(size, generator=self.generator)
            for start in range(0, size, mb):
                idx = order[start : start + mb]
                new_logp, entropy, new_val = self.net.evaluate(b_obs[idx], b_act[idx])
                mb_adv = b_adv[idx]
                if cfg.advnorm:  # detail 7: per-minibatch normalisation
                    mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                pg, pstats = policy_loss(
                    new_logp - b_logp[idx], mb_adv, cfg.objective, cfg.clip_coef, self.beta
                )
                v = value_loss(
                    new_val, b_val[idx], b_ret[idx], cfg.clip_coef if cfg.vclip else None
                )
                loss = pg - cfg.ent_coef * entropy.mean() + cfg.vf_coef * v
                self.opt.zero_grad()
                loss.backward()
                if cfg.max_grad_norm > 0:  # detail 11: the global norm of every gradient
                    nn.utils.clip_grad_norm_(self.net.parameters(), cfg.max_grad_norm)
                self.opt.step()
                for key, value in (
                    ("pg_loss", float(pg.detach())),
                    ("v_loss", float(v.detach())),
                    ("entropy", float(entropy.detach().mean())),
                    *pstats.items(),
                ):
                    totals[key].append(value)
            epoch_kl = float(np.mean(totals["approx_kl"][-cfg.n_minibatches :]))
            if cfg.objective == "kl_adaptive":  # eq. 8's rule, after each pass
                if epoch_kl < cfg.kl_target / 1.5:
                    self.beta /= 2
                elif epoch_kl > cfg.kl_target * 1.5:
                    self.beta *= 2
            if cfg.target_kl is not None and epoch_kl > cfg.target_kl:
                break
        stats = {k: float(np.mean(v)) for k, v in totals.items()}
        stats["explained_variance"] = explained_variance(val.reshape(-1), ret.reshape(-1))
        stats["beta"] = self.beta
        return stats

    # -- checkpoints ---------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "net": self.net.state_dict(),
            "opt": self.opt.state_dict(),
            "generator": self.generator.get_state(),
            "step": self.step,
            "iteration": self.iteration,
            "beta": self.beta,
            "obs": torch.from_numpy(self.obs.copy()),
        }

    def load(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])
        self.generator.set_state(state["generator"])
        self.step, self.iteration, self.beta = (
            int(state["step"]),
            int(state["iteration"]),
            float(state["beta"]),
        )
        self.obs = state["obs"].numpy()

    def policy(self, obs: np.ndarray) -> np.ndarray:
        """The greedy action for each row of ``obs`` (evaluation)."""
        with torch.no_grad():
            action = self.net.greedy(torch.from_numpy(np.asarray(obs, dtype=np.float32))).numpy()
        return action if self.space.discrete else np.clip(action, self.space.low, self.space.high)
