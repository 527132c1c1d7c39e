"""``kfw rl``: train PPO or DQN on a gymnasium environment, evaluate a run, ablate its details.

``kfw rl train ppo --env CartPole-v1`` trains with the defaults that reach the targets of
``docs/repro-ppo.md``, resumes when run again after an interruption, saves the run under
``runs/rl-<env>/`` and prints the final mean return and the run id last.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from kfw.cli.common import ExecutorUrl, NoWandb, RichProgress, console, console_err, kfw_home

app = typer.Typer(
    help="Deep reinforcement learning: PPO and DQN on gymnasium (train, eval, ablate).",
    no_args_is_help=True,
    rich_markup_mode=None,
)

Algorithm = Annotated[str, typer.Argument(help="ppo or dqn.", show_default=False)]
Env = Annotated[str, typer.Option("--env", help="A gymnasium environment id.")]
Params = Annotated[
    list[str] | None,
    typer.Option(
        "--param", "-p", help="An algorithm setting: name=value (TOML value).", show_default=False
    ),
]


def _overrides(param: list[str] | None) -> dict[str, Any]:
    from kfw.core.config import parse_override

    return dict(parse_override(p) for p in param or [])


class _Bar(RichProgress):
    """Steps, the mean return of the last 100 episodes and steps per second."""

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        if "rl_step" not in metrics:
            return
        line = (
            f"step {metrics['rl_step']:,}/{metrics['rl_total']:,} · mean return "
            f"{metrics['mean_return']:.1f} ({metrics['episodes']} episodes) · "
            f"{metrics['steps_per_s']:,.0f} steps/s"
        )
        if not console_err().is_terminal:
            self._lines = getattr(self, "_lines", 0) + 1
            if self._lines % 25 == 0 or metrics["rl_step"] >= metrics["rl_total"]:
                console_err().print(line, highlight=False)
            return
        if self._task is None:
            from rich.progress import (
                BarColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]train"), BarColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                TextColumn("{task.fields[last]}"), console=console_err(), transient=True,
            )  # fmt: skip
            self._progress.start()
            self._task = self._progress.add_task("train", total=metrics["rl_total"], last="")
        self._progress.update(self._task, completed=metrics["rl_step"], last=line)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


@app.command("train")
def train(
    ctx: typer.Context,
    algorithm: Algorithm,
    env: Env = "CartPole-v1",
    steps: Annotated[
        int | None,
        typer.Option(
            min=1, help="Environment steps (default: the environment's).", show_default=False
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Seeds the weights, the environments and the sampling.")
    ] = 1,
    param: Params = None,
    threads: Annotated[int, typer.Option(min=1, help="torch CPU threads.")] = 1,
    no_wandb: NoWandb = False,
) -> None:
    """Train ALGORITHM on --env (the same command again resumes an interrupted run)."""
    from kfw.rl.runs import resolve, train_rl

    cfg = resolve(algorithm, env, steps, _overrides(param))
    bar = _Bar()
    try:
        record = train_rl(
            algorithm, env, kfw_home(ctx), cfg, seed=seed, callback=bar, wandb=not no_wandb,
            threads=threads,
        )  # fmt: skip
    finally:
        bar.close()
    console().print(
        f"mean return {record['score']:.1f} over the last {min(100, record['episodes'])} of "
        f"{record['episodes']} episodes · {record['steps_per_s']:,.0f} steps/s · "
        f"{record['seconds']:.0f} s · run {record['id']}",
        highlight=False,
    )


@app.command("eval")
def evaluate(
    ctx: typer.Context,
    run: Annotated[
        str, typer.Argument(help="A run id, or the path to a run folder.", show_default=False)
    ],
    episodes: Annotated[int, typer.Option(min=1, help="Greedy episodes.")] = 100,
    gif: Annotated[
        Path | None,
        typer.Option(help="Record the first episode as a GIF here.", show_default=False),
    ] = None,
) -> None:
    """The greedy policy of RUN: mean and standard deviation of return."""
    from kfw.rl.runs import evaluate as run_eval
    from kfw.rl.runs import find_run

    run_dir = find_run(run, kfw_home(ctx))
    mean, std, _ = run_eval(run_dir, episodes, gif=gif)
    where = f" · episode 1 in {gif}" if gif is not None else ""
    console().print(
        f"{run_dir.name}: greedy return {mean:.1f} ± {std:.1f} (std over {episodes} episodes){where}",
        highlight=False,
    )


@app.command("ablate")
def ablate(
    ctx: typer.Context,
    algorithm: Algorithm,
    env: Env = "CartPole-v1",
    toggle: Annotated[
        str,
        typer.Option(
            help="Comma-separated switches to turn off one at a time (ppo: clip, gae, advnorm, vclip, anneal, ortho, gradclip, separate, entropy, adameps; dqn: replay, target, double)."
        ),
    ] = "",
    variant: Annotated[
        list[str] | None,
        typer.Option(
            help="A named variant: NAME:k=v,k=v (e.g. clip0.1:clip_coef=0.1); repeatable.",
            show_default=False,
        ),
    ] = None,
    seeds: Annotated[
        int, typer.Option(min=2, help="Seeds per variant (paired across variants).")
    ] = 5,
    steps: Annotated[
        int | None,
        typer.Option(min=1, help="Steps per run (default: the environment's).", show_default=False),
    ] = None,
    param: Params = None,
    executor_url: ExecutorUrl = None,
    no_wandb: NoWandb = False,
) -> None:
    """Each variant x each seed: learning curves with 95% bands (one PNG), final and area-under-curve
    returns with paired intervals against the baseline (a table)."""
    from kfw.cli.common import executor
    from kfw.rl.ablate import ablate as run_ablate
    from kfw.rl.ablate import plan

    variants = plan(algorithm, env, toggle, variant or [], steps, _overrides(param))
    with executor(ctx, executor_url) as where:
        result = run_ablate(
            algorithm, env, variants, seeds, kfw_home(ctx), callback=RichProgress(),
            wandb=not no_wandb, executor=where,
        )  # fmt: skip
    console().print(result.table, highlight=False, markup=False)
    console().print(f"curves in {result.png} · table in {result.markdown}", highlight=False)
