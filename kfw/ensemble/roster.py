"""The roster of a competition, then its ensemble: what ``kfw cv`` runs.

Each member is a run of :func:`kfw.pipeline.runs.run_model`; with several, the competition's
ensemble (:mod:`kfw.ensemble.stack`) combines them into one more run. Everything that can be
checked before a fit (model names, parameters, folds too small for early stopping) is checked
before the first run is written.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kfw.core.config import Competition, ModelSpec
from kfw.core.cv import check_inner_splits, stops_early
from kfw.core.executor import Executor
from kfw.core.registry import make_estimator
from kfw.ensemble.stack import run_stack
from kfw.errors import ConfigError
from kfw.pipeline.context import Context
from kfw.pipeline.runs import FittedModel, fit_model, run_model, save_model
from kfw.pipeline.tuned import load_tuned
from kfw.progress import NULL, Callback


def resolve_members(
    spec: Competition,
    labels: list[str] | None = None,
    *,
    overrides: dict[str, Any] | None = None,
    tuned_home: Path | None = None,
) -> tuple[list[ModelSpec], dict[str, dict[str, Any]]]:
    """The members a command runs, each built once, before any data is read or written.

    An unknown model, a parameter it does not take or a value of the wrong type fails here.
    ``tuned_home`` (``kfw cv --tuned``): each member takes the parameters ``kfw tune`` saved
    under that home, labelled ``<label>-tuned``; the saved payloads come back by new label.
    ``overrides`` (``--param``) apply to one named model.
    """
    members = [spec.model(label) for label in labels] if labels else list(spec.models)
    saved: dict[str, dict[str, Any]] = {}
    if tuned_home is not None:
        tuned = []
        for m in members:
            payload = load_tuned(tuned_home, spec.slug, m.label)
            tuned.append(ModelSpec(m.name, payload["params"], f"{m.label}-tuned"))
            saved[tuned[-1].label] = payload
        members = tuned
    if overrides:
        if len(members) != 1:
            raise ConfigError("--param applies to one model: name it with --model")
        members = [ModelSpec(members[0].name, {**members[0].params, **overrides}, members[0].alias)]
    for m in members:
        make_estimator(m.name, spec.task, m.params)
    return members, saved


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
    executor: Executor | None = None,
) -> list[dict[str, Any]]:
    """Run the roster (or the named models) and, for several, the competition's ensemble.

    ``tuned`` runs each model with the best parameters ``kfw tune`` saved for it, labelled
    ``<label>-tuned``. ``time_limit`` (seconds): once it has passed, no further member is
    started (a member already running finishes), and the ensemble is made of what finished,
    so a valid submission is always written. ``executor`` runs the folds
    (:mod:`kfw.core.executor`); a parallel one runs several members at once.
    """

    members, saved = resolve_members(
        ctx.spec, labels, overrides=overrides, tuned_home=ctx.home if tuned else None
    )
    notes: dict[str, dict[str, Any]] = {}
    for m in members:
        if m.label in saved:
            notes[m.label] = {"tuned_on": saved[m.label].get("fold_hash")}
            if saved[m.label].get("fold_hash") == ctx.folds.hash:
                notes[m.label]["optimistic"] = ["parameters tuned on these folds"]
    # folds too small for early stopping fail before any run is written
    estimators = [make_estimator(m.name, ctx.spec.task, m.params) for m in members]
    if any(stops_early(e) for e in estimators):
        d = ctx.design
        y = d.y[:, 0] if ctx.spec.multi_target else d.y
        check_inner_splits(
            ctx.folds, d.X, y, ctx.spec.task, ctx.spec.early_stopping, d.exclude, d.train_mask
        )
    started = time.time()

    def late() -> bool:
        return time_limit is not None and time.time() - started > time_limit

    common = dict(seed=seed, threads=threads, callback=callback, executor=executor)
    records: list[dict[str, Any]] = []
    if executor is not None and executor.parallel and len(members) > 1:
        # members' folds queue together, so that no worker idles between members: a member
        # starts while one of 2 x slots driver threads is free and the time limit has not
        # passed (the next members' folds are queued while the current ones run); the runs
        # are saved in the roster's order
        def fit(i: int) -> FittedModel | None:
            if i > 0 and late():
                return None
            return fit_model(ctx, members[i], annotations=notes.get(members[i].label), **common)

        pool = ThreadPoolExecutor(min(len(members), 2 * executor.slots))
        try:
            fitted = list(pool.map(fit, range(len(members))))
        except BaseException:
            executor.close()  # Ctrl-C or a failed member: the other members' folds stop too
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        records = [save_model(ctx, f, callback) for f in fitted if f is not None]
        skipped = [m.label for m, f in zip(members, fitted, strict=True) if f is None]
    else:  # one member after another, each saved as soon as it finishes
        for i, m in enumerate(members):
            if i > 0 and late():
                break
            records.append(run_model(ctx, m, annotations=notes.get(m.label), **common))
        skipped = [m.label for m in members[len(records) :]]
    if skipped:
        callback.warning(f"time limit of {time_limit:.0f} s reached: {', '.join(skipped)} not run")
    ensemble = ctx.spec.ensemble
    if blend_runs and len(records) > 1 and ensemble.method != "best":
        records.append(run_stack(ctx, records, ensemble.method, ensemble.level2, callback=callback))
    return records
