"""``kfw cv``, ``kfw folds``, ``kfw audit``: the fold machinery from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kfw.cli.common import (
    CalibrationMethod,
    Comp,
    EarlyStoppingMode,
    ExecutorUrl,
    Models,
    NoWandb,
    PresetName,
    RichProgress,
    Seed,
    Threads,
    ThresholdMode,
    calibration_line,
    competition,
    console,
    executor,
    fmt_score,
    kfw_home,
    threshold_line,
    with_calibration,
    with_early_stopping,
    with_preset,
    with_threshold,
)
from kfw.core import budget

if TYPE_CHECKING:
    from kfw.pipeline.context import Context


def cv(
    ctx: typer.Context,
    comp: Comp,
    model: Models = None,
    seed: Seed = None,
    threads: Threads = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Override a model parameter: key=value (TOML value)."),
    ] = None,
    no_blend: Annotated[
        bool, typer.Option("--no-blend", help="Do not blend the roster's runs.")
    ] = False,
    tuned: Annotated[
        bool, typer.Option("--tuned", help="Use the parameters `kfw tune` saved.")
    ] = False,
    no_wandb: NoWandb = False,
    time_limit: Annotated[
        str | None,
        typer.Option(
            help="The whole command's budget (30m, 2h, 900s): shared out among the models, "
            "each stopped at the end of its share; the ensemble is made of what finished."
        ),
    ] = None,
    extra_train: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="Extra training rows (a CSV with train's columns): training parts only.",
        ),
    ] = None,
    early_stopping: EarlyStoppingMode = None,
    preset: PresetName = None,
    threshold: ThresholdMode = None,
    calibrate: CalibrationMethod = None,
    executor_url: ExecutorUrl = None,
) -> None:
    """Cross-validate the roster (or --model) on the persisted folds; save runs; blend."""
    from kfw.core.config import parse_duration, parse_override

    # every argument is checked before the data is read or anything is written
    progress = RichProgress()
    spec = with_early_stopping(competition(ctx, comp), early_stopping)
    spec = with_threshold(with_calibration(spec, calibrate), threshold)
    said = None
    if preset is not None or not model:  # --model names what runs; a preset names a roster
        spec, said = with_preset(spec, preset)
    overrides = dict(parse_override(p) for p in param or [])
    limit = parse_duration(time_limit) if time_limit else None
    from kfw.ensemble.roster import resolve_members, run_competition
    from kfw.pipeline.context import prepare

    resolve_members(spec, model, overrides=overrides, tuned_home=kfw_home(ctx) if tuned else None)
    with executor(ctx, executor_url) as where:
        context = prepare(
            spec, kfw_home(ctx), progress, wandb=not no_wandb, extra_train=extra_train
        )
        if said:
            progress.info(said)
        if where.parallel:
            progress.info(f"executor {where.name}: {where.slots} fits at a time")
        records = run_competition(
            context,
            model,
            seed=seed,
            threads=threads,
            overrides=overrides,
            blend_runs=not no_blend,
            tuned=tuned,
            time_limit=limit,
            started=budget.command_started(),
            callback=progress,
            executor=where,
        )
    last = records[-1]
    for r in records[:-1]:
        cut = r.get("out_of_time_folds")
        console().print(
            f"{r['label']:>12}  {r['metric']} {fmt_score(r['score'])}{_se(r)}  run {r['id']}"
            + (f"  ({cut} folds stopped at their share of the time limit)" if cut else ""),
            highlight=False,
        )
    for r in records:
        for line in (calibration_line(r), threshold_line(r)):
            if line:
                console().print(f"{r['label']:>12}  {line}", highlight=False)
    detail = f"folds ± {last['std']:.5f}"
    if last["kind"] == "ensemble":
        detail = f"{last['label']} of {len(last['members'])}, fitted inside the folds"
        if last.get("score_insample") is not None:
            detail += f"; in-sample {fmt_score(last['score_insample'])}"
    if last.get("score_without_excluded") is not None:
        detail += (
            f"; {fmt_score(last['score_without_excluded'])} without the "
            f"{len(last['excluded_ids'])} excluded rows"
        )
    if last.get("optimistic"):
        detail += "; OPTIMISTIC: " + "; ".join(last["optimistic"])
    console().print(
        f"CV {last['metric']} {fmt_score(last['score'])}{_se(last)} ({detail}) · run {last['id']}",
        highlight=False,
    )


def _se(record: dict[str, Any]) -> str:
    return f" ± {record['se']:.5f}" if record.get("se") is not None else ""


def folds(
    ctx: typer.Context,
    comp: Comp,
    force: Annotated[
        bool, typer.Option("--force", help="Recompute and overwrite the fold file.")
    ] = False,
) -> None:
    """Compute (once) and describe the competition's fold file: sizes, balance, hash."""
    import numpy as np
    from rich.table import Table

    from kfw.core.folds import get_folds
    from kfw.kaggle.data import data_dir, load_dataset

    spec = competition(ctx, comp)
    ds = load_dataset(spec, kfw_home(ctx), RichProgress())
    f, created = get_folds(
        data_dir(kfw_home(ctx), comp), spec.folds, ds.train, spec.id, ds.y, spec.task, force=force
    )
    table = Table("repeat", "fold", "train rows", "valid rows", "valid target mean")
    for s in f.splits():
        target = ds.y[s.valid]
        mean = (
            np.mean(target == np.unique(ds.y)[-1]) if spec.task != "regression" else np.mean(target)
        )
        table.add_row(
            str(s.repeat), str(s.fold), str(len(s.train)), str(len(s.valid)), f"{mean:.4f}"
        )
    console().print(table)
    console().print(f"{f.path} ({'computed' if created else 'read'}), hash {f.hash}")


def audit(
    ctx: typer.Context,
    comp: Comp,
    model: Models = None,
    permutations: Annotated[
        int, typer.Option(min=1, help="Permutations of the target per model.")
    ] = 2,
    tolerance: Annotated[
        float | None, typer.Option(help="Skill above which a leak is flagged (default 0.05).")
    ] = None,
    seed: Seed = None,
    threads: Threads = None,
    adversarial: Annotated[
        bool, typer.Option("--adversarial/--no-adversarial", help="Also compare train with test.")
    ] = True,
    preset: PresetName = None,
) -> None:
    """Permuted-target audit (each model must score at chance) and train-vs-test drift."""
    from rich.table import Table

    spec, said = competition(ctx, comp), None
    if preset is not None or not model:  # the roster kfw cv would run here
        spec, said = with_preset(spec, preset)
    from kfw.ensemble.roster import resolve_members
    from kfw.pipeline.context import prepare
    from kfw.study.audit import audit_competition

    resolve_members(spec, model)  # a bad model name fails before the data is read
    progress = RichProgress()
    context = prepare(spec, kfw_home(ctx), progress)
    if said:
        progress.info(said)
    results = audit_competition(
        context,
        model,
        n_permutations=permutations,
        seed=seed,
        threads=threads,
        tolerance=tolerance,
        callback=progress,
    )
    best = {}
    for r in context.store.records():
        if r["folds"]["hash"] == context.folds.hash and r["label"] not in best:
            best[r["label"]] = r["score"]
    table = Table(
        "model", f"{spec.metric} on permuted target", "chance", "skill", "real CV", "verdict"
    )
    for a in results:
        verdict = "[red]LEAK[/]" if a.leak else "[green]at chance[/]"
        table.add_row(
            a.label,
            fmt_score(a.score),
            fmt_score(a.chance),
            f"{a.skill:+.3f}",
            fmt_score(best.get(a.label)),
            verdict,
        )
    console().print(table)
    console().print(
        f"skill = share of the way from chance to a perfect score; a leak is flagged above {results[0].tolerance}"
    )
    if adversarial:
        _adversarial(context, threads)
    if any(a.leak for a in results):
        raise typer.Exit(3)


def _adversarial(context: Context, threads: int | None) -> None:
    """Adversarial validation: can a model tell the training rows from the test rows?

    With drift, each run is also scored on the training rows most like the test set (the
    test-like CV, beside the plain one); the rows' test-likeness is kept for ``kfw runs
    --test-like``.
    """
    from rich.table import Table

    from kfw.study.adversarial import (
        DRIFT_AUC,
        TEST_LIKE_SHARE,
        adversarial_validation,
        save_test_likeness,
        test_like_path,
        test_like_scores,
    )
    from kfw.threads import default_threads

    d = context.design
    result = adversarial_validation(
        d.X, d.X_test, seed=context.spec.seed, threads=threads or default_threads()
    )
    drift = result.auc >= DRIFT_AUC
    verdict = (
        "train and test differ: a CV may not transfer" if drift else "train and test look alike"
    )
    console().print(
        f"adversarial validation: train-vs-test AUC {result.auc:.3f} ({verdict})", highlight=False
    )
    path = save_test_likeness(
        test_like_path(context.home, context.spec.slug),
        d.ids,
        context.spec.id,
        result.test_likeness,
    )
    top = result.drift.head(5)
    if not drift:
        return
    if len(top):
        shown = ", ".join(f"{r.column} (AUC {r.auc:.2f})" for r in top.itertuples())
        console().print(f"drifting columns: {shown}", highlight=False)
    latest: dict[str, dict[str, Any]] = {}
    for r in context.store.records():  # oldest first: the latest run of each label wins
        if r["folds"]["hash"] == context.folds.hash and r["data"]["hash"] == context.dataset.hash:
            latest[r["label"]] = r
    if not latest:
        return
    import pandas as pd

    p_test = pd.Series(result.test_likeness, index=d.ids)
    like = test_like_scores(context.store, list(latest.values()), p_test)
    table = Table(
        "run", "CV (every row)", f"test-like CV ({TEST_LIKE_SHARE:.0%} most test-like rows)"
    )
    for r in latest.values():
        table.add_row(r["id"], fmt_score(r["score"]), fmt_score(like.get(r["id"])))
    console().print(table)
    console().print(
        f"test-like rows: the training rows the classifier finds most like the test set "
        f"(their test-likeness is in {path}; `kfw runs {context.spec.slug} --test-like` shows the column)",
        highlight=False,
    )


def stack(
    ctx: typer.Context,
    comp: Comp,
    run: Annotated[
        list[str] | None,
        typer.Option("--run", "-r", help="Member run ids (default: the latest run of each model)."),
    ] = None,
    method: Annotated[str, typer.Option(help="blend | hillclimb | rank | level2")] = "blend",
    level2: Annotated[str, typer.Option(help="Level-2 model: ridge | logreg | lgbm")] = "ridge",
    no_wandb: NoWandb = False,
) -> None:
    """Ensemble runs that share the fold file; its CV is fitted inside the folds."""
    from kfw.ensemble.stack import LEVEL2, METHODS, run_stack
    from kfw.pipeline.context import prepare

    if method not in METHODS:
        raise typer.BadParameter(
            f"{method!r} is not one of {', '.join(METHODS)}", param_hint="--method"
        )
    if method == "level2" and level2 not in LEVEL2:
        raise typer.BadParameter(
            f"{level2!r} is not one of {', '.join(LEVEL2)}", param_hint="--level2"
        )
    spec = competition(ctx, comp)
    from kfw.core.runstore import RunStore

    chosen = [RunStore(kfw_home(ctx), spec.slug).record(r) for r in run or []]  # before the data
    progress = RichProgress()
    context = prepare(spec, kfw_home(ctx), progress, wandb=not no_wandb)
    if run:
        records = chosen
    else:
        latest = {}
        for r in context.store.records():  # oldest first: later runs replace earlier ones
            if (
                r["kind"] == "model"
                and not r.get("ablation")  # an ablation's variants are not ensemble members
                and r["folds"]["hash"] == context.folds.hash
                and r["data"]["hash"] == context.dataset.hash
            ):
                latest[r["label"]] = r
        records = list(latest.values())
    record = run_stack(context, records, method, level2, callback=progress)
    detail = f"{len(records)} runs, fitted inside the folds"
    if record.get("score_insample") is not None:
        detail += f"; in-sample {fmt_score(record['score_insample'])}"
    console().print(
        f"CV {record['metric']} {fmt_score(record['score'])} ({record['label']} of {detail}) · run {record['id']}",
        highlight=False,
    )


def tune(
    ctx: typer.Context,
    comp: Comp,
    model: Annotated[str, typer.Option("--model", "-m", help="Registered model or roster label.")],
    trials: Annotated[int, typer.Option(min=1, help="Trials this worker runs.")] = 20,
    storage: Annotated[
        str | None, typer.Option(help="Optuna storage URL (default: SQLite under KFW_HOME/tune).")
    ] = None,
    study: Annotated[str | None, typer.Option(help="Study name (default: COMP-MODEL).")] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Stop starting trials after this many seconds.")
    ] = None,
    seed: Seed = None,
    threads: Threads = None,
    no_wandb: NoWandb = False,
    early_stopping: EarlyStoppingMode = None,
    fold_seed: Annotated[
        int | None,
        typer.Option(
            help="Search on the competition's fold scheme with this seed instead of its own "
            "folds, so that a run with the tuned parameters is scored on folds no trial saw.",
            show_default=False,
        ),
    ] = None,
    executor_url: ExecutorUrl = None,
) -> None:
    """Tune a model with Optuna (resumable; shareable over PostgreSQL); the best trial's CV is
    shown beside a nested estimate that was not chosen on the folds it is scored on."""
    import dataclasses

    spec = with_early_stopping(competition(ctx, comp), early_stopping)
    if fold_seed is not None:
        folds = dataclasses.replace(spec.folds, seed=fold_seed)
        spec = dataclasses.replace(spec, folds=folds)
        study = study or f"{comp}-{model}-{folds.name}"
    from kfw.pipeline.context import prepare
    from kfw.study.tune import check_storage, check_tunable
    from kfw.study.tune import tune as run_tune

    # the model, its search space and the storage URL are checked before the data is read
    check_tunable(spec, model)
    if storage is not None:
        check_storage(storage)
    progress = RichProgress()
    with executor(ctx, executor_url) as where:
        context = prepare(spec, kfw_home(ctx), progress, wandb=not no_wandb)
        result = run_tune(
            context, model, trials, storage=storage, study_name=study, seed=seed,
            threads=threads, timeout=timeout, callback=progress, executor=where,
        )  # fmt: skip
    console().print(
        f"study {result.study} ({result.storage}): {result.n_trials} trials, {result.n_complete} complete; "
        f"best {spec.metric} {fmt_score(result.best_value)} · params in {result.path}",
        highlight=False,
    )
    if result.nested is not None:
        console().print(
            f"best trial's mean fold score {fmt_score(result.best_mean)} (chosen on these folds: "
            f"optimistic); nested estimate {fmt_score(result.nested)} (each fold scored by the "
            f"trial best on the other folds) on {spec.folds.name}",
            highlight=False,
        )


def bakeoff(
    ctx: typer.Context,
    comp: Comp,
    trials: Annotated[int, typer.Option(min=1, help="Optuna trials per model.")] = 20,
    model: Models = None,
    seed: Seed = None,
    threads: Threads = None,
    no_wandb: NoWandb = False,
    executor_url: ExecutorUrl = None,
) -> None:
    """Defaults, tuned models, blend, hill climbing and a level-2 stack: one table and a chart."""
    spec = competition(ctx, comp)
    from kfw.pipeline.context import prepare
    from kfw.study.bakeoff import bakeoff as run_bakeoff
    from kfw.study.bakeoff import table
    from kfw.study.tune import check_tunable

    for name in model or ():
        check_tunable(spec, name)  # before the data is read

    progress = RichProgress()
    with executor(ctx, executor_url) as where:
        context = prepare(spec, kfw_home(ctx), progress, wandb=not no_wandb)
        rows, folder = run_bakeoff(
            context,
            trials,
            tuple(model) if model else None,
            seed=seed,
            threads=threads,
            callback=progress,
            executor=where,
        )
    console().print(table(rows, spec.metric), highlight=False)
    console().print(f"table and chart in {folder}", highlight=False)


def register(app: typer.Typer) -> None:
    for command in (cv, folds, audit, stack, tune, bakeoff):
        app.command()(command)
