"""``kfw repro ppo``: Table 1's claim of the PPO paper, DQN's replay and target-network
ablation, and one question of our own, on the classic-control tasks; ``docs/repro-ppo.md``.

Every run goes through :func:`kfw.rl.ablate.run_all` (reused when already in the store, spread
over ``--executor``), and every number of the write-up is read from run records. Table 1's
normalisation is the paper's: per task, a random policy scores 0 and the best setting 1; a
setting's score is the mean over tasks and seeds (here with a 95% t-interval over seeds, each
seed's score being its mean over tasks).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from kfw import files
from kfw.core.executor import Executor
from kfw.markdown import render, to_html
from kfw.progress import NULL, Callback
from kfw.rl.ablate import curves_png, interval, markdown_table, png, run_all, summarise
from kfw.rl.envs import make
from kfw.rl.runs import resolve

TEMPLATE = Path(__file__).parent / "templates" / "repro-ppo.md"
# the surrogate objectives of Table 1 we run: name -> PPO settings
OBJECTIVES: dict[str, dict[str, Any]] = {
    "no clipping or penalty": {"objective": "none"},
    "clipping, eps = 0.1": {"objective": "clip", "clip_coef": 0.1},
    "clipping, eps = 0.2": {"objective": "clip", "clip_coef": 0.2},
    "clipping, eps = 0.3": {"objective": "clip", "clip_coef": 0.3},
    "adaptive KL, d_targ = 0.01": {"objective": "kl_adaptive", "kl_target": 0.01, "kl_beta": 1.0},
    "fixed KL, beta = 1": {"objective": "kl_fixed", "kl_beta": 1.0},
}
# the paper's Table 3 (its MuJoCo runs): one environment, horizon 2048, 10 epochs of minibatches
# of 64, Adam 3e-4; laid over kfw's defaults, which are CleanRL's gentler classic-control ones
PAPER_HYPERPARAMETERS: dict[str, Any] = {
    "n_envs": 1, "n_steps": 2048, "update_epochs": 10, "n_minibatches": 32, "lr": 3e-4,
}  # fmt: skip
PAPER_SEEDS = 3
# the paper's Table 1, for the settings above it reports (normalised, 7 MuJoCo tasks, 3 seeds)
PAPER = {
    "no clipping or penalty": -0.39,
    "clipping, eps = 0.2": 0.82,
    "adaptive KL, d_targ = 0.01": 0.74,
}


def random_score(env_id: str, episodes: int = 100, seed: int = 0) -> float:
    """The mean return of a uniformly random policy over ``episodes`` seeded episodes."""
    env = make(env_id)
    env.action_space.seed(seed)
    total = []
    for e in range(episodes):
        env.reset(seed=seed + e)
        ret, done = 0.0, False
        while not done:
            _, r, term, trunc, _ = env.step(env.action_space.sample())
            ret += float(r)
            done = term or trunc
        total.append(ret)
    env.close()
    return float(np.mean(total))


def _variants(
    algorithm: str,
    env_id: str,
    steps: int | None,
    settings: dict[str, dict[str, Any]],
    base: dict[str, Any] | None = None,
) -> list[tuple[str, Any]]:
    return [
        (name, resolve(algorithm, env_id, steps, {**(base or {}), **values}))
        for name, values in settings.items()
    ]


def clip_fraction(runs: list[Path]) -> float:
    """The mean, over the runs' updates, of the fraction of samples whose ratio left the clip."""
    import csv

    fractions = []
    for run in runs:
        with (run / "iterations.csv").open(newline="") as fh:
            fractions += [float(row["clipfrac"]) for row in csv.DictReader(fh)]
    return float(np.mean(fractions))


def _scores(runs: dict[str, list[Path]]) -> dict[str, np.ndarray]:
    return {
        name: np.array([json.loads((d / "run.json").read_text())["score"] for d in dirs])
        for name, dirs in runs.items()
    }


def table1(
    envs: list[str],
    seeds: int,
    steps: int | None,
    home: Path,
    executor: Executor,
    callback: Callback,
    base: dict[str, Any] | None = None,
) -> tuple[
    list[dict[str, Any]],
    dict[str, dict[str, np.ndarray]],
    dict[str, float],
    tuple[float, list[str]],
]:
    """Every objective on every task with the hyperparameters ``base`` lays over the defaults;
    the normalised scores per setting, the raw ones, the random policy's, and how often the
    clip (eps = 0.2) bound, with the tasks where clipping and no clipping ran the same episodes."""
    raw, randoms, clipped, same = {}, {}, [], []
    for env in envs:
        variants = _variants("ppo", env, steps, OBJECTIVES, base)
        runs = run_all("ppo", env, variants, seeds, home, callback=callback, executor=executor)
        raw[env] = _scores(runs)
        clipped += runs["clipping, eps = 0.2"]
        randoms[env] = random_score(env)
        pairs = zip(runs["clipping, eps = 0.2"], runs["no clipping or penalty"], strict=True)
        if all(
            (a / "episodes.csv").read_bytes() == (b / "episodes.csv").read_bytes() for a, b in pairs
        ):
            same.append(env)  # the clip never bound: the unclipped surrogate was the same
    per_seed = {name: np.zeros(seeds) for name in OBJECTIVES}
    for env in envs:
        best = max(float(s.mean()) for s in raw[env].values())
        for name in OBJECTIVES:
            per_seed[name] += (raw[env][name] - randoms[env]) / (best - randoms[env]) / len(envs)
    rows = [
        {
            "setting": name,
            "normalised": interval(per_seed[name]),
            "paper": PAPER.get(name),
            "per_seed": per_seed[name],
        }
        for name in OBJECTIVES
    ]
    return rows, raw, randoms, (clip_fraction(clipped), same)


def _identical(envs: list[str]) -> str:
    if not envs:
        return "On no task were the clipped and unclipped runs the same episode for episode."
    return (
        f"Where the clip never binds the unclipped surrogate *is* the clipped one: on "
        f"{' and '.join(envs)} the two rows are the same runs, episode for episode, on every seed."
    )


def table1_verdict(rows: list[dict[str, Any]]) -> str:
    """What the table says about the paper's ordering, from the numbers (paired by seed)."""
    by = {r["setting"]: r for r in rows}
    none, clip = by["no clipping or penalty"], by["clipping, eps = 0.2"]
    kl = by["adaptive KL, d_targ = 0.01"]
    diff = interval(clip["per_seed"] - none["per_seed"])
    lo, hi = diff[0] - diff[1], diff[0] + diff[1]
    best = max(rows, key=lambda r: r["normalised"][0])["setting"]
    parts = [
        f"Clipping (eps = 0.2) scores {clip['normalised'][0]:.2f} against {none['normalised'][0]:.2f} "
        f"without clipping or penalty: a paired difference of {diff[0]:+.2f} [{lo:+.2f}, {hi:+.2f}]"
        + (
            ", so the paper's first claim holds here."
            if lo > 0
            else ", which these seeds do not resolve: the paper's first claim is not confirmed here."
        ),
        f"The adaptive KL penalty scores {kl['normalised'][0]:.2f} (the paper: 0.74, below clipping's 0.82);",
        f"the best setting here is {best} (the paper's: clipping with eps = 0.2).",
    ]
    return " ".join(parts)


def _table1_markdown(
    rows: list[dict[str, Any]], raw: dict[str, dict[str, np.ndarray]], randoms: dict[str, float]
) -> str:
    envs = list(raw)
    head = (
        "| setting | normalised score (ours) | paper (MuJoCo) | "
        + " | ".join(f"{e} return" for e in envs)
        + " |"
    )
    lines = [head, "|---|---:|---:|" + "---:|" * len(envs)]
    for r in rows:
        paper = f"{r['paper']:.2f}" if r["paper"] is not None else "-"
        cells = " | ".join(
            f"{raw[e][r['setting']].mean():.1f} ± {interval(raw[e][r['setting']])[1]:.1f}"
            for e in envs
        )
        mean, half = r["normalised"]
        lines.append(f"| {r['setting']} | {mean:.2f} ± {half:.2f} | {paper} | {cells} |")
    lines.append(
        "| random policy | 0 | 0 | " + " | ".join(f"{randoms[e]:.1f}" for e in envs) + " |"
    )
    return "\n".join(lines)


def _bars(rows: list[dict[str, Any]]) -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 3.6), layout="constrained")
    ax = fig.subplots()
    names = [r["setting"] for r in rows]
    means = [r["normalised"][0] for r in rows]
    halves = [r["normalised"][1] for r in rows]
    y = np.arange(len(names))
    ax.barh(y, means, xerr=halves, color="#1f77b4", alpha=0.8, label="ours (classic control)")
    for i, r in enumerate(rows):
        if r["paper"] is not None:
            ax.plot(r["paper"], i, "D", color="#d62728", label="paper (MuJoCo)" if i == 0 else None)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel("normalised score (random 0, best setting 1), 95% interval over seeds")
    ax.legend(loc="lower right", fontsize=8)
    return png(fig)


def ablation_section(
    algorithm: str, env: str, settings: dict[str, dict[str, Any]], seeds: int, steps: int | None,
    home: Path, executor: Executor, callback: Callback,
) -> tuple[str, bytes, int]:  # fmt: skip
    variants = _variants(algorithm, env, steps, settings)
    runs = run_all(algorithm, env, variants, seeds, home, callback=callback, executor=executor)
    n_steps = variants[0][1].steps
    rows, curves = summarise(runs, n_steps)
    png = curves_png(curves, n_steps, f"{algorithm.upper()} on {env}: {seeds} seeds, 95% bands")
    return markdown_table(rows), png, n_steps


def reproduce(
    home: Path,
    docs: Path,
    *,
    envs: list[str],
    seeds: int = 5,
    steps: int | None = None,
    executor: Executor | None = None,
    callback: Callback = NULL,
    command: str = "kfw repro ppo",
) -> Path:
    """Run (or reuse) every experiment and write ``docs/repro-ppo.md``, its images and HTML."""
    executor = executor or Executor()
    started = time.time()
    rows, raw, randoms, clipfrac = table1(envs, seeds, steps, home, executor, callback)
    # the paper's own protocol has 3 seeds: so does this pass (its updates cost 2.5 times more)
    paper_seeds = min(seeds, PAPER_SEEDS)
    paper_rows, paper_raw, _, paper_clipfrac = table1(
        envs, paper_seeds, steps, home, executor, callback, base=PAPER_HYPERPARAMETERS
    )
    images = {
        "img/repro-ppo-table1.png": _bars(rows),
        "img/repro-ppo-table1-paper.png": _bars(paper_rows),
    }
    dqn_sections, question_sections = [], []
    dqn_settings = {
        "baseline": {},
        "no replay": {"replay": False},
        "no target network": {"target": False},
        "neither": {"replay": False, "target": False},
    }
    question = {
        "GAE, advantages normalised": {},
        "GAE, raw advantages": {"advnorm": False},
        "lambda = 1, advantages normalised": {"gae": False},
        "lambda = 1, raw advantages": {"gae": False, "advnorm": False},
    }
    for env in envs:
        if env == "LunarLander-v3":
            continue  # DQN has no target there in issue 19, and the question is asked on the cheap tasks
        slug = env.lower().replace("-", "")
        table, png, n = ablation_section(
            "dqn", env, dqn_settings, seeds, steps, home, executor, callback
        )
        images[f"img/repro-ppo-dqn-{slug}.png"] = png
        dqn_sections.append(
            f"### {env}, {n:,} steps\n\n{table}\n\n![DQN on {env}](img/repro-ppo-dqn-{slug}.png)\n"
        )
        table, png, n = ablation_section(
            "ppo", env, question, seeds, steps, home, executor, callback
        )
        images[f"img/repro-ppo-advnorm-{slug}.png"] = png
        question_sections.append(
            f"### {env}, {n:,} steps\n\n{table}\n\n![Advantage normalisation on {env}](img/repro-ppo-advnorm-{slug}.png)\n"
        )
    verdict = table1_verdict(rows)
    question_verdict = (
        "Read the rows above: a paired interval that excludes 0 is a difference these seeds "
        "resolve; one that spans 0 is not."
        if question_sections
        else ""
    )
    step_text = (
        f"{steps:,} steps per run" if steps else "each task's default steps (kfw rl train's)"
    )
    text = render(
        TEMPLATE,
        command=command,
        date=time.strftime("%Y-%m-%d"),
        minutes=f"{(time.time() - started) / 60:.0f}",
        envs=", ".join(envs),
        seeds=seeds,
        steps=step_text,
        table1=_table1_markdown(rows, raw, randoms),
        verdict=verdict,
        table1_paper=_table1_markdown(paper_rows, paper_raw, randoms),
        verdict_paper=table1_verdict(paper_rows),
        clipfrac=f"{clipfrac[0]:.2g}",
        clipfrac_paper=f"{paper_clipfrac[0]:.2g}",
        identical=_identical(clipfrac[1]),
        identical_paper=_identical(paper_clipfrac[1]),
        paper_settings=", ".join(f"{k} = {v}" for k, v in PAPER_HYPERPARAMETERS.items()),
        paper_seeds=paper_seeds,
        question_verdict=question_verdict,
        dqn="\n".join(dqn_sections) or "(not run)",
        question="\n".join(question_sections) or "(not run)",
    )
    md, html = docs / "repro-ppo.md", docs / "repro-ppo.html"
    for name, data in images.items():
        files.write_bytes(docs / name, data)
    files.write_text(md, text)
    files.write_text(html, to_html(text, images, "PPO and DQN reproduced on classic control"))
    return md
