"""The fold loop: every stateful step is fitted on the training part of a fold, and only there.

For each fold of each repeat: fit the fitted features and the model on the training part
(optionally filtered by ``train_mask``), predict the validation part (out of fold) and the
test set. Rows marked ``exclude`` (declared outliers) never enter a training part, an early
stopping set or the headline score; they are still predicted out of fold and scored apart, so
the score on all rows stays in view. Early stopping, where the model has it, watches that fold's validation part: the
scored rows themselves, which is slightly optimistic, so the result records that it happened.

Predictions are kept on the target's own scale: probabilities for classification (class 1 for
binary, one column per class for multiclass), values for regression (a ``log1p`` target
transform is inverted before scoring).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import clone

from kfw.encoding import CategoricalAligner
from kfw.folds import Folds, Split
from kfw.metrics import Metric
from kfw.progress import NULL, Callback

if TYPE_CHECKING:
    import pandas as pd

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
    best_iteration: int | None = None
    restored: bool = False  # taken from the checkpoint of an interrupted run
    # a network's epochs (``history_``: epoch, train_loss, valid_loss, valid metric, seconds)
    history: list[dict[str, float]] | None = None


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
        The metric on the out-of-fold predictions of every validated, non-excluded row.
    score_all : float or None
        With excluded rows: the metric on all validated rows, excluded ones included.
    importances : DataFrame or None
        Feature x fit importance, when the model exposes ``feature_importances_``.
    """

    oof: np.ndarray
    test: np.ndarray | None
    folds: list[FoldResult]
    score: float
    metric: str
    importances: pd.DataFrame | None = None
    early_stopping: bool = False
    seconds: float = 0.0
    score_all: float | None = None
    excluded: int = 0

    @property
    def fold_scores(self) -> np.ndarray:
        return np.array([f.score for f in self.folds])

    @property
    def mean(self) -> float:
        return float(self.fold_scores.mean())

    @property
    def std(self) -> float:
        return float(self.fold_scores.std())


class FoldStore:
    """Where finished folds are kept so an interrupted run resumes (see :mod:`kfw.track`)."""

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


def _history(model: Any) -> list[dict[str, float]] | None:
    history = getattr(model, "history_", None)
    return [{k: float(v) for k, v in row.items()} for row in history] if history else None


def _accepts_eval_set(estimator: Any, name: str = "eval_set") -> bool:
    try:
        return name in inspect.signature(estimator.fit).parameters
    except (TypeError, ValueError):
        return False


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
) -> tuple[np.ndarray, np.ndarray | None, Any, float, float, int]:
    """Fit features and model on one fold's training part; predict its validation part and test.

    ``extra`` (row features and fitted target of extra training rows, e.g. the original data
    set a synthetic competition was generated from) joins the training part only.

    Returns
    -------
    valid_pred, test_pred, fitted_estimator, fit_seconds, predict_seconds, n_train
    """
    train, watch = split.train, np.ones(len(split.valid), dtype=bool)
    if exclude is not None:
        train = train[~exclude[train]]
        watch = ~exclude[split.valid]  # excluded rows are predicted, never watched
    if train_mask is not None:
        keep = np.asarray(train_mask(X.iloc[train], y_fit[train]), dtype=bool)
        train = train[keep]
    start = time.perf_counter()
    X_tr, X_va, X_te = X.iloc[train], X.iloc[split.valid], X_test
    y_tr = y_fit[train]
    if extra is not None:
        import pandas as pd

        X_tr = pd.concat([X_tr, extra[0]], ignore_index=True)
        y_tr = np.concatenate([y_tr, extra[1]])
    if features is not None:
        step = clone(features)
        X_tr = step.fit_transform(X_tr, y_tr)
        X_va = step.transform(X_va)
        X_te = step.transform(X_te) if X_te is not None else None
    align = CategoricalAligner().fit(X_tr)
    X_tr, X_va = align.transform(X_tr), align.transform(X_va)
    X_te = align.transform(X_te) if X_te is not None else None
    model = clone(estimator)
    kwargs: dict[str, Any] = {}
    if _accepts_eval_set(model):
        kwargs["eval_set"] = (X_va[watch], y_fit[split.valid][watch])
    if callback is not None and _accepts_eval_set(model, "callback"):
        kwargs["callback"] = callback  # per-epoch logs of a network (kfw.dl.estimator)
    model.fit(X_tr, y_tr, **kwargs)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    valid_pred = _predict(model, X_va, task, inverse)
    test_pred = _predict(model, X_te, task, inverse) if X_te is not None else None
    return valid_pred, test_pred, model, fit_seconds, time.perf_counter() - start, len(train)


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
) -> CVResult:
    """Run the fold loop.

    Parameters
    ----------
    estimator : scikit-learn estimator
        Cloned for every fit. If its ``fit`` takes ``eval_set``, it receives the fold's
        validation part as ``(X_valid, y_valid)``.
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
        (declared outliers); predicted out of fold all the same and scored in ``score_all``.
    extra : (DataFrame, ndarray), optional
        Extra training rows and their target (own scale), added to every training part and
        never validated on.
    """
    import pandas as pd

    forward, inverse = TRANSFORMS[target_transform]
    y_fit = _fit_target(y, task, forward)
    n = len(y)
    n_classes = int(np.max(y)) + 1 if task == "multiclass" else None
    shape = (n, n_classes) if n_classes else (n,)
    oof_sum, oof_count = np.zeros(shape), np.zeros(n)
    test_sum = None
    results: list[FoldResult] = []
    importances: dict[str, pd.Series] = {}
    early = False
    scored = ~exclude if exclude is not None else np.ones(n, dtype=bool)
    started = time.perf_counter()
    callback.cv_start(label, folds.n_fits)
    for split in folds.splits():
        restored = store.load(split) if store is not None else None
        if restored is not None:
            result, valid_pred, test_pred, importance = restored
        else:
            valid_pred, test_pred, model, fit_s, pred_s, n_train = fit_fold(
                estimator,
                X,
                y_fit,
                split,
                task=task,
                X_test=X_test,
                features=features,
                train_mask=train_mask,
                inverse=inverse,
                exclude=exclude,
                extra=None if extra is None else (extra[0], _fit_target(extra[1], task, forward)),
                callback=callback,
            )
            best = getattr(model, "best_iteration_", None)
            result = FoldResult(
                split.repeat,
                split.fold,
                metric(y[split.valid][scored[split.valid]], valid_pred[scored[split.valid]]),
                n_train,
                len(split.valid),
                fit_s,
                pred_s,
                int(best) if best is not None else None,
                history=_history(model),
            )
            importance = _importance(model)
            if store is not None:
                store.save(result, valid_pred, test_pred, importance)
        early |= result.best_iteration is not None
        oof_sum[split.valid] += valid_pred
        oof_count[split.valid] += 1
        if test_pred is not None:
            test_sum = test_pred if test_sum is None else test_sum + test_pred
        if importance is not None:
            importances[f"r{split.repeat}f{split.fold}"] = importance
        results.append(result)
        callback.fold_end(result)
    validated = oof_count > 0
    oof = np.full(shape, np.nan)
    oof[validated] = (oof_sum[validated].T / oof_count[validated]).T
    rows = validated & scored
    cv = CVResult(
        oof=oof,
        test=test_sum / len(results) if test_sum is not None else None,
        folds=results,
        score=metric(y[rows], oof[rows]),
        score_all=metric(y[validated], oof[validated]) if exclude is not None else None,
        excluded=int((~scored).sum()),
        metric=metric.name,
        importances=pd.DataFrame(importances) if importances else None,
        early_stopping=early,
        seconds=time.perf_counter() - started,
    )
    callback.cv_end(cv)
    return cv


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
    score_all = [r.score_all for r in results]
    return CVResult(
        oof=np.column_stack([r.oof for r in results]),  # (n_rows, n_targets)
        test=np.column_stack([r.test for r in results]) if results[0].test is not None else None,
        folds=fits,
        score=float(np.mean([r.score for r in results])),
        metric=metric.name,
        importances=sum(importances) / len(importances) if importances else None,
        early_stopping=any(r.early_stopping for r in results),
        seconds=sum(r.seconds for r in results),
        score_all=float(np.mean(score_all)) if all(s is not None for s in score_all) else None,
        excluded=results[0].excluded,
    )
