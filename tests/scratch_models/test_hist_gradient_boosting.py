"""Oracle tests: scratch histogram boosting against scikit-learn's ``HistGradientBoosting*``.

scikit-learn runs with ``early_stopping=False`` (its default turns early stopping on above
10,000 rows). Same bins, same leaf-wise growth, same split rule: for squared error the two
agree to the rounding of scikit-learn's float32 gradients. For log-loss the first trees fit
two-valued gradients whose gains tie between features, and float32 rounding picks the winner
there, so classification is compared on held-out quality over a few splits.
"""

import numpy as np
import pytest
from sklearn import datasets
from sklearn import ensemble as sk
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import log_loss
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

from scratch_models.hist_gradient_boosting import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    _histograms,
)

PREDICTION_RTOL = 1e-6  # |ours - sklearn| <= PREDICTION_RTOL * (1 + |sklearn|), regression
R2_GAP = 0.005  # |held-out R^2 ours - sklearn| where NaN splits can tie
ACCURACY_GAP = 0.02  # |mean held-out accuracy ours - sklearn|
LOG_LOSS_GAP = 0.02  # |mean held-out log-loss ours - sklearn|
RECORDED_RTOL = 1e-10  # against numbers recorded from the implementation before the speed-up
SPLIT_SEEDS = (0, 1, 2)


def _split(X, y, seed=0, train=0.6):
    idx = np.random.default_rng(seed).permutation(len(y))
    cut = int(train * len(y))
    return X[idx[:cut]], y[idx[:cut]], X[idx[cut:]], y[idx[cut:]]


def _with_nan(X, share, seed):
    X = X.copy()
    X[np.random.default_rng(seed).random(X.shape) < share] = np.nan
    return X


REGRESSION = {
    "diabetes": datasets.load_diabetes(return_X_y=True),
    "friedman-1000x8": datasets.make_friedman1(1000, 8, noise=1.0, random_state=0),
    "gen-600x12-noise10": datasets.make_regression(600, 12, noise=10, random_state=1),
}
CLASSIFICATION = {
    "breast_cancer": datasets.load_breast_cancer(return_X_y=True),
    "gen-800x10": datasets.make_classification(800, 10, n_informative=5, random_state=0),
    "wine": datasets.load_wine(return_X_y=True),
    "digits-700": tuple(a[:700] for a in datasets.load_digits(return_X_y=True)),
}


def _sk(cls, **params):
    return cls(early_stopping=False, **params)


@pytest.fixture(autouse=True)
def _one_openmp_thread():
    """scikit-learn's OpenMP threads stall for minutes when other jobs share the cores."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


@pytest.mark.parametrize("name", REGRESSION)
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"max_leaf_nodes": 8, "learning_rate": 0.2, "max_iter": 60},
        {"l2_regularization": 1.0, "max_depth": 3, "max_iter": 60},
        {"min_samples_leaf": 5, "max_bins": 32, "max_iter": 60},
    ],
)
def test_regressor_matches_sklearn(name, params):
    X, y, X_test, _ = _split(*REGRESSION[name])
    ours = HistGradientBoostingRegressor(**params).fit(X, y)
    expected = _sk(sk.HistGradientBoostingRegressor, **params).fit(X, y).predict(X_test)
    error = np.abs(ours.predict(X_test) - expected) / (1 + np.abs(expected))
    assert error.max() <= PREDICTION_RTOL


def test_missing_values_are_routed_like_sklearn():
    X, y, X_test, y_test = _split(*REGRESSION["friedman-1000x8"])
    # NaN only at prediction: each split sends it to the child that had more rows
    ours = HistGradientBoostingRegressor(max_iter=40).fit(X, y)
    ref = _sk(sk.HistGradientBoostingRegressor, max_iter=40).fit(X, y)
    X_nan = _with_nan(X_test, 0.2, seed=1)
    np.testing.assert_allclose(ours.predict(X_nan), ref.predict(X_nan), rtol=PREDICTION_RTOL)
    # NaN in training: each split learns where NaN goes; ties between equivalent NaN splits
    # may be broken differently, so rows off the training data are compared on quality
    X_train_nan, X_test_nan = _with_nan(X, 0.1, seed=2), _with_nan(X_test, 0.1, seed=3)
    ours = HistGradientBoostingRegressor().fit(X_train_nan, y)
    ref = _sk(sk.HistGradientBoostingRegressor).fit(X_train_nan, y)
    np.testing.assert_allclose(ours.predict(X_train_nan), ref.predict(X_train_nan), rtol=1e-5)
    gap = ours.score(X_test_nan, y_test) - ref.score(X_test_nan, y_test)
    assert abs(gap) <= R2_GAP


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("breast_cancer", {}),
        ("gen-800x10", {}),
        ("gen-800x10", {"max_leaf_nodes": 8, "l2_regularization": 1.0, "max_iter": 50}),
        ("wine", {"min_samples_leaf": 5, "max_iter": 50}),
        ("digits-700", {"max_iter": 10}),
    ],
)
def test_classifier_quality_matches_sklearn(name, params):
    scores = np.zeros((2, 2))  # (ours / sklearn, accuracy / log-loss), summed over the splits
    for seed in SPLIT_SEEDS:
        X, y, X_test, y_test = _split(*CLASSIFICATION[name], seed)
        ours = HistGradientBoostingClassifier(**params).fit(X, y)
        ref = _sk(sk.HistGradientBoostingClassifier, **params).fit(X, y)
        for row, model in enumerate((ours, ref)):
            proba = model.predict_proba(X_test)
            scores[row] += [model.score(X_test, y_test), log_loss(y_test, proba)]
        assert ours.n_trees_per_iteration_ == ref.n_trees_per_iteration_
    (acc, loss), (ref_acc, ref_loss) = scores / len(SPLIT_SEEDS)
    assert abs(acc - ref_acc) <= ACCURACY_GAP, (acc, ref_acc)
    assert abs(loss - ref_loss) <= LOG_LOSS_GAP, (loss, ref_loss)


def test_first_binary_tree_matches_sklearn():
    # one iteration, where all hessians are equal: leaf values and raw scores agree closely
    X, y, X_test, _ = _split(*CLASSIFICATION["breast_cancer"])
    ours = HistGradientBoostingClassifier(max_iter=1).fit(X, y)
    ref = _sk(sk.HistGradientBoostingClassifier, max_iter=1).fit(X, y)
    np.testing.assert_allclose(
        ours.decision_function(X_test), ref.decision_function(X_test), atol=1e-6
    )


def test_min_child_weight_is_min_samples_leaf_for_squared_error():
    # with the constant hessian 1 a child's hessian sum is its row count
    X, y = REGRESSION["diabetes"]
    by_weight = HistGradientBoostingRegressor(min_samples_leaf=1, min_child_weight=30).fit(X, y)
    by_rows = HistGradientBoostingRegressor(min_samples_leaf=30).fit(X, y)
    np.testing.assert_allclose(by_weight.predict(X), by_rows.predict(X), rtol=1e-12)


def test_gamma_prunes_weak_splits():
    X, y = REGRESSION["friedman-1000x8"]
    sizes = [
        np.mean(
            [
                len(t[0].value)
                for t in HistGradientBoostingRegressor(max_iter=10, gamma=g).fit(X, y).trees_
            ]
        )
        for g in (0.0, 50.0, 1e9)
    ]
    assert sizes[0] > sizes[1] > sizes[2] == 1  # an infinite gamma leaves a single leaf
    flat = HistGradientBoostingRegressor(max_iter=10, gamma=1e9).fit(X, y)
    np.testing.assert_allclose(flat.predict(X), y.mean())


def test_histogram_of_a_child_is_parent_minus_sibling():
    rng = np.random.default_rng(0)
    bins_t = rng.integers(0, 16, size=(5, 3000))  # (p, n)
    g, h = rng.normal(size=3000), rng.random(3000)
    rows = np.arange(3000)
    left, right = rows[bins_t[2] <= 7], rows[bins_t[2] > 7]
    for h_ in (h, None):
        parent = _histograms(bins_t, rows, g, h_, 17)
        np.testing.assert_allclose(parent - _histograms(bins_t, left, g, h_, 17),
                                   _histograms(bins_t, right, g, h_, 17), atol=1e-9)  # fmt: skip
        assert parent[2].sum() == 5 * 3000


def test_histograms_take_known_counts_and_a_slice_for_every_row():
    rng = np.random.default_rng(1)
    bins_t = rng.integers(0, 9, size=(4, 500)).astype(np.uint8)  # (p, n)
    g, h = rng.normal(size=500), rng.random(500)
    for h_ in (h, None):
        every = _histograms(bins_t, np.arange(500), g, h_, 10)
        np.testing.assert_array_equal(_histograms(bins_t, slice(None), g, h_, 10), every)
        np.testing.assert_array_equal(_histograms(bins_t, slice(None), g, h_, 10, every[2]), every)
        for j in range(4):  # against a plain scatter-add over the rows
            sums = np.zeros(10)
            np.add.at(sums, bins_t[j], g)
            np.testing.assert_allclose(every[0, j], sums, rtol=1e-12, atol=1e-12)


def test_trees_match_the_recorded_reference():
    """The speed-up (uint8 bins, root counts kept across iterations, compress partitions) left
    every tree as it was: these trees and predictions were recorded from the implementation
    before it, with NaN in training so that the learned NaN directions count too."""
    X, y = datasets.make_friedman1(400, 6, noise=1.0, random_state=0)
    X[np.random.default_rng(0).random(X.shape) < 0.1] = np.nan
    params = {"max_leaf_nodes": 6, "max_bins": 32, "min_samples_leaf": 10}
    reg = HistGradientBoostingRegressor(max_iter=8, **params).fit(X, y)
    tree = reg.trees_[0][0]
    np.testing.assert_array_equal(tree.feature, [3, 1, 0, 0, 1, 0, 0, 0, 4, 0, 0])
    np.testing.assert_array_equal(tree.bin, [14, 10, 9, 0, 6, 0, 0, 0, 13, 0, 0])
    assert not tree.nan_left.any()
    expected = [15.69955851745073, 15.072179653109691, 13.674852282063254,
                17.68775579574708, 14.338585983877747, 13.941736305646792]  # fmt: skip
    np.testing.assert_allclose(reg.predict(X[:6]), expected, rtol=RECORDED_RTOL)

    X, y = datasets.make_classification(400, 6, n_informative=4, n_classes=3, random_state=0)
    X[np.random.default_rng(1).random(X.shape) < 0.1] = np.nan
    clf = HistGradientBoostingClassifier(max_iter=5, **params).fit(X, y)
    tree = clf.trees_[0][2]
    np.testing.assert_array_equal(tree.feature, [5, 3, 5, 0, 0, 0, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(tree.bin, [11, 27, 16, 3, 0, 0, 0, 0, 26, 0, 0])
    np.testing.assert_array_equal(tree.nan_left, [0, 1, 1, 0, 0, 0, 0, 0, 1, 0, 0])
    expected = [[-0.4979811488416757, -0.24035046517336037, 0.10297296806139403],
                [0.9481869310529837, -0.6316216460873132, -0.6056581404315343],
                [0.06394334001293583, 0.22446613465948473, -0.6056581404315343],
                [-0.5053910993896816, 0.7448140474048317, 0.23330503069427053]]  # fmt: skip
    np.testing.assert_allclose(clf.decision_function(X[:4]), expected, rtol=RECORDED_RTOL)


def test_second_fit_resets_and_clone_keeps_params():
    X, y = CLASSIFICATION["wine"]
    model = HistGradientBoostingClassifier(max_iter=15)
    first = clone(model).fit(X, y).predict_proba(X)
    refit = clone(model).fit(X[:80, :4], y[:80] % 2).fit(X, y)
    np.testing.assert_array_equal(refit.predict_proba(X), first)
    assert len(refit.trees_) == 15 and refit.n_features_in_ == X.shape[1]
    assert clone(model).get_params() == model.get_params()


@pytest.mark.parametrize(
    "model", [HistGradientBoostingClassifier(max_iter=3), HistGradientBoostingRegressor(max_iter=3)]
)
def test_bad_input_raises_like_sklearn(model):
    X, y = CLASSIFICATION["gen-800x10"]
    with pytest.raises(NotFittedError):
        clone(model).predict(X)
    X_inf = X.copy()
    X_inf[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        clone(model).fit(X_inf, y)
    with pytest.raises(ValueError, match="features"):
        clone(model).fit(X, y).predict(X[:, :5])
    with pytest.raises(ValueError, match="max_bins"):
        clone(model).set_params(max_bins=256).fit(X, y)
    with pytest.raises(ValueError, match="loss"):
        clone(model).set_params(loss="poisson").fit(X, y)
    with pytest.raises(ValueError):
        clone(model).fit(np.array([["a"], ["b"]]), [0, 1])


def test_classifier_refuses_one_class():
    X, y = CLASSIFICATION["gen-800x10"]
    with pytest.raises(ValueError, match="minimum of 2 classes"):
        HistGradientBoostingClassifier().fit(X, np.ones(len(y)))


@parametrize_with_checks(
    [
        HistGradientBoostingClassifier(max_iter=5, min_samples_leaf=5),
        HistGradientBoostingRegressor(max_iter=5, min_samples_leaf=5),
    ]
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
