"""Oracle tests: scratch ridge regression against scikit-learn's ``Ridge``."""

import numpy as np
import pytest
from sklearn import datasets
from sklearn import linear_model as sk
from sklearn.base import clone
from sklearn.preprocessing import StandardScaler

from scratch_models.ridge import Ridge
from tests.scratch_models.bad_input import assert_refuses_like_sklearn

COEF_TOL = 1e-6  # |ours - sklearn| <= COEF_TOL * (1 + |sklearn|), closed form and gd
GD_GRAD_TOL = 1e-11  # gradient descent runs until max |gradient| <= this


def _generated(seed, n, p, noise, **kwargs):
    return datasets.make_regression(n, p, noise=noise, random_state=seed, **kwargs)


def _diabetes(standardise=False):
    X, y = datasets.load_diabetes(return_X_y=True)
    return (StandardScaler().fit_transform(X) if standardise else X), y


DATA = {
    "gen-200x5": _generated(0, 200, 5, 0.1),
    "gen-100x20-bias": _generated(1, 100, 20, 10.0, bias=3.0),
    "gen-40x120-wide": _generated(2, 40, 120, 5.0),  # n < p: the dual system
    "gen-500x8-lowrank-noisy": _generated(3, 500, 8, 50.0, effective_rank=4),
    "diabetes": _diabetes(),
}
ALPHAS = [0.01, 1.0, 100.0]


def _assert_close(ours, theirs, tol):
    np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=tol, atol=tol)
    np.testing.assert_allclose(ours.intercept_, theirs.intercept_, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", DATA)
@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_closed_form_matches_sklearn(name, alpha, fit_intercept):
    X, y = DATA[name]
    ours = Ridge(alpha=alpha, fit_intercept=fit_intercept).fit(X, y)
    theirs = sk.Ridge(alpha=alpha, fit_intercept=fit_intercept).fit(X, y)
    _assert_close(ours, theirs, COEF_TOL)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=COEF_TOL, atol=COEF_TOL)


@pytest.mark.parametrize(
    ("name", "X", "y"),
    [
        ("gen-200x5", *DATA["gen-200x5"]),
        ("gen-40x120-wide", *DATA["gen-40x120-wide"]),
        ("diabetes-standardised", *_diabetes(standardise=True)),
    ],
)
@pytest.mark.parametrize("alpha", [1.0, 100.0])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_gradient_descent_matches_sklearn(name, X, y, alpha, fit_intercept):
    ours = Ridge(
        alpha=alpha, fit_intercept=fit_intercept, solver="gd", tol=GD_GRAD_TOL, max_iter=200_000
    ).fit(X, y)
    _assert_close(ours, sk.Ridge(alpha=alpha, fit_intercept=fit_intercept).fit(X, y), COEF_TOL)
    assert 1 <= ours.n_iter_ < 200_000


def test_the_intercept_is_not_penalised():
    # a huge penalty shrinks the coefficients to ~0 but leaves the intercept at mean(y)
    X, y = DATA["gen-100x20-bias"]
    ours = Ridge(alpha=1e12).fit(X, y)
    assert np.max(np.abs(ours.coef_)) < 1e-6
    assert ours.intercept_ == pytest.approx(y.mean(), abs=1e-6)


def test_alpha_zero_is_least_squares_even_when_singular():
    X, y = _generated(4, 60, 4, 1.0)
    X = np.column_stack([X, X[:, 0]])  # exactly singular X'X
    ours = Ridge(alpha=0.0).fit(X, y)
    _assert_close(ours, sk.LinearRegression().fit(X, y), COEF_TOL)


def test_gradient_descent_warns_when_it_runs_out_of_iterations():
    X, y = DATA["gen-200x5"]
    with pytest.warns(UserWarning, match="did not converge"):
        Ridge(solver="gd", max_iter=3).fit(X, y)


@pytest.mark.parametrize("solver", ["cholesky", "gd"])
def test_second_fit_resets_and_clone_keeps_params(solver):
    model = Ridge(alpha=2.0, solver=solver, tol=1e-9, max_iter=50_000)
    X1, y1 = DATA["gen-200x5"]
    X2, y2 = _generated(5, 150, 5, 1.0)
    fresh = clone(model).fit(X1, y1)
    model.fit(X2, y2).fit(X1, y1)
    np.testing.assert_array_equal(model.coef_, fresh.coef_)
    assert model.intercept_ == fresh.intercept_
    assert clone(model).get_params() == model.get_params()


# each bad input must raise the same kind of error in both libraries
TWINS = [Ridge(), Ridge(solver="gd"), sk.Ridge()]


@pytest.mark.parametrize("model", TWINS, ids=repr)
def test_bad_input_raises_like_sklearn(model):
    X, y = DATA["gen-200x5"]
    assert_refuses_like_sklearn(model, X, y)
    with pytest.raises(ValueError, match="alpha"):
        clone(model).set_params(alpha=-1.0).fit(X, y)


def test_unknown_solver_is_refused():
    X, y = DATA["gen-200x5"]
    with pytest.raises(ValueError, match="solver"):
        Ridge(solver="svd").fit(X, y)
