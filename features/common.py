"""Reusable, fold-local feature transformers.

Every transformer here follows the scikit-learn contract (``__init__`` stores parameters,
``fit`` learns ``name_`` attributes and returns ``self``) and works on pandas DataFrames in
and out, because the models downstream need column names and ``category`` dtypes. kfw clones
them in every fold and fits them on the training part only, so no statistic of a validation
or test row reaches training.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted


def _check_frame(X: object) -> pd.DataFrame:
    # These transformers key everything on column names; an array would silently misalign.
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(X).__name__}")
    return X


def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


class GroupMedianImputer(TransformerMixin, BaseEstimator):
    """Fill missing numeric values with the median of the row's group.

    Parameters
    ----------
    group : str
        Column whose values define the groups (e.g. ``"Neighborhood"``).
    columns : list of str
        Numeric columns to impute.

    Attributes
    ----------
    medians_ : dict of str to pandas.Series
        Per column, the training median of each group.
    global_medians_ : dict of str to float
        Per column, the training median overall: the fallback for groups unseen in fit or
        with no observed value.
    feature_names_in_ : numpy.ndarray
        Column names seen in ``fit``.
    """

    def __init__(self, group: str, columns: list[str]) -> None:
        self.group = group
        self.columns = columns

    def fit(self, X: pd.DataFrame, y: object = None) -> GroupMedianImputer:
        X = _check_frame(X)
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        keys = X[self.group].astype(object)
        self.medians_ = {c: X[c].groupby(keys).median() for c in self.columns}
        self.global_medians_ = {c: float(X[c].median()) for c in self.columns}
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self)
        X = _check_frame(X).copy()
        keys = X[self.group].astype(object)
        for c in self.columns:
            by_group = keys.map(self.medians_[c]).astype(float)
            X[c] = X[c].fillna(by_group).fillna(self.global_medians_[c])
        return X


class SkewCorrector(TransformerMixin, BaseEstimator):
    """Reduce right skew of non-negative numeric columns judged skewed on the training data.

    A column is transformed when its training skewness exceeds ``threshold`` and its training
    minimum is non-negative. Values below zero at transform time are clipped to zero so the
    transform stays finite.

    Parameters
    ----------
    threshold : float, default=0.75
        Skewness (Fisher, bias-corrected) above which a column is transformed.
    columns : list of str or None, default=None
        Candidate columns; ``None`` means every numeric column.
    method : {"log1p", "boxcox1p"}, default="log1p"
        ``log1p`` applies ``log(1 + x)``; ``boxcox1p`` applies the Box-Cox transform to
        ``1 + x`` with the lambda that maximises the training log-likelihood, per column.

    Attributes
    ----------
    skewness_ : dict of str to float
        Training skewness of every candidate column.
    lambdas_ : dict of str to float
        The transformed columns and their Box-Cox lambda (0.0 means log1p).
    feature_names_in_ : numpy.ndarray
        Column names seen in ``fit``.
    """

    def __init__(
        self, threshold: float = 0.75, columns: list[str] | None = None, method: str = "log1p"
    ) -> None:
        self.threshold = threshold
        self.columns = columns
        self.method = method

    def fit(self, X: pd.DataFrame, y: object = None) -> SkewCorrector:
        X = _check_frame(X)
        if self.method not in ("log1p", "boxcox1p"):
            raise ValueError(f"method must be 'log1p' or 'boxcox1p', got {self.method!r}")
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        candidates = self.columns
        if candidates is None:
            candidates = [c for c in X.columns if _is_numeric(X[c])]
        self.skewness_, self.lambdas_ = {}, {}
        for c in candidates:
            values = X[c].dropna().to_numpy(dtype=float)
            if values.size < 3 or np.ptp(values) == 0:
                continue
            self.skewness_[c] = float(stats.skew(values, bias=False))
            if self.skewness_[c] <= self.threshold or values.min() < 0:
                continue
            lam = 0.0
            if self.method == "boxcox1p":
                lam = float(stats.boxcox_normmax(1.0 + values, method="mle"))
            self.lambdas_[c] = lam
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self)
        X = _check_frame(X).copy()
        for c, lam in self.lambdas_.items():
            x = 1.0 + np.clip(X[c].to_numpy(dtype=float), 0.0, None)
            X[c] = np.log(x) if lam == 0.0 else (x**lam - 1.0) / lam
        return X


class QuantileClipper(TransformerMixin, BaseEstimator):
    """Clip numeric columns to quantiles of their training distribution (winsorizing).

    Linear models extrapolate without bound: a house far larger than any in the training part
    gets a price from the slope alone. Clipping to training quantiles bounds that, the way a
    tree model is bounded by its leaves.

    Parameters
    ----------
    columns : list of str or None, default=None
        Columns to clip; ``None`` means every numeric column.
    lower : float, default=0.0
        Lower quantile; 0.0 clips to the training minimum.
    upper : float, default=0.99
        Upper quantile; 1.0 clips to the training maximum, which bounds a linear model's
        extrapolation and leaves a tree model's predictions unchanged.

    Attributes
    ----------
    bounds_ : dict of str to tuple of float
        Per column, the (lower, upper) training quantiles.
    feature_names_in_ : numpy.ndarray
        Column names seen in ``fit``.
    """

    def __init__(
        self, columns: list[str] | None = None, lower: float = 0.0, upper: float = 0.99
    ) -> None:
        self.columns = columns
        self.lower = lower
        self.upper = upper

    def fit(self, X: pd.DataFrame, y: object = None) -> QuantileClipper:
        X = _check_frame(X)
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        columns = self.columns
        if columns is None:
            columns = [c for c in X.columns if _is_numeric(X[c])]
        self.bounds_ = {
            c: (float(X[c].quantile(self.lower)), float(X[c].quantile(self.upper))) for c in columns
        }
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self)
        X = _check_frame(X).copy()
        for c, (lo, hi) in self.bounds_.items():
            X[c] = X[c].astype(float).clip(lo, hi)
        return X


class GroupTargetRate(TransformerMixin, BaseEstimator):
    """Mean target of the *other* training rows that share a group with each row.

    A row's group is the union of the training rows that share its value in any of ``keys``
    (e.g. the same ticket *or* the same surname-and-fare). Rows of the data passed to ``fit``
    are looked up by position. ``transform`` (validation and test rows) uses every training
    member of the group; ``fit_transform`` (the training rows) never lets a row see its own
    label. As with scikit-learn's ``TargetEncoder``, ``fit(X, y).transform(X)`` therefore
    differs from ``fit_transform(X, y)``: only the latter is leak-free on the training rows.

    How the training rows are encoded (``encoding``):

    - ``"kfold"`` (the default): the training rows are split into ``n_splits`` inner folds and
      a row's rate uses only the group members in the other inner folds, as scikit-learn's
      ``TargetEncoder`` cross-fits.
    - ``"loo"``: leave-one-out, every other member. Within a group of n with S positives a
      positive row sees (S-1)/(n-1) and a negative row S/(n-1), so on the training rows the
      feature orders every group by the rows' own labels, even for pure noise, and a model
      can learn that order, which holds nowhere else (Prokhorenkova et al. 2018, "CatBoost:
      unbiased boosting with categorical features", section 3.2). The K-fold rate also drops
      the group-mates that share a row's inner fold, which breaks the order in most groups
      (a row alone in its inner fold is still encoded as leave-one-out would). Neither leaks
      into a CV score: validation and test rows are encoded from training labels only.

    The key columns are consumed: the output drops them and appends ``{prefix}_known``, the
    number of other training members, and ``{prefix}_rate``, their mean target (``fill`` when
    there are none). With ``flag``, it also appends ``{prefix}_rate_{flag}``: the mean target
    of the members whose ``flag`` column is true.

    Parameters
    ----------
    keys : list of str
        Columns whose equal (non-missing) values put two rows in the same group.
    flag : str or None, default=None
        A 0/1 column restricting the extra rate to flagged members; the column is kept.
    fill : float, default=0.5
        The rate given when a row has no member with a known target; ``np.nan`` leaves it missing.
    prefix : str, default="group"
        Prefix of the output column names.
    encoding : {"kfold", "loo"}, default="kfold"
        How ``fit_transform`` encodes the training rows (see above).
    n_splits : int, default=5
        Inner folds of the ``"kfold"`` encoding.
    random_state : int, default=0
        Seeds the inner folds.

    Attributes
    ----------
    members_ : dict of str to dict
        Per key column, each training value mapped to the training positions holding it.
    y_ : numpy.ndarray of shape (n_train,)
        The training targets, as float.
    flag_ : numpy.ndarray of shape (n_train,) or None
        The training rows' flag, as bool.
    feature_names_in_ : numpy.ndarray
        Column names seen in ``fit``.
    """

    def __init__(
        self,
        keys: list[str],
        flag: str | None = None,
        fill: float = 0.5,
        prefix: str = "group",
        encoding: str = "kfold",
        n_splits: int = 5,
        random_state: int = 0,
    ) -> None:
        self.keys = keys
        self.flag = flag
        self.fill = fill
        self.prefix = prefix
        self.encoding = encoding
        self.n_splits = n_splits
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y: object) -> GroupTargetRate:
        X = _check_frame(X)
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        if y is None:
            raise ValueError("GroupTargetRate requires y to be passed, but the target y is None")
        self.y_ = np.asarray(y, dtype=float)
        if len(self.y_) != len(X):
            raise ValueError(f"X has {len(X)} rows but y has {len(self.y_)}")
        self.flag_ = None if self.flag is None else X[self.flag].to_numpy(dtype=float) == 1
        positions = pd.Series(np.arange(len(X)))
        self.members_ = {
            k: positions.groupby(X[k].to_numpy(dtype=object)).agg(frozenset).to_dict()
            for k in self.keys
        }
        return self

    def _groups(self, X: pd.DataFrame) -> list[set[int]]:
        # NaN keys are dropped by groupby in fit, so a missing key never links two rows.
        values = zip(*(X[k].to_numpy(dtype=object) for k in self.keys), strict=True)
        return [
            set().union(*(self.members_[k].get(v, ()) for k, v in zip(self.keys, row, strict=True)))
            for row in values
        ]

    def _encode(self, X: pd.DataFrame, groups: list[set[int]]) -> pd.DataFrame:
        def rate(rows: list[int]) -> float:
            return float(self.y_[rows].mean()) if rows else self.fill

        out = X.drop(columns=list(self.keys))
        out[f"{self.prefix}_known"] = [float(len(g)) for g in groups]
        out[f"{self.prefix}_rate"] = [rate(sorted(g)) for g in groups]
        if self.flag is not None:
            flagged = [sorted(j for j in g if self.flag_[j]) for g in groups]
            out[f"{self.prefix}_rate_{self.flag}"] = [rate(rows) for rows in flagged]
        return out

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self)
        return self._encode(_check_frame(X), self._groups(X))

    def fit_transform(self, X: pd.DataFrame, y: object = None) -> pd.DataFrame:
        """Fit, then encode the training rows themselves, each without its own label."""
        if self.encoding not in ("kfold", "loo"):
            raise ValueError(f"encoding must be 'kfold' or 'loo', got {self.encoding!r}")
        self.fit(X, y)
        groups = self._groups(X)
        if self.encoding == "loo":
            return self._encode(X, [g - {i} for i, g in enumerate(groups)])
        # inner folds by a seeded permutation: row i sees the members outside its own fold
        order = np.random.default_rng(self.random_state).permutation(len(X))
        fold = np.empty(len(X), dtype=np.int64)
        fold[order] = np.arange(len(X)) % self.n_splits
        return self._encode(X, [{j for j in g if fold[j] != fold[i]} for i, g in enumerate(groups)])
