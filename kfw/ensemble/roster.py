"""The roster of a competition, then its ensemble: what ``kfw cv`` runs.

Each member is a run of :func:`kfw.pipeline.runs.run_model`; with several, the competition's
ensemble (:mod:`kfw.ensemble.stack`) combines them into one more run. Everything that can be
checked before a fit (model names, parameters, folds too small for early stopping) is checked
before the first run is written.
"""

from __future__ import annotations

import time
from typing import Any

from kfw.core.config import ModelSpec
from kfw.core.cv import check_inner_splits, stops_early
from kfw.core.registry import make_estimator
from kfw.ensemble.stack import run_stack
from kfw.errors import ConfigError
from kfw.pipeline.context import Context
from kfw.pipeline.runs import run_model
from kfw.pipeline.tuned import load_tuned
from kfw.progress import NULL, Callback


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

    members = [ctx.spec.model(label) for label in labels] if labels else list(ctx.spec.models)
    notes: dict[str, dict[str, Any]] = {}
    if tuned:
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
        records.append(run_stack(ctx, records, ensemble.method, ensemble.level2, callback=callback))
    return records
