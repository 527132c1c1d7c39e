"""Steps per second of kfw's PPO and DQN next to CleanRL-style single-file loops, in one run.

The references below follow CleanRL's ``ppo.py`` and ``dqn.py`` (Huang et al. 2022, JMLR
23(274)) line for line where it matters for speed: gymnasium's ``SyncVectorEnv`` with
``RecordEpisodeStatistics``, torch tensors as rollout buffers, ``Categorical`` sampling, GAE in
torch, the same network sizes and hyperparameters. Each loop runs the same number of steps on
CartPole-v1 with one torch thread, alternately, ``--repeats`` times; the table gives the
median steps per second and the ratio of kfw's time to the reference's (target <= 1.2).

    .venv/bin/python benchmarks/rl_throughput.py [--steps 100000] [--repeats 3]
"""

# the reference loops keep CleanRL's own idioms (NumPy's legacy global RNG, a call in a default)
# so that they cost what CleanRL's do
# ruff: noqa: NPY002, B008

from __future__ import annotations

import argparse
import random
import time

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions.categorical import Categorical

from kfw.rl.dqn import DQN, DQNConfig
from kfw.rl.ppo import PPO, PPOConfig

TARGET = 1.2
ENV = "CartPole-v1"


# -- CleanRL-style PPO ---------------------------------------------------------------------------
def layer_init(layer, std=np.sqrt(2), bias_const=0.0):
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


class Agent(nn.Module):
    def __init__(self, envs):
        super().__init__()
        n_obs = int(np.array(envs.single_observation_space.shape).prod())
        self.critic = nn.Sequential(
            layer_init(nn.Linear(n_obs, 64)), nn.Tanh(), layer_init(nn.Linear(64, 64)), nn.Tanh(),
            layer_init(nn.Linear(64, 1), std=1.0),
        )  # fmt: skip
        self.actor = nn.Sequential(
            layer_init(nn.Linear(n_obs, 64)), nn.Tanh(), layer_init(nn.Linear(64, 64)), nn.Tanh(),
            layer_init(nn.Linear(64, envs.single_action_space.n), std=0.01),
        )  # fmt: skip

    def get_value(self, x):
        return self.critic(x)

    def get_action_and_value(self, x, action=None):
        logits = self.actor(x)
        probs = Categorical(logits=logits)
        if action is None:
            action = probs.sample()
        return action, probs.log_prob(action), probs.entropy(), self.critic(x)


def cleanrl_ppo(total_timesteps: int, seed: int = 1) -> float:
    num_envs, num_steps, lr, gamma, gae_lambda = 4, 128, 2.5e-4, 0.99, 0.95
    num_minibatches, update_epochs, clip_coef, ent_coef, vf_coef, max_grad_norm = (
        4,
        4,
        0.2,
        0.01,
        0.5,
        0.5,
    )
    batch_size = num_envs * num_steps
    minibatch_size = batch_size // num_minibatches
    num_iterations = total_timesteps // batch_size
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    envs = gym.vector.SyncVectorEnv(
        [lambda: gym.wrappers.RecordEpisodeStatistics(gym.make(ENV)) for _ in range(num_envs)]
    )
    agent = Agent(envs)
    optimizer = torch.optim.Adam(agent.parameters(), lr=lr, eps=1e-5)
    obs = torch.zeros((num_steps, num_envs, *envs.single_observation_space.shape))
    actions = torch.zeros((num_steps, num_envs, *envs.single_action_space.shape))
    logprobs, rewards = torch.zeros((num_steps, num_envs)), torch.zeros((num_steps, num_envs))
    dones, values = torch.zeros((num_steps, num_envs)), torch.zeros((num_steps, num_envs))
    next_obs, _ = envs.reset(seed=seed)
    next_obs, next_done = torch.Tensor(next_obs), torch.zeros(num_envs)
    started = time.perf_counter()
    for iteration in range(1, num_iterations + 1):
        optimizer.param_groups[0]["lr"] = (1.0 - (iteration - 1.0) / num_iterations) * lr
        for step in range(num_steps):
            obs[step], dones[step] = next_obs, next_done
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_obs)
                values[step] = value.flatten()
            actions[step], logprobs[step] = action, logprob
            next_obs, reward, terminations, truncations, _ = envs.step(action.cpu().numpy())
            next_done = np.logical_or(terminations, truncations)
            rewards[step] = torch.tensor(reward).view(-1)
            next_obs, next_done = torch.Tensor(next_obs), torch.Tensor(next_done)
        with torch.no_grad():
            next_value = agent.get_value(next_obs).reshape(1, -1)
            advantages = torch.zeros_like(rewards)
            lastgaelam = 0
            for t in reversed(range(num_steps)):
                if t == num_steps - 1:
                    nextnonterminal, nextvalues = 1.0 - next_done, next_value
                else:
                    nextnonterminal, nextvalues = 1.0 - dones[t + 1], values[t + 1]
                delta = rewards[t] + gamma * nextvalues * nextnonterminal - values[t]
                advantages[t] = lastgaelam = (
                    delta + gamma * gae_lambda * nextnonterminal * lastgaelam
                )
            returns = advantages + values
        b_obs = obs.reshape((-1, *envs.single_observation_space.shape))
        b_logprobs, b_actions = (
            logprobs.reshape(-1),
            actions.reshape((-1, *envs.single_action_space.shape)),
        )
        b_advantages, b_returns, b_values = (
            advantages.reshape(-1),
            returns.reshape(-1),
            values.reshape(-1),
        )
        b_inds = np.arange(batch_size)
        for _ in range(update_epochs):
            np.random.shuffle(b_inds)
            for start in range(0, batch_size, minibatch_size):
                mb_inds = b_inds[start : start + minibatch_size]
                _, newlogprob, entropy, newvalue = agent.get_action_and_value(
                    b_obs[mb_inds], b_actions.long()[mb_inds]
                )
                logratio = newlogprob - b_logprobs[mb_inds]
                ratio = logratio.exp()
                with torch.no_grad():
                    ((ratio - 1) - logratio).mean()
                    ((ratio - 1.0).abs() > clip_coef).float().mean().item()
                mb_advantages = b_advantages[mb_inds]
                mb_advantages = (mb_advantages - mb_advantages.mean()) / (
                    mb_advantages.std() + 1e-8
                )
                pg_loss = torch.max(
                    -mb_advantages * ratio,
                    -mb_advantages * torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef),
                ).mean()
                newvalue = newvalue.view(-1)
                v_loss_unclipped = (newvalue - b_returns[mb_inds]) ** 2
                v_clipped = b_values[mb_inds] + torch.clamp(
                    newvalue - b_values[mb_inds], -clip_coef, clip_coef
                )
                v_loss = (
                    0.5 * torch.max(v_loss_unclipped, (v_clipped - b_returns[mb_inds]) ** 2).mean()
                )
                loss = pg_loss - ent_coef * entropy.mean() + v_loss * vf_coef
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), max_grad_norm)
                optimizer.step()
    seconds = time.perf_counter() - started
    envs.close()
    return num_iterations * batch_size / seconds


# -- CleanRL-style DQN ---------------------------------------------------------------------------
class QNetwork(nn.Module):
    def __init__(self, env):
        super().__init__()
        self.network = nn.Sequential(
            nn.Linear(int(np.array(env.single_observation_space.shape).prod()), 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, env.single_action_space.n),
        )  # fmt: skip

    def forward(self, x):
        return self.network(x)


def cleanrl_dqn(total_timesteps: int, seed: int = 1) -> float:
    lr, buffer_size, gamma, tau, target_freq, batch = 2.5e-4, 10_000, 0.99, 1.0, 500, 128
    start_e, end_e, fraction, learning_starts, train_freq = 1.0, 0.05, 0.5, 10_000, 10
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    envs = gym.vector.SyncVectorEnv([lambda: gym.wrappers.RecordEpisodeStatistics(gym.make(ENV))])
    q_network = QNetwork(envs)
    optimizer = torch.optim.Adam(q_network.parameters(), lr=lr)
    target_network = QNetwork(envs)
    target_network.load_state_dict(q_network.state_dict())
    obs_dim = envs.single_observation_space.shape[0]
    # CleanRL uses stable-baselines3's ReplayBuffer: numpy arrays indexed by a position
    b_obs, b_next = (
        np.zeros((buffer_size, obs_dim), np.float32),
        np.zeros((buffer_size, obs_dim), np.float32),
    )
    b_act, b_rew, b_done = (
        np.zeros(buffer_size, np.int64),
        np.zeros(buffer_size, np.float32),
        np.zeros(buffer_size, np.float32),
    )
    pos, full = 0, False
    obs, _ = envs.reset(seed=seed)
    started = time.perf_counter()
    for global_step in range(total_timesteps):
        slope = (end_e - start_e) / (fraction * total_timesteps)
        epsilon = max(slope * global_step + start_e, end_e)
        if random.random() < epsilon:
            actions = np.array([envs.single_action_space.sample()])
        else:
            q_values = q_network(torch.Tensor(obs))
            actions = torch.argmax(q_values, dim=1).cpu().numpy()
        next_obs, rewards, terminations, _, _ = envs.step(actions)
        real_next_obs = next_obs.copy()
        b_obs[pos], b_next[pos], b_act[pos], b_rew[pos], b_done[pos] = (
            obs[0],
            real_next_obs[0],
            actions[0],
            rewards[0],
            terminations[0],
        )
        pos = (pos + 1) % buffer_size
        full = full or pos == 0
        obs = next_obs
        if global_step > learning_starts:
            if global_step % train_freq == 0:
                idx = np.random.randint(0, buffer_size if full else pos, size=batch)
                with torch.no_grad():
                    target_max, _ = target_network(torch.from_numpy(b_next[idx])).max(dim=1)
                    td_target = torch.from_numpy(b_rew[idx]) + gamma * target_max * (
                        1 - torch.from_numpy(b_done[idx])
                    )
                old_val = (
                    q_network(torch.from_numpy(b_obs[idx]))
                    .gather(1, torch.from_numpy(b_act[idx]).unsqueeze(1))
                    .squeeze()
                )
                loss = nn.functional.mse_loss(td_target, old_val)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            if global_step % target_freq == 0:
                for tp, qp in zip(target_network.parameters(), q_network.parameters(), strict=True):
                    tp.data.copy_(tau * qp.data + (1.0 - tau) * tp.data)
    seconds = time.perf_counter() - started
    envs.close()
    return total_timesteps / seconds


def kfw_loop(agent) -> float:
    started = time.perf_counter()
    while agent.step < agent.cfg.steps:
        agent.iterate()
    return agent.step / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    results: dict[str, list[float]] = {
        k: [] for k in ("kfw PPO", "CleanRL-style PPO", "kfw DQN", "CleanRL-style DQN")
    }
    for r in range(args.repeats):
        results["kfw PPO"].append(kfw_loop(PPO(PPOConfig(steps=args.steps), ENV, r + 1)))
        results["CleanRL-style PPO"].append(cleanrl_ppo(args.steps, r + 1))
        results["kfw DQN"].append(kfw_loop(DQN(DQNConfig(steps=args.steps), ENV, r + 1)))
        results["CleanRL-style DQN"].append(cleanrl_dqn(args.steps, r + 1))
    print(f"\n{ENV}, {args.steps:,} steps, 1 torch thread, median of {args.repeats}\n")
    print("| loop | steps/s | kfw time / reference time |")
    print("|---|---:|---:|")
    ratios = []
    for algo in ("PPO", "DQN"):
        ours, ref = np.median(results[f"kfw {algo}"]), np.median(results[f"CleanRL-style {algo}"])
        ratios.append(ref / ours)
        print(f"| kfw {algo} | {ours:,.0f} | {ref / ours:.2f} |")
        print(f"| CleanRL-style {algo} | {ref:,.0f} | 1.00 |")
    print(
        f"\nworst ratio {max(ratios):.2f} (target <= {TARGET}): ratio/target {max(ratios) / TARGET:.2f} (<= 1.00 meets it)"
    )


if __name__ == "__main__":
    main()
