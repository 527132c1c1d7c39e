"""Combining runs that share a fold file: an OOF-optimised weighted blend.

The weights are non-negative and sum to one. They are fitted on a smooth surrogate of the
metric (squared error on the model scale for regression, log-loss for classification), so
accuracy-like metrics do not make the optimisation flat.

Honest CV: the blend's reported score uses weights fitted on the other folds' out-of-fold
predictions and applied to the held-out fold, fold by fold. The score of weights fitted on
all rows and applied to the same rows is optimistic; it is returned too, labelled in-sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kfw.cv import TRANSFORMS
from kfw.folds import Folds
from kfw.metrics import Metric

_EPS = 1e-15


@dataclass
class BlendResult:
    """Weights, honest and in-sample out-of-fold predictions and scores, test predictions."""

    weights: np.ndarray
    oof: np.ndarray
    test: np.ndarray | None
    score: float
    fold_scores: list[float]
    score_insample: float
    fold_weights: list[np.ndarray]
    score_all: float | None = None


def _combine(preds: np.ndarray, w: np.ndarray) -> np.ndarray:
    # preds: (m, n) or (m, n, K); weights (m,)
    return np.tensordot(w, preds, axes=1)


def _loss(preds: np.ndarray, y: np.ndarray, task: str, w: np.ndarray) -> float:
    p = _combine(preds, w)
    if task == "regression":
        return float(np.mean((p - y) ** 2))
    if task == "binary":
        p = np.clip(p, _EPS, 1 - _EPS)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    p = np.clip(p[np.arange(len(y)), y.astype(int)], _EPS, 1)
    return float(-np.mean(np.log(p)))


def fit_weights(preds: np.ndarray, y: np.ndarray, task: str) -> np.ndarray:
    """Non-negative weights summing to one that minimise the surrogate loss.

    Parameters
    ----------
    preds : ndarray of shape (n_members, n_rows) or (n_members, n_rows, n_classes)
        Members' predictions on the model scale (transformed target, or probabilities).
    """
    from scipy.optimize import minimize

    m = preds.shape[0]
    if m == 1:
        return np.ones(1)
    result = minimize(
        lambda w: _loss(preds, y, task, w),
        x0=np.full(m, 1.0 / m),
        method="SLSQP",
        bounds=[(0.0, 1.0)] * m,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0}],
        options={"ftol": 1e-12, "maxiter": 500},
    )
    w = np.clip(result.x, 0.0, None)
    return w / w.sum()


def blend(
    oofs: list[np.ndarray],
    tests: list[np.ndarray | None],
    y: np.ndarray,
    folds: Folds,
    metric: Metric,
    task: str,
    target_transform: str = "none",
    exclude: np.ndarray | None = None,
) -> BlendResult:
    """Blend members' out-of-fold predictions, scoring the blend with fold-local weights.

    Parameters
    ----------
    oofs, tests : lists of ndarray
        Each member's predictions on the target's own scale (as runs store them).
    y : ndarray
        Encoded classes or the regression target (own scale).
    folds : Folds
        The fold file every member was run on; the first repeat defines the held-out folds.
    exclude : bool ndarray, optional
        Declared outliers: no weight is fitted on them and the headline score leaves them out;
        ``score_all`` includes them.
    """
    forward, inverse = TRANSFORMS[target_transform if task == "regression" else "none"]
    preds = np.stack([forward(o) for o in oofs])  # (m, n[, K])
    y_fit = forward(np.asarray(y, float)) if task == "regression" else np.asarray(y)
    fold_of = folds.assignment[:, 0]
    validated = folds.validated()
    scored = validated & ~exclude if exclude is not None else validated
    rows = np.flatnonzero(scored)
    honest = np.full(preds.shape[1:], np.nan)
    fold_scores, fold_weights = [], []
    for k in range(folds.scheme.n_splits):
        held = rows[fold_of[rows] == k]
        rest = rows[fold_of[rows] != k]
        w = fit_weights(preds[:, rest], y_fit[rest], task)
        in_fold = np.flatnonzero(validated & (fold_of == k))  # excluded rows are predicted too
        honest[in_fold] = _combine(preds[:, in_fold], w)
        fold_weights.append(w)
        fold_scores.append(metric(y[held], inverse(honest[held])))
    weights = fit_weights(preds[:, rows], y_fit[rows], task)
    insample = inverse(_combine(preds[:, rows], weights))
    test = None
    if all(t is not None for t in tests):
        test = inverse(_combine(np.stack([forward(t) for t in tests]), weights))
    oof = np.full(preds.shape[1:], np.nan)
    oof[validated] = inverse(honest[validated])
    return BlendResult(
        weights=weights,
        oof=oof,
        test=test,
        score=metric(y[rows], oof[rows]),
        fold_scores=fold_scores,
        score_insample=metric(y[rows], insample),
        fold_weights=fold_weights,
        score_all=metric(y[validated], oof[validated]) if exclude is not None else None,
    )
