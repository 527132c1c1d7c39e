"""What the command modules share: consoles, option aliases, the progress renderer."""

from __future__ import annotations

import functools
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kfw.progress import Callback

if TYPE_CHECKING:
    from rich.console import Console

    from kfw.core.config import Competition
    from kfw.core.cv import CVResult, FoldResult
    from kfw.core.executor import Executor

Comp = Annotated[
    str, typer.Argument(help="Competition name (kfw list shows them).", show_default=False)
]
Models = Annotated[
    list[str] | None,
    typer.Option(
        "--model", "-m", help="Registered model or roster label; repeatable.", show_default=False
    ),
]
Seed = Annotated[
    int | None, typer.Option(help="Model seed (default: the competition's).", show_default=False)
]
Threads = Annotated[
    int | None,
    typer.Option(
        help="Threads per model fit (default: KFW_THREADS, else all cores).", show_default=False
    ),
]
ExecutorUrl = Annotated[
    str | None,
    typer.Option(
        "--executor",
        help="Where the fits run: local (default, one after another), local:N (N processes) "
        "or dask://HOST:PORT (a Dask scheduler; add ?data=scatter when its workers cannot see "
        "KFW_HOME). Parallel fits get one thread each unless --threads says otherwise.",
        show_default=False,
    ),
]
EarlyStoppingMode = Annotated[
    str | None,
    typer.Option(
        "--early-stopping",
        help="Where boosting rounds / a net's epochs are chosen: inner (an inner split of each "
        "training part, the default), scored-fold (on the scored fold itself: optimistic, "
        "labelled, never chosen by default) or off.",
        show_default=False,
    ),
]
NoWandb = Annotated[
    bool,
    typer.Option("--no-wandb", help="Do not mirror the runs to W&B (as WANDB_MODE=disabled does)."),
]


@functools.cache
def console() -> Console:
    from rich.console import Console

    # piped output (CI logs, files) gets wide lines instead of rich's default 80 columns
    return Console(width=None if sys.stdout.isatty() else 160, soft_wrap=True)


@functools.cache
def console_err() -> Console:
    from rich.console import Console

    return Console(stderr=True, width=None if sys.stderr.isatty() else 160, soft_wrap=True)


def kfw_home(ctx: typer.Context) -> Path:
    from kfw.core.config import home

    obj = ctx.find_root().obj or {}
    return home(obj.get("home"))


def competition(ctx: typer.Context, slug: str) -> Competition:
    from kfw.core.config import load_competition

    return load_competition(slug, kfw_home(ctx))


PresetName = Annotated[
    str | None,
    typer.Option(
        "--preset",
        help="Run the competition's named roster ([presets.NAME]; 'default' is [[models]]). "
        "Unset: a preset marked for machines without CUDA when there is none, else [[models]].",
        show_default=False,
    ),
]


def with_preset(spec: Competition, name: str | None) -> tuple[Competition, str | None]:
    """The spec whose roster is preset ``name``'s; unset, the one this machine should run.

    A preset with ``when = "no-cuda"`` replaces ``[[models]]`` on a machine without a CUDA
    GPU; the line saying so comes back, for the command to print once its data is found (a
    command that fails says one line, its error). torch is imported only to ask, and only
    when the competition has such a preset.
    """
    if name is not None:
        return spec.with_preset(name), None
    fallback = [n for n, p in spec.presets.items() if p.when == "no-cuda"]
    if not fallback:
        return spec, None
    import torch

    if torch.cuda.is_available():
        return spec, None
    chosen = spec.presets[fallback[0]]
    what = f" ({chosen.description})" if chosen.description else ""
    said = (
        f"preset {fallback[0]}: no CUDA GPU here, so the CPU roster{what}; "
        f"`--preset default` runs the GPU roster anyway"
    )
    return spec.with_preset(fallback[0]), said


ThresholdMode = Annotated[
    str | None,
    typer.Option(
        "--threshold",
        help="fixed (0.5) | tune: a binary label metric's threshold, chosen in every fold on "
        "an inner split of its training part (default: the competition's `threshold`).",
        show_default=False,
    ),
]


def _with_field(spec: Competition, field: str, value: str | None, option: str) -> Competition:
    """The spec with a command-line ``value`` for its ``field``, checked as the toml's value is:
    against the field's declared choices, then by the spec's own check of it."""
    if value is None:
        return spec
    import dataclasses
    import typing

    from kfw.core.config import Competition, check_calibration, check_threshold, coerce
    from kfw.errors import ConfigError

    hint = typing.get_type_hints(Competition)[field]
    spec = dataclasses.replace(spec, **{field: coerce(value, hint, option)})
    try:
        {"threshold": check_threshold, "calibration": check_calibration}[field](spec)
    except ConfigError as exc:
        raise ConfigError(f"{option} {value}: {exc}") from None
    return spec


def with_threshold(spec: Competition, mode: str | None) -> Competition:
    """The spec with ``--threshold`` applied, checked like the toml's value."""
    return _with_field(spec, "threshold", mode, "--threshold")


CalibrationMethod = Annotated[
    str | None,
    typer.Option(
        "--calibrate",
        help="platt | isotonic | temperature | none: a calibrator fitted in every fold on an "
        "inner split of its training part (default: the competition's `calibration`).",
        show_default=False,
    ),
]


def with_calibration(spec: Competition, method: str | None) -> Competition:
    """The spec with ``--calibrate`` applied, checked like the toml's value."""
    return _with_field(spec, "calibration", method, "--calibrate")


def calibration_line(record: dict[str, Any]) -> str | None:
    """A calibrated run: its validation parts' ECE and Brier before and after, over the folds."""
    from kfw.core.calibration import calibration_means

    mean = calibration_means(record)
    if mean is None:
        return None
    return (
        f"{record['calibration']} calibration, fitted in each fold on an inner split: "
        f"ECE {mean['ece_before']:.4f} -> {mean['ece_after']:.4f}, "
        f"Brier {mean['brier_before']:.4f} -> {mean['brier_after']:.4f} (means over the folds' validation parts)"
    )


def threshold_line(record: dict[str, Any]) -> str | None:
    """How a run with tuned thresholds compares with 0.5 and with tuning on its own OOF."""
    if record.get("threshold") is None:
        return None
    folds = [
        f["threshold"] for f in record.get("fold_scores", []) if f.get("threshold") is not None
    ]
    where = (
        "the other folds, with the weights fitted there"
        if record.get("kind") == "ensemble" and record.get("method") != "level2"
        else "an inner split of its training part"
    )
    return (
        f"threshold tuned in each fold on {where}: "
        f"{min(folds):.3f}-{max(folds):.3f}, the test set gets {record['threshold']:.3f}; "
        f"at 0.5 the OOF scores {fmt_score(record['score_at_default_threshold'])}; tuned on the "
        f"OOF itself ({record['oof_threshold']:.3f}) {fmt_score(record['score_oof_tuned'])}, "
        f"OPTIMISTIC: chosen on the rows it scores"
    )


def with_early_stopping(spec: Competition, mode: str | None) -> Competition:
    """The spec with ``--early-stopping`` applied (checked like the toml's value)."""
    if mode is None:
        return spec
    import dataclasses

    from kfw.core.config import EarlyStopping, from_dict

    current = dataclasses.asdict(spec.early_stopping)
    stopping = from_dict(EarlyStopping, {**current, "mode": mode}, "--early-stopping")
    return dataclasses.replace(spec, early_stopping=stopping)


def executor(ctx: typer.Context, url: str | None) -> Executor:
    """The ``--executor`` asked for, connected and checked (before any data is read)."""
    from kfw.core.executor import open_executor

    return open_executor(url, kfw_home(ctx))


def fmt_score(value: float | None) -> str:
    return "-" if value is None else f"{value:.5f}"


class RichProgress(Callback):
    """Renders the library's events: info lines, warnings, a progress bar per fold loop.

    Several fold loops may run at once (a roster on a parallel executor, one driver thread per
    model): each thread has its own bar and label, and the bars share one live display.
    """

    def __init__(self) -> None:
        self._progress: Any = None
        self._bars = 0
        self._lock = threading.Lock()
        self._mine = threading.local()  # this thread's loop: its label and bar

    @property
    def _label(self) -> str:
        return getattr(self._mine, "label", "")

    @property
    def _task(self) -> Any:
        return getattr(self._mine, "task", None)

    @_task.setter
    def _task(self, task: Any) -> None:
        self._mine.task = task

    # messages quote values from the data (a category "[/x]"): escaped, never read as markup
    def info(self, message: str) -> None:
        from rich.markup import escape

        console_err().print(f"[dim]{escape(message)}[/]", highlight=False, soft_wrap=True)

    def warning(self, message: str) -> None:
        from rich.markup import escape

        console_err().print(
            f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True
        )

    def cv_start(self, label: str, n_fits: int) -> None:
        self._mine.label, self._mine.task = label, None
        if not console_err().is_terminal:
            return  # no bar in logs: the summary line of cv_end is enough
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        with self._lock:
            if self._progress is None:
                self._progress = Progress(
                    TextColumn("[bold]{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    TextColumn("{task.fields[last]}"),
                    console=console_err(),
                    transient=True,
                )
                self._progress.start()
            self._bars += 1
            self._mine.task = self._progress.add_task(label, total=n_fits, last="")

    def fold_end(self, fold: FoldResult) -> None:
        if self._task is not None:
            note = " (resumed)" if fold.restored else ""
            if fold.worker:
                note += f" on {fold.worker}"
            self._progress.update(
                self._task, advance=1, last=f"fold {fold.fold}: {fold.score:.5f}{note}"
            )

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        # a network's epochs: shown in the bar's last column while a fold trains
        if self._task is not None and "epoch" in metrics:
            shown = " ".join(
                f"{k} {v:.4f}" for k, v in metrics.items() if k.startswith(("train_", "valid_"))
            )
            self._progress.update(self._task, last=f"epoch {metrics['epoch']}: {shown}")

    def cv_end(self, result: CVResult) -> None:
        if self._task is not None:
            with self._lock:
                self._progress.remove_task(self._task)
                self._mine.task = None
                self._bars -= 1
                if self._bars == 0:
                    self._progress.stop()
                    self._progress = None
        es = {
            "inner": ", rounds chosen on an inner split",
            "scored-fold": ", early stopping on the scored folds: optimistic",
        }.get(result.early_stopping or "", "")
        if result.score_without_excluded is not None:
            es += (
                f"; {result.score_without_excluded:.5f} without the {result.excluded} excluded rows"
            )
        se = f" ± {result.se:.5f} (SE)" if result.se is not None else ""
        console_err().print(
            f"{self._label}: {result.metric} {result.score:.5f}{se} (folds {result.mean:.5f} "
            f"± {result.std:.5f}, {result.seconds:.1f} s{es})",
            highlight=False,
        )
