"""Oracle tests: scratch logistic regression against scikit-learn's ``LogisticRegression``.

L2 is checked against sklearn's lbfgs. L1 is checked against the sklearn solver whose
objective is ours exactly: saga (intercept unpenalised), or liblinear without an intercept
(liblinear penalises the intercept it fits, so it is the oracle only for
``fit_intercept=False``; it also converges where saga needs tens of thousands of epochs).
Since scikit-learn 1.8 the L1 penalty is spelled ``l1_ratio=1`` there (``penalty`` is
deprecated); three or more classes always mean the multinomial model.
"""

import functools

import numpy as np
import pytest
from scipy.special import log_softmax
from sklearn import datasets
from sklearn import linear_model as sk
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.preprocessing import StandardScaler

from scratch_models.logistic import LogisticRegression
from tests.scratch_models.bad_input import assert_refuses_like_sklearn

PROBA_TOL = 1e-4  # max |predict_proba(ours) - predict_proba(sklearn)|
COEF_TOL = 1e-4  # |ours - sklearn| <= COEF_TOL * (1 + |sklearn|), coef_ and intercept_
TIGHT = dict(tol=1e-10, max_iter=10_000)  # both libraries, run to convergence


def _bundled(loader):
    X, y = loader(return_X_y=True)
    return StandardScaler().fit_transform(X), y  # lbfgs / saga need comparable scales


def _generated(seed, n, p, n_classes):
    return datasets.make_classification(
        n, p, n_informative=4, n_redundant=1, n_classes=n_classes, random_state=seed
    )


DATA = {
    "breast_cancer": _bundled(datasets.load_breast_cancer),
    "wine": _bundled(datasets.load_wine),
    "gen-200x6-binary": _generated(1, 200, 6, 2),
    "gen-300x8-3class": _generated(0, 300, 8, 3),
    "gen-400x10-4class": _generated(2, 400, 10, 4),
}


@functools.cache
def _sklearn(name, C, fit_intercept, penalty="l2"):
    X, y = DATA[name]
    if penalty == "l2":
        model = sk.LogisticRegression(C=C, fit_intercept=fit_intercept, **TIGHT)
    elif fit_intercept:
        model = sk.LogisticRegression(C=C, l1_ratio=1, solver="saga", **TIGHT)
    else:
        model = sk.LogisticRegression(
            C=C, l1_ratio=1, solver="liblinear", fit_intercept=False, tol=1e-12, max_iter=10_000
        )
    return model.fit(X, y)


def _assert_close(ours, theirs, X, coef=True):
    assert ours.coef_.shape == theirs.coef_.shape
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=PROBA_TOL)
    if coef:
        np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=COEF_TOL, atol=COEF_TOL)
        # liblinear reports a scalar 0.0 intercept when it fits none
        theirs_intercept = np.broadcast_to(theirs.intercept_, ours.intercept_.shape)
        np.testing.assert_allclose(ours.intercept_, theirs_intercept, rtol=COEF_TOL, atol=COEF_TOL)


def _objective(model, X, y, penalty):
    """sklearn's objective: C * sum of log-losses + the penalty on coef_."""
    scores = model.decision_function(X)
    if scores.ndim == 1:
        scores = np.column_stack([np.zeros(len(scores)), scores])
    log_p = log_softmax(scores, axis=1)[np.arange(len(y)), np.searchsorted(model.classes_, y)]
    W = model.coef_
    return -model.C * log_p.sum() + (np.abs(W).sum() if penalty == "l1" else 0.5 * (W**2).sum())


# bundled sets at three penalty strengths, generated ones at two; all once without intercept
L2_CASES = [
    (name, C, True)
    for name in DATA
    for C in ((0.1, 1.0, 10.0) if name in ("breast_cancer", "wine") else (0.1, 10.0))
]
L2_CASES += [(name, 1.0, False) for name in DATA]


@pytest.mark.parametrize(("name", "C", "fit_intercept"), L2_CASES)
@pytest.mark.parametrize("solver", ["newton", "lbfgs"])
def test_l2_matches_sklearn_lbfgs(name, C, fit_intercept, solver):
    X, y = DATA[name]
    ours = LogisticRegression(C=C, solver=solver, fit_intercept=fit_intercept, **TIGHT)
    _assert_close(ours.fit(X, y), _sklearn(name, C, fit_intercept), X)


@pytest.mark.parametrize(
    ("name", "C", "fit_intercept"),
    [
        ("breast_cancer", 0.1, False),
        ("breast_cancer", 1.0, False),
        ("breast_cancer", 10.0, False),
        ("gen-200x6-binary", 0.1, True),
        ("gen-200x6-binary", 1.0, True),
        ("gen-200x6-binary", 1.0, False),
        ("wine", 0.1, True),
        ("wine", 1.0, True),
        ("gen-300x8-3class", 1.0, True),
        ("gen-400x10-4class", 0.1, True),
    ],
)
def test_l1_matches_the_sklearn_solver_with_the_same_objective(name, C, fit_intercept):
    X, y = DATA[name]
    ours = LogisticRegression("l1", C=C, solver="proximal", fit_intercept=fit_intercept, **TIGHT)
    theirs = _sklearn(name, C, fit_intercept, "l1")
    assert theirs.n_iter_.max() < TIGHT["max_iter"]  # the oracle itself converged
    n_classes = len(np.unique(y))
    # with an even number (> 2) of classes the L1 multinomial optimum is not unique: adding
    # c to column j of W keeps the probabilities, and sum_k |W_kj + c| is flat for c
    # between the two middle values. Compare the probabilities and the objective there.
    unique = n_classes == 2 or n_classes % 2 == 1
    _assert_close(ours.fit(X, y), theirs, X, coef=unique)
    assert _objective(ours, X, y, "l1") == pytest.approx(_objective(theirs, X, y, "l1"), rel=1e-8)
    assert np.any(ours.coef_ == 0)  # L1 zeroes coefficients exactly


def test_labels_shapes_and_predictions_follow_sklearn():
    X, y = DATA["wine"]
    labels = np.array(["barolo", "grignolino", "barbera"])[y]  # strings, not sorted by code
    for X_, y_ in [(X, labels), (X[y < 2], labels[y < 2])]:
        ours = LogisticRegression(**TIGHT).fit(X_, y_)
        theirs = sk.LogisticRegression(**TIGHT).fit(X_, y_)
        np.testing.assert_array_equal(ours.classes_, theirs.classes_)
        np.testing.assert_array_equal(ours.predict(X_), theirs.predict(X_))
        assert ours.decision_function(X_).shape == theirs.decision_function(X_).shape
        np.testing.assert_allclose(ours.predict_proba(X_).sum(axis=1), 1.0)
        np.testing.assert_allclose(
            ours.predict_log_proba(X_), theirs.predict_log_proba(X_), atol=1e-3
        )


def test_multinomial_intercepts_sum_to_zero():
    # the softmax intercepts are defined up to a common shift; the solvers never move it
    X, y = DATA["gen-400x10-4class"]
    for solver, penalty in [("newton", "l2"), ("lbfgs", "l2"), ("proximal", "l1")]:
        model = LogisticRegression(penalty, solver=solver, **TIGHT).fit(X, y)
        assert abs(model.intercept_.sum()) < 1e-8


def test_unpenalised_fit_with_infinite_C():
    X, y = DATA["gen-200x6-binary"]
    ours = LogisticRegression(C=np.inf, solver="newton", **TIGHT).fit(X, y)
    theirs = sk.LogisticRegression(C=np.inf, **TIGHT).fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=PROBA_TOL)


def test_running_out_of_iterations_warns():
    X, y = DATA["breast_cancer"]
    for solver, penalty in [("newton", "l2"), ("lbfgs", "l2"), ("proximal", "l1")]:
        with pytest.warns(UserWarning, match="did not converge"):
            LogisticRegression(penalty, solver=solver, C=10.0, max_iter=2).fit(X, y)


@pytest.mark.parametrize(
    "model", [LogisticRegression(), LogisticRegression("l1", solver="proximal", max_iter=500)]
)
def test_second_fit_resets_and_clone_keeps_params(model):
    X1, y1 = DATA["gen-300x8-3class"]
    X2, y2 = DATA["gen-200x6-binary"]
    fresh = clone(model).fit(X1, y1)
    model = clone(model)
    model.fit(X2, y2).fit(X1, y1)
    np.testing.assert_array_equal(model.coef_, fresh.coef_)
    np.testing.assert_array_equal(model.intercept_, fresh.intercept_)
    np.testing.assert_array_equal(model.classes_, fresh.classes_)
    assert clone(model).get_params() == model.get_params()


# each bad input must raise the same kind of error in both libraries
TWINS = [LogisticRegression(), LogisticRegression("l1", solver="proximal"), sk.LogisticRegression()]


@pytest.mark.parametrize("model", TWINS, ids=repr)
def test_bad_input_raises_like_sklearn(model):
    X, y = DATA["gen-200x6-binary"]
    assert_refuses_like_sklearn(model, X, y, string_target=(0, 1))
    with pytest.raises(NotFittedError):
        clone(model).predict_proba(X)
    with pytest.raises(ValueError, match="class"):  # a single class
        clone(model).fit(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match="Unknown label type"):  # a continuous target
        clone(model).fit(X, np.linspace(0, 1, len(X)))
    with pytest.raises(ValueError, match="C"):
        clone(model).set_params(C=-1.0).fit(X, y)


def test_solver_and_penalty_must_agree():
    X, y = DATA["gen-200x6-binary"]
    for model in (
        LogisticRegression("l1", solver="lbfgs"),
        LogisticRegression("l2", solver="proximal"),
        LogisticRegression("elasticnet"),
        sk.LogisticRegression(l1_ratio=1, solver="lbfgs"),
    ):
        with pytest.raises(ValueError):
            model.fit(X, y)
