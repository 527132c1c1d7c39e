"""Oracle tests: scratch random forests against scikit-learn's ``RandomForest*``.

Two forests of the same size differ by their random draws, so their held-out scores are
compared as means over a few seeds, per data set and pooled over all data sets. Without
bootstrap and feature sampling every tree is the same CART tree, which must then equal
scikit-learn's tree exactly (regression, no ties).
"""

import numpy as np
import pytest
from sklearn import datasets
from sklearn import ensemble as sk
from sklearn import tree as sk_tree
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from scratch_models.forest import RandomForestClassifier, RandomForestRegressor

ACCURACY_GAP = 0.01  # |mean accuracy (or R^2) ours - sklearn|, pooled over data sets and seeds
DATASET_GAP = 0.02  # the same per data set, where seed noise is ~0.7 point at this size
OOB_GAP = 0.03  # |oob_score_ ours - sklearn|
IMPORTANCE_L1 = 0.1  # sum |importances ours - sklearn|, on data without correlated features
N_TREES, SEEDS = 30, (0, 1, 2, 3, 4)


def _split(X, y, seed=0, train=0.6):
    idx = np.random.default_rng(seed).permutation(len(y))
    cut = int(train * len(y))
    return X[idx[:cut]], y[idx[:cut]], X[idx[cut:]], y[idx[cut:]]


CLASSIFICATION = {
    "breast_cancer": datasets.load_breast_cancer(return_X_y=True),
    "wine": datasets.load_wine(return_X_y=True),
    "digits-600": tuple(a[:600] for a in datasets.load_digits(return_X_y=True)),
    "gen-600x10": datasets.make_classification(600, 10, n_informative=5, random_state=11),
    "gen-400x8-independent": datasets.make_classification(
        400, 8, n_informative=4, n_redundant=0, random_state=0
    ),
}
REGRESSION = {
    "diabetes": datasets.load_diabetes(return_X_y=True),
    "friedman-500x8": datasets.make_friedman1(500, 8, noise=1.0, random_state=0),
    "gen-400x10-noise20": datasets.make_regression(400, 10, noise=20, random_state=0),
}
HELD_OUT = {k: v for k, v in CLASSIFICATION.items() if k != "gen-400x8-independent"}
CASES = [
    (RandomForestClassifier, sk.RandomForestClassifier, HELD_OUT, {}),
    (RandomForestRegressor, sk.RandomForestRegressor, REGRESSION, {"min_samples_leaf": 3}),
]


@pytest.mark.parametrize(("ours_cls", "ref_cls", "data", "params"), CASES)
def test_held_out_score_matches_sklearn_forest_of_the_same_size(ours_cls, ref_cls, data, params):
    gaps = []
    for name, (X, y) in data.items():
        ours, ref = [], []
        for seed in SEEDS:
            X_train, y_train, X_test, y_test = _split(X, y, seed)
            model = ours_cls(N_TREES, random_state=seed, **params).fit(X_train, y_train)
            ours.append(model.score(X_test, y_test))
            oracle = ref_cls(N_TREES, random_state=seed, **params).fit(X_train, y_train)
            ref.append(oracle.score(X_test, y_test))
        gaps.append(np.mean(ours) - np.mean(ref))
        assert abs(gaps[-1]) <= DATASET_GAP, (name, np.mean(ours), np.mean(ref))
    assert abs(np.mean(gaps)) <= ACCURACY_GAP, gaps


def test_without_randomness_the_forest_is_sklearns_tree():
    X, y, X_test, _ = _split(*REGRESSION["friedman-500x8"])
    params = {"min_samples_leaf": 10, "max_features": 1.0}
    forest = RandomForestRegressor(5, bootstrap=False, random_state=0, **params).fit(X, y)
    tree = sk_tree.DecisionTreeRegressor(random_state=0, **params).fit(X, y)
    np.testing.assert_allclose(forest.predict(X_test), tree.predict(X_test), atol=1e-9)
    np.testing.assert_allclose(forest.feature_importances_, tree.feature_importances_, atol=1e-8)


@pytest.mark.parametrize(
    ("ours_cls", "ref_cls", "name"),
    [
        (RandomForestClassifier, sk.RandomForestClassifier, "gen-400x8-independent"),
        (RandomForestRegressor, sk.RandomForestRegressor, "friedman-500x8"),
    ],
)
def test_oob_score_and_importances_match_sklearn(ours_cls, ref_cls, name):
    X, y = {**CLASSIFICATION, **REGRESSION}[name]
    ours = ours_cls(40, oob_score=True, random_state=0).fit(X, y)
    ref = ref_cls(40, oob_score=True, random_state=0).fit(X, y)
    assert abs(ours.oob_score_ - ref.oob_score_) <= OOB_GAP
    assert np.abs(ours.feature_importances_ - ref.feature_importances_).sum() <= IMPORTANCE_L1
    assert ours.feature_importances_.sum() == pytest.approx(1.0)
    oob = (
        ours.oob_decision_function_ if ours_cls is RandomForestClassifier else ours.oob_prediction_
    )
    assert oob.shape[0] == len(y)


def test_second_fit_resets_seeded_fits_repeat_and_clone_keeps_params():
    X, y = CLASSIFICATION["wine"]
    model = RandomForestClassifier(10, random_state=3)
    first = clone(model).fit(X, y).predict_proba(X)
    refit = clone(model).fit(X[:60, :5], y[:60]).fit(X, y)
    np.testing.assert_array_equal(refit.predict_proba(X), first)
    assert len(refit.estimators_) == 10 and refit.n_features_in_ == X.shape[1]
    assert clone(model).get_params() == model.get_params()
    other = RandomForestClassifier(10, random_state=4).fit(X, y).predict_proba(X)
    assert not np.array_equal(other, first)
    with_oob = RandomForestClassifier(10, oob_score=True, random_state=0).fit(X, y)
    assert not hasattr(with_oob.set_params(oob_score=False).fit(X, y), "oob_score_")


@pytest.mark.parametrize("model", [RandomForestClassifier(5), RandomForestRegressor(5)])
def test_bad_input_raises_like_sklearn(model):
    X, y = CLASSIFICATION["gen-600x10"]
    with pytest.raises(NotFittedError):
        clone(model).predict(X)
    with pytest.raises(ValueError, match="Out of bag estimation only available if bootstrap=True"):
        clone(model).set_params(oob_score=True, bootstrap=False).fit(X, y)
    with pytest.raises(ValueError, match="n_estimators"):
        clone(model).set_params(n_estimators=0).fit(X, y)
    X_inf = X.copy()
    X_inf[3, 1] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        clone(model).fit(X_inf, y)
    with pytest.raises(ValueError, match="features"):
        clone(model).fit(X, y).predict(X[:, :4])


@parametrize_with_checks([RandomForestClassifier(5), RandomForestRegressor(5)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
