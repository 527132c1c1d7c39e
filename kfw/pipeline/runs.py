"""One model of a competition through the fold loop, saved as a run.

:func:`run_model` cross-validates a roster member on the persisted folds (:mod:`kfw.core.cv`),
resuming from the finished folds of an interrupted run, and saves the run in the store with
its record, out-of-fold and test predictions, importances and validated submission;
:func:`base_record` and :func:`run_files` are the parts an ensemble's run shares with it.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from kfw.core.config import ModelSpec
from kfw.core.cv import CVResult, cross_validate, cross_validate_targets, stops_early
from kfw.core.executor import Executor
from kfw.core.metrics import get_metric
from kfw.core.noise import run_se
from kfw.core.registry import make_estimator
from kfw.core.runstore import SCHEMA_VERSION, environment, identity, prediction_frame
from kfw.kaggle.submit import build_submission, check_and_encode
from kfw.pipeline.context import Context
from kfw.progress import NULL, Callback
from kfw.threads import default_threads, limit


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
    ctx: Context,
    oof: np.ndarray,
    test: np.ndarray | None,
    importances: Any,
    threshold: float | None = None,
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
        sub = build_submission(spec, d.test_ids, test, d.classes, ctx.dataset.sample, threshold)
        files["submission.csv"] = check_and_encode(spec, sub, ctx.dataset.sample, d.classes)
    return files


def run_model(
    ctx: Context, model: ModelSpec, *, callback: Callback = NULL, **options: Any
) -> dict[str, Any]:
    """Cross-validate one roster member and save it as a run; returns its record.

    ``options`` are :func:`fit_model`'s: ``seed``, ``threads``, ``annotations`` (added to the
    record but not to its config key: an ablation's id and W&B ``group``) and ``executor``
    (:mod:`kfw.core.executor`; default here, one fold after another).
    """
    return save_model(ctx, fit_model(ctx, model, callback=callback, **options), callback)


@dataclass
class FittedModel:
    """A member's fold loop, finished but not yet saved as a run (see :func:`save_model`)."""

    record: dict[str, Any]
    cv: CVResult
    partials: list[Any]


def fit_model(
    ctx: Context,
    model: ModelSpec,
    *,
    seed: int | None = None,
    threads: int | None = None,
    callback: Callback = NULL,
    annotations: dict[str, Any] | None = None,
    executor: Executor | None = None,
) -> FittedModel:
    """The fold loop of :func:`run_model`, without saving: several may run at once."""
    spec = ctx.spec
    seed = spec.seed if seed is None else seed
    parallel = executor is not None and executor.parallel
    threads = executor.threads(threads) if parallel else threads or default_threads()
    estimator = make_estimator(
        model.name, spec.task, model.params, random_state=seed, n_jobs=threads
    )
    record = base_record(ctx, "model", model.label)
    record.update(model=model.name, params=estimator_params(estimator), seed=seed, threads=threads)
    stops = stops_early(estimator) and spec.early_stopping.mode != "off"
    record["early_stopping_config"] = asdict(spec.early_stopping) if stops else None
    record["threshold_mode"] = spec.threshold
    record["calibration"] = spec.calibration
    record.update(annotations or {})
    key = identity(record)
    if parallel:  # not part of the key: where the folds ran does not change the run
        record["executor"] = executor.name
    started = time.time()
    common = dict(
        ctx.loop_args(callback, model.label), X_test=ctx.design.X_test, executor=executor,
        threads=threads,
    )  # fmt: skip
    with limit(threads):  # BLAS too: KFW_THREADS=1 means one thread per fit
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
    record["started"] = iso_time(started)
    record["key"] = key
    return FittedModel(record, cv, partials)


def save_model(ctx: Context, fitted: FittedModel, callback: Callback = NULL) -> dict[str, Any]:
    """Save a finished fold loop as a run (and mirror it to W&B); returns its record."""
    record, cv = fitted.record, fitted.cv
    key = record.pop("key")
    record["id"] = ctx.store.new_id(record["label"], key)
    record.update(_scores(cv), finished=iso_time(time.time()))
    record["optimistic"] = [*record.get("optimistic", []), *optimism(cv)]
    record["se"] = run_se(record)
    importances = (
        cv.importances.assign(mean=cv.importances.mean(axis=1))
        if cv.importances is not None
        else None
    )
    ctx.store.save(record, run_files(ctx, cv.oof, cv.test, importances, cv.threshold))
    for partial in fitted.partials:
        partial.clear()
    return mirror_run(ctx, record, callback)


def estimator_params(estimator: Any) -> dict[str, Any]:
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
        # ``kfw cv --time-limit``: folds whose fit its share of the time stopped
        "out_of_time_folds": sum(f.out_of_time for f in cv.folds),
        # tuned thresholds: the test set's, the OOF at 0.5, and the optimistic OOF-tuned one
        "threshold": cv.threshold,
        "score_at_default_threshold": cv.score_at_default,
        "oof_threshold": cv.oof_threshold,
        "score_oof_tuned": cv.score_oof_tuned,
    }


def iso_time(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t))
