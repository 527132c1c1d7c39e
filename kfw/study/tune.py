"""Optuna tuning on the persisted folds: ``kfw tune COMP --model NAME --trials N``.

The objective is the model's CV score on the competition's own fold file, computed by the
fold loop; after each fold the running mean of the fold scores is reported to Optuna so a
clearly bad trial is pruned early (median pruner). Search spaces live beside each model in
``models/`` (registered with it). The study sits in an RDB storage: SQLite under
``$KFW_HOME/tune/`` by default, so rerunning the command continues the study; a
``postgresql://`` URL lets several workers on several machines share one study, each
running ``--trials`` more trials.

The best parameters are written to ``$KFW_HOME/tune/<slug>/<model>.json``;
``kfw cv COMP --model NAME --tuned`` runs the model with them (over the roster's).

The best trial's CV was chosen on the folds that score it, so it is optimistic: with many
trials on a small competition, some win by fitting the folds' noise. Two remedies:

- the *nested estimate* reported beside it (:func:`nested_estimate`): for each fit, the trial
  that is best on the other fits is scored on the held-out one, so the choice never sees the
  score it is judged by (the sampler's proposals did; the choice is where most of the optimism
  lies);
- ``--fold-seed S``: the search runs on another split of the same rows (the competition's
  scheme with seed S), and a run with the tuned parameters is then scored on the
  competition's own folds, whose scores no trial saw. A run whose parameters were tuned on the
  very folds that score it is labelled optimistic and never chosen by default.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kfw.core.cv import cross_validate
from kfw.core.executor import Executor
from kfw.core.metrics import get_metric
from kfw.core.registry import make_estimator, search_space
from kfw.errors import ConfigError, KfwError
from kfw.pipeline.context import Context
from kfw.pipeline.tuned import save_tuned, tune_dir
from kfw.progress import NULL, Callback
from kfw.threads import default_threads, limit


def default_storage(kfw_home: Path, slug: str) -> str:
    path = tune_dir(kfw_home, slug) / "optuna.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def check_storage(url: str) -> str:
    """``url`` unchanged, once SQLAlchemy can parse it and its driver is installed.

    The URL means what SQLAlchemy's docs say: a bare ``postgresql://`` is psycopg 3 (the
    driver kfw ships), so the same URL works in ``optuna-dashboard`` and Optuna's own CLI.
    Nothing is connected to here; an unreachable server is reported when the study opens.
    """
    import sqlalchemy.exc
    from sqlalchemy.engine import make_url

    if url.startswith("postgres://"):  # Heroku's spelling, which SQLAlchemy refuses
        raise ConfigError(
            f"--storage {_safe_url(url)!r}: SQLAlchemy says postgresql://; write that"
        )
    try:
        dialect = make_url(url).get_dialect()
    except sqlalchemy.exc.NoSuchModuleError as exc:
        raise ConfigError(f"--storage {_safe_url(url)!r}: {exc}") from None
    except sqlalchemy.exc.ArgumentError:
        raise ConfigError(
            f"--storage {_safe_url(url)!r} is not a database URL "
            "(sqlite:///path.db, postgresql://user@host:port/db)"
        ) from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        raise ConfigError(
            f"--storage {_safe_url(url)!r} needs a driver that is not installed: {exc}"
        ) from None
    return url


def check_tunable(spec: Any, model: str) -> None:
    """``model`` (a roster label or a registered name) builds and has a search space."""
    member = spec.model(model)
    make_estimator(member.name, spec.task, member.params)
    search_space(model)


class _Pruning(Callback):
    """Reports the running mean of fold scores to the trial; prunes hopeless trials.

    Everything else (info, warnings, a network's per-epoch ``log``) goes on to ``inner``.
    """

    def __init__(self, trial: Any, inner: Callback) -> None:
        self.trial, self.inner, self.scores = trial, inner, []

    def info(self, message: str) -> None:
        self.inner.info(message)

    def warning(self, message: str) -> None:
        self.inner.warning(message)

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        self.inner.log(metrics, step)

    def fold_end(self, fold: Any) -> None:
        import optuna

        self.inner.fold_end(fold)
        self.scores.append(fold.score)
        self.trial.report(float(np.mean(self.scores)), step=len(self.scores) - 1)
        if self.trial.should_prune():
            raise optuna.TrialPruned()

    def cv_start(self, label: str, n_fits: int) -> None:
        self.inner.cv_start(label, n_fits)

    def cv_end(self, result: Any) -> None:
        self.inner.cv_end(result)


@dataclass
class TuneResult:
    """The study after this worker's trials."""

    study: str
    storage: str
    n_trials: int  # in the whole study (every worker)
    n_complete: int
    best_value: float
    best_params: dict[str, Any]
    path: Path
    best_mean: float | None = None  # the best trial's mean fold score
    nested: float | None = None  # :func:`nested_estimate` of the complete trials
    fold_hash: str = ""


def nested_estimate(
    fold_scores: list[list[float]], greater_is_better: bool
) -> tuple[float, list[int]]:
    """The mean fold score of trials chosen without looking at the fold they are scored on.

    For each fit j, the trial with the best mean over the *other* fits is chosen and its score
    on fit j is kept; the estimate is the mean of those J scores. Compare it with the best
    trial's mean fold score: the difference is the optimism of choosing on the same folds
    (Tibshirani & Tibshirani 2009 estimate the same bias differently; Cawley & Talbot 2010
    show how large it grows with many candidates and few rows).

    Parameters
    ----------
    fold_scores : list of lists of float
        One list per complete trial, its score on each fit (the same fits in the same order).

    Returns
    -------
    estimate, picks
        The nested estimate and, per fit, the index of the trial chosen for it.
    """
    scores = np.asarray(fold_scores, dtype=float)  # (n_trials, n_fits)
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise KfwError("a nested estimate needs trials scored on at least two fits")
    sign = 1.0 if greater_is_better else -1.0
    others = (scores.sum(axis=1, keepdims=True) - scores) / (scores.shape[1] - 1)  # (T, J)
    picks = np.argmax(sign * others, axis=0)  # (J,): first best on ties, as Optuna's best_trial
    return float(scores[picks, np.arange(scores.shape[1])].mean()), picks.tolist()


def tune(
    ctx: Context,
    model: str,
    n_trials: int,
    *,
    storage: str | None = None,
    study_name: str | None = None,
    seed: int | None = None,
    threads: int | None = None,
    timeout: float | None = None,
    base_params: dict[str, Any] | None = None,
    callback: Callback = NULL,
    executor: Executor | None = None,
) -> TuneResult:
    """Run ``n_trials`` more trials of ``model`` on the competition's folds.

    Parameters
    ----------
    ctx : kfw.pipeline.context.Context
        The prepared competition (data, folds, design).
    storage : str, optional
        An RDB URL; default SQLite under ``$KFW_HOME/tune/``.
    study_name : str, optional
        Default ``<slug>-<model>``; workers sharing a study must pass the same name.
    base_params : dict, optional
        Parameters the search space is laid over; default the roster's for this model.
    executor : Executor, optional
        A parallel executor (:mod:`kfw.core.executor`) runs each trial as a task on its
        workers, which share the study through ``storage`` (its folds run one after another
        inside the task); default: the trials run here, one after another.
    """
    import optuna

    spec = ctx.spec
    metric = get_metric(spec.metric)
    space = search_space(model)
    base = dict(spec.model(model).params if base_params is None else base_params)
    seed = spec.seed if seed is None else seed
    parallel = executor is not None and executor.parallel
    threads = executor.threads(threads) if parallel else threads or default_threads()
    url = check_storage(storage) if storage else default_storage(ctx.home, spec.slug)
    name = study_name or f"{spec.slug}-{model}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = _open_study(
            optuna, storage=url, study_name=name, direction="maximize" if metric.greater_is_better else "minimize",
            sampler=_sampler(seed), pruner=_pruner(),
        )  # fmt: skip
    except (ImportError, ModuleNotFoundError) as exc:
        raise ConfigError(
            f"storage {url.split(':')[0]} needs a driver that is not installed: {exc}"
        ) from None
    except Exception as exc:  # SQLAlchemy raises its own hierarchy for unreachable servers
        if type(exc).__module__.startswith(("sqlalchemy", "optuna")):
            raise KfwError(
                f"cannot open the study storage {_safe_url(url)}: {str(exc).splitlines()[0]}"
            ) from None
        raise
    study.set_user_attr("fold_hash", ctx.folds.hash)
    study.set_user_attr("metric", metric.name)
    if parallel:
        if url.startswith("sqlite") and getattr(executor, "scatter", False):
            raise ConfigError(
                "workers that cannot see KFW_HOME cannot share a SQLite study: pass "
                "--storage postgresql://... (a server every worker reaches)"
            )
        # each trial is a task: the workers share the study through its storage, the way
        # several `kfw tune` processes do
        work = _Trials(
            dataclasses.replace(ctx, mirror=None), model, base, seed, threads, url, name, None if timeout is None else time.time() + timeout,
        )  # fmt: skip
        shared = executor.share(work)
        for _, number, placed in executor.run(_trial_task, list(range(n_trials)), shared):
            if number is not None:
                callback.info(f"{model} trial {number} finished on {placed.worker}")
        study = optuna.load_study(study_name=name, storage=url)
    else:
        objective = _objective(ctx, model, base, seed, threads, callback)
        study.optimize(objective, n_trials=n_trials, timeout=timeout, catch=())
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise KfwError(f"study {name}: no trial completed")
    best = study.best_trial
    scored = [t.user_attrs["fold_scores"] for t in complete if "fold_scores" in t.user_attrs]
    nested = None
    if scored and len({len(s) for s in scored}) == 1 and len(scored[0]) > 1:
        nested, _ = nested_estimate(scored, metric.greater_is_better)
    best_mean = (
        float(np.mean(best.user_attrs["fold_scores"])) if "fold_scores" in best.user_attrs else None
    )
    payload = {
        "model": model,
        "params": {**base, **best.params, **_fixed(space, best)},
        "value": best.value,
        "metric": metric.name,
        "trial": best.number,
        "study": name,
        "storage": _safe_url(url),
        "n_trials": len(study.trials),
        "fold_hash": ctx.folds.hash,
        "folds": ctx.folds.scheme.name,
        "best_mean": best_mean,
        "nested": nested,
    }
    path = save_tuned(ctx.home, spec.slug, model, payload)
    return TuneResult(
        name, _safe_url(url), len(study.trials), len(complete), best.value, payload["params"],
        path, best_mean, nested, ctx.folds.hash,
    )  # fmt: skip


def _sampler(seed: int, task: int = 0) -> Any:
    import optuna

    # each worker (and each trial task) samples with its own seed, or two workers would
    # propose the same trials
    return optuna.samplers.TPESampler(seed=(seed * 1_000_003 + task * 7_919 + os.getpid()) % 2**32)


def _pruner() -> Any:
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)


def _objective(
    ctx: Context,
    model: str,
    base: dict[str, Any],
    seed: int,
    threads: int | None,
    callback: Callback,
) -> Callable[[Any], float]:
    """The objective of a trial: the model's CV with the trial's parameters on ``ctx``'s folds."""
    spec = ctx.spec
    space = search_space(model)

    def objective(trial: Any) -> float:
        params = {**base, **space(trial, spec.task)}
        estimator = make_estimator(model, spec.task, params, random_state=seed, n_jobs=threads)
        started = time.perf_counter()
        with limit(threads or default_threads()):
            cv = cross_validate(
                estimator, ctx.design.X, ctx.design.y, ctx.folds,
                **ctx.loop_args(_Pruning(trial, callback), f"{model} trial {trial.number}"),
            )  # fmt: skip
        trial.set_user_attr("fold_scores", [f.score for f in cv.folds])
        trial.set_user_attr("seconds", time.perf_counter() - started)
        best = [f.best_iteration for f in cv.folds if f.best_iteration is not None]
        if best:
            trial.set_user_attr("best_iterations", best)
        return cv.score

    return objective


@dataclass
class _Trials:
    """What the trial tasks of one ``kfw tune`` share (an executor's package)."""

    ctx: Context
    model: str
    base: dict[str, Any]
    seed: int
    threads: int | None
    url: str
    study: str
    deadline: float | None  # no trial starts after it (``--timeout``)


def _trial_task(work: _Trials, index: int) -> int | None:
    """One trial on a worker, in the shared study; its number (None: past the deadline)."""
    import optuna

    if work.deadline is not None and time.time() > work.deadline:
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name=work.study, storage=work.url, sampler=_sampler(work.seed, index + 1),
        pruner=_pruner(),
    )  # fmt: skip
    objective = _objective(work.ctx, work.model, work.base, work.seed, work.threads, NULL)
    numbers: list[int] = []
    study.optimize(
        objective, n_trials=1, catch=(), callbacks=[lambda _, t: numbers.append(t.number)]
    )
    return numbers[0] if numbers else None


def _fixed(space: Any, trial: Any) -> dict[str, Any]:
    """Constants a search space returns beside its sampled values (``subsample_freq = 1``)."""
    import optuna

    values = space(optuna.trial.FixedTrial(trial.params), "")
    return {k: v for k, v in values.items() if k not in trial.params}


# Postgres error codes a concurrent first open can raise: two workers creating Optuna's schema
# at once collide on the catalog (23505 unique_violation on pg_type), on an enum type (42710
# duplicate_object), a table (42P07 duplicate_table), a schema or a function (42P06, 42723);
# the loser finds the schema there when it tries again.
_SCHEMA_RACE = ("23505", "42710", "42P07", "42P06", "42723")


def _lost_race(exc: BaseException) -> bool:
    """Whether ``exc`` is a worker losing the race to create the schema or the study.

    PostgreSQL reports it by error code; SQLite (two ``kfw tune`` of one competition started
    together on the default storage) by message: a table or index "already exists", the
    database "is locked" while the winner writes it, or a "UNIQUE constraint failed" on the
    schema's version row (SQLite's unique_violation).
    """
    if type(exc).__name__ == "DuplicatedStudyError":
        return True
    orig = getattr(exc, "orig", None)
    if getattr(orig, "sqlstate", None) in _SCHEMA_RACE:  # psycopg 3's error code
        return True
    text = str(orig or "")
    return type(orig).__module__ == "sqlite3" and any(
        sign in text
        for sign in ("already exists", "database is locked", "UNIQUE constraint failed")
    )


def _open_study(optuna: Any, attempts: int = 8, **kwargs: Any) -> Any:
    """``optuna.create_study(load_if_exists=True)``, safe for workers that start together.

    On a fresh database every worker tries to create the schema and the study; all but one
    lose a race inside the database (:func:`_lost_race`). A lost race is retried after a short
    random wait (the winner's tables and study are then there to load); any other error is
    raised at once.
    """
    import random

    for attempt in range(attempts - 1):
        try:
            return optuna.create_study(load_if_exists=True, **kwargs)
        except Exception as exc:
            if not _lost_race(exc):
                raise
            time.sleep(random.uniform(0.05, 0.25) * (attempt + 1))
    return optuna.create_study(load_if_exists=True, **kwargs)  # the last attempt raises as is


def _safe_url(url: str) -> str:
    """A storage URL without its password, for messages and records."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}@{host}"
