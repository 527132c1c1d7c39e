"""Deep reinforcement learning from the papers: PPO and DQN on gymnasium, runs like any other.

- ``envs``: gymnasium environments made with one clear line for what is missing, stepped in
  lockstep with the terminated / truncated distinction the algorithms need.
- ``ppo``: Proximal Policy Optimization (Schulman et al. 2017) with GAE, and the
  implementation details that make it learn, each an option.
- ``dqn``: DQN (Mnih et al. 2015) with experience replay and a target network; Double DQN.
- ``runs``: ``kfw rl train`` / ``kfw rl eval``: the run store, checkpoints, W&B.
- ``ablate``: ``kfw rl ablate``: variants x seeds, learning curves with bands, paired intervals.
"""
