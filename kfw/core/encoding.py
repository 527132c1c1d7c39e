"""Fitted encoders that run inside the fold loop (fit on the training part only).

:class:`CategoricalAligner` is the last fitted step of every kfw pipeline: it fixes the
categories of each categorical column to those seen in the training part, so the training,
validation and test frames share one code book and a category unseen in training becomes
missing instead of silently taking another category's code.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data


def _is_categorical(dtype: Any) -> bool:
    import pandas as pd

    return (
        isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_string_dtype(dtype)
        or pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_bool_dtype(dtype)
    )


class CategoricalAligner(TransformerMixin, BaseEstimator):
    """Cast categorical columns to ``category`` with the training part's categories.

    Numeric columns become float64 (nullable integers included, missing as NaN). Categorical
    columns (category, string, object or bool dtype) become ``category`` with the sorted
    values seen in ``fit``; values unseen in ``fit`` become missing.

    Attributes
    ----------
    categories_ : dict[str, list]
        The categories learned for each categorical column.
    feature_names_in_ : ndarray of str
    """

    def fit(self, X: Any, y: Any = None) -> CategoricalAligner:
        validate_data(self, X, skip_check_array=True, reset=True)
        self.categories_ = {}
        for col, dtype in X.dtypes.items():
            if _is_categorical(dtype):
                values = X[col].dropna()
                if isinstance(dtype, _category_type()):  # the levels present, not every row
                    levels = values.unique().tolist()
                else:
                    levels = values.astype(str).unique().tolist()
                self.categories_[col] = sorted(set(levels), key=str)
        return self

    def transform(self, X: Any) -> Any:
        import pandas as pd

        check_is_fitted(self)
        validate_data(self, X, skip_check_array=True, reset=False)
        out = {}
        for col in X.columns:
            if col in self.categories_:
                values = X[col]
                known = self.categories_[col]
                if isinstance(values.dtype, pd.CategoricalDtype):
                    # recode the codes: levels outside ``known`` become missing
                    out[col] = values.cat.set_categories(known).array
                    continue
                values = values.astype(object).where(values.isna(), values.astype(str))
                # unseen values become missing explicitly (pandas will refuse to do it silently)
                values = values.where(values.isin(known))
                out[col] = pd.Categorical(values, categories=known)
            else:
                out[col] = pd.to_numeric(X[col], errors="raise").astype(np.float64)
        return pd.DataFrame(out, index=X.index)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self)
        return np.asarray(self.feature_names_in_, dtype=object)


def _category_type() -> type:
    import pandas as pd

    return pd.CategoricalDtype


# ---------------------------------------------------------------------------------------------
# target and count encoding


def _keys(frame: Any, columns: list[str], pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """The values each encoding keys on: a column, or a pair of columns joined as ``a__b``."""
    keys = {c: frame[c] for c in columns}
    for a, b in pairs:
        # one string per observed combination; a missing value is a level of its own
        keys[f"{a}__{b}"] = frame[a].astype(str) + "\x1f" + frame[b].astype(str)
    return keys


def _lookup(values: Any, uniques: Any) -> np.ndarray:
    """Codes of ``values`` in a fitted vocabulary; -1 for values never seen."""
    import pandas as pd

    index = pd.Index(uniques)
    codes = index.get_indexer(values)
    if index.hasnans:  # get_indexer matches NaN to NaN only by position
        codes[pd.isna(values)] = int(np.flatnonzero(pd.isna(index))[0])
    return codes


def _encode_stats(
    sums: np.ndarray,
    counts: np.ndarray,
    squares: np.ndarray,
    prior: float,
    variance: float,
    smooth: Any,
) -> np.ndarray:
    """Smoothed category means from per-category sums, counts and sums of squares.

    ``smooth`` a number: the m-estimate ``(sum + m * prior) / (count + m)``. ``"auto"``:
    the empirical Bayes blend of Micci-Barreca (2001), eq. 5-6, as scikit-learn computes it:
    ``lambda = n var(y) / (n var(y) + s2_c)`` with ``s2_c`` the category's own variance.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        if smooth == "auto":
            means = sums / counts
            ssd = np.maximum(squares - sums * means, 0.0)  # sum of squared deviations
            lam = variance * counts / (variance * counts + ssd / counts)
            enc = lam * means + (1 - lam) * prior
        else:
            enc = (sums + smooth * prior) / (counts + smooth)
    return np.where(np.isnan(enc), prior, enc)


class TargetEncoder(TransformerMixin, BaseEstimator):
    """Out-of-fold target encoding of categorical columns and column pairs.

    Behaves like scikit-learn's ``TargetEncoder``: ``fit_transform(X, y)`` returns
    *cross-fitted* encodings of the rows it was fitted on (each row encoded with statistics
    from the other ``cv`` folds, so a row never sees its own target), while ``transform(X)``
    applies statistics from all fitted rows. Inside kfw's fold loop that means the training
    part is encoded out of fold (an inner K-fold on the training part only) and the
    validation part and the test set with the whole training part's statistics.

    Parameters
    ----------
    columns : list of str or None
        Columns to encode; None encodes every categorical (category, string, object) column.
    pairs : list of (str, str)
        Column pairs encoded jointly, as ``a__b``.
    smooth : "auto" or float
        Shrinkage towards the prior: an m-estimate with ``m = smooth``, or ``"auto"`` for the
        empirical Bayes estimate (scikit-learn's default).
    min_count : int
        Categories seen fewer times in the fitted rows are encoded as the prior (rare
        categories, like unseen ones, fall back to it).
    cv : int
        Inner folds of ``fit_transform`` (stratified for class targets, as scikit-learn).
    shuffle, random_state
        Shuffling of the inner folds.
    target_type : {"auto", "continuous", "binary", "multiclass"}
        Multiclass targets get one column per class (``<col>_te_<class>``).
    drop_original : bool
        Drop the encoded columns from the output (the encodings replace them).

    Attributes
    ----------
    encodings_ : dict[str, ndarray]
        Per key, the encoding of each category (``(n_categories,)`` or
        ``(n_categories, n_classes)``); ``categories_`` holds the matching values.
    target_mean_ : float or ndarray
        The prior.
    """

    def __init__(
        self,
        columns: list[str] | None = None,
        pairs: list[tuple[str, str]] | tuple = (),
        smooth: Any = "auto",
        min_count: int = 1,
        cv: int = 5,
        shuffle: bool = True,
        random_state: int | None = 0,
        target_type: str = "auto",
        drop_original: bool = True,
    ) -> None:
        self.columns = columns
        self.pairs = pairs
        self.smooth = smooth
        self.min_count = min_count
        self.cv = cv
        self.shuffle = shuffle
        self.random_state = random_state
        self.target_type = target_type
        self.drop_original = drop_original

    # -- fitting ------------------------------------------------------------------------------
    def _prepare(self, X: Any, y: Any) -> tuple[Any, np.ndarray]:
        import pandas as pd
        from sklearn.utils.multiclass import type_of_target

        if not isinstance(X, pd.DataFrame):
            X = pd.DataFrame(np.asarray(X, dtype=object)).rename(columns=str)
        validate_data(self, X, skip_check_array=True, reset=True)
        if self.smooth != "auto" and (not isinstance(self.smooth, int | float) or self.smooth < 0):
            raise ValueError(f"smooth must be 'auto' or a non-negative number, got {self.smooth!r}")
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(X):
            raise ValueError(
                f"y must be 1-d with one value per row of X ({len(X)}), got shape {y.shape}"
            )
        kind = type_of_target(y) if self.target_type == "auto" else self.target_type
        if kind not in ("continuous", "binary", "multiclass"):
            raise ValueError(
                f"target type {kind!r} is not supported (continuous, binary, multiclass)"
            )
        self.target_type_ = kind
        if kind == "continuous":
            self.classes_ = None
            Y = y.astype(np.float64)[:, None]  # (n, 1)
            if not np.isfinite(Y).all():
                raise ValueError("y contains NaN or infinity")
        else:
            self.classes_, codes = np.unique(y, return_inverse=True)
            Y = np.eye(len(self.classes_))[codes]  # (n, n_classes) one-hot
            if kind == "binary":
                Y = Y[:, 1:]  # (n, 1): the positive class, as scikit-learn
        cats = [c for c, d in X.dtypes.items() if _is_categorical(d)]
        self.columns_ = list(self.columns) if self.columns is not None else cats
        self.pairs_ = [tuple(p) for p in self.pairs]
        missing = [
            c for c in [*self.columns_, *(c for p in self.pairs_ for c in p)] if c not in X.columns
        ]
        if missing:
            raise ValueError(f"column {missing[0]!r} is not in X")
        return X, Y

    @staticmethod
    def _stats(codes: np.ndarray, Y: np.ndarray, n_cat: int, groups: np.ndarray, n_groups: int):
        # per (category, group) sums, squares and counts with one bincount each
        key = codes.astype(np.int64) * n_groups + groups
        size = n_cat * n_groups
        counts = np.bincount(key, minlength=size).reshape(n_cat, n_groups)
        sums = np.stack(
            [np.bincount(key, Y[:, j], size).reshape(n_cat, n_groups) for j in range(Y.shape[1])],
            -1,
        )
        squares = np.stack(
            [
                np.bincount(key, Y[:, j] ** 2, size).reshape(n_cat, n_groups)
                for j in range(Y.shape[1])
            ],
            -1,
        )
        return counts, sums, squares  # (n_cat, n_groups), (n_cat, n_groups, n_out) x 2

    def _encode(
        self, counts, sums, squares, n: int, y_sum: np.ndarray, y_sq: np.ndarray
    ) -> np.ndarray:
        prior = y_sum / n
        variance = y_sq / n - prior**2
        enc = np.column_stack(
            [
                _encode_stats(sums[:, j], counts, squares[:, j], prior[j], variance[j], self.smooth)
                for j in range(len(prior))
            ]
        )  # (n_cat, n_out)
        enc[counts < self.min_count] = prior
        return enc

    def fit(self, X: Any, y: Any) -> TargetEncoder:
        """Learn each category's encoding from all rows (what ``transform`` applies)."""
        self._fit_all(*self._prepare(X, y))
        return self

    def _fit_all(self, X: Any, Y: np.ndarray) -> dict[str, tuple[np.ndarray, Any]]:
        import pandas as pd

        keys = {
            name: pd.factorize(values, use_na_sentinel=False)
            for name, values in _keys(X, self.columns_, self.pairs_).items()
        }
        n = len(Y)
        self.target_mean_ = Y.mean(axis=0) if Y.shape[1] > 1 else float(Y.mean())
        self.encodings_, self.categories_ = {}, {}
        for name, (codes, uniques) in keys.items():
            counts, sums, squares = self._stats(codes, Y, len(uniques), np.zeros(n, np.int64), 1)
            self.encodings_[name] = self._encode(
                counts[:, 0], sums[:, 0], squares[:, 0], n, Y.sum(0), (Y**2).sum(0)
            )
            self.categories_[name] = uniques
        return keys

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> Any:
        """Fit on all rows; return each row encoded with the *other* inner folds' statistics."""
        from sklearn.model_selection import KFold, StratifiedKFold

        X, Y = self._prepare(X, y)
        keys = self._fit_all(X, Y)
        splitter_cls = KFold if self.target_type_ == "continuous" else StratifiedKFold
        seed = self.random_state if self.shuffle else None
        splitter = splitter_cls(self.cv, shuffle=self.shuffle, random_state=seed)
        groups = np.empty(len(Y), dtype=np.int64)
        for k, (_, held) in enumerate(splitter.split(np.zeros(len(Y)), np.asarray(y))):
            groups[held] = k
        # statistics of the other folds = totals minus the fold's own
        fold_n = np.bincount(groups, minlength=self.cv)  # (cv,)
        fold_sum = np.stack([np.bincount(groups, Y[:, j], self.cv) for j in range(Y.shape[1])], -1)
        fold_sq = np.stack(
            [np.bincount(groups, Y[:, j] ** 2, self.cv) for j in range(Y.shape[1])], -1
        )
        encoded = {}
        for name, (codes, uniques) in keys.items():
            counts, sums, squares = self._stats(codes, Y, len(uniques), groups, self.cv)
            out = np.empty((len(Y), Y.shape[1]))
            for k in range(self.cv):
                rest = lambda a, k=k: a.sum(axis=1) - a[:, k]  # noqa: E731  (other folds)
                enc = self._encode(
                    rest(counts), rest(sums), rest(squares), len(Y) - fold_n[k],
                    fold_sum.sum(0) - fold_sum[k], fold_sq.sum(0) - fold_sq[k],
                )  # fmt: skip
                held = groups == k
                out[held] = enc[codes[held]]
            encoded[name] = out
        return self._assemble(X, encoded)

    # -- applying ------------------------------------------------------------------------------
    def transform(self, X: Any) -> Any:
        """Encode with statistics from all fitted rows; unseen categories get the prior."""
        import pandas as pd

        check_is_fitted(self)
        if not isinstance(X, pd.DataFrame):
            X = pd.DataFrame(np.asarray(X, dtype=object)).rename(columns=str)
        validate_data(self, X, skip_check_array=True, reset=False)
        prior = np.atleast_1d(self.target_mean_)
        encoded = {}
        for name, values in _keys(X, self.columns_, self.pairs_).items():
            enc = self.encodings_[name]
            codes = _lookup(values.to_numpy(), self.categories_[name])
            out = enc[np.maximum(codes, 0)]
            out[codes < 0] = prior
            encoded[name] = out
        return self._assemble(X, encoded)

    def _assemble(self, X: Any, encoded: dict[str, np.ndarray]) -> Any:
        import pandas as pd

        names = self._output_names()
        columns = {}
        for key, values in encoded.items():
            for j, col in enumerate(names[key]):
                columns[col] = values[:, j]
        out = X.drop(columns=self.columns_) if self.drop_original else X.copy()
        return pd.concat([out, pd.DataFrame(columns, index=X.index)], axis=1)

    def _output_names(self) -> dict[str, list[str]]:
        keys = [*self.columns_, *(f"{a}__{b}" for a, b in self.pairs_)]
        if self.target_type_ == "multiclass":
            return {k: [f"{k}_te_{c}" for c in self.classes_] for k in keys}
        return {k: [f"{k}_te"] for k in keys}

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self)
        kept = [
            c for c in self.feature_names_in_ if not (self.drop_original and c in self.columns_)
        ]
        return np.asarray(
            kept + [n for names in self._output_names().values() for n in names], dtype=object
        )


class CountEncoder(TransformerMixin, BaseEstimator):
    """Replace (or add) categorical columns by how often each value occurs in the fitted rows.

    Inside the fold loop it counts the training part. Counts carry no target, so computing
    them over train + test together (:func:`count_features`, in row features) is allowed and
    often better: it sees the test set's own frequencies.

    Parameters
    ----------
    columns : list of str or None
        Columns to encode; None: every categorical column.
    normalize : bool
        Frequencies (share of rows) instead of counts.
    drop_original : bool
        Drop the encoded columns from the output.
    """

    def __init__(
        self, columns: list[str] | None = None, normalize: bool = False, drop_original: bool = False
    ) -> None:
        self.columns = columns
        self.normalize = normalize
        self.drop_original = drop_original

    def fit(self, X: Any, y: Any = None) -> CountEncoder:
        validate_data(self, X, skip_check_array=True, reset=True)
        self.columns_ = (
            list(self.columns)
            if self.columns is not None
            else [c for c, d in X.dtypes.items() if _is_categorical(d)]
        )
        self.counts_ = {
            c: X[c].value_counts(dropna=False, normalize=self.normalize) for c in self.columns_
        }
        return self

    def transform(self, X: Any) -> Any:
        check_is_fitted(self)
        validate_data(self, X, skip_check_array=True, reset=False)
        out = X.drop(columns=self.columns_) if self.drop_original else X.copy()
        for c in self.columns_:
            counts = self.counts_[c]
            codes = _lookup(X[c].to_numpy(), counts.index)
            values = counts.to_numpy(float)[np.maximum(codes, 0)]
            values[codes < 0] = 0.0  # never seen in the fitted rows
            out[f"{c}_count"] = values
        return out


def count_features(frame: Any, columns: list[str], normalize: bool = False) -> Any:
    """Count (or frequency) of each value over all rows of ``frame``, for row features.

    Meant for train + test together: counts use no target, so this is not a leak, and it
    reflects how common a value is where the model will be applied.
    """
    import pandas as pd

    out = {}
    for c in columns:
        counts = frame[c].map(frame[c].value_counts(dropna=False, normalize=normalize))
        counts[frame[c].isna()] = frame[c].isna().mean() if normalize else frame[c].isna().sum()
        out[f"{c}_count"] = counts.astype(float)
    return pd.DataFrame(out, index=frame.index)
