"""Oracle tests: scratch gradient boosting against scikit-learn's ``GradientBoosting*``.

Each stage fits a CART regression tree, so the exactness caveat of the tree tests carries over:
with squared error or binary log-loss, continuous features, no subsampling and
``min_samples_leaf=20`` (no tied splits) the ensemble equals scikit-learn's to rounding. The
first log-loss stage fits residuals y - p_0 of two values only, whose scores tie as class counts
do, so its data have no redundant (linearly dependent) features. The absolute error (whose
residuals are signs, hence tied), subsampling, multiclass and one-row leaves are compared on
held-out quality instead, as means over a few seeds of the split and of the model.
"""

import numpy as np
import pytest
from sklearn import datasets
from sklearn import ensemble as sk
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import log_loss
from sklearn.utils.estimator_checks import parametrize_with_checks

from scratch_models.gradient_boosting import GradientBoostingClassifier, GradientBoostingRegressor

PREDICTION_RTOL = 1e-9  # |ours - sklearn| <= PREDICTION_RTOL * (1 + |sklearn|), tie-free case
R2_GAP = 0.02  # |mean held-out R^2 ours - sklearn|
ACCURACY_GAP = 0.02  # |mean held-out accuracy ours - sklearn|
LOG_LOSS_GAP = 0.05  # |mean held-out log-loss ours - sklearn| <= LOG_LOSS_GAP * (1 + sklearn's)
SEEDS = (0, 1, 2)  # of the split and of the model, for the quality comparisons


def _split(X, y, seed=0, train=0.6):
    idx = np.random.default_rng(seed).permutation(len(y))
    cut = int(train * len(y))
    return X[idx[:cut]], y[idx[:cut]], X[idx[cut:]], y[idx[cut:]]


REGRESSION = {
    "diabetes": datasets.load_diabetes(return_X_y=True),
    "friedman-600x8": datasets.make_friedman1(600, 8, noise=1.0, random_state=0),
    "gen-400x6-noise20": datasets.make_regression(400, 6, noise=20, random_state=1),
}
BINARY = {
    "breast_cancer": datasets.load_breast_cancer(return_X_y=True),
    "gen-500x8": datasets.make_classification(500, 8, n_informative=4, random_state=2),
    "gen-500x8-independent": datasets.make_classification(
        500, 8, n_informative=4, n_redundant=0, random_state=1
    ),
}
MULTICLASS = {
    "wine": datasets.load_wine(return_X_y=True),
    "digits-400": tuple(a[:400] for a in datasets.load_digits(return_X_y=True)),
}
TIE_FREE = {"min_samples_leaf": 20, "n_estimators": 40, "random_state": 0}


@pytest.mark.parametrize("name", REGRESSION)
@pytest.mark.parametrize("params", [{}, {"learning_rate": 0.3, "max_depth": 2}])
def test_squared_error_matches_sklearn_exactly(name, params):
    X, y, X_test, _ = _split(*REGRESSION[name])
    ours = GradientBoostingRegressor(**TIE_FREE, **params).fit(X, y)
    ref = sk.GradientBoostingRegressor(**TIE_FREE, **params).fit(X, y)
    expected = ref.predict(X_test)
    assert (
        np.max(np.abs(ours.predict(X_test) - expected) / (1 + np.abs(expected))) <= PREDICTION_RTOL
    )
    np.testing.assert_allclose(ours.feature_importances_, ref.feature_importances_, atol=1e-8)


@pytest.mark.parametrize("name", ["breast_cancer", "gen-500x8-independent"])
def test_binary_log_loss_matches_sklearn_exactly(name):
    X, y, X_test, _ = _split(*BINARY[name])
    ours = GradientBoostingClassifier(**TIE_FREE).fit(X, y)
    ref = sk.GradientBoostingClassifier(**TIE_FREE).fit(X, y)
    np.testing.assert_allclose(
        ours.predict_proba(X_test), ref.predict_proba(X_test), atol=PREDICTION_RTOL
    )
    np.testing.assert_allclose(
        ours.decision_function(X_test), ref.decision_function(X_test), atol=1e-7
    )


def _mean_scores(ours_cls, ref_cls, X, y, params, metrics):
    """Held-out metrics of ours and of sklearn, each a mean over SEEDS: (2, n_metrics)."""
    scores = np.zeros((2, len(metrics)))
    for seed in SEEDS:
        X_train, y_train, X_test, y_test = _split(X, y, seed)
        for row, cls in enumerate((ours_cls, ref_cls)):
            model = cls(random_state=seed, **params).fit(X_train, y_train)
            scores[row] += [metric(model, X_test, y_test) for metric in metrics]
    return scores / len(SEEDS)


@pytest.mark.parametrize("name", REGRESSION)
@pytest.mark.parametrize(
    "params",
    [
        {"loss": "absolute_error"},
        {"subsample": 0.7},
        {"loss": "absolute_error", "subsample": 0.8, "learning_rate": 0.2, "max_depth": 4},
    ],
)
def test_regression_quality_matches_sklearn(name, params):
    r2 = [lambda model, X, y: model.score(X, y)]
    params = {"n_estimators": 40, **params}
    (ours,), (ref,) = _mean_scores(
        GradientBoostingRegressor, sk.GradientBoostingRegressor, *REGRESSION[name], params, r2
    )
    assert abs(ours - ref) <= R2_GAP, (ours, ref)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("breast_cancer", {"subsample": 0.7}),
        ("gen-500x8", {"max_depth": 4, "min_samples_leaf": 1}),
        ("wine", {"subsample": 0.8, "learning_rate": 0.2}),
        ("digits-400", {"n_estimators": 15, "max_depth": 2}),
    ],
)
def test_classification_quality_matches_sklearn(name, params):
    metrics = [
        lambda model, X, y: model.score(X, y),
        lambda model, X, y: log_loss(y, model.predict_proba(X), labels=model.classes_),
    ]
    params = {"n_estimators": 40, **params}
    X, y = {**BINARY, **MULTICLASS}[name]
    (acc, loss), (ref_acc, ref_loss) = _mean_scores(
        GradientBoostingClassifier, sk.GradientBoostingClassifier, X, y, params, metrics
    )
    assert abs(acc - ref_acc) <= ACCURACY_GAP, (acc, ref_acc)
    assert abs(loss - ref_loss) <= LOG_LOSS_GAP * (1 + ref_loss), (loss, ref_loss)


def test_multiclass_fits_one_tree_per_class_per_stage():
    X, y = MULTICLASS["wine"]
    ours = GradientBoostingClassifier(n_estimators=10, random_state=0).fit(X, y)
    ref = sk.GradientBoostingClassifier(n_estimators=10, random_state=0).fit(X, y)
    assert ours.estimators_.shape == ref.estimators_.shape == (10, 3)
    assert ours.decision_function(X).shape == (len(y), 3)
    np.testing.assert_allclose(ours.predict_proba(X).sum(1), 1.0)


def test_leaf_values_are_the_losses_line_search():
    X, y = REGRESSION["friedman-600x8"]
    one = {"n_estimators": 1, "learning_rate": 1.0, "max_depth": 2}
    model = GradientBoostingRegressor(loss="absolute_error", **one).fit(X, y)
    leaf = model.estimators_[0, 0].apply(X)
    for node in np.unique(leaf):  # the median of y - F_0 over the leaf's rows
        expected = np.median(y) + np.median(y[leaf == node] - np.median(y))
        np.testing.assert_allclose(model.predict(X[leaf == node]), expected)
    Xc, yc = BINARY["gen-500x8"]
    clf = GradientBoostingClassifier(**one).fit(Xc, yc)
    leaf, p0 = clf.estimators_[0, 0].apply(Xc), yc.mean()
    for node in np.unique(leaf):  # one Newton step: sum(y - p) / sum(p (1 - p))
        rows = leaf == node
        step = (yc[rows] - p0).sum() / (rows.sum() * p0 * (1 - p0))
        np.testing.assert_allclose(clf.decision_function(Xc[rows]), np.log(p0 / (1 - p0)) + step)


def test_second_fit_resets_and_seeded_subsampling_repeats():
    X, y = REGRESSION["diabetes"]
    model = GradientBoostingRegressor(n_estimators=20, subsample=0.5, random_state=7)
    first = clone(model).fit(X, y).predict(X)
    refit = clone(model).fit(X[:50, :3], y[:50]).fit(X, y)
    np.testing.assert_array_equal(refit.predict(X), first)
    assert refit.estimators_.shape == (20, 1) and refit.n_features_in_ == X.shape[1]
    other = clone(model).set_params(random_state=8).fit(X, y).predict(X)
    assert not np.array_equal(other, first)


@pytest.mark.parametrize(
    "model", [GradientBoostingClassifier(n_estimators=5), GradientBoostingRegressor(n_estimators=5)]
)
def test_bad_input_raises_like_sklearn(model):
    X, y = BINARY["gen-500x8"]
    with pytest.raises(NotFittedError):
        clone(model).predict(X)
    X_nan = X.copy()
    X_nan[2, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clone(model).fit(X_nan, y)
    with pytest.raises(ValueError, match="features"):
        clone(model).fit(X, y).predict(X[:, :2])
    with pytest.raises(ValueError, match="subsample"):
        clone(model).set_params(subsample=0.0).fit(X, y)
    with pytest.raises(ValueError, match="loss"):
        clone(model).set_params(loss="huber").fit(X, y)


def test_classifier_refuses_one_class_and_a_continuous_target():
    X, y = BINARY["gen-500x8"]
    with pytest.raises(ValueError, match="minimum of 2 classes"):
        GradientBoostingClassifier().fit(X, np.zeros(len(y)))
    with pytest.raises(ValueError, match="Unknown label type"):
        GradientBoostingClassifier().fit(X, y + 0.5 * np.random.default_rng(0).random(len(y)))


@parametrize_with_checks(
    [GradientBoostingClassifier(n_estimators=5), GradientBoostingRegressor(n_estimators=5)]
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
