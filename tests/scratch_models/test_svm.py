"""Oracle tests: scratch SMO support vector classifier against scikit-learn's SVC (LIBSVM)."""

import numpy as np
import pytest
from sklearn import datasets, svm
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.preprocessing import StandardScaler

from scratch_models.svm import SVC

SOLVER_TOL = 1e-6  # the KKT tolerance given to both solvers
DECISION_ATOL = 1e-3  # the brief's bar for decision values and dual coefficients; measured ~1e-5


def _generated(seed, n, p, noise, classes=2):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    score = X[:, 0] + X[:, 1] ** 2 - 1 + noise * rng.normal(size=n)  # curved boundary
    y = np.digitize(score, np.quantile(score, np.linspace(0, 1, classes + 1)[1:-1]))
    return X, y


def _bundled(loader, rows=None, keep=None):
    X, y = loader(return_X_y=True)
    if keep is not None:  # a subset of the classes
        X, y = X[np.isin(y, keep)], y[np.isin(y, keep)]
    X, y = X[:rows], y[:rows]
    # iris repeats rows: LIBSVM may split a weight between twins, a tie with no unique answer
    X, first = np.unique(X, axis=0, return_index=True)
    return StandardScaler().fit_transform(X), y[first]


DATA = {
    "gen-120x2": _generated(0, 120, 2, 0.2),
    "gen-200x5-noisy": _generated(1, 200, 5, 1.0),
    "gen-150x10": _generated(2, 150, 10, 0.5),
    "gen-180x4-3class": _generated(3, 180, 4, 0.5, classes=3),
    "iris": _bundled(datasets.load_iris),
    "wine": _bundled(datasets.load_wine),
    "breast_cancer": _bundled(datasets.load_breast_cancer, rows=300),
    "digits-3-vs-8": _bundled(datasets.load_digits, rows=250, keep=[3, 8]),
}
KERNELS = [
    {"kernel": "linear", "C": 0.5},
    {"kernel": "rbf"},
    {"kernel": "rbf", "C": 10.0, "gamma": 0.2},
    {"kernel": "poly", "degree": 3, "coef0": 1.0, "gamma": "auto"},
]


def _assert_same(ours, ref, X):
    np.testing.assert_array_equal(ours.classes_, ref.classes_)
    np.testing.assert_array_equal(ours.support_, ref.support_)
    np.testing.assert_array_equal(ours.n_support_, ref.n_support_)
    np.testing.assert_array_equal(ours.support_vectors_, ref.support_vectors_)
    np.testing.assert_allclose(ours.dual_coef_, ref.dual_coef_, rtol=0, atol=DECISION_ATOL)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=0, atol=DECISION_ATOL)
    dec = ours.decision_function(X)
    ref_dec = ref.decision_function(X)
    np.testing.assert_allclose(dec, ref_dec, rtol=0, atol=DECISION_ATOL)
    sure = np.abs(ref_dec).min(axis=-1) > DECISION_ATOL if dec.ndim == 1 else slice(None)
    np.testing.assert_array_equal(ours.predict(X)[sure], ref.predict(X)[sure])


@pytest.mark.parametrize("name", DATA)
@pytest.mark.parametrize("params", KERNELS, ids=lambda p: "-".join(map(str, p.values())))
def test_matches_libsvm(name, params):
    X, y = DATA[name]
    ours = SVC(tol=SOLVER_TOL, **params).fit(X, y)
    ref = svm.SVC(tol=SOLVER_TOL, **params).fit(X, y)
    _assert_same(ours, ref, X)
    assert ours.fit_status_ == 0


@pytest.mark.parametrize("name", ["gen-180x4-3class", "iris", "wine"])
def test_one_vs_one_shape(name):
    X, y = DATA[name]
    ours = SVC(tol=SOLVER_TOL, decision_function_shape="ovo").fit(X, y)
    ref = svm.SVC(tol=SOLVER_TOL, decision_function_shape="ovo").fit(X, y)
    assert ours.decision_function(X).shape == (len(X), 3)
    _assert_same(ours, ref, X)


def test_dual_is_feasible_and_kkt_holds():
    X, y = DATA["gen-200x5-noisy"]
    C = 2.0
    model = SVC(C=C, tol=SOLVER_TOL).fit(X, y)
    coef = model.dual_coef_[0]  # alpha_i y_i with y = +1 for classes_[1]
    assert np.all(np.abs(coef) <= C + 1e-12) and abs(coef.sum()) < 1e-10
    # margin: y f(x) >= 1 where alpha = 0, <= 1 where alpha = C, = 1 in between (up to tol)
    margin = np.where(y == model.classes_[1], 1, -1) * model.decision_function(X)
    alpha = np.zeros(len(X))
    alpha[model.support_] = np.abs(coef)
    tol = 10 * SOLVER_TOL
    assert np.all(margin[alpha == 0] >= 1 - tol)
    assert np.all(margin[alpha >= C] <= 1 + tol)
    assert np.all(np.abs(margin[(alpha > 0) & (alpha < C)] - 1) < tol)


def test_string_labels_refit_resets_and_max_iter():
    X, y = DATA["gen-120x2"]
    labels = np.array(["no", "yes"])[y]
    model = SVC()
    first = model.fit(X, labels).decision_function(X)
    model.fit(X[:30, :1], np.r_[np.zeros(15), np.ones(15)])
    assert model.n_features_in_ == 1
    np.testing.assert_array_equal(model.fit(X, labels).decision_function(X), first)
    np.testing.assert_array_equal(clone(model).fit(X, labels).predict(X), model.predict(X))
    assert set(model.predict(X)) <= {"no", "yes"}
    capped = SVC(max_iter=3).fit(X, labels)
    assert capped.fit_status_ == 1 and capped.n_iter_[0] == 3


def _both_raise(exc, match, ours, ref):
    with pytest.raises(exc, match=match):
        ours()
    with pytest.raises(exc, match=match):
        ref()


X_BAD, Y_BAD = DATA["gen-120x2"]


@pytest.mark.parametrize(
    ("exc", "match", "call"),
    [
        (ValueError, "'C' parameter", lambda m: m(C=0).fit(X_BAD, Y_BAD)),
        (ValueError, "'kernel' parameter", lambda m: m(kernel="laplace").fit(X_BAD, Y_BAD)),
        (ValueError, "'gamma' parameter", lambda m: m(gamma=-1.0).fit(X_BAD, Y_BAD)),
        (
            ValueError,
            "greater than one; got 1 class",
            lambda m: m().fit(X_BAD, np.zeros(len(X_BAD))),
        ),
        (ValueError, "Unknown label type", lambda m: m().fit(X_BAD, X_BAD[:, 0])),
        (ValueError, "NaN", lambda m: m().fit(np.r_[X_BAD[:-1], [[np.nan, 0]]], Y_BAD)),
        (ValueError, "inconsistent numbers of samples", lambda m: m().fit(X_BAD, Y_BAD[:-1])),
        (ValueError, "expecting 2 features", lambda m: m().fit(X_BAD, Y_BAD).predict(X_BAD[:, :1])),
        (NotFittedError, "not fitted", lambda m: m().decision_function(X_BAD)),
    ],
)
def test_bad_input_raises_like_sklearn(exc, match, call):
    _both_raise(exc, match, lambda: call(SVC), lambda: call(svm.SVC))
