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

from kfw.core import budget
from kfw.core.config import Competition, ModelSpec
from kfw.core.cv import check_inner_splits, stops_early
from kfw.core.executor import Executor
from kfw.core.metrics import get_metric
from kfw.core.portfolio import seeded
from kfw.core.registry import complexity, make_estimator
from kfw.ensemble.stack import run_stack
from kfw.errors import ConfigError
from kfw.pipeline.context import Context
from kfw.pipeline.runs import FittedModel, fit_model, run_model, save_model
from kfw.pipeline.tuned import load_tuned
from kfw.progress import NULL, Callback

# under a time limit: no member starts with less than this fraction of the limit left
MIN_START = 0.03


def reserve(time_limit: float) -> float:
    """Seconds kept back from the members for the ensemble, the submission and the writing."""
    return min(0.03 * time_limit + 1.0, 60.0)


def weight(name: str) -> float:
    """A member's claim on the time (its model's complexity: 1 linear ... 5 networks)."""
    return float(complexity(name))


def portion(left: float, weights: list[float], i: int) -> float:
    """Member ``i``'s seconds of the ``left`` the members from ``i`` on share by weight."""
    return left * weights[i] / sum(weights[i:])


# repeated bagging starts a round only with at least this fraction of the limit left, and
# stops after BAGS seeds of each member
BAG_START = 0.05
BAGS = 5


def _bag(
    ctx: Context,
    members: list[ModelSpec],
    records: list[dict[str, Any]],
    members_end: float,
    time_limit: float,
    seed: int | None,
    common: dict[str, Any],
) -> list[dict[str, Any]]:
    """Repeated bagging with the time the roster left: more seeds of its members.

    Only a member whose fit a seed changes is bagged (:func:`kfw.core.portfolio.seeded`), the
    best CV first; round ``k`` runs each as ``<label>-bag<k>`` with seed ``seed + k - 1`` on
    the same folds, sharing what is left by weight, while at least :data:`BAG_START` of the
    limit is, up to :data:`BAGS` seeds in all. Each bag is a run of its own, so the ensemble, fitted in the folds, weighs it.
    """
    sign = 1 if get_metric(ctx.spec.metric).greater_is_better else -1
    by_label = {m.label: m for m in members}
    pool = [by_label[r["label"]] for r in sorted(records, key=lambda r: -sign * r["score"])]
    pool = [m for m in pool if seeded(m.name, m.params)]
    base = ctx.spec.seed if seed is None else seed
    bags: list[dict[str, Any]] = []
    for k in range(2, BAGS + 1):
        for i, m in enumerate(pool):
            left = members_end - time.time()
            if left < BAG_START * time_limit:
                return bags
            seconds = portion(left, [weight(b.name) for b in pool], i)
            bag = ModelSpec(m.name, m.params, f"{m.label}-bag{k}")
            note = {"bag_of": m.label, "time_budget": round(seconds, 1)}
            with budget.until(time.time() + seconds):
                bags.append(
                    run_model(ctx, bag, annotations=note, **{**common, "seed": base + k - 1})
                )
    return bags


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
    started: float | None = None,
    callback: Callback = NULL,
    executor: Executor | None = None,
) -> list[dict[str, Any]]:
    """Run the roster (or the named models) and, for several, the competition's ensemble.

    ``tuned`` runs each model with the best parameters ``kfw tune`` saved for it, labelled
    ``<label>-tuned``. ``executor`` runs the folds (:mod:`kfw.core.executor`); a parallel one
    runs several members at once.

    ``time_limit`` (seconds, counted from ``started``, a ``time.time()``, default now): the
    whole command's budget. A little is kept back for the ensemble and the writing
    (:func:`reserve`); the rest is shared out in the roster's order, each member getting what
    is left times its weight over the weights of the members still to run (:func:`weight`:
    a linear model little, a boosted one more), so that time a member leaves flows to the next.
    Inside a member each fold gets its share (:mod:`kfw.core.budget`) and a boosted model stops
    at the end of it, keeping the rounds it has; the run records its budget and the folds cut.
    A member is not started once less than :data:`MIN_START` of the limit is left; time the
    whole roster leaves goes to repeated bagging (:func:`_bag`, one member after another
    only: a parallel executor's members share the time as if they ran in turn). The ensemble
    is made of what finished, so a valid submission is always written.
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
    started = time.time() if started is None else started
    members_end = None if time_limit is None else started + time_limit - reserve(time_limit)
    weights = [weight(m.name) for m in members]

    def late() -> bool:
        return members_end is not None and members_end - time.time() < MIN_START * time_limit

    def share(i: int) -> tuple[float | None, dict[str, Any]]:
        """Member ``i``'s deadline and the annotation that records its budget."""
        if members_end is None:
            return None, notes.get(members[i].label) or {}
        left = max(members_end - time.time(), 0.0)
        seconds = portion(left, weights, i)
        note = {**(notes.get(members[i].label) or {}), "time_budget": round(seconds, 1)}
        return time.time() + seconds, note

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
            at, note = share(i)
            with budget.until(at):
                return fit_model(ctx, members[i], annotations=note, **common)

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
            at, note = share(i)
            with budget.until(at):
                records.append(run_model(ctx, m, annotations=note, **common))
        skipped = [m.label for m in members[len(records) :]]
        if members_end is not None and not skipped:
            records += _bag(ctx, members, records, members_end, time_limit, seed, common)
    if skipped:
        callback.warning(f"time limit of {time_limit:.0f} s reached: {', '.join(skipped)} not run")
    ensemble = ctx.spec.ensemble
    if blend_runs and len(records) > 1 and ensemble.method != "best":
        records.append(run_stack(ctx, records, ensemble.method, ensemble.level2, callback=callback))
    return records
