"""Oracle tests: scratch least squares against scikit-learn's ``LinearRegression``."""

import numpy as np
import pytest
from sklearn import datasets
from sklearn import linear_model as sk
from sklearn.base import clone
from sklearn.preprocessing import StandardScaler

from scratch_models.linear_regression import LinearRegression
from tests.scratch_models.bad_input import assert_refuses_like_sklearn

COEF_TOL = 1e-6  # direct solvers: |ours - sklearn| <= COEF_TOL * (1 + |sklearn|)
GD_COEF_TOL = 1e-4  # gradient descent, run to a gradient of GD_GRAD_TOL
GD_GRAD_TOL = 1e-10


def _generated(seed, n, p, noise, **kwargs):
    X, y = datasets.make_regression(n, p, noise=noise, random_state=seed, **kwargs)
    return X, y


def _diabetes(standardise=False):
    X, y = datasets.load_diabetes(return_X_y=True)
    return (StandardScaler().fit_transform(X) if standardise else X), y


DATA = {
    "gen-200x5": _generated(0, 200, 5, 0.1),
    "gen-100x20-bias": _generated(1, 100, 20, 10.0, bias=3.0),
    "gen-500x8-lowrank-noisy": _generated(2, 500, 8, 50.0, effective_rank=4),
    "diabetes": _diabetes(),
}


def _assert_close(ours, theirs, tol):
    np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=tol, atol=tol)
    np.testing.assert_allclose(ours.intercept_, theirs.intercept_, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", DATA)
@pytest.mark.parametrize("solver", ["lstsq", "normal"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_direct_solvers_match_sklearn(name, solver, fit_intercept):
    X, y = DATA[name]
    ours = LinearRegression(solver=solver, fit_intercept=fit_intercept).fit(X, y)
    theirs = sk.LinearRegression(fit_intercept=fit_intercept).fit(X, y)
    _assert_close(ours, theirs, COEF_TOL)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=COEF_TOL, atol=COEF_TOL)


@pytest.mark.parametrize("solver", ["lstsq", "normal"])
def test_rank_deficient_design_gives_the_minimum_norm_solution(solver):
    X, y = _generated(3, 60, 4, 1.0)
    X = np.column_stack([X, 0.3 * X[:, 0] - 1.7 * X[:, 2]])  # a collinear fifth column
    ours = LinearRegression(solver=solver).fit(X, y)
    _assert_close(ours, sk.LinearRegression().fit(X, y), COEF_TOL)


@pytest.mark.parametrize(
    ("name", "X", "y"),
    [
        ("gen-200x5", *DATA["gen-200x5"]),
        ("gen-100x20-bias", *DATA["gen-100x20-bias"]),
        ("diabetes-standardised", *_diabetes(standardise=True)),  # condition number 470
    ],
)
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_gradient_descent_matches_sklearn_once_converged(name, X, y, fit_intercept):
    ours = LinearRegression(
        solver="gd", fit_intercept=fit_intercept, tol=GD_GRAD_TOL, max_iter=100_000
    ).fit(X, y)
    _assert_close(ours, sk.LinearRegression(fit_intercept=fit_intercept).fit(X, y), GD_COEF_TOL)
    assert 1 <= ours.n_iter_ < 100_000


def test_gradient_descent_with_a_fixed_learning_rate_and_a_convergence_warning():
    X, y = DATA["gen-200x5"]
    ours = LinearRegression(solver="gd", learning_rate=0.1, tol=GD_GRAD_TOL, max_iter=20_000)
    _assert_close(ours.fit(X, y), sk.LinearRegression().fit(X, y), GD_COEF_TOL)
    with pytest.warns(UserWarning, match="did not converge"):
        LinearRegression(solver="gd", max_iter=3).fit(X, y)


@pytest.mark.parametrize("solver", ["lstsq", "normal", "gd"])
def test_second_fit_resets_and_clone_keeps_params(solver):
    model = LinearRegression(solver=solver, tol=1e-9, max_iter=50_000)
    X1, y1 = DATA["gen-200x5"]
    X2, y2 = _generated(4, 150, 5, 1.0)
    fresh = clone(model).fit(X1, y1)
    model.fit(X2, y2).fit(X1, y1)
    np.testing.assert_array_equal(model.coef_, fresh.coef_)
    assert model.intercept_ == fresh.intercept_
    assert clone(model).get_params() == model.get_params()


# each bad input must raise the same kind of error in both libraries
TWINS = [LinearRegression(), LinearRegression(solver="gd"), sk.LinearRegression()]


@pytest.mark.parametrize("model", TWINS, ids=repr)
def test_bad_input_raises_like_sklearn(model):
    X, y = DATA["gen-200x5"]
    assert_refuses_like_sklearn(model, X, y)


def test_unknown_solver_and_bad_learning_rate_are_refused():
    X, y = DATA["gen-200x5"]
    with pytest.raises(ValueError, match="solver"):
        LinearRegression(solver="qr").fit(X, y)
    with pytest.raises(ValueError, match="learning_rate"):
        LinearRegression(solver="gd", learning_rate=-1.0).fit(X, y)
