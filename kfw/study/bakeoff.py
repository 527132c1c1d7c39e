"""The bake-off: how much does each layer of complexity buy on one competition?

Default LightGBM, XGBoost, CatBoost and a linear model (ridge, or logistic regression for
classification); each tuned with Optuna on the same folds; then a blend, Caruana hill
climbing and a level-2 stack of the tuned runs. Every variant is a run in the store, so its
CV, per-fold scores and timings are the same numbers ``kfw runs`` shows; the bake-off adds a
table (``bakeoff.md``, ``bakeoff.json``) and a bar chart (``bakeoff.png``) under
``runs/<comp>/bakeoffs/<stamp>/`` for the write-up.

Tuned CVs are optimistic (the trials were chosen on the same folds) and so is everything
stacked on them: those runs are labelled optimistic (never chosen by ``kfw submit`` on its
own), and the table shows each search's nested estimate beside its CV (:mod:`kfw.study.tune`).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kfw.core.config import ModelSpec
from kfw.core.executor import Executor
from kfw.core.metrics import get_metric
from kfw.ensemble.stack import run_stack
from kfw.pipeline.context import Context
from kfw.pipeline.runs import run_model
from kfw.progress import NULL, Callback
from kfw.study.tune import tune

GBMS = ("lgbm", "xgb", "catboost")


@dataclass
class Row:
    """One line of the bake-off table."""

    variant: str
    layer: str
    run: str
    score: float
    mean: float
    std: float
    fit_seconds: float
    tune_seconds: float = 0.0
    nested: float | None = None  # a tuned row: the search's nested estimate (mean fold score)


def _row(
    variant: str,
    layer: str,
    record: dict[str, Any],
    tune_seconds: float = 0.0,
    nested: float | None = None,
) -> Row:
    return Row(
        variant,
        layer,
        record["id"],
        record["score"],
        record["mean"],
        record["std"],
        record["seconds"],
        tune_seconds,
        nested,
    )


def bakeoff(
    ctx: Context,
    trials: int = 20,
    models: tuple[str, ...] | None = None,
    seed: int | None = None,
    threads: int | None = None,
    callback: Callback = NULL,
    executor: Executor | None = None,
) -> tuple[list[Row], Path]:
    """Run every layer and write the table and chart; returns the rows and their folder.

    ``executor`` (:mod:`kfw.core.executor`) runs the default and tuned models' folds and the
    tuning trials.
    """

    spec = ctx.spec
    linear = "ridge" if spec.task == "regression" else "logreg"
    models = models or (*GBMS, linear)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rows: list[Row] = []
    tuned_records = []
    for name in models:
        default = run_model(
            ctx,
            ModelSpec(name, {}, f"{name}-default"),
            seed=seed,
            threads=threads,
            callback=callback,
            executor=executor,
        )
        rows.append(_row(f"{name} (defaults)", "default", default))
        started = time.perf_counter()
        result = tune(
            ctx, name, trials, study_name=f"bakeoff-{stamp}-{name}", seed=seed, threads=threads,
            base_params={}, callback=NULL, executor=executor,
        )  # fmt: skip
        tune_seconds = time.perf_counter() - started
        callback.info(
            f"{name}: {result.n_complete} of {result.n_trials} trials complete, best {result.best_value:.5f}"
        )
        record = run_model(
            ctx, ModelSpec(name, result.best_params, f"{name}-tuned"), seed=seed, threads=threads,
            callback=callback, annotations={"optimistic": ["parameters tuned on these folds"]},
            executor=executor,
        )  # fmt: skip
        tuned_records.append(record)
        rows.append(
            _row(f"{name} (tuned, {trials} trials)", "tuned", record, tune_seconds, result.nested)
        )
    stack_model = "ridge" if spec.task == "regression" else "logreg"
    for method, label in (
        ("blend", "blend"),
        ("hillclimb", "hill climbing"),
        ("level2", f"level-2 {stack_model}"),
    ):
        record = run_stack(ctx, tuned_records, method, stack_model, callback=callback)
        rows.append(_row(f"{label} of the tuned runs", "ensemble", record))
    folder = ctx.store.root / "bakeoffs" / stamp
    _write(folder, spec, rows, trials)
    return rows, folder


def table(rows: list[Row], metric: str) -> str:
    """The markdown table of the bake-off."""
    lines = [
        f"| variant | {metric} (CV) | folds mean ± std | nested estimate | fit s | tune s |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        tune_s = f"{r.tune_seconds:.0f}" if r.tune_seconds else ""
        nested = f"{r.nested:.5f}" if r.nested is not None else ""
        lines.append(
            f"| {r.variant} | {r.score:.5f} | {r.mean:.5f} ± {r.std:.5f} | {nested} "
            f"| {r.fit_seconds:.1f} | {tune_s} |"
        )
    return "\n".join(lines)


def _write(folder: Path, spec: Any, rows: list[Row], trials: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    metric = get_metric(spec.metric)
    note = (
        f"Bake-off on {spec.slug}, {spec.folds.name} folds. Tuned variants ran {trials} Optuna trials "
        "on these same folds, so they and the ensembles built on them are optimistic; the nested "
        "estimate beside a tuned CV is the search's mean fold score when each fold is scored by "
        "the trial best on the other folds (compare it with the folds mean)."
    )
    (folder / "bakeoff.md").write_text(f"{note}\n\n{table(rows, metric.name)}\n")
    (folder / "bakeoff.json").write_text(
        json.dumps(
            {
                "competition": spec.slug,
                "metric": metric.name,
                "trials": trials,
                "rows": [asdict(r) for r in rows],
            },
            indent=2,
        )
    )
    colours = {"default": "#9aa5b1", "tuned": "#3d7ab8", "ensemble": "#d9822b"}
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.2))
    y = range(len(rows))[::-1]
    ax.barh(
        list(y),
        [r.score for r in rows],
        xerr=[r.std for r in rows],
        color=[colours[r.layer] for r in rows],
    )
    ax.set_yticks(list(y), [r.variant for r in rows])
    lo = min(r.score - r.std for r in rows)
    hi = max(r.score + r.std for r in rows)
    ax.set_xlim(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo))
    ax.set_xlabel(
        f"CV {metric.name} ({'higher' if metric.greater_is_better else 'lower'} is better); bars: ± std over folds"
    )
    ax.set_title(f"{spec.slug}: what each layer buys")
    fig.tight_layout()
    fig.savefig(folder / "bakeoff.png", dpi=120)
    plt.close(fig)
