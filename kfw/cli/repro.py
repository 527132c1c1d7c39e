"""``kfw repro``: papers reproduced from their equations (Batch Normalization, Dropout)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from kfw.cli.common import ExecutorUrl, RichProgress, console, kfw_home

app = typer.Typer(
    help="Reproduce papers' experiments: batchnorm (Ioffe & Szegedy 2015), dropout (Srivastava "
    "2014), ppo (Schulman et al. 2017, with DQN's ablation).",
    no_args_is_help=True,
)

Data = Annotated[
    Path,
    typer.Option(
        "--data", help="Directory with the four MNIST IDX files (.gz or raw).", show_default=False
    ),
]
Device = Annotated[str, typer.Option(help="auto (cuda if available), cpu, cuda, cuda:N.")]
Docs = Annotated[Path, typer.Option(help="Where the write-up goes (repro-*.md, .html, img/).")]
THREADS_HELP = "CPU threads torch trains with, then restored; ignored on a GPU."


class StepProgress(RichProgress):
    """A progress bar over training steps (or epochs), fed by the library's ``log`` events."""

    LOG_EVERY = 30.0  # seconds between lines when stderr is a log file, not a terminal

    def __init__(self, total: int, unit: str) -> None:
        super().__init__()
        self.total, self.unit, self._arm = total, unit, None
        self._t0 = self._last_line = time.monotonic()

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        from kfw.cli.common import console_err

        label = str(metrics.get("label", "train"))
        shown = ", ".join(
            f"{k.split('/')[-1]} {v:.4f}" for k, v in metrics.items() if isinstance(v, float)
        )
        if not console_err().is_terminal:  # a log: a line every LOG_EVERY seconds and the last
            now = time.monotonic()
            if now - self._last_line >= self.LOG_EVERY or step == self.total:
                self._last_line = now
                minutes = (now - self._t0) / 60
                console_err().print(
                    f"{label} {self.unit} {step}/{self.total} ({minutes:.1f} min): {shown}",
                    highlight=False, soft_wrap=True, markup=False,
                )  # fmt: skip
            return
        if self._progress is None or label != self._arm:
            if self._progress is not None:
                self._progress.stop()
            self.cv_start(label, self.total)
            self._arm = label
        self._progress.update(self._task, completed=step, last=f"{self.unit} {step}: {shown}")

    def done(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


@app.command()
def batchnorm(
    ctx: typer.Context,
    data: Data,
    seeds: Annotated[int, typer.Option(help="Networks per arm (trained as one batch).")] = 3,
    steps: Annotated[
        int | None,
        typer.Option(
            help="SGD steps (default: the paper's 50,000; 20,000 with --modification).",
            show_default=False,
        ),
    ] = None,
    lr: Annotated[float, typer.Option(help="SGD learning rate, both networks.")] = 0.1,
    batch_size: Annotated[int, typer.Option(help="Mini-batch size (the paper: 60).")] = 60,
    eval_every: Annotated[int, typer.Option(help="Evaluate every N steps.")] = 500,
    seed: Annotated[int, typer.Option(help="First seed.")] = 0,
    modification: Annotated[
        str | None,
        typer.Option(help="lr: our question, the learning rate BN tolerates (x1, x3, x10, x30)."),
    ] = None,
    device: Device = "auto",
    threads: Annotated[
        int, typer.Option(help=f"{THREADS_HELP} One is fastest for this tiny net.")
    ] = 1,
    docs: Docs = Path("docs"),
    report: Annotated[bool, typer.Option(help="Regenerate the write-up after the run.")] = False,
) -> None:
    """Figure 1 of Batch Normalization: MNIST, 3 x 100 sigmoid, with and without BN."""
    from kfw.dl.repro.batchnorm import (
        MUST_SHOW_STEPS,
        BNConfig,
        run_batchnorm,
        run_lr_modification,
    )
    from kfw.errors import ConfigError

    steps = steps or (50_000 if modification is None else 20_000)
    config = BNConfig(
        steps=steps, lr=lr, batch_size=batch_size, seeds=seeds, seed=seed,
        eval_every=eval_every, device=device, threads=threads,
    )  # fmt: skip
    progress = StepProgress(steps, "step")
    home = kfw_home(ctx)
    lines = []
    if modification is None:
        path, res = run_batchnorm(data, home, config, progress)
        for arm in ("baseline", "bn"):  # median test accuracy over seeds at the must-show steps
            acc = [statistics.median(col) for col in zip(*res["test_accuracy"][arm], strict=True)]
            shown = [
                f"{s}: {a:.4f}"
                for s, a in zip(res["steps"], acc, strict=True)
                if s in MUST_SHOW_STEPS or s == steps
            ]
            lines.append(f"{arm} ({res['seconds'][arm]:.0f} s): " + ", ".join(shown))
    elif modification == "lr":
        path, _ = run_lr_modification(data, home, config, callback=progress)
    else:
        raise ConfigError(f"--modification {modification!r}: the one we ask is 'lr'")
    progress.done()
    console().print("\n".join([*lines, f"run: {path}"]), highlight=False, soft_wrap=True)
    if report:
        _report(home, "batchnorm", docs)


@app.command()
def dropout(
    ctx: typer.Context,
    data: Data,
    epochs: Annotated[
        int, typer.Option(help="Epochs (the paper: 3000; ~30 s per row-epoch on 2 CPU cores).")
    ] = 100,
    rows: Annotated[str, typer.Option(help="Comma-separated rows of Table 2.")] = (
        "standard,dropout,dropout-maxnorm"
    ),
    max_norm: Annotated[
        float | None, typer.Option(help="c of the max-norm row (default 4).", show_default=False)
    ] = None,
    lr_scale: Annotated[float, typer.Option(help="Multiplies every row's learning rate.")] = 1.0,
    total_decay: Annotated[
        float,
        typer.Option(help="The learning rate's factor over the run (the paper's 0.998^3000)."),
    ] = 0.998**3000,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    device: Device = "auto",
    threads: Annotated[
        int | None,
        typer.Option(
            help=f"{THREADS_HELP} Default: torch's own (OMP_NUM_THREADS).", show_default=False
        ),
    ] = None,
    docs: Docs = Path("docs"),
    report: Annotated[bool, typer.Option(help="Regenerate the write-up after the run.")] = False,
) -> None:
    """Table 2 of Dropout: 3 x 1024 ReLU networks on MNIST, with and without dropout / max-norm."""
    from kfw.dl.repro.dropout import DropoutConfig, run_dropout

    names = [r.strip() for r in rows.split(",") if r.strip()]
    config = DropoutConfig(
        epochs=epochs,
        rows=names,
        max_norm=max_norm,
        lr_scale=lr_scale,
        total_decay=total_decay,
        seed=seed,
        device=device,
        threads=threads,
    )
    progress = StepProgress(epochs, "epoch")
    home = kfw_home(ctx)
    path, res = run_dropout(data, home, config, progress)
    progress.done()
    errors = ", ".join(f"{k} {v:.2f}%" for k, v in res["final_error"].items())
    console().print(
        f"test error after {epochs} epochs: {errors} ({res['seconds_per_epoch']:.1f} s/epoch)\nrun: {path}",
        highlight=False,
        soft_wrap=True,
    )
    if report:
        _report(home, "dropout", docs)


@app.command("ppo")
def ppo(
    ctx: typer.Context,
    env: Annotated[
        list[str] | None,
        typer.Option(
            "--env",
            help="A task of the comparison (repeatable; default CartPole-v1 and Acrobot-v1).",
            show_default=False,
        ),
    ] = None,
    seeds: Annotated[int, typer.Option(min=2, help="Seeds per setting.")] = 5,
    steps: Annotated[
        int | None,
        typer.Option(min=1, help="Steps per run (default: each task's).", show_default=False),
    ] = None,
    executor_url: ExecutorUrl = None,
    docs: Docs = Path("docs"),
) -> None:
    """PPO's Table 1 objectives, DQN without replay / target network, and advantage normalisation
    with and without GAE, on classic control: docs/repro-ppo.md (+ .html), runs reused."""
    import sys

    from kfw.cli.common import executor
    from kfw.rl.envs import check_env_id
    from kfw.rl.repro import reproduce

    envs = env or ["CartPole-v1", "Acrobot-v1"]
    for name in envs:
        check_env_id(name)
    command = "kfw " + " ".join(sys.argv[1:]) if sys.argv[0].endswith("kfw") else "kfw repro ppo"
    with executor(ctx, executor_url) as where:
        md = reproduce(
            kfw_home(ctx), docs, envs=envs, seeds=seeds, steps=steps, executor=where,
            callback=RichProgress(), command=command,
        )  # fmt: skip
    console().print(f"{md}\n{md.with_suffix('.html')}", highlight=False, soft_wrap=True)


@app.command("report")
def report_cmd(
    ctx: typer.Context,
    paper: Annotated[str, typer.Argument(help="batchnorm or dropout.", show_default=False)],
    docs: Docs = Path("docs"),
) -> None:
    """Write docs/repro-PAPER.md (+ img/ and a self-contained .html) from the latest runs."""
    _report(kfw_home(ctx), paper, docs)


def _report(home: Path, paper: str, docs: Path) -> None:
    from kfw.dl.repro.report import write_report

    result = write_report(paper, home, docs)
    console().print(f"{result.markdown}\n{result.html}", highlight=False, soft_wrap=True)
