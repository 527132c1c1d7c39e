"""Oracle tests: scratch coordinate descent against scikit-learn's ``Lasso``, ``ElasticNet``
and ``lasso_path``."""

import warnings

import numpy as np
import pytest
from sklearn import datasets
from sklearn import linear_model as sk
from sklearn.base import clone

from scratch_models.coordinate_descent import ElasticNet, Lasso, lasso_path
from tests.scratch_models.bad_input import assert_refuses_like_sklearn

COEF_TOL = 1e-6  # |ours - sklearn| <= COEF_TOL * (1 + |sklearn|), both run at TIGHT_TOL
TIGHT_TOL = 1e-10  # duality gap <= TIGHT_TOL * ||y||^2
MAX_ITER = 100_000


def _generated(seed, n, p, noise, **kwargs):
    X, y = datasets.make_regression(
        n, p, n_informative=min(p, 10), noise=noise, random_state=seed, **kwargs
    )
    return X, y


DATA = {
    "gen-200x30": _generated(0, 200, 30, 5.0),
    "gen-300x10-noisy-bias": _generated(1, 300, 10, 80.0, bias=20.0),
    "gen-60x150-wide": _generated(2, 60, 150, 1.0),  # n < p
    "gen-400x20-lowrank": _generated(3, 400, 20, 10.0, effective_rank=5),
    "diabetes": datasets.load_diabetes(return_X_y=True),
}
# alphas as fractions of the smallest alpha that zeroes every coefficient
ALPHA_FRACTIONS = [0.5, 0.1, 0.02]


def _alpha(X, y, fraction):
    Xc, yc = X - X.mean(axis=0), y - y.mean()
    return fraction * np.max(np.abs(Xc.T @ yc)) / len(y)


def _assert_close(ours, theirs, tol=COEF_TOL):
    np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=tol, atol=tol)
    np.testing.assert_allclose(ours.intercept_, theirs.intercept_, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", DATA)
@pytest.mark.parametrize("fraction", ALPHA_FRACTIONS)
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_lasso_matches_sklearn(name, fraction, fit_intercept):
    X, y = DATA[name]
    params = dict(
        alpha=_alpha(X, y, fraction), fit_intercept=fit_intercept, tol=TIGHT_TOL, max_iter=MAX_ITER
    )
    ours, theirs = Lasso(**params).fit(X, y), sk.Lasso(**params).fit(X, y)
    _assert_close(ours, theirs)
    # the same coefficients are exactly zero: soft-thresholding, not rounding
    np.testing.assert_array_equal(ours.coef_ == 0, theirs.coef_ == 0)
    assert ours.dual_gap_ <= TIGHT_TOL * np.sum((y - fit_intercept * y.mean()) ** 2) / len(y)


@pytest.mark.parametrize("name", ["gen-200x30", "gen-60x150-wide", "diabetes"])
@pytest.mark.parametrize("l1_ratio", [0.0, 0.2, 0.5, 0.9])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_elastic_net_matches_sklearn(name, l1_ratio, fit_intercept):
    X, y = DATA[name]
    params = dict(
        alpha=_alpha(X, y, 0.1),
        l1_ratio=l1_ratio,
        fit_intercept=fit_intercept,
        tol=TIGHT_TOL,
        max_iter=MAX_ITER,
    )
    with warnings.catch_warnings():  # l1_ratio=0: sklearn suggests Ridge instead
        warnings.simplefilter("ignore", UserWarning)
        theirs = sk.ElasticNet(**params).fit(X, y)
    _assert_close(ElasticNet(**params).fit(X, y), theirs)


@pytest.mark.parametrize("name", ["gen-200x30", "diabetes"])
def test_default_tolerance_follows_sklearns_iterates(name):
    # same cyclic order, same stopping rule, same screening: the same approximate answer
    X, y = DATA[name]
    alpha = _alpha(X, y, 0.05)
    ours, theirs = Lasso(alpha=alpha).fit(X, y), sk.Lasso(alpha=alpha).fit(X, y)
    _assert_close(ours, theirs)
    assert ours.dual_gap_ == pytest.approx(theirs.dual_gap_, rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("name", DATA)
def test_lasso_path_matches_sklearn(name):
    X, y = DATA[name]
    # diabetes' columns are collinear: its small-alpha tail costs thousands of Python sweeps
    eps = 1e-2 if name == "diabetes" else 1e-3
    ours = lasso_path(X, y, eps=eps, tol=TIGHT_TOL, max_iter=MAX_ITER)
    theirs = sk.lasso_path(X, y, eps=eps, tol=TIGHT_TOL, max_iter=MAX_ITER)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-12)  # the alpha grid
    assert ours[1].shape == theirs[1].shape == (X.shape[1], 100)
    np.testing.assert_allclose(ours[1], theirs[1], rtol=COEF_TOL, atol=COEF_TOL)
    assert ours[2].shape == (100,)


def test_lasso_path_with_default_tolerance_and_given_alphas():
    X, y = DATA["gen-200x30"]
    for kwargs, sk_kwargs in [
        ({}, {}),
        ({"eps": 1e-2, "n_alphas": 20}, {"eps": 1e-2, "alphas": 20}),
        ({"alphas": [0.1, 3.0, 1.0]}, {"alphas": [0.1, 3.0, 1.0]}),
    ]:
        ours, theirs = lasso_path(X, y, **kwargs), sk.lasso_path(X, y, **sk_kwargs)
        np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-12)
        np.testing.assert_allclose(ours[1], theirs[1], rtol=COEF_TOL, atol=COEF_TOL)
        # the gaps themselves: same iterates, summed in another order
        np.testing.assert_allclose(ours[2], theirs[2], rtol=1e-5, atol=1e-9)


def test_a_path_with_warm_starts_ends_where_a_cold_fit_does():
    X, y = DATA["gen-60x150-wide"]
    alphas, coefs, _ = lasso_path(X, y, eps=1e-2, n_alphas=10, tol=TIGHT_TOL, max_iter=MAX_ITER)
    cold = Lasso(alpha=alphas[-1], fit_intercept=False, tol=TIGHT_TOL, max_iter=MAX_ITER)
    np.testing.assert_allclose(coefs[:, -1], cold.fit(X, y).coef_, rtol=COEF_TOL, atol=COEF_TOL)


def test_too_few_sweeps_warns():
    X, y = DATA["gen-60x150-wide"]
    with pytest.warns(UserWarning, match="did not converge"):
        Lasso(alpha=_alpha(X, y, 0.01), max_iter=2).fit(X, y)


@pytest.mark.parametrize("model", [Lasso(alpha=0.5), ElasticNet(alpha=0.5, l1_ratio=0.3)])
def test_second_fit_resets_and_clone_keeps_params(model):
    X1, y1 = DATA["gen-200x30"]
    X2, y2 = _generated(5, 150, 30, 1.0)
    fresh = clone(model).fit(X1, y1)
    model = clone(model)
    model.fit(X2, y2).fit(X1, y1)
    np.testing.assert_array_equal(model.coef_, fresh.coef_)
    assert model.intercept_ == fresh.intercept_
    assert clone(model).get_params() == model.get_params()


def test_parameters_are_a_subset_of_sklearns():
    for ours, theirs in [(Lasso(), sk.Lasso()), (ElasticNet(), sk.ElasticNet())]:
        params, sk_params = ours.get_params(), theirs.get_params()
        assert {k: sk_params[k] for k in params} == params  # same names, same defaults


# each bad input must raise the same kind of error in both libraries
TWINS = [Lasso(), ElasticNet(), sk.Lasso(), sk.ElasticNet()]


@pytest.mark.parametrize("model", TWINS, ids=repr)
def test_bad_input_raises_like_sklearn(model):
    X, y = DATA["gen-200x30"]
    assert_refuses_like_sklearn(model, X, y)
    with pytest.raises(ValueError, match="alpha"):
        clone(model).set_params(alpha=-1.0).fit(X, y)


@pytest.mark.parametrize("path", [lasso_path, sk.lasso_path])
def test_lasso_path_bad_input_raises_like_sklearn(path):
    X, y = DATA["gen-200x30"]
    X_nan = X.copy()
    X_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        path(X_nan, y)
    with pytest.raises(ValueError):  # sklearn's message here comes from numpy's matmul
        path(X, y[:-1])


def test_bad_l1_ratio_is_refused():
    X, y = DATA["gen-200x30"]
    for model in (ElasticNet(l1_ratio=1.5), sk.ElasticNet(l1_ratio=1.5)):
        with pytest.raises(ValueError, match="l1_ratio"):
            model.fit(X, y)
