"""Adversarial validation: can a classifier tell the training rows from the test rows?

A LightGBM classifier is cross-validated on train + test with the label "is a test row". Its
out-of-fold ROC-AUC near 0.5 means the two sets look alike, so a CV score on the training rows
speaks for the test rows too; well above 0.5 means the test set differs (a time shift, a new
region, a sampling change) and the CV may promise more than the leaderboard gives. These folds
are its own (stratified on the train / test label), not the competition's.

Each column also gets a score of its own: the ROC-AUC of that column alone as a train / test
separator (0.5 to 1, direction ignored), and the model's gain importance, so the columns that
drift can be named.

When the sets differ, a CV on every training row speaks for rows unlike the test set. The
classifier's out-of-fold probability that a *training* row is a test row ranks them by how
test-like they are; :func:`test_like_scores` scores each run on the most test-like share of
its out-of-fold predictions, a validation set that looks like the test set, shown beside the
plain CV (``kfw audit``, ``kfw runs --test-like``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kfw import files
from kfw.core.encoding import CategoricalAligner
from kfw.core.metrics import binary_auc, get_metric
from kfw.core.noise import encode_labels, score_rows
from kfw.core.registry import make_estimator

if TYPE_CHECKING:
    import pandas as pd

# small and fixed: the question is "is there any signal", not the best possible separator
PARAMS: dict[str, Any] = {
    "n_estimators": 200,
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_child_samples": 20,
    "colsample_bytree": 0.8,
    "early_stopping_rounds": None,
}


@dataclass
class AdversarialResult:
    """What adversarial validation found.

    Attributes
    ----------
    auc : float
        Out-of-fold ROC-AUC of the train-vs-test classifier over all rows (0.5: alike).
    fold_aucs : list of float
        The same per fold.
    drift : DataFrame
        One row per column: ``column``, ``auc`` (that column alone, 0.5 to 1) and
        ``importance`` (the classifier's share of total gain, summing to 1), most drifting first.
    n_train, n_test : int
        Rows of each side.
    test_likeness : ndarray of shape (n_train,)
        Each training row's out-of-fold probability of being a test row.
    """

    auc: float
    fold_aucs: list[float]
    drift: pd.DataFrame
    n_train: int
    n_test: int
    test_likeness: np.ndarray | None = None


def _is_numeric(series: pd.Series) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def column_auc(values: pd.Series, is_test: np.ndarray, folds: np.ndarray) -> float:
    """ROC-AUC of one column alone as a train / test separator, folded to 0.5 .. 1.

    A numeric column is scored by its ranks, missing values ranked below every number (so a
    change in how often a value is missing counts as drift). A categorical column is scored by
    the test share of its category among the *other* folds' rows (missing is a category), so
    a column of unique ids does not separate by memorising them.
    """
    import pandas as pd

    if _is_numeric(values):
        score = values.to_numpy(np.float64, na_value=np.nan)
        score = np.where(np.isnan(score), -np.inf, score)
    else:
        keys = values.astype(object).where(values.notna(), "\x00missing").astype(str).to_numpy()
        score = np.empty(len(keys), dtype=np.float64)
        prior = is_test.mean()
        for k in np.unique(folds):
            fit = folds != k
            share = pd.Series(is_test[fit]).groupby(keys[fit]).mean()
            # a category unseen outside the fold gets the overall share: no information
            score[~fit] = share.reindex(keys[~fit]).fillna(prior).to_numpy()
    auc = binary_auc(is_test, score)
    return float(max(auc, 1.0 - auc))


def adversarial_validation(
    X_train: pd.DataFrame,
    X_test: pd.DataFrame,
    seed: int = 0,
    n_splits: int = 5,
    threads: int = 1,
) -> AdversarialResult:
    """Cross-validate a classifier that separates the rows of ``X_train`` from ``X_test``.

    Parameters
    ----------
    X_train, X_test : DataFrame
        The row features of the two sets (same columns; no id, no target).
    seed : int
        Seed of the folds and of the classifier.
    n_splits : int
        Stratified folds over train + test.
    threads : int
        LightGBM threads.

    Returns
    -------
    AdversarialResult
    """
    import pandas as pd
    from sklearn.model_selection import StratifiedKFold

    if list(X_train.columns) != list(X_test.columns):
        raise ValueError("X_train and X_test must have the same columns in the same order")
    X = pd.concat([X_train, X_test], ignore_index=True)
    is_test = np.r_[np.zeros(len(X_train), bool), np.ones(len(X_test), bool)]  # (n,)
    folds = np.empty(len(X), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for k, (_, valid) in enumerate(splitter.split(np.zeros(len(X)), is_test)):
        folds[valid] = k
    oof = np.empty(len(X), dtype=np.float64)
    fold_aucs = []
    gain = np.zeros(X.shape[1])
    for k in range(n_splits):
        fit, valid = folds != k, folds == k
        aligner = CategoricalAligner().fit(X[fit])
        model = make_estimator("lgbm", "binary", PARAMS, random_state=seed, n_jobs=threads).fit(
            aligner.transform(X[fit]), is_test[fit].astype(int)
        )
        oof[valid] = model.predict_proba(aligner.transform(X[valid]))[:, 1]
        fold_aucs.append(binary_auc(is_test[valid], oof[valid]))
        gain += model.feature_importances_
    drift = pd.DataFrame(
        {
            "column": [str(c) for c in X.columns],
            "auc": [column_auc(X[c], is_test, folds) for c in X.columns],
            "importance": gain / gain.sum() if gain.sum() > 0 else gain,
        }
    )
    drift = drift.sort_values(["auc", "importance"], ascending=False, kind="stable")
    return AdversarialResult(
        auc=float(binary_auc(is_test, oof)),
        fold_aucs=[float(a) for a in fold_aucs],
        drift=drift.reset_index(drop=True),
        n_train=len(X_train),
        n_test=len(X_test),
        test_likeness=oof[: len(X_train)].copy(),
    )


# the share of training rows that forms the test-like validation set
TEST_LIKE_SHARE = 0.25
DRIFT_AUC = 0.6  # above this train and test differ enough for a CV not to transfer


def test_like_rows(test_likeness: np.ndarray, share: float = TEST_LIKE_SHARE) -> np.ndarray:
    """Boolean mask of the ``share`` of training rows most like the test set (ties by row)."""
    n = max(1, round(share * len(test_likeness)))
    order = np.argsort(-test_likeness, kind="stable")
    mask = np.zeros(len(test_likeness), dtype=bool)
    mask[order[:n]] = True
    return mask


def test_like_path(kfw_home: Path, slug: str) -> Path:
    """Where ``kfw audit`` keeps the training rows' test-likeness."""
    return kfw_home / "data" / slug / "adversarial.csv"


def load_test_likeness(kfw_home: Path, slug: str) -> pd.Series | None:
    """The saved test-likeness indexed by id (None before ``kfw audit`` ran)."""
    import pandas as pd

    path = test_like_path(kfw_home, slug)
    if not path.is_file():
        return None
    frame = pd.read_csv(path)
    return pd.Series(frame["p_test"].to_numpy(float), index=frame.iloc[:, 0].to_numpy())


def save_test_likeness(path: Path, ids: np.ndarray, id_col: str, test_likeness: np.ndarray) -> Path:
    """Write ``<id>, p_test`` atomically (read back by :func:`load_test_likeness`)."""
    import pandas as pd

    frame = pd.DataFrame({id_col: ids, "p_test": test_likeness})
    return files.write_with(path, lambda tmp: frame.to_csv(tmp, index=False))


def test_like_scores(
    store: Any, records: list[dict[str, Any]], p_test: pd.Series, share: float = TEST_LIKE_SHARE
) -> dict[str, float]:
    """Each run's score on the ``share`` most test-like training rows (by run id).

    ``p_test`` is indexed by the competition's id. A run whose rows do not match is left out.
    """

    out = {}
    for r in records:
        y, pred, _ = store.predictions(r["id"])
        ids = store.frame(r["id"], "oof.parquet").iloc[:, 0]
        likeness = p_test.reindex(ids.to_numpy()).to_numpy(float)
        if np.isnan(likeness).any():
            continue
        y = y.astype(float) if y.ndim == 2 else encode_labels(y, r.get("classes"))
        rows = np.flatnonzero(
            test_like_rows(likeness, share) & np.isfinite(pred).reshape(len(y), -1).all(axis=1)
        )
        out[r["id"]] = score_rows(get_metric(r["metric"]), y, pred, rows)
    return out
