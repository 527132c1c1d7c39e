"""CategoricalAligner: one code book per fold, unseen categories missing."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.preprocessing import TargetEncoder as SkTargetEncoder

from kfw.core.cv import cross_validate
from kfw.core.encoding import CategoricalAligner, CountEncoder, TargetEncoder, count_features
from kfw.core.folds import Folds, FoldScheme, assign_folds
from kfw.core.metrics import get_metric
from kfw.study.audit import permutation_audit
from models.lgbm import LGBMClassifier


def test_training_categories_fix_the_code_book_and_unseen_become_missing():
    train = pd.DataFrame(
        {"c": ["b", "a", "b", None], "n": [1, 2, 3, 4], "k": pd.Categorical(["x", "y", "x", "y"])}
    )
    other = pd.DataFrame(
        {
            "c": ["a", "zebra", None, "b"],
            "n": [5, 6, 7, 8],
            "k": pd.Categorical(["y", "w", "x", "x"]),
        }
    )
    aligner = CategoricalAligner().fit(train)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no pandas deprecation on unseen values
        out = aligner.transform(other)
    assert list(out["c"].cat.categories) == ["a", "b"]
    assert out["c"].isna().tolist() == [False, True, True, False]
    assert out["k"].isna().tolist() == [False, True, False, False]
    assert out["n"].dtype == np.float64
    # the same value has the same code in every part of the fold
    assert aligner.transform(train)["c"].cat.codes[1] == out["c"].cat.codes[0]


def test_numbers_stored_as_categories_keep_their_values():
    train = pd.DataFrame({"m": pd.Categorical([20, 60, 20])})
    out = CategoricalAligner().fit(train).transform(pd.DataFrame({"m": pd.Categorical([60, 150])}))
    assert out["m"].tolist()[0] == 60 and pd.isna(out["m"].tolist()[1])


# ---------------------------------------------------------------------------------------------
# TargetEncoder and CountEncoder

PARITY_TOL = 1e-12  # same arithmetic as scikit-learn's encoder, up to summation order


def _cats(n=1500, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.choice(list("abcdefg"), n), "b": rng.integers(0, 60, n).astype(str)})
    X.loc[rng.random(n) < 0.05, "a"] = np.nan  # missing is a category of its own, as in sklearn
    return X, rng


@pytest.mark.parametrize("kind", ["continuous", "binary", "multiclass"])
@pytest.mark.parametrize("smooth", ["auto", 0.0, 7.5])
def test_matches_scikit_learn_cross_fitted_and_full(kind, smooth):
    X, rng = _cats()
    y = (
        rng.normal(size=len(X)) + (X["a"] == "a")
        if kind == "continuous"
        else rng.integers(0, {"binary": 2, "multiclass": 4}[kind], len(X))
    )
    splitter = (KFold if kind == "continuous" else StratifiedKFold)(5, shuffle=True, random_state=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        sk = SkTargetEncoder(smooth=smooth, cv=splitter, target_type=kind)
        expected_fit, expected = (
            sk.fit_transform(X.astype(object), y),
            sk.transform(X.astype(object)),
        )
    ours = TargetEncoder(smooth=smooth, cv=5, random_state=3, target_type=kind)
    np.testing.assert_allclose(ours.fit_transform(X, y).to_numpy(), expected_fit, atol=PARITY_TOL)
    np.testing.assert_allclose(ours.transform(X).to_numpy(), expected, atol=PARITY_TOL)
    if kind == "multiclass":
        assert list(ours.transform(X).columns)[:4] == ["a_te_0", "a_te_1", "a_te_2", "a_te_3"]


def test_unseen_and_rare_categories_fall_back_to_the_prior():
    X = pd.DataFrame({"c": ["x"] * 50 + ["y"] * 50 + ["rare"], "n": np.arange(101.0)})
    y = np.r_[np.ones(50), np.zeros(50), 1.0]
    enc = TargetEncoder(columns=["c"], smooth=0.0, min_count=2).fit(X, y)
    out = enc.transform(pd.DataFrame({"c": ["x", "y", "rare", "never seen"], "n": [0.0] * 4}))
    prior = y.mean()
    np.testing.assert_allclose(out["c_te"], [1.0, 0.0, prior, prior])
    assert list(out.columns) == ["n", "c_te"]  # other columns pass through, the original goes


def test_fit_transform_never_uses_a_row_s_own_target():
    # every category appears once: an in-sample mean would be the row's own label
    n = 400
    X = pd.DataFrame({"id": np.arange(n).astype(str)})
    y = np.random.default_rng(0).integers(0, 2, n)
    enc = TargetEncoder(smooth=0.0, cv=5)
    encoded = enc.fit_transform(X, y)["id_te"].to_numpy()
    assert np.corrcoef(encoded, y)[0, 1] < 0.2  # out of fold: only inner-fold priors
    np.testing.assert_allclose(enc.transform(X)["id_te"], y)  # fitted rows, all statistics


def test_pairs_are_encoded_jointly():
    X = pd.DataFrame({"a": list("xxyy") * 50, "b": list("pqpq") * 50})
    y = np.tile([1.0, 0.0, 0.0, 1.0], 50)  # XOR: neither column alone says anything
    enc = TargetEncoder(columns=[], pairs=[("a", "b")], smooth=0.0).fit(X, y)
    out = enc.transform(X)
    np.testing.assert_allclose(out["a__b_te"], y)
    single = TargetEncoder(columns=["a", "b"], smooth=0.0).fit(X, y).transform(X)
    np.testing.assert_allclose(single[["a_te", "b_te"]], 0.5)


def test_refit_resets_and_bad_input_is_refused():
    X, rng = _cats()
    enc = TargetEncoder().fit(X, rng.normal(size=len(X)))
    enc.fit(X[["a"]], rng.integers(0, 2, len(X)))
    assert list(enc.encodings_) == ["a"] and enc.target_type_ == "binary"
    with pytest.raises(ValueError, match="one value per row"):
        TargetEncoder().fit(X, np.zeros(3))
    with pytest.raises(ValueError, match="smooth"):
        TargetEncoder(smooth=-1.0).fit(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match="'nope'"):
        TargetEncoder(columns=["nope"]).fit(X, np.zeros(len(X)))


def _noise_problem(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    # a random id-like column of ~3 rows per value, and a target with no signal at all
    X = pd.DataFrame({"id": rng.integers(0, n // 3, n).astype(str), "z": rng.normal(size=n)})
    y = rng.integers(0, 2, n)
    scheme = FoldScheme("stratified", n_splits=5, seed=0)
    return (
        X,
        y,
        Folds(scheme, np.arange(n), assign_folds(scheme, n, y, task="binary")[0], None, "h"),
    )


MODEL = LGBMClassifier(
    n_estimators=60, num_leaves=7, learning_rate=0.1, early_stopping_rounds=None, n_jobs=1
)


def test_out_of_fold_encoding_leaves_noise_at_chance_and_a_naive_one_inflates_cv():
    X, y, folds = _noise_problem()
    auc = get_metric("roc_auc")
    honest = cross_validate(
        MODEL, X, y, folds, metric=auc, task="binary", features=TargetEncoder(columns=["id"])
    )
    # the naive encoder: fitted on all training rows, applied to those same rows, before CV
    naive_X = TargetEncoder(columns=["id"], smooth=0.0).fit(X, y).transform(X)
    naive = cross_validate(MODEL, naive_X, y, folds, metric=auc, task="binary")
    assert abs(honest.score - 0.5) < 0.05, honest.score
    assert naive.score > 0.75, naive.score

    def naive_pipeline(y_perm):
        encoded = TargetEncoder(columns=["id"], smooth=0.0).fit(X, y_perm).transform(X)
        return cross_validate(MODEL, encoded, y_perm, folds, metric=auc, task="binary").oof

    def honest_pipeline(y_perm):
        return cross_validate(
            MODEL,
            X,
            y_perm,
            folds,
            metric=auc,
            task="binary",
            features=TargetEncoder(columns=["id"]),
        ).oof

    assert permutation_audit(naive_pipeline, y, folds, auc, "binary", n_permutations=1).leak
    assert not permutation_audit(honest_pipeline, y, folds, auc, "binary", n_permutations=1).leak


def test_count_encoder_counts_the_fitted_rows_and_count_features_all_rows():
    train = pd.DataFrame({"c": ["a", "a", "b", None]})
    enc = CountEncoder().fit(train)
    out = enc.transform(pd.DataFrame({"c": ["a", "b", "z", None]}))
    assert out["c_count"].tolist() == [2.0, 1.0, 0.0, 1.0]
    freq = CountEncoder(normalize=True, drop_original=True).fit(train).transform(train)
    assert list(freq.columns) == ["c_count"] and freq["c_count"].tolist() == [0.5, 0.5, 0.25, 0.25]
    both = pd.DataFrame({"c": ["a", "b", "a", None, None]})
    assert count_features(both, ["c"])["c_count"].tolist() == [2.0, 1.0, 2.0, 2.0, 2.0]
