"""Oracle tests: scratch CART trees against scikit-learn's ``DecisionTree*``.

Exactness needs the absence of ties between candidate splits, since scikit-learn breaks a tie
between two features by its own random feature order. Two kinds of tie are common: an unweighted
Gini / entropy score depends only on class counts (so two different cuts often score alike), and
at small nodes two features can cut off the same rows. The exact tests therefore use continuous
features, regression targets or continuous sample weights, and a ``min_samples_leaf`` of 10-20;
plain classification trees grown to full depth are checked for agreement instead.
"""

import numpy as np
import pytest
from sklearn import datasets
from sklearn import tree as sk
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from scratch_models.tree import DecisionTreeClassifier, DecisionTreeRegressor

PREDICTION_ATOL = 1e-9  # max |ours - sklearn| of predict / predict_proba on held-out rows
IMPORTANCE_ATOL = 1e-8  # max |ours - sklearn| of feature_importances_
AGREEMENT_MIN = 0.9  # share of held-out labels equal to sklearn's when ties are possible
ACCURACY_GAP = 0.03  # |accuracy(ours) - accuracy(sklearn)| when ties are possible


def _split(X, y, seed=0, train=0.7):
    """Shuffle, then split into train and held-out parts."""
    idx = np.random.default_rng(seed).permutation(len(y))
    cut = int(train * len(y))
    return X[idx[:cut]], y[idx[:cut]], X[idx[cut:]], y[idx[cut:]]


REGRESSION = {
    "diabetes": datasets.load_diabetes(return_X_y=True),
    "gen-300x5-noise10": datasets.make_regression(300, 5, noise=10, random_state=0),
    "gen-500x10-noise30": datasets.make_regression(500, 10, noise=30, random_state=1),
    "friedman-400x8": datasets.make_friedman1(400, 8, noise=1.0, random_state=2),
}
CLASSIFICATION = {
    "breast_cancer": datasets.load_breast_cancer(return_X_y=True),
    "wine": datasets.load_wine(return_X_y=True),
    "digits": datasets.load_digits(return_X_y=True),
    "gen-500x8-3class": datasets.make_classification(
        500, 8, n_informative=4, n_redundant=0, n_classes=3, random_state=3
    ),
}


@pytest.mark.parametrize("name", REGRESSION)
@pytest.mark.parametrize(
    "params",
    [
        {"min_samples_leaf": 20},
        {"min_samples_leaf": 10, "max_depth": 4},
        {"min_samples_leaf": 15, "min_impurity_decrease": 5.0},
        {"min_samples_leaf": 0.03, "min_samples_split": 0.1},  # fractions of the rows
    ],
)
def test_regressor_matches_sklearn_exactly(name, params):
    X, y, X_test, _ = _split(*REGRESSION[name])
    ours = DecisionTreeRegressor(random_state=0, **params).fit(X, y)
    ref = sk.DecisionTreeRegressor(random_state=0, **params).fit(X, y)
    np.testing.assert_allclose(ours.predict(X_test), ref.predict(X_test), atol=PREDICTION_ATOL)
    np.testing.assert_allclose(
        ours.feature_importances_, ref.feature_importances_, atol=IMPORTANCE_ATOL
    )
    assert ours.tree_.node_count == ref.tree_.node_count


@pytest.mark.parametrize("name", CLASSIFICATION)
@pytest.mark.parametrize("criterion", ["gini", "entropy"])
def test_weighted_classifier_matches_sklearn_exactly(name, criterion):
    X, y, X_test, _ = _split(*CLASSIFICATION[name])
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(y))  # continuous weights: no count ties
    params = {"criterion": criterion, "min_samples_leaf": 20 if name == "digits" else 10}
    ours = DecisionTreeClassifier(random_state=0, **params).fit(X, y, sample_weight=w)
    ref = sk.DecisionTreeClassifier(random_state=0, **params).fit(X, y, sample_weight=w)
    np.testing.assert_allclose(
        ours.predict_proba(X_test), ref.predict_proba(X_test), atol=PREDICTION_ATOL
    )
    np.testing.assert_array_equal(ours.predict(X_test), ref.predict(X_test))
    np.testing.assert_allclose(
        ours.feature_importances_, ref.feature_importances_, atol=IMPORTANCE_ATOL
    )


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_full_depth_classifier_agrees_with_sklearn(name):
    X, y, X_test, y_test = _split(*CLASSIFICATION[name], seed=1)
    ours = DecisionTreeClassifier(random_state=0).fit(X, y)
    ref = sk.DecisionTreeClassifier(random_state=0).fit(X, y)
    assert np.mean(ours.predict(X_test) == ref.predict(X_test)) >= AGREEMENT_MIN
    assert abs(ours.score(X_test, y_test) - ref.score(X_test, y_test)) <= ACCURACY_GAP
    assert ours.score(X, y) == 1.0  # grown until pure, as scikit-learn's


def test_zero_weight_rows_are_dropped_and_max_features_resolves_like_sklearn():
    X, y = REGRESSION["gen-300x5-noise10"]
    w = (np.arange(len(y)) % 3 != 0).astype(float)
    weighted = DecisionTreeRegressor(min_samples_leaf=10).fit(X, y, sample_weight=w)
    dropped = DecisionTreeRegressor(min_samples_leaf=10).fit(X[w > 0], y[w > 0])
    np.testing.assert_array_equal(weighted.predict(X), dropped.predict(X))
    for max_features in ["sqrt", "log2", 2, 0.5, None]:
        ours = DecisionTreeRegressor(max_features=max_features, random_state=0).fit(X, y)
        ref = sk.DecisionTreeRegressor(max_features=max_features, random_state=0).fit(X, y)
        assert ours.max_features_ == ref.max_features_


def test_feature_sampling_is_seeded_and_still_learns():
    X, y, X_test, y_test = _split(*CLASSIFICATION["breast_cancer"])
    a = DecisionTreeClassifier(max_features="sqrt", random_state=3).fit(X, y)
    b = DecisionTreeClassifier(max_features="sqrt", random_state=3).fit(X, y)
    np.testing.assert_array_equal(a.predict(X_test), b.predict(X_test))
    assert a.score(X_test, y_test) > 0.85


def test_second_fit_resets_and_clone_keeps_params():
    X, y = REGRESSION["diabetes"]
    model = DecisionTreeRegressor(max_depth=3, random_state=0)
    first = clone(model).fit(X, y).predict(X)
    refit = clone(model).fit(X[:100, :4], y[:100]).fit(X, y)
    np.testing.assert_array_equal(refit.predict(X), first)
    assert refit.n_features_in_ == X.shape[1]
    assert clone(model).get_params() == model.get_params()


@pytest.mark.parametrize("model", [DecisionTreeClassifier(), DecisionTreeRegressor()])
def test_bad_input_raises_like_sklearn(model):
    X, y = CLASSIFICATION["gen-500x8-3class"]
    with pytest.raises(NotFittedError):
        clone(model).predict(X)
    X_nan = X.copy()
    X_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):  # scikit-learn's tree accepts NaN; ours does not
        clone(model).fit(X_nan, y)
    with pytest.raises(ValueError, match="features"):
        clone(model).fit(X, y).predict(X[:, :3])
    with pytest.raises(ValueError):
        clone(model).fit(np.array([["a", "b"], ["c", "d"]]), [0, 1])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        clone(model).fit(X, y[:-1])
    with pytest.raises(ValueError, match="criterion"):
        clone(model).set_params(criterion="absolute_error").fit(X, y)
    with pytest.raises(ValueError, match="min_samples_leaf"):
        clone(model).set_params(min_samples_leaf=0).fit(X, y)


def test_classifier_refuses_a_continuous_target_and_accepts_one_class():
    X, y = REGRESSION["friedman-400x8"]
    with pytest.raises(ValueError, match="Unknown label type"):
        DecisionTreeClassifier().fit(X, y)
    one = DecisionTreeClassifier().fit(X, np.full(len(y), "a"))  # as scikit-learn: one leaf
    assert one.tree_.node_count == 1 and set(one.predict(X)) == {"a"}


@parametrize_with_checks([DecisionTreeClassifier(), DecisionTreeRegressor()])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
