"""The fold loop: every stateful step is fitted on the training part of a fold, and only there.

For each fold of each repeat: fit the fitted features and the model on the training part
(optionally filtered by ``train_mask``), predict the validation part (out of fold) and the
test set. The validation part is never seen before it is scored: a model that stops early
(boosting rounds, a network's best epoch) chooses its length on an inner split of the training
part (:meth:`kfw.core.folds.Folds.inner_split`) and is then refitted on the whole training part for
that many rounds. Stopping on the scored rows themselves is available as an explicit,
optimistic mode and recorded as such.

Rows marked ``exclude`` (declared outliers) never enter a training part or an early-stopping
set, but they are predicted out of fold and scored: the headline score covers every training
row, and the score without them is kept beside it (``score_without_excluded``).

Predictions are kept on the target's own scale: probabilities for classification (class 1 for
binary, one column per class for multiclass), values for regression (a ``log1p`` target
transform is inverted before scoring).
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import clone

from kfw.core import budget
from kfw.core.calibration import Calibrator
from kfw.core.config import EarlyStopping
from kfw.core.encoding import CategoricalAligner
from kfw.core.executor import Executor
from kfw.core.folds import Folds, Split
from kfw.core.metrics import Metric, get_metric, uses_threshold
from kfw.core.noise import NoiseError, corrected_se
from kfw.progress import NULL, Callback
from kfw.threads import limit

if TYPE_CHECKING:
    import pandas as pd

INNER = EarlyStopping()  # the default: lengths chosen on an inner split of the training part

TRANSFORMS: dict[
    str, tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]
] = {
    "none": (lambda y: y, lambda y: y),
    "log1p": (np.log1p, np.expm1),
}


@dataclass
class FoldResult:
    """One fit of the fold loop."""

    repeat: int
    fold: int
    score: float
    n_train: int
    n_valid: int
    fit_seconds: float
    predict_seconds: float
    best_iteration: int | None = None  # the rounds / epochs early stopping chose
    restored: bool = False  # taken from the checkpoint of an interrupted run
    # a network's epochs (``history_``: epoch, train_loss, valid_loss, valid metric, seconds)
    history: list[dict[str, float]] | None = None
    # where early stopping chose ``best_iteration``: "inner" or "scored-fold" (optimistic)
    stopped_on: str | None = None
    refit: bool = False  # refitted on the whole training part for ``best_iteration`` rounds
    # the decision threshold tuned on an inner split of this fold's training part (binary
    # label metrics with ``threshold = "tune"``); ``score`` is at this threshold
    threshold: float | None = None
    # with a calibrator: its method and fit, and the validation part's ECE and Brier score
    # before and after it (``ece_before``, ``ece_after``, ``brier_before``, ``brier_after``)
    calibration: dict[str, Any] | None = None
    # with a parallel executor: the worker that fitted it and how long it waited for one
    worker: str | None = None
    queued_seconds: float | None = None
    # ``kfw cv --time-limit``: the fit was stopped by its share of the time (kfw.core.budget)
    out_of_time: bool = False


@dataclass
class CVResult:
    """Out-of-fold and test predictions with their scores.

    Attributes
    ----------
    oof : ndarray of shape (n_rows,) or (n_rows, n_classes)
        Out-of-fold predictions, averaged over repeats; NaN for never-validated rows.
    test : ndarray or None
        Test predictions averaged over every fit.
    score : float
        The headline: the metric on the out-of-fold predictions of every validated row,
        declared outliers included (they were never fitted on, but the test set has its own).
    score_without_excluded : float or None
        With excluded rows: the metric without them (labelled as such wherever shown).
    importances : DataFrame or None
        Feature x fit importance, when the model exposes ``feature_importances_``.
    """

    oof: np.ndarray
    test: np.ndarray | None
    folds: list[FoldResult]
    score: float
    metric: str
    importances: pd.DataFrame | None = None
    # where early stopping chose the length: "inner" (an inner split of each training part),
    # "scored-fold" (the scored rows themselves: optimistic), None (nothing stopped early)
    early_stopping: str | None = None
    seconds: float = 0.0
    score_without_excluded: float | None = None
    excluded: int = 0
    # with tuned thresholds (see :func:`choose_threshold`): the one the test set gets (the
    # median of the folds'), the OOF scored at the default 0.5, and the optimistic shortcut,
    # a threshold chosen on the OOF itself and the score it gets there (never the headline)
    threshold: float | None = None
    score_at_default: float | None = None
    oof_threshold: float | None = None
    score_oof_tuned: float | None = None

    @property
    def fold_scores(self) -> np.ndarray:
        return np.array([f.score for f in self.folds])

    @property
    def mean(self) -> float:
        return float(self.fold_scores.mean())

    @property
    def std(self) -> float:
        return float(self.fold_scores.std())

    @property
    def se(self) -> float | None:
        """The corrected standard error of the CV (:func:`kfw.core.noise.corrected_se`), if defined."""

        try:
            return corrected_se(
                self.fold_scores,
                float(np.mean([f.n_train for f in self.folds])),
                float(np.mean([f.n_valid for f in self.folds])),
            )
        except NoiseError:
            return None


class FoldStore:
    """Where finished folds are kept so an interrupted run resumes (see :mod:`kfw.core.runstore`)."""

    def load(self, split: Split) -> tuple[FoldResult, np.ndarray, np.ndarray | None, Any] | None:
        return None

    def save(
        self,
        result: FoldResult,
        valid_pred: np.ndarray,
        test_pred: np.ndarray | None,
        importance: Any,
    ) -> None:
        """Persist one finished fold."""


# under a time budget, a refit on the whole training part (1.25x the inner fit's rows, for the
# rounds it chose) runs only when the time left is at least this many times the inner fit's
REFIT_ROOM = 1.3


def _history(model: Any) -> list[dict[str, float]] | None:
    history = getattr(model, "history_", None)
    return [{k: float(v) for k, v in row.items()} for row in history] if history else None


def _accepts_eval_set(estimator: Any, name: str = "eval_set") -> bool:
    try:
        return name in inspect.signature(estimator.fit).parameters
    except (TypeError, ValueError):
        return False


def stops_early(estimator: Any) -> bool:
    """Whether ``estimator.fit(X, y, eval_set=...)`` chooses its own length on the eval set.

    The protocol: an estimator that early-stops defines ``stops_early() -> bool`` and
    ``fixed_length(n) -> dict`` (the ``set_params`` that train exactly ``n`` rounds or epochs
    without stopping), and sets ``best_iteration_`` after a stopped fit.
    """
    method = getattr(estimator, "stops_early", None)
    return bool(method()) if callable(method) else False


def _predict(
    estimator: Any, X: Any, task: str, inverse: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    if task == "regression":
        return inverse(np.asarray(estimator.predict(X), dtype=np.float64).ravel())
    proba = np.asarray(estimator.predict_proba(X), dtype=np.float64)  # (n, n_classes)
    return proba[:, 1] if task == "binary" else proba


def _importance(estimator: Any) -> pd.Series | None:
    import pandas as pd

    values = getattr(estimator, "feature_importances_", None)
    names = getattr(estimator, "importance_names_", getattr(estimator, "feature_names_in_", None))
    if values is None or names is None or len(names) != len(values):
        return None
    return pd.Series(np.asarray(values, dtype=float), index=names)


# decision thresholds (binary label metrics, see kfw.core.metrics.uses_threshold)
DEFAULT_THRESHOLD = 0.5
_CANDIDATES = 256  # thresholds tried: the predictions' quantiles (all of them when fewer)


def at_threshold(proba: np.ndarray, threshold: float) -> np.ndarray:
    """Labels ``proba >= threshold`` as 0.0 / 1.0, which a label metric reads as they are
    (its own cut at 0.5 keeps them): the metric scored at ``threshold``."""
    return (np.asarray(proba) >= threshold).astype(np.float64)


def choose_threshold(metric: Metric, y: np.ndarray, proba: np.ndarray) -> float:
    """The threshold that scores best on ``(y, proba)``; ties go to the one nearest 0.5.

    Candidates are midpoints between consecutive distinct predictions (at most
    :data:`_CANDIDATES`, taken at their quantiles), and 0.5 itself, so that a threshold never
    sits on a prediction and the default is kept unless something beats it.
    """
    values = np.unique(np.asarray(proba, dtype=np.float64))
    if len(values) > _CANDIDATES:
        values = np.unique(np.quantile(values, np.linspace(0, 1, _CANDIDATES)))
    candidates = np.unique(np.concatenate([(values[1:] + values[:-1]) / 2, [DEFAULT_THRESHOLD]]))
    scores = np.array([metric(y, at_threshold(proba, t)) for t in candidates])
    best = scores.max() if metric.greater_is_better else scores.min()
    tied = candidates[np.isclose(scores, best, rtol=0, atol=1e-12)]
    return float(tied[np.argmin(np.abs(tied - DEFAULT_THRESHOLD))])


def training_rows(
    split: Split,
    X: pd.DataFrame,
    y_fit: np.ndarray,
    exclude: np.ndarray | None = None,
    train_mask: Callable[[Any, np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Row positions a fold fits on: its training part less excluded and masked-out rows."""
    train = split.train
    if exclude is not None:
        train = train[~exclude[train]]
    if train_mask is not None:
        train = train[np.asarray(train_mask(X.iloc[train], y_fit[train]), dtype=bool)]
    return train


def check_inner_splits(
    folds: Folds,
    X: pd.DataFrame,
    y: np.ndarray,
    task: str,
    early_stopping: EarlyStopping,
    exclude: np.ndarray | None = None,
    train_mask: Callable[[Any, np.ndarray], np.ndarray] | None = None,
) -> None:
    """Raise the :class:`~kfw.errors.FoldError` a fold's inner split would, before any fit."""
    if early_stopping.mode != "inner":
        return
    for split in folds.splits():
        rows = training_rows(split, X, y, exclude, train_mask)
        folds.inner_split(split, rows, y, task, early_stopping.fraction)


@dataclass
class FoldFit:
    """What :func:`fit_fold` returns: one fold's predictions and the fitted model."""

    valid_pred: np.ndarray
    test_pred: np.ndarray | None
    model: Any
    fit_seconds: float
    predict_seconds: float
    n_train: int
    # the rounds (or epochs) early stopping chose, and on which rows: "inner" (an inner split
    # of the training part), "scored-fold" (the scored rows: optimistic) or None (no stopping)
    rounds: int | None = None
    stopped_on: str | None = None
    refit: bool = False
    # a network's epochs in the fit that chose the length (its validation curve), not the refit
    history: list[dict[str, float]] | None = None
    threshold: float | None = None  # tuned on an inner split (binary label metrics)
    calibrator: Calibrator | None = None  # fitted on an inner split; valid / test went through it
    raw_valid: np.ndarray | None = None  # the validation predictions before calibration
    out_of_time: bool = False  # a fit was stopped by the time budget (kfw.core.budget)


def _fit_on(
    estimator: Any,
    X: pd.DataFrame,
    y_fit: np.ndarray,
    rows: np.ndarray,
    *,
    features: Any,
    extra: tuple[pd.DataFrame, np.ndarray] | None,
    watch: np.ndarray | None,
    callback: Callback | None,
) -> tuple[Any, Any, CategoricalAligner]:
    """Fit the fitted features and a clone of the model on ``rows`` (+ extra rows).

    ``watch`` (row positions) becomes the model's ``eval_set``, transformed by the features
    fitted here; it must not overlap ``rows``.
    """
    X_tr, y_tr = X.iloc[rows], y_fit[rows]
    if extra is not None:
        import pandas as pd

        X_tr = pd.concat([X_tr, extra[0]], ignore_index=True)
        y_tr = np.concatenate([y_tr, extra[1]])
    step = None
    if features is not None:
        step = clone(features)
        X_tr = step.fit_transform(X_tr, y_tr)
    align = CategoricalAligner().fit(X_tr)
    X_tr = align.transform(X_tr)
    model = clone(estimator)
    kwargs: dict[str, Any] = {}
    if watch is not None:
        X_w = X.iloc[watch]
        X_w = align.transform(step.transform(X_w) if step is not None else X_w)
        kwargs["eval_set"] = (X_w, y_fit[watch])
    if callback is not None and _accepts_eval_set(model, "callback"):
        kwargs["callback"] = callback  # per-epoch logs of a network (kfw.dl.estimator)
    model.fit(X_tr, y_tr, **kwargs)
    return model, step, align


def fit_fold(
    estimator: Any,
    X: pd.DataFrame,
    y_fit: np.ndarray,
    split: Split,
    *,
    task: str,
    X_test: pd.DataFrame | None = None,
    features: Any = None,
    train_mask: Callable[[Any, np.ndarray], np.ndarray] | None = None,
    inverse: Callable[[np.ndarray], np.ndarray] = TRANSFORMS["none"][1],
    exclude: np.ndarray | None = None,
    extra: tuple[pd.DataFrame, np.ndarray] | None = None,
    callback: Callback | None = None,
    folds: Folds | None = None,
    early_stopping: EarlyStopping = INNER,
    threshold_metric: Metric | None = None,
    calibration: str = "none",
) -> FoldFit:
    """Fit features and model on one fold's training part; predict its validation part and test.

    A model that stops early (see :func:`stops_early`) chooses its length on an inner split of
    the training part (``folds.inner_split``), with the features fitted on the inner training
    rows only; with ``early_stopping.refit`` it is then refitted on the whole training part for
    that many rounds. The fold's validation rows are read only to be predicted. The old
    shortcut, stopping on the validation part itself, is ``mode = "scored-fold"``: optimistic,
    and recorded as such.

    ``extra`` (row features and fitted target of extra training rows, e.g. the original data
    set a synthetic competition was generated from) joins the training part only.

    ``calibration`` (``platt``, ``isotonic``, ``temperature``; :mod:`kfw.core.calibration`)
    and ``threshold_metric`` (binary: the decision threshold best for that metric) are chosen
    on an inner split of the training part, as predicted by a model fitted on the inner
    training rows (the early-stopping fit when there is one, else one more fit): the
    calibrator first, the threshold on the calibrated predictions. The validation part is
    never read to choose either.
    """
    train = training_rows(split, X, y_fit, exclude, train_mask)
    watch_valid = split.valid
    if exclude is not None:
        watch_valid = split.valid[~exclude[split.valid]]  # excluded rows are predicted only
    mode = early_stopping.mode if stops_early(estimator) else "off"
    common = dict(features=features, extra=extra, callback=callback)
    start = time.perf_counter()
    rounds, refit, history = None, False, None
    # the inner model's predictions of its held-out inner rows: what a calibrator and a
    # threshold are chosen on
    wants_inner = threshold_metric is not None or calibration != "none"
    held, held_pred = None, None
    if (mode == "inner" or wants_inner) and folds is None:
        raise ValueError("an inner split of the training part needs the folds (folds=...)")
    if mode == "inner":
        inner, held = folds.inner_split(split, train, y_fit, task, early_stopping.fraction)
        inner_start = time.perf_counter()
        model, step, align = _fit_on(estimator, X, y_fit, inner, watch=held, **common)
        cut = getattr(model, "out_of_time_", False)
        rounds = getattr(model, "best_iteration_", None)
        history = _history(model)
        if wants_inner:
            held_pred = _predict_rows(model, step, align, X.iloc[held], task)
        # under a time budget the inner model predicts when the clock stopped it (it had no
        # time to converge, a refit would only repeat its rounds) or no refit would fit in
        # what is left: trained on the inner rows, it has still never seen the scored fold
        left = budget.remaining()
        room = left is None or left >= REFIT_ROOM * (time.perf_counter() - inner_start)
        if early_stopping.refit and rounds and not cut and room:
            fixed = clone(estimator).set_params(**estimator.fixed_length(int(rounds)))
            model, step, align = _fit_on(fixed, X, y_fit, train, watch=None, **common)
            refit = True
    elif mode == "scored-fold":
        model, step, align = _fit_on(estimator, X, y_fit, train, watch=watch_valid, **common)
        rounds = getattr(model, "best_iteration_", None)
    else:
        model, step, align = _fit_on(estimator, X, y_fit, train, watch=None, **common)
    # the model that predicts was stopped by the time budget (a refit runs only after an
    # inner fit the clock left alone, so the last fit says it)
    cut = bool(getattr(model, "out_of_time_", False))
    if wants_inner and held_pred is None:
        inner, held = folds.inner_split(split, train, y_fit, task, early_stopping.fraction)
        watch = held if mode != "off" else None  # a stopping model watches its inner rows
        fitted = _fit_on(estimator, X, y_fit, inner, watch=watch, **common)
        held_pred = _predict_rows(*fitted, X.iloc[held], task)
    calibrator, threshold = None, None
    if calibration != "none":
        calibrator = Calibrator(calibration).fit(held_pred, y_fit[held])
        held_pred = calibrator.transform(held_pred)
    if threshold_metric is not None:
        threshold = choose_threshold(threshold_metric, y_fit[held], held_pred)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()

    def prepared(frame: pd.DataFrame) -> pd.DataFrame:
        return align.transform(step.transform(frame) if step is not None else frame)

    valid_pred = _predict(model, prepared(X.iloc[split.valid]), task, inverse)
    test_pred = _predict(model, prepared(X_test), task, inverse) if X_test is not None else None
    raw_valid = valid_pred
    if calibrator is not None:
        valid_pred = calibrator.transform(valid_pred)
        test_pred = calibrator.transform(test_pred) if test_pred is not None else None
    return FoldFit(
        valid_pred, test_pred, model, fit_seconds, time.perf_counter() - start, len(train),
        int(rounds) if rounds is not None else None, mode if rounds is not None else None, refit,
        history if history is not None else _history(model), threshold,
        calibrator, raw_valid if calibrator is not None else None, cut,
    )  # fmt: skip


def _calibration_report(fit: FoldFit, y: np.ndarray, calibrated: np.ndarray) -> dict[str, Any]:
    """A fold's validation part, before and after its calibrator: ECE and Brier (lower is better)."""
    out: dict[str, Any] = {"method": fit.calibrator.method, **fit.calibrator.summary()}
    for name in ("ece", "brier"):
        metric = get_metric(name)
        out[f"{name}_before"] = metric(y, fit.raw_valid)
        out[f"{name}_after"] = metric(y, calibrated)
    return out


def _predict_rows(
    model: Any, step: Any, align: CategoricalAligner, frame: pd.DataFrame, task: str
) -> np.ndarray:
    """``model``'s predictions of ``frame`` through the features and alignment fitted with it."""
    prepared = align.transform(step.transform(frame) if step is not None else frame)
    return _predict(model, prepared, task, TRANSFORMS["none"][1])


@dataclass
class _Loop:
    """What every fold of one loop shares: the package an executor sends its workers once."""

    X: pd.DataFrame
    y: np.ndarray
    y_fit: np.ndarray
    X_test: pd.DataFrame | None
    features: Any
    train_mask: Callable[[Any, np.ndarray], np.ndarray] | None
    exclude: np.ndarray | None
    extra: tuple[pd.DataFrame, np.ndarray] | None  # the target on the fitted scale
    folds: Folds
    metric: Metric
    task: str
    target_transform: str
    early_stopping: EarlyStopping
    tuned: bool
    calibration: str
    callback: Callback | None  # in this process only: a worker's fits log nothing
    deadline: float | None = None  # the run's end under ``--time-limit`` (kfw.core.budget)
    slots: int = 1  # folds fitted at once


def _fold_task(
    loop: _Loop, item: tuple[Any, int, int | None]
) -> tuple[FoldResult, np.ndarray, np.ndarray | None, Any]:
    """One fold of the loop (on whichever worker): its record, predictions and importances."""
    estimator, index, threads = item
    split = next(itertools.islice(loop.folds.splits(), index, None))
    at = budget.fold_deadline(loop.deadline, index, loop.folds.n_fits, loop.slots)
    with limit(threads) if threads is not None else contextlib.nullcontext(), budget.until(at):
        fit = fit_fold(
            estimator, loop.X, loop.y_fit, split, task=loop.task, X_test=loop.X_test,
            features=loop.features, train_mask=loop.train_mask,
            inverse=TRANSFORMS[loop.target_transform][1], exclude=loop.exclude, extra=loop.extra,
            callback=loop.callback, folds=loop.folds, early_stopping=loop.early_stopping,
            threshold_metric=loop.metric if loop.tuned else None, calibration=loop.calibration,
        )  # fmt: skip
    y_valid = loop.y[split.valid]
    scored_pred = (
        fit.valid_pred if fit.threshold is None else at_threshold(fit.valid_pred, fit.threshold)
    )
    result = FoldResult(
        split.repeat,
        split.fold,
        loop.metric(y_valid, scored_pred),
        fit.n_train,
        len(split.valid),
        fit.fit_seconds,
        fit.predict_seconds,
        fit.rounds,
        history=fit.history,
        stopped_on=fit.stopped_on,
        refit=fit.refit,
        threshold=fit.threshold,
        calibration=None
        if fit.raw_valid is None
        else _calibration_report(fit, y_valid, fit.valid_pred),
        out_of_time=fit.out_of_time,
    )
    return result, fit.valid_pred, fit.test_pred, _importance(fit.model)


def cross_validate(
    estimator: Any,
    X: pd.DataFrame,
    y: np.ndarray,
    folds: Folds,
    *,
    metric: Metric,
    task: str,
    X_test: pd.DataFrame | None = None,
    features: Any = None,
    target_transform: str = "none",
    train_mask: Callable[[Any, np.ndarray], np.ndarray] | None = None,
    callback: Callback = NULL,
    store: FoldStore | None = None,
    label: str = "model",
    exclude: np.ndarray | None = None,
    extra: tuple[pd.DataFrame, np.ndarray] | None = None,
    early_stopping: EarlyStopping = INNER,
    threshold: str = "fixed",
    calibration: str = "none",
    executor: Executor | None = None,
    threads: int | None = None,
) -> CVResult:
    """Run the fold loop.

    Parameters
    ----------
    estimator : scikit-learn estimator
        Cloned for every fit. A model that stops early (:func:`stops_early`) receives an
        inner split of the training part as ``eval_set`` (see :func:`fit_fold`).
    X, X_test : DataFrame
        Row features of the training and test rows.
    y : ndarray
        Classes encoded 0..K-1, or the regression target on its own scale.
    folds : Folds
        The competition's persisted folds.
    features : transformer, optional
        Fitted features: cloned, fitted on each training part, applied to the rest.
    target_transform : {"none", "log1p"}
        Regression models fit the transformed target; their predictions are inverted.
    train_mask : callable, optional
        ``train_mask(X_train, y_train) -> bool mask`` drops rows from training parts only;
        every validation row is still scored.
    store : FoldStore, optional
        Restores finished folds of an interrupted run and saves each new one.
    exclude : bool ndarray, optional
        Rows left out of every training part, early-stopping set and the headline score
        (declared outliers); predicted out of fold and scored all the same (the headline
        covers every row); ``score_without_excluded`` leaves them out.
    extra : (DataFrame, ndarray), optional
        Extra training rows and their target (own scale), added to every training part and
        never validated on.
    early_stopping : EarlyStopping
        Where a model that stops early chooses its length (default: an inner split).
    threshold : {"fixed", "tune"}
        ``"tune"`` (a binary task scored on labels): each fold's decision threshold is chosen
        on an inner split of its training part (:func:`fit_fold`) and its validation part is
        scored at it; a row's OOF label is the majority of its repeats' labels, and the
        headline scores those. The OOF stays probabilities; the test set gets the median of
        the folds' thresholds. Beside it, labelled: the OOF at 0.5, and the optimistic
        threshold chosen on the OOF itself.
    calibration : {"none", "platt", "isotonic", "temperature"}
        A calibrator fitted in every fold on an inner split of its training part
        (:mod:`kfw.core.calibration`) maps the validation and test predictions; each fold
        records its validation part's expected calibration error and Brier score before and
        after (reported, never used to choose anything).
    executor : Executor, optional
        Where the folds run (:mod:`kfw.core.executor`; default one after another here). Each
        fold is a task; the run is assembled in the folds' order, so the predictions are the
        same wherever they ran, and each fold records its worker and queueing time.
    threads : int, optional
        A parallel executor's threads per fold (model and BLAS; default one).
    """
    import pandas as pd

    tuned = threshold == "tune"
    if calibration != "none" and task == "regression":
        raise ValueError("calibration maps class probabilities: a regression has none")
    if tuned and not uses_threshold(metric, task):
        raise ValueError(
            f"threshold tuning needs a binary label metric, not {metric.name} ({task})"
        )

    forward = TRANSFORMS[target_transform][0]
    y_fit = _fit_target(y, task, forward)
    n = len(y)
    n_classes = int(np.max(y)) + 1 if task == "multiclass" else None
    shape = (n, n_classes) if n_classes else (n,)
    oof_sum, oof_count, votes = np.zeros(shape), np.zeros(n), np.zeros(n)
    test_sum = None
    results: list[FoldResult] = []
    importances: dict[str, pd.Series] = {}
    early: set[str] = set()
    scored = ~exclude if exclude is not None else np.ones(n, dtype=bool)
    started = time.perf_counter()
    callback.cv_start(label, folds.n_fits)
    splits = list(folds.splits())
    outcomes: list[tuple[FoldResult, np.ndarray, np.ndarray | None, Any] | None] = []
    for split in splits:
        outcomes.append(store.load(split) if store is not None else None)
        if outcomes[-1] is not None:
            callback.fold_end(outcomes[-1][0])
    executor = executor or Executor()
    loop = _Loop(
        X, y, y_fit, X_test, features, train_mask, exclude,
        None if extra is None else (extra[0], _fit_target(extra[1], task, forward)),
        folds, metric, task, target_transform, early_stopping, tuned, calibration,
        None if executor.parallel else callback, budget.deadline(),
        executor.slots if executor.parallel else 1,
    )  # fmt: skip
    todo = [i for i, outcome in enumerate(outcomes) if outcome is None]
    if todo:
        items = [(estimator, i, executor.threads(threads)) for i in todo]
        for j, outcome, placed in executor.run(_fold_task, items, executor.share(loop)):
            if executor.parallel:  # where it ran, and how long it waited for a worker
                outcome[0].worker, outcome[0].queued_seconds = placed.worker, placed.queued_seconds
            if store is not None:
                store.save(*outcome)
            outcomes[todo[j]] = outcome
            callback.fold_end(outcome[0])
    # assembled in the folds' order, wherever and in whatever order they ran: the sums below
    # (and so the predictions) are the sequential loop's to the last bit
    for split, outcome in zip(splits, outcomes, strict=True):
        result, valid_pred, test_pred, importance = outcome  # type: ignore[misc]
        if result.stopped_on is not None:
            early.add(result.stopped_on)
        oof_sum[split.valid] += valid_pred
        oof_count[split.valid] += 1
        if tuned:
            votes[split.valid] += at_threshold(valid_pred, result.threshold)
        if test_pred is not None:
            test_sum = test_pred if test_sum is None else test_sum + test_pred
        if importance is not None:
            importances[f"r{split.repeat}f{split.fold}"] = importance
        results.append(result)
    validated = oof_count > 0
    oof = np.full(shape, np.nan)
    oof[validated] = (oof_sum[validated].T / oof_count[validated]).T
    kept = validated & scored
    # what the headline scores: the probabilities, or with tuned thresholds each row's label
    # by the majority of its repeats (a tie counts as class 1, as p >= t does)
    decided = oof
    tuning: dict[str, Any] = {}
    if tuned:
        decided = np.full(n, np.nan)
        decided[validated] = (votes[validated] / oof_count[validated] >= 0.5).astype(np.float64)
        oof_threshold = choose_threshold(metric, y[validated], oof[validated])
        tuning = dict(
            threshold=float(np.median([f.threshold for f in results])),
            score_at_default=metric(y[validated], oof[validated]),
            oof_threshold=oof_threshold,
            score_oof_tuned=metric(y[validated], at_threshold(oof[validated], oof_threshold)),
        )
    cv = CVResult(
        oof=oof,
        test=test_sum / len(results) if test_sum is not None else None,
        folds=results,
        score=metric(y[validated], decided[validated]),
        score_without_excluded=metric(y[kept], decided[kept]) if exclude is not None else None,
        excluded=int((~scored).sum()),
        metric=metric.name,
        importances=pd.DataFrame(importances) if importances else None,
        early_stopping=_stopped_on(early),
        seconds=time.perf_counter() - started,
        **tuning,
    )
    callback.cv_end(cv)
    return cv


def _stopped_on(modes: set[str]) -> str | None:
    """One label for a run: the optimistic mode wins when any fit used it."""
    if "scored-fold" in modes:
        return "scored-fold"
    return "inner" if modes else None


def _fit_target(
    y: np.ndarray, task: str, forward: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    return forward(np.asarray(y, dtype=np.float64)) if task == "regression" else np.asarray(y)


def cross_validate_targets(
    estimator: Any,
    X: pd.DataFrame,
    Y: np.ndarray,
    folds: Folds,
    *,
    metric: Metric,
    stores: list[FoldStore] | None = None,
    label: str = "model",
    callback: Callback = NULL,
    **kwargs: Any,
) -> CVResult:
    """Several targets (multi-label or multi-output), one after another on the same folds.

    Each column of ``Y`` goes through :func:`cross_validate` with its own clone of the model
    (and its own checkpoint store); the result stacks their predictions column by column, and
    every score (per fit, overall) is the mean over targets: Kaggle's "mean column-wise"
    scoring of such competitions.
    """
    extra = kwargs.pop("extra", None)
    results = [
        cross_validate(
            estimator,
            X,
            Y[:, t],
            folds,
            extra=None if extra is None else (extra[0], extra[1][:, t]),
            metric=metric,
            label=f"{label} [target {t + 1}/{Y.shape[1]}]",
            callback=callback,
            store=stores[t] if stores else None,
            **kwargs,
        )
        for t in range(Y.shape[1])
    ]
    fits = []
    for parts in zip(*(r.folds for r in results), strict=True):
        first = parts[0]
        fits.append(
            FoldResult(
                first.repeat,
                first.fold,
                float(np.mean([p.score for p in parts])),
                first.n_train,
                first.n_valid,
                sum(p.fit_seconds for p in parts),
                sum(p.predict_seconds for p in parts),
                None,
                all(p.restored for p in parts),
            )
        )
    importances = [r.importances for r in results if r.importances is not None]
    without = [r.score_without_excluded for r in results]
    return CVResult(
        oof=np.column_stack([r.oof for r in results]),  # (n_rows, n_targets)
        test=np.column_stack([r.test for r in results]) if results[0].test is not None else None,
        folds=fits,
        score=float(np.mean([r.score for r in results])),
        metric=metric.name,
        importances=sum(importances) / len(importances) if importances else None,
        early_stopping=_stopped_on({r.early_stopping for r in results} - {None}),
        seconds=sum(r.seconds for r in results),
        score_without_excluded=(
            float(np.mean(without)) if all(s is not None for s in without) else None
        ),
        excluded=results[0].excluded,
    )
