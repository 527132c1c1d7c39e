"""One competition end to end: data -> folds -> features -> models -> runs -> blend.

This is what ``kfw cv`` calls. The row features of the competition's feature module are
computed once on train and test together, without the target (so nothing computed there can
carry it); the fitted features and the model then go through the fold loop of :mod:`kfw.cv`.
Each model becomes a run in the store; the roster's runs are blended into one more run.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kfw.config import Competition, ModelSpec
from kfw.cv import (
    CVResult,
    check_inner_splits,
    cross_validate,
    cross_validate_targets,
    stops_early,
)
from kfw.data import Dataset, data_dir, load_dataset
from kfw.design import Design, build_design
from kfw.errors import ConfigError
from kfw.folds import Folds, get_folds
from kfw.metrics import get_metric
from kfw.noise import run_se
from kfw.progress import NULL, Callback
from kfw.submit import build_submission, check_and_encode
from kfw.track import SCHEMA_VERSION, RunStore, config_key, environment, prediction_frame
from kfw.wandb_mirror import Mirror

if TYPE_CHECKING:
    pass


def default_threads() -> int:
    """``KFW_THREADS``, else every core: one model fits at a time, so it may use them all."""
    value = os.environ.get("KFW_THREADS")
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ConfigError(f"KFW_THREADS must be a positive integer, got {value!r}")
        return int(value)
    return max(
        1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )


@dataclass
class Context:
    """Everything the runs of one competition share."""

    spec: Competition
    home: Path
    dataset: Dataset
    folds: Folds
    design: Design
    store: RunStore
    mirror: Mirror | None = None  # W&B, called after each run is saved

    def loop_args(self, callback: Callback = NULL, label: str = "model") -> dict[str, Any]:
        """Keyword arguments of :func:`kfw.cv.cross_validate` that every caller shares.

        Everything the competition decides (metric, task, fitted features, target transform,
        training-part filters, excluded rows, extra rows, early stopping); the caller adds
        the estimator, the target and ``X_test`` when it wants test predictions.
        """
        spec, d = self.spec, self.design
        return dict(
            metric=get_metric(spec.metric), task=spec.task, features=d.features,
            target_transform=spec.target_transform, train_mask=d.train_mask,
            exclude=d.exclude, extra=d.extra, early_stopping=spec.early_stopping,
            callback=callback, label=label,
        )  # fmt: skip


def prepare(
    spec: Competition,
    kfw_home: Path,
    callback: Callback = NULL,
    force_folds: bool = False,
    wandb: bool = True,
    extra_train: Path | None = None,
) -> Context:
    """Load the data (the open copy when none is present), the folds and the design.

    ``wandb=False`` (``--no-wandb``) keeps the runs out of W&B (see :mod:`kfw.wandb_mirror`).
    ``extra_train`` adds rows to every training part (see :func:`kfw.design.build_design`).
    """
    if extra_train is not None:
        from kfw.mnist_guard import refuse_mnist

        refuse_mnist(spec.slug, Path(extra_train), spec.kaggle)
    dataset = load_dataset(spec, kfw_home, callback)
    folds, created = get_folds(
        data_dir(kfw_home, spec.slug),
        spec.folds,
        dataset.train,
        spec.id,
        dataset.y[:, 0]
        if spec.multi_target
        else dataset.y,  # several targets: the first stratifies
        spec.task,
        force=force_folds,
    )
    state = "computed and saved" if created else "read"
    callback.info(f"folds: {spec.folds.name} ({folds.n_fits} fits, hash {folds.hash}), {state}")
    design = build_design(spec, dataset, extra_train)
    # from here on the design holds the rows: drop the raw frames (on a million-row
    # competition they are the largest objects in memory), keep their columns and dtypes
    dataset = dataclasses.replace(dataset, train=dataset.train.head(0), test=dataset.test.head(0))
    if design.extra is not None:
        callback.info(
            f"extra training rows: {len(design.extra[1])} from {extra_train}, in every training part only"
        )
    return Context(
        spec,
        kfw_home,
        dataset,
        folds,
        design,
        RunStore(kfw_home, spec.slug),
        Mirror(kfw_home, enabled=wandb),
    )


def base_record(ctx: Context, kind: str, label: str) -> dict[str, Any]:
    spec = ctx.spec
    metric = get_metric(spec.metric)
    return {
        "schema_version": SCHEMA_VERSION,
        "competition": spec.slug,
        "kind": kind,
        "label": label,
        "task": spec.task,
        "metric": metric.name,
        "greater_is_better": metric.greater_is_better,
        "folds": {"name": spec.folds.name, "hash": ctx.folds.hash, "scheme": asdict(spec.folds)},
        "data": {"hash": ctx.dataset.hash, "source": ctx.dataset.source},
        "features": {"module": ctx.design.module, "source_hash": ctx.design.module_hash},
        "extra_train": ctx.design.extra_info,
        "excluded_ids": ctx.design.ids[ctx.design.exclude].tolist()
        if ctx.design.exclude is not None
        else [],
        "target_transform": spec.target_transform,
        "classes": ctx.design.classes.tolist() if ctx.design.classes is not None else None,
        "command": " ".join(["kfw", *sys.argv[1:]])
        if sys.argv and sys.argv[0].endswith("kfw")
        else None,
        "environment": environment(),
    }


def run_files(
    ctx: Context, oof: np.ndarray, test: np.ndarray | None, importances: Any
) -> dict[str, Any]:
    spec, d = ctx.spec, ctx.design
    names = list(spec.targets) if spec.multi_target else d.classes
    oof_frame = prediction_frame(d.ids, spec.id, oof, names)
    truth = {"target": ctx.dataset.y} if not spec.multi_target else {
        f"target_{t}": ctx.dataset.y[:, j] for j, t in enumerate(spec.targets)
    }  # fmt: skip
    for j, (name, values) in enumerate(truth.items()):
        oof_frame.insert(1 + j, name, values)
    for r in range(ctx.folds.assignment.shape[1]):
        oof_frame.insert(1 + len(truth) + r, f"fold_{r}", ctx.folds.assignment[:, r])
    files: dict[str, Any] = {"oof.parquet": oof_frame, "importance.csv": importances}
    if test is not None:
        files["test.parquet"] = prediction_frame(d.test_ids, spec.id, test, names)
        sub = build_submission(spec, d.test_ids, test, d.classes, ctx.dataset.sample)
        files["submission.csv"] = check_and_encode(spec, sub, ctx.dataset.sample, d.classes)
    return files


def run_model(
    ctx: Context,
    model: ModelSpec,
    *,
    seed: int | None = None,
    threads: int | None = None,
    callback: Callback = NULL,
    annotations: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Cross-validate one roster member and save it as a run; returns its record.

    ``annotations`` are added to the record but not to its config key (an ablation's id and
    W&B ``group``).
    """
    from kfw.registry import make_estimator

    spec = ctx.spec
    seed = spec.seed if seed is None else seed
    threads = threads or default_threads()
    estimator = make_estimator(
        model.name, spec.task, model.params, random_state=seed, n_jobs=threads
    )
    record = base_record(ctx, "model", model.label)
    record.update(model=model.name, params=_params(estimator), seed=seed, threads=threads)
    stops = stops_early(estimator) and spec.early_stopping.mode != "off"
    record["early_stopping_config"] = asdict(spec.early_stopping) if stops else None
    record.update(annotations or {})
    key = config_key(
        {
            k: record[k]
            for k in (
                "label",
                "model",
                "params",
                "seed",
                "threads",
                "folds",
                "data",
                "features",
                "extra_train",
                "early_stopping_config",
            )
        }
    )
    started = time.time()
    common = dict(ctx.loop_args(callback, model.label), X_test=ctx.design.X_test)
    # BLAS (NumPy's matrix products: linear and from-scratch models) gets the run's thread
    # count too, so that KFW_THREADS=1 really means one thread per fit
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads, user_api="blas"):
        if spec.multi_target:
            partials = [ctx.store.partial(f"{key}-t{t}") for t in range(len(spec.targets))]
            cv = cross_validate_targets(
                estimator, ctx.design.X, ctx.design.y, ctx.folds, stores=partials, **common
            )
        else:
            partials = [ctx.store.partial(key)]
            cv = cross_validate(
                estimator, ctx.design.X, ctx.design.y, ctx.folds, store=partials[0], **common
            )
    record["id"] = ctx.store.new_id(model.label, key)
    record.update(_scores(cv), started=iso_time(started), finished=iso_time(time.time()))
    record["optimistic"] = [*record.get("optimistic", []), *optimism(cv)]
    record["se"] = run_se(record)
    importances = (
        cv.importances.assign(mean=cv.importances.mean(axis=1))
        if cv.importances is not None
        else None
    )
    ctx.store.save(record, run_files(ctx, cv.oof, cv.test, importances))
    for partial in partials:
        partial.clear()
    return mirror_run(ctx, record, callback)


def _params(estimator: Any) -> dict[str, Any]:
    """JSON-ready parameters; a wrapped estimator shows as its class and ``estimator__`` keys."""
    deep = any(hasattr(v, "get_params") for v in estimator.get_params(deep=False).values())
    params = estimator.get_params(deep=deep)
    return {k: type(v).__name__ if hasattr(v, "get_params") else v for k, v in params.items()}


def mirror_run(ctx: Context, record: dict[str, Any], callback: Callback) -> dict[str, Any]:
    """Mirror a saved run to W&B; the record comes back with where it went (never raises)."""
    if ctx.mirror is None:
        return record
    return ctx.mirror(record, ctx.store.root / record["id"], callback)


def optimism(cv: CVResult) -> list[str]:
    """Why a fold loop's score is optimistic: what was chosen on the rows it scored."""
    if cv.early_stopping == "scored-fold":
        return ["early stopping on the scored folds"]
    return []


def _scores(cv: CVResult) -> dict[str, Any]:
    return {
        "score": cv.score,
        "score_without_excluded": cv.score_without_excluded,
        "mean": cv.mean,
        "std": cv.std,
        "fold_scores": [asdict(f) for f in cv.folds],
        "early_stopping": cv.early_stopping,
        "best_iterations": [f.best_iteration for f in cv.folds if f.best_iteration is not None],
        "seconds": cv.seconds,
        "resumed_folds": sum(f.restored for f in cv.folds),
    }


def iso_time(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t))


def run_competition(
    ctx: Context,
    labels: list[str] | None = None,
    *,
    seed: int | None = None,
    threads: int | None = None,
    overrides: dict[str, Any] | None = None,
    blend_runs: bool = True,
    tuned: bool = False,
    time_limit: float | None = None,
    callback: Callback = NULL,
) -> list[dict[str, Any]]:
    """Run the roster (or the named models) and, for several, the competition's ensemble.

    ``tuned`` runs each model with the best parameters ``kfw tune`` saved for it, labelled
    ``<label>-tuned``. ``time_limit`` (seconds): once it has passed, no further member is
    started (a member already running finishes), and the ensemble is made of what finished,
    so a valid submission is always written.
    """
    from kfw.registry import make_estimator

    members = [ctx.spec.model(label) for label in labels] if labels else list(ctx.spec.models)
    notes: dict[str, dict[str, Any]] = {}
    if tuned:
        from kfw.tune import load_tuned

        saved = {m.label: load_tuned(ctx.home, ctx.spec.slug, m.label) for m in members}
        members = [ModelSpec(m.name, saved[m.label]["params"], f"{m.label}-tuned") for m in members]
        for m, payload in zip(members, saved.values(), strict=True):
            notes[m.label] = {"tuned_on": payload.get("fold_hash")}
            if payload.get("fold_hash") == ctx.folds.hash:
                notes[m.label]["optimistic"] = ["parameters tuned on these folds"]
    if overrides:
        if len(members) != 1:
            raise ConfigError("--param applies to one model: name it with --model")
        members = [ModelSpec(members[0].name, {**members[0].params, **overrides}, members[0].alias)]
    # an unknown model or parameter, or folds too small for early stopping, fail before any
    # run is written
    estimators = [make_estimator(m.name, ctx.spec.task, m.params) for m in members]
    if any(stops_early(e) for e in estimators):
        d = ctx.design
        y = d.y[:, 0] if ctx.spec.multi_target else d.y
        check_inner_splits(
            ctx.folds, d.X, y, ctx.spec.task, ctx.spec.early_stopping, d.exclude, d.train_mask
        )
    started = time.time()
    records = []
    for i, m in enumerate(members):
        if records and time_limit is not None and time.time() - started > time_limit:
            skipped = ", ".join(x.label for x in members[i:])
            callback.warning(f"time limit of {time_limit:.0f} s reached: {skipped} not run")
            break
        records.append(
            run_model(
                ctx,
                m,
                seed=seed,
                threads=threads,
                callback=callback,
                annotations=notes.get(m.label),
            )
        )
    ensemble = ctx.spec.ensemble
    if blend_runs and len(records) > 1 and ensemble.method != "best":
        from kfw.stack import run_stack

        records.append(run_stack(ctx, records, ensemble.method, ensemble.level2, callback=callback))
    return records
