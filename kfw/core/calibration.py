"""Probability calibration fitted inside the folds: Platt, isotonic, temperature.

A calibrator maps a model's predicted probabilities to calibrated ones. In the fold loop it
is fitted on an inner split of the training part (the rows the inner model did not fit,
:func:`kfw.core.cv.fit_fold`) and applied to the validation part and the test set, so the
scored rows never choose it.

- ``platt`` (Platt 1999): a logistic regression on the logit of P(class 1); binary only.
- ``isotonic`` (Zadrozny & Elkan 2002): a non-decreasing step function of P(class 1); for
  multiclass, one per class (one-vs-rest), the rows renormalised to sum to one.
- ``temperature`` (Guo et al. 2017, "On calibration of modern neural networks"): one scalar
  ``T`` dividing the logits, ``softmax(z / T)``, chosen by the log loss. ``log p`` differs from
  the logits ``z`` by a per-row constant that the softmax cancels, so it is applied to the
  log-probabilities of any model; binary is the two-class case, ``sigmoid(logit(p) / T)``.
  It never changes which class is most likely (accuracy is unchanged), only the confidence.
"""

from __future__ import annotations

from typing import Any

import numpy as np

METHODS = ("platt", "isotonic", "temperature")
_EPS = 1e-12


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class Calibrator:
    """Fitted on ``(proba, y)``; :meth:`transform` maps probabilities of the same layout
    (binary: P(class 1), shape (n,); multiclass: (n, K))."""

    def __init__(self, method: str) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown calibration {method!r} (one of {', '.join(METHODS)})")
        self.method = method
        self.params_: dict[str, Any] = {}

    def fit(self, proba: np.ndarray, y: np.ndarray) -> Calibrator:
        proba, y = np.asarray(proba, dtype=np.float64), np.asarray(y).astype(np.int64)
        if self.method == "platt":
            if proba.ndim != 1:
                raise ValueError("platt scaling is binary; use temperature for several classes")
            from sklearn.linear_model import LogisticRegression

            lr = LogisticRegression(C=1e6).fit(_logit(proba)[:, None], y)  # all but unpenalised
            self.params_ = {"a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])}
        elif self.method == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            columns = [proba] if proba.ndim == 1 else [proba[:, k] for k in range(proba.shape[1])]
            targets = [y == 1] if proba.ndim == 1 else [y == k for k in range(proba.shape[1])]
            self.params_ = {
                "iso": [
                    IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(c, t)
                    for c, t in zip(columns, targets, strict=True)
                ]
            }
        else:
            self.params_ = {"temperature": _fit_temperature(proba, y)}
        return self

    def transform(self, proba: np.ndarray) -> np.ndarray:
        proba = np.asarray(proba, dtype=np.float64)
        if self.method == "platt":
            z = self.params_["a"] * _logit(proba) + self.params_["b"]
            return 1 / (1 + np.exp(-z))
        if self.method == "isotonic":
            isos = self.params_["iso"]
            if proba.ndim == 1:
                return isos[0].predict(proba)
            out = np.column_stack([iso.predict(proba[:, k]) for k, iso in enumerate(isos)])
            total = out.sum(axis=1, keepdims=True)
            # a row every class's step function sends to 0 keeps its uncalibrated probabilities
            return np.where(total > 0, out / np.where(total > 0, total, 1), proba)
        return _scaled(proba, self.params_["temperature"])

    def summary(self) -> dict[str, float]:
        """What the fit chose, for the run record (Platt's slope and intercept, or T)."""
        return {k: v for k, v in self.params_.items() if isinstance(v, float)}


def _scaled(proba: np.ndarray, temperature: float) -> np.ndarray:
    if proba.ndim == 1:
        return 1 / (1 + np.exp(-_logit(proba) / temperature))
    return _softmax(np.log(np.clip(proba, _EPS, 1.0)) / temperature)


def _fit_temperature(proba: np.ndarray, y: np.ndarray) -> float:
    """The ``T`` in [0.05, 20] that minimises the log loss of the scaled probabilities."""
    from scipy.optimize import minimize_scalar

    def loss(log_t: float) -> float:
        p = _scaled(proba, float(np.exp(log_t)))
        picked = np.where(y == 1, p, 1 - p) if p.ndim == 1 else p[np.arange(len(y)), y]
        return float(-np.mean(np.log(np.clip(picked, _EPS, 1.0))))

    found = minimize_scalar(loss, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(found.x))


def calibration_means(record: dict[str, Any]) -> dict[str, float] | None:
    """A calibrated run's mean ECE and Brier, before and after, over its folds' validation
    parts (what ``kfw cv`` prints and the write-up shows); None for a run not calibrated."""
    folds = [f["calibration"] for f in record.get("fold_scores") or [] if f.get("calibration")]
    if not folds:
        return None
    keys = ("ece_before", "ece_after", "brier_before", "brier_after")
    return {k: float(np.mean([f[k] for f in folds])) for k in keys}
