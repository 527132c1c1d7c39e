"""``kfw rl train`` and ``kfw rl eval``: an agent's run in the store, checkpointed and mirrored.

A run lives under ``runs/rl-<env>/`` like any other: ``run.json`` (the algorithm, the resolved
config, the seed, the final mean return, the wall time, the versions), ``episodes.csv`` (the
step each training episode ended at, its return and length), ``iterations.csv`` (per
iteration: losses and the debug statistics) and ``agent.pt`` (the weights). While it trains,
``.partial/<key>/`` keeps a checkpoint (weights, optimiser, random streams, replay buffer, the
environments' own state) at most ``checkpoint_seconds`` old, so an interrupted command run
again continues where it stopped and ends with the numbers an uninterrupted one gets.
"""

from __future__ import annotations

import contextlib
import csv
import io
import pickle
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kfw.core.config import from_dict
from kfw.core.runstore import RunStore, config_key, environment
from kfw.dl.checkpoint import load_checkpoint, save_atomic
from kfw.errors import ConfigError, KfwError
from kfw.files import write_bytes
from kfw.pipeline.mirror import Mirror
from kfw.progress import NULL, Callback
from kfw.rl import dqn, ppo
from kfw.rl.envs import check_env_id, make

ALGORITHMS: dict[str, tuple[type, type, dict[str, dict[str, Any]]]] = {
    "ppo": (ppo.PPOConfig, ppo.PPO, ppo.ENV_DEFAULTS),
    "dqn": (dqn.DQNConfig, dqn.DQN, dqn.ENV_DEFAULTS),
}
LAST = 100  # the score: the mean return of the last LAST training episodes
CHECKPOINT_SECONDS = 60.0


def resolve(
    algorithm: str, env_id: str, steps: int | None = None, overrides: dict[str, Any] | None = None
) -> Any:
    """The config of ``algorithm`` on ``env_id``: its defaults for that environment, then
    ``overrides`` (``-p name=value``), then ``steps``; unknown names and wrong types refused."""
    if algorithm not in ALGORITHMS:
        raise ConfigError(f"unknown algorithm {algorithm!r}: one of {', '.join(ALGORITHMS)}")
    check_env_id(env_id)
    cls, _, defaults = ALGORITHMS[algorithm]
    values = {**defaults.get(env_id, {}), **(overrides or {})}
    if steps is not None:
        values["steps"] = steps
    cfg = from_dict(cls, values, f"{algorithm} -p")
    cfg.check()
    return cfg


def slug_for(env_id: str) -> str:
    return "rl-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in env_id.lower())


def moving_mean(returns: list[float], window: int = LAST) -> float:
    """The mean of the last ``window`` returns (of all of them when fewer); NaN when none."""
    return float(np.mean(returns[-window:])) if returns else float("nan")


def train_rl(
    algorithm: str,
    env_id: str,
    kfw_home: Path,
    cfg: Any,
    *,
    seed: int = 1,
    callback: Callback = NULL,
    wandb: bool = True,
    threads: int = 1,
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
    annotations: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train (or resume) ``algorithm`` on ``env_id``; save the run, mirror it; return its record.

    ``threads`` holds torch to that many CPU threads (one: these networks are small, and a
    second thread only adds synchronisation); with one thread the same command gives the same
    returns to the last bit. ``annotations`` join the record, not its key (an ablation's group).
    """
    torch.set_num_threads(threads)
    _, agent_cls, _ = ALGORITHMS[algorithm]
    agent = agent_cls(cfg, env_id, seed)  # the environment is made (or refused) here
    store = RunStore(kfw_home, slug_for(env_id))
    key_src = {"algorithm": algorithm, "env": env_id, "config": asdict(cfg), "seed": seed}
    key = config_key(key_src)
    partial = store.root / ".partial" / key
    ckpt, envs_file = partial / "checkpoint.pt", partial / "envs.pkl"
    episodes: list[tuple[int, float, int]] = []
    iterations: list[dict[str, float]] = []
    resumed_from = None
    if ckpt.is_file() and envs_file.is_file():
        state = load_checkpoint(ckpt)
        if state.get("key_src") != key_src:
            raise KfwError(f"checkpoint {ckpt} was written by another configuration; delete it")
        agent.load(state["agent"])
        agent.envs.close()
        agent.envs = pickle.loads(envs_file.read_bytes())  # our own file: the episodes in flight
        if hasattr(agent, "rng"):
            agent.rng.bit_generator.state = state["rng"]
        episodes = [tuple(e) for e in state["episodes"]]
        iterations = list(state["iterations"])
        resumed_from = agent.step
        callback.info(f"resuming from {ckpt} (step {agent.step:,})")
    label = f"{algorithm}-{env_id}"
    callback.info(f"{label}: {cfg.steps:,} steps, seed {seed}, {threads} thread(s)")
    started = time.perf_counter()
    saved_at = time.perf_counter()
    while agent.step < cfg.steps:
        before, step_before = time.perf_counter(), agent.step
        it = agent.iterate()
        episodes += it.episodes
        iterations.append({"step": it.step, **it.stats})
        returns = [e[1] for e in episodes]
        # what the progress line shows (kfw rl train) and W&B would chart
        callback.log(
            {
                "rl_step": it.step,
                "rl_total": cfg.steps,
                "mean_return": moving_mean(returns),
                "episodes": len(returns),
                "steps_per_s": (it.step - step_before) / max(time.perf_counter() - before, 1e-9),
                **it.stats,
            },
            step=it.step,
        )
        if time.perf_counter() - saved_at > checkpoint_seconds and agent.step < cfg.steps:
            _checkpoint(agent, ckpt, envs_file, key_src, episodes, iterations)
            saved_at = time.perf_counter()
    seconds = time.perf_counter() - started
    returns = [e[1] for e in episodes]
    run_id = store.new_id(label, key)
    env = environment()
    record = {
        "id": run_id,
        "competition": slug_for(env_id),
        "kind": "rl",
        "model": algorithm,
        "label": label,
        "env": env_id,
        "algorithm": algorithm,
        "config": asdict(cfg),
        "seed": seed,
        "key": key,
        "threads": threads,
        "metric": f"mean_return_last_{LAST}",
        "score": moving_mean(returns),
        "greater_is_better": True,
        "episodes": len(returns),
        "steps": agent.step,
        "seconds": seconds,
        "steps_per_s": (agent.step - (resumed_from or 0)) / max(seconds, 1e-9),
        "resumed_from": resumed_from,
        "git_commit": env.pop("git_commit"),
        "versions": env,
        **(annotations or {}),
    }
    files = {
        "episodes.csv": _csv(["step", "return", "length"], episodes),
        "iterations.csv": _csv(list(iterations[0]), [list(r.values()) for r in iterations])
        if iterations
        else None,
        "agent.pt": _agent_bytes(agent, algorithm, env_id, cfg),
    }
    run_dir = store.save(record, files)
    for path in (ckpt, envs_file):
        path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        partial.rmdir()
        partial.parent.rmdir()
    agent.envs.close()
    return Mirror(kfw_home, enabled=wandb)(record, run_dir, callback)


def _checkpoint(
    agent: Any, ckpt: Path, envs_file: Path, key_src: dict, episodes: list, iterations: list
) -> None:
    # the environments first: a checkpoint is only read when both files are there
    write_bytes(envs_file, pickle.dumps(agent.envs))
    state = {
        "key_src": key_src,
        "agent": agent.state(),
        "episodes": [list(e) for e in episodes],
        "iterations": iterations,
    }
    if hasattr(agent, "rng"):
        state["rng"] = agent.rng.bit_generator.state
    save_atomic(state, ckpt)


def _csv(header: list[str], rows: list[Any]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[repr(v) if isinstance(v, float) else v for v in row] for row in rows])
    return buf.getvalue().encode()


def _agent_bytes(agent: Any, algorithm: str, env_id: str, cfg: Any) -> bytes:
    buf = io.BytesIO()
    net = agent.net if algorithm == "ppo" else agent.q
    torch.save(
        {"algorithm": algorithm, "env": env_id, "config": asdict(cfg), "weights": net.state_dict()},
        buf,
    )
    return buf.getvalue()


# -- kfw rl eval -----------------------------------------------------------------------------
def find_run(run: str, kfw_home: Path) -> Path:
    """A run folder from a path to it, or from a run id under ``runs/rl-*/``."""
    path = Path(run)
    if (path / "agent.pt").is_file():
        return path
    matches = (
        sorted((Path(kfw_home) / "runs").glob(f"rl-*/{run}/agent.pt")) if "/" not in run else []
    )
    if not matches:
        raise KfwError(
            f"no rl run {run!r} under {Path(kfw_home) / 'runs'} (kfw rl train makes one)"
        )
    return matches[0].parent


def load_agent(run_dir: Path) -> Any:
    """The run's agent, its weights loaded (its environments made, not stepped)."""
    saved = load_checkpoint(run_dir / "agent.pt")
    algorithm, env_id = saved["algorithm"], saved["env"]
    cls, agent_cls, _ = ALGORITHMS[algorithm]
    cfg = from_dict(cls, saved["config"], str(run_dir))
    agent = agent_cls(cfg, env_id, 0)
    (agent.net if algorithm == "ppo" else agent.q).load_state_dict(saved["weights"])
    return agent


def evaluate(
    run_dir: Path, episodes: int = 100, seed: int = 10_000, gif: Path | None = None
) -> tuple[float, float, list[float]]:
    """The greedy policy's mean and standard deviation of return over ``episodes`` episodes
    (seeded ``seed``, ``seed + 1``, ...: none of them a training episode's seed); with ``gif``,
    the first episode is rendered there."""
    torch.set_num_threads(1)
    agent = load_agent(run_dir)
    env = make(agent.env_id, render_mode="rgb_array" if gif is not None else None)
    returns, frames = [], []
    for e in range(episodes):
        obs, _ = env.reset(seed=seed + e)
        total, done = 0.0, False
        while not done:
            if gif is not None and e == 0:
                frames.append(env.render())
            action = agent.policy(np.asarray(obs, dtype=np.float32)[None])[0]
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    agent.envs.close()
    if gif is not None:
        _write_gif(frames, Path(gif))
    return float(np.mean(returns)), float(np.std(returns)), returns


def _write_gif(frames: list[np.ndarray], path: Path) -> None:
    from PIL import Image

    images = [Image.fromarray(f) for f in frames[::2]]  # every other frame: 25 fps of 50
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=40, loop=0)
    write_bytes(path, buf.getvalue())
