"""Issue 19's targets: PPO and DQN at their defaults, every seed, against the target returns.

Each row is ``kfw rl train ALGO --env ENV --seed S`` at the environment's default steps (the
runs are made through :func:`kfw.rl.ablate.run_all`, so a run already in ``--home`` is reused,
and ``--executor local:2`` trains two at a time). The score of a run is the mean return of its
last 100 training episodes (the stochastic policy, as it explored); beside it, ``kfw rl eval``'s
greedy return over 100 fresh episodes (the measure of the RL Baselines3 Zoo's 242 on
LunarLander). A target is met when every seed reaches it on the issue's measure (training
returns), and the greedy column says how the same agents do when they stop exploring.

    .venv/bin/python benchmarks/rl_targets.py --home reports/rl [--seeds 5] [--executor local:2]
        [--only ppo:CartPole-v1,dqn:CartPole-v1]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from kfw.core.executor import open_executor
from kfw.progress import Callback
from kfw.rl.ablate import run_all
from kfw.rl.runs import evaluate, resolve

# (algorithm, environment): target, and the reference the issue quotes
TARGETS = {
    ("ppo", "CartPole-v1"): (475.0, "CleanRL ppo.py 490 ± 6 (3 seeds)"),
    ("ppo", "Acrobot-v1"): (-100.0, "CleanRL -86 ± 1"),
    ("ppo", "LunarLander-v3"): (200.0, "RL Baselines3 Zoo 242"),
    ("dqn", "CartPole-v1"): (475.0, "CleanRL dqn.py 489 ± 16"),
    ("dqn", "Acrobot-v1"): (-100.0, "CleanRL dqn.py -91"),
}


class Lines(Callback):
    def info(self, message: str) -> None:
        print(message, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path("reports/rl"))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--executor", default="local:2")
    parser.add_argument("--only", default="", help="algo:env pairs, comma-separated")
    args = parser.parse_args()
    chosen = [tuple(p.split(":")) for p in args.only.split(",") if p] or list(TARGETS)
    rows = []
    with open_executor(args.executor, args.home) as executor:
        for algorithm, env in chosen:
            cfg = resolve(algorithm, env)
            runs = run_all(
                algorithm,
                env,
                [("baseline", cfg)],
                args.seeds,
                args.home,
                callback=Lines(),
                executor=executor,
            )
            records = [json.loads((d / "run.json").read_text()) for d in runs["baseline"]]
            scores = np.array([r["score"] for r in records])
            greedy = np.array([evaluate(d, 100)[0] for d in runs["baseline"]])
            target, reference = TARGETS[(algorithm, env)]
            sps = np.mean([r["steps_per_s"] for r in records])
            minutes = np.mean([r["seconds"] for r in records]) / 60
            rows.append(
                (algorithm, env, cfg.steps, scores, greedy, target, reference, sps, minutes)
            )
    print(
        "\n| algorithm | environment | steps | mean return, last 100 training episodes, per seed | mean ± std | target (every seed) | met | greedy return, 100 episodes, per seed | reference | steps/s | minutes per run |"
    )
    print("|---|---|---:|---|---:|---:|---|---|---|---:|---:|")
    met_all = []
    for algorithm, env, steps, scores, greedy, target, reference, sps, minutes in rows:
        met = bool((scores >= target).all())
        met_all.append(met)
        per_seed = ", ".join(f"{s:.1f}" for s in scores)
        print(
            f"| {algorithm.upper()} | {env} | {steps:,} | {per_seed} | {scores.mean():.1f} ± {scores.std():.1f} "
            f"| >= {target:g} | {'yes' if met else 'NO'} | {', '.join(f'{g:.1f}' for g in greedy)} "
            f"| {reference} | {sps:,.0f} | {minutes:.1f} |"
        )
    print(f"\ntargets met: {sum(met_all)} of {len(met_all)}")


if __name__ == "__main__":
    main()
