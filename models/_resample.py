"""Class weights and resampling as fitted steps: they touch the rows ``fit`` receives, only.

The fold loop fits a clone of the model on a fold's training part (:func:`kfw.core.cv.fit_fold`),
so a :class:`Resampled` model under-samples, over-samples or synthesises (SMOTE) from that
training part alone: validation rows, early-stopping rows (the ``eval_set``) and the test set
are only ever predicted. ``kfw cv -m logreg -p resample='"smote"'`` wraps any classifier in it
(:func:`kfw.core.registry.make_estimator`); so does ``class_weight = "balanced"``, whose weights
are computed on the same rows and passed as ``sample_weight`` (the library wrappers built on
``models._tabular.WeightedModel`` take it).

Targets per class, with ``ratio`` r (minority / majority after resampling, in (0, 1]):
``under`` keeps min(n_c, round(n_min / r)) rows of class c, drawn without replacement;
``over`` and ``smote`` bring each class up to max(n_c, round(r * n_max)) rows, by copies drawn
with replacement or by SMOTE's interpolation between a row and one of its ``k_neighbors``
nearest neighbours of the same class (Chawla et al. 2002, SMOTE: Synthetic Minority
Over-sampling Technique; SMOTE-NC for categorical columns).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from models._tabular import categorical_columns, check_input, check_target, is_frame

METHODS = ("under", "over", "smote")
MISSING = "__missing__"  # a categorical NaN as its own level while SMOTE-NC sees the rows
# attributes of the fitted inner model the fold loop and the run record read
_PASSED = (
    "best_iteration_",
    "history_",
    "feature_importances_",
    "importance_names_",
    "n_iter_",
)


def pass_fitted(wrapper: Any, names: tuple[str, ...]) -> None:
    """Copy the fitted attributes ``names`` of ``wrapper.estimator_`` onto the wrapper (those
    the fold loop reads); one the inner estimator lacks is removed, so a second fit resets."""
    for name in names:
        if hasattr(wrapper, name):
            delattr(wrapper, name)
        if hasattr(wrapper.estimator_, name):
            setattr(wrapper, name, getattr(wrapper.estimator_, name))


def accepts(estimator: Any, name: str) -> bool:
    """Whether ``estimator.fit`` takes the keyword ``name``."""
    import inspect

    try:
        return name in inspect.signature(estimator.fit).parameters
    except (TypeError, ValueError):
        return False


def targets(counts: dict[Any, int], method: str, ratio: float) -> dict[Any, int]:
    """Rows per class after resampling (see the module docstring)."""
    if method == "under":
        cap = round(min(counts.values()) / ratio)
        return {c: min(n, cap) for c, n in counts.items()}
    floor = round(ratio * max(counts.values()))
    return {c: max(n, floor) for c, n in counts.items()}


class Resampled(ClassifierMixin, MetaEstimatorMixin, BaseEstimator):
    """A classifier fitted on resampled (and / or class-weighted) copies of its training rows.

    Parameters
    ----------
    estimator : classifier
        Cloned and fitted on the resampled rows; it predicts.
    method : {"under", "over", "smote"} or None
        How the training rows are resampled; None resamples nothing (class weights only).
    ratio : float, optional
        Minority / majority class size after resampling, in (0, 1]; default 1.0 (balanced).
    k_neighbors : int
        SMOTE's neighbours (fewer when a class has fewer rows).
    class_weight : {"balanced"} or None
        ``"balanced"``: each row weighs n / (n_classes * n_c), computed on the (resampled)
        training rows and passed to the inner ``fit`` as ``sample_weight``; refused when the
        inner estimator's ``fit`` takes no ``sample_weight``.
    random_state : int
        Seeds the draws and SMOTE.

    Attributes
    ----------
    estimator_ : the fitted inner estimator
    classes_ : ndarray
    counts_ : dict
        Rows per class the inner estimator was fitted on.
    """

    def __init__(
        self,
        estimator: Any,
        method: Literal["under", "over", "smote"] | None = None,
        ratio: float | None = None,
        k_neighbors: int = 5,
        class_weight: Literal["balanced"] | None = None,
        random_state: int = 0,
    ) -> None:
        self.estimator = estimator
        self.method = method
        self.ratio = ratio
        self.k_neighbors = k_neighbors
        self.class_weight = class_weight
        self.random_state = random_state

    def check(self) -> None:
        """Raise ValueError (one line) for a setting that cannot work, before any data is read."""
        if self.method not in (None, *METHODS):
            raise ValueError(f"resample must be one of {', '.join(METHODS)}, got {self.method!r}")
        ratio = self.ratio
        if ratio is not None and (
            isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 1
        ):
            raise ValueError(f"resample_ratio must be a number in (0, 1], got {ratio!r}")
        if ratio is not None and self.method is None:
            raise ValueError("resample_ratio needs resample (under, over or smote)")
        if self.class_weight not in (None, "balanced"):
            raise ValueError(f"class_weight must be 'balanced', got {self.class_weight!r}")
        if self.class_weight is not None and not accepts(self.estimator, "sample_weight"):
            raise ValueError(
                f"class_weight: {type(self.estimator).__name__}.fit takes no sample_weight "
                "(use resample instead)"
            )
        if self.method is None and self.class_weight is None:
            raise ValueError("nothing to do: give resample or class_weight")

    # the early-stopping protocol of kfw.core.cv, passed through to the inner estimator

    def stops_early(self) -> bool:
        method = getattr(self.estimator, "stops_early", None)
        return bool(method()) if callable(method) else False

    def fixed_length(self, rounds: int) -> dict[str, Any]:
        return {f"estimator__{k}": v for k, v in self.estimator.fixed_length(rounds).items()}

    def fit(
        self,
        X: Any,
        y: Any,
        eval_set: tuple[Any, Any] | None = None,
        callback: Any = None,
    ) -> Resampled:
        """Resample ``(X, y)`` and fit the inner estimator on it.

        ``eval_set`` (early-stopping rows) and ``callback`` go to the inner ``fit`` as they
        are, when it takes them: the eval set is never resampled.
        """
        self.check()
        X = check_input(self, X, reset=True)
        y = check_target(self, X, y)
        check_classification_targets(y)
        rng = np.random.default_rng(self.random_state)
        if self.method is not None:
            X, y = self._resample(X, y, rng)
        kwargs: dict[str, Any] = {}
        if eval_set is not None and accepts(self.estimator, "eval_set"):
            kwargs["eval_set"] = eval_set
        if callback is not None and accepts(self.estimator, "callback"):
            kwargs["callback"] = callback
        if self.class_weight == "balanced":
            labels, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
            kwargs["sample_weight"] = len(y) / (len(labels) * counts[inverse])  # (n_samples,)
        classes, counts = np.unique(y, return_counts=True)
        self.counts_ = {_plain(c): int(n) for c, n in zip(classes, counts, strict=True)}
        self.estimator_ = clone(self.estimator).fit(X, y, **kwargs)
        self.classes_ = getattr(self.estimator_, "classes_", classes)
        pass_fitted(self, _PASSED)
        return self

    def _resample(self, X: Any, y: np.ndarray, rng: np.random.Generator) -> tuple[Any, np.ndarray]:
        labels, counts = np.unique(y, return_counts=True)
        if len(labels) < 2:
            raise ValueError(f"y has only 1 class ({labels[0]!r}); a classifier needs at least 2")
        want = targets(
            {_plain(c): int(n) for c, n in zip(labels, counts, strict=True)},
            self.method,
            1.0 if self.ratio is None else float(self.ratio),
        )
        if self.method == "smote":
            return _smote(X, y, want, self.k_neighbors, rng)
        keep = []
        for label in labels:
            rows = np.flatnonzero(y == label)
            n = want[_plain(label)]
            if self.method == "under":
                keep.append(np.sort(rng.choice(rows, size=n, replace=False)))
            else:  # over: the rows themselves, then copies drawn with replacement
                keep += [rows, rng.choice(rows, size=n - len(rows), replace=True)]
        order = np.sort(np.concatenate(keep)) if self.method == "under" else np.concatenate(keep)
        return _take(X, order), y[order]

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return self.estimator_.predict(check_input(self, X, reset=False))

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return self.estimator_.predict_proba(check_input(self, X, reset=False))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.categorical = True
        return tags


def _plain(label: Any) -> Any:
    return label.item() if isinstance(label, np.generic) else label


def _take(X: Any, rows: np.ndarray) -> Any:
    return X.iloc[rows].reset_index(drop=True) if is_frame(X) else np.asarray(X)[rows]


def _smote(
    X: Any, y: np.ndarray, want: dict[Any, int], k_neighbors: int, rng: np.random.Generator
) -> tuple[Any, np.ndarray]:
    """The rows as given, then SMOTE's synthetic rows (back in the frame's own dtypes).

    SMOTE needs numbers without NaN: numeric NaN takes the median of these rows, a categorical
    NaN is a level of its own (SMOTE-NC, or SMOTE-N when every column is categorical); the
    original rows are returned untouched, NaN included. A class of one row has no segment to
    interpolate on: it is over-sampled by copies of that row, appended last.
    """
    import pandas as pd
    from imblearn.over_sampling import SMOTE, SMOTEN, SMOTENC

    have = {c: int(np.sum(y == c)) for c in want}
    single = {c: n - 1 for c, n in want.items() if have[c] == 1 and n > 1}
    want = {c: (1 if c in single else n) for c, n in want.items()}
    short = [c for c, n in want.items() if n > have[c]]
    if not short:
        return _copies(X, y, single)
    k = min(k_neighbors, min(have[c] for c in short) - 1)
    seed = int(rng.integers(2**31 - 1))
    frame = X if is_frame(X) else pd.DataFrame(np.asarray(X, dtype=np.float64))
    cats = categorical_columns(frame)
    nums = [c for c in frame.columns if c not in cats]
    filled = frame.copy()
    for c in nums:
        column = filled[c].astype(np.float64)
        median = column.median()
        filled[c] = column.fillna(0.0 if np.isnan(median) else median)
    for c in cats:  # as strings: the encoders inside SMOTE-NC sort each column's levels
        filled[c] = filled[c].astype(object).where(filled[c].notna(), MISSING).astype(str)
    if not cats:
        sampler: Any = SMOTE(sampling_strategy=want, k_neighbors=k, random_state=seed)
        values = filled.to_numpy(dtype=np.float64)
    elif not nums:
        sampler = SMOTEN(sampling_strategy=want, k_neighbors=k, random_state=seed)
        values = filled.to_numpy(dtype=object)
    else:
        where = [frame.columns.get_loc(c) for c in cats]
        sampler = SMOTENC(where, sampling_strategy=want, k_neighbors=k, random_state=seed)
        values = filled.to_numpy(dtype=object)
    X_res, y_res = sampler.fit_resample(values, y)
    n = len(y)
    synthetic = pd.DataFrame(X_res[n:], columns=frame.columns)
    for c in frame.columns:
        dtype = frame[c].dtype
        if c in nums:
            column = synthetic[c].astype(np.float64)
            if pd.api.types.is_integer_dtype(dtype):
                column = column.round()  # an integer feature stays an integer
            synthetic[c] = column.astype(dtype)
        else:
            levels = dtype.categories if isinstance(dtype, pd.CategoricalDtype) else frame[c]
            lookup = {str(v): v for v in pd.Series(levels).dropna().unique()}
            column = synthetic[c].map(lookup)  # MISSING (no level of its own) becomes NaN
            if isinstance(dtype, pd.CategoricalDtype):
                synthetic[c] = pd.Categorical(column, categories=dtype.categories)
            else:
                synthetic[c] = column.astype(dtype) if column.notna().all() else column
    out = pd.concat([frame.reset_index(drop=True), synthetic], ignore_index=True)
    y_out = np.concatenate([y, np.asarray(y_res[n:], dtype=y.dtype)])
    return _copies(out if is_frame(X) else out.to_numpy(dtype=np.float64), y_out, single)


def _copies(X: Any, y: np.ndarray, extra: dict[Any, int]) -> tuple[Any, np.ndarray]:
    """``X, y`` with ``extra[c]`` more copies of the (single) row of each class c."""
    if not extra:
        return X, y
    rows = np.concatenate(
        [np.arange(len(y))] + [np.repeat(np.flatnonzero(y == c)[:1], n) for c, n in extra.items()]
    )
    return _take(X, rows), y[rows]
