"""Oracle tests: scratch PCA against scikit-learn's PCA, solver by solver."""

import numpy as np
import pytest
from sklearn import datasets, decomposition
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.preprocessing import StandardScaler

from scratch_models.pca import PCA

PCA_ATOL = 1e-8  # the brief's bar against scikit-learn; measured 0 (same LAPACK calls)
SOLVER_ATOL = 1e-8  # SVD vs covariance eigh on well-conditioned data; measured ~1e-13
ATTRIBUTES = [
    "components_",
    "explained_variance_",
    "explained_variance_ratio_",
    "singular_values_",
    "mean_",
]


def _correlated(seed, n, p, noise):
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, min(p, 4))) @ rng.normal(size=(min(p, 4), p))  # low rank
    return latent * rng.uniform(0.5, 5.0, size=p) + noise * rng.normal(size=(n, p)) + 3.0


def _standardised(loader):
    return StandardScaler().fit_transform(loader(return_X_y=True)[0])


# (data, n_components whose eigenvalues are well separated from the next one)
DATA = {
    "gen-300x6": (_correlated(0, 300, 6, 0.3), 6),
    "gen-500x12-noisy": (_correlated(1, 500, 12, 2.0), 5),
    "gen-40x25-wide": (_correlated(2, 40, 25, 0.5), 4),  # n < p
    "iris": (_standardised(datasets.load_iris), 4),
    "wine": (_standardised(datasets.load_wine), 10),
    "breast_cancer": (_standardised(datasets.load_breast_cancer), 10),
    "digits": (_standardised(datasets.load_digits), 20),
}


def _assert_close(ours, ref, atol):
    for name in ATTRIBUTES:
        np.testing.assert_allclose(getattr(ours, name), getattr(ref, name), rtol=0, atol=atol)
    assert ours.n_components_ == ref.n_components_
    np.testing.assert_allclose(ours.noise_variance_, ref.noise_variance_, rtol=0, atol=atol)


@pytest.mark.parametrize("name", DATA)
@pytest.mark.parametrize("solver", ["full", "covariance_eigh"])
@pytest.mark.parametrize("whiten", [False, True])
def test_matches_sklearn(name, solver, whiten):
    X, q = DATA[name]
    ours = PCA(q, svd_solver=solver, whiten=whiten).fit(X)
    ref = decomposition.PCA(q, svd_solver=solver, whiten=whiten).fit(X)
    _assert_close(ours, ref, PCA_ATOL)
    Xn = X[::2] * 1.1
    T = ours.transform(Xn)
    np.testing.assert_allclose(T, ref.transform(Xn), rtol=0, atol=PCA_ATOL)
    np.testing.assert_allclose(
        ours.inverse_transform(T), ref.inverse_transform(T), rtol=0, atol=PCA_ATOL
    )


@pytest.mark.parametrize("name", ["gen-300x6", "gen-500x12-noisy", "iris", "wine"])
def test_the_two_solvers_agree(name):
    X, q = DATA[name]
    full = PCA(q, svd_solver="full").fit(X)
    eigh = PCA(q, svd_solver="covariance_eigh").fit(X)
    _assert_close(eigh, full, SOLVER_ATOL)
    np.testing.assert_allclose(eigh.transform(X), full.transform(X), rtol=0, atol=SOLVER_ATOL)


@pytest.mark.parametrize("fraction", [0.5, 0.8, 0.95])
def test_float_n_components_and_auto_solver(fraction):
    X, _ = DATA["breast_cancer"]
    ours = PCA(fraction).fit(X)  # "auto": 569 >= 10 * 30 rows, so covariance_eigh
    ref = decomposition.PCA(fraction, svd_solver="covariance_eigh").fit(X)
    _assert_close(ours, ref, PCA_ATOL)
    assert ours.explained_variance_ratio_.sum() > fraction
    assert ours.explained_variance_ratio_[:-1].sum() <= fraction


def test_signs_follow_svd_flip_and_axes_are_orthonormal():
    X, q = DATA["wine"]
    C = PCA(q).fit(X).components_
    pivot = np.abs(C).argmax(axis=1)
    assert np.all(C[np.arange(q), pivot] > 0)  # largest-magnitude entry positive per axis
    np.testing.assert_allclose(C @ C.T, np.eye(q), atol=1e-12)


@pytest.mark.parametrize("solver", ["full", "covariance_eigh"])
def test_all_components_reconstruct_exactly(solver):
    X, _ = DATA["gen-300x6"]
    model = PCA(svd_solver=solver, whiten=True).fit(X)
    np.testing.assert_allclose(model.inverse_transform(model.transform(X)), X, atol=1e-10)
    np.testing.assert_allclose(np.cov(model.transform(X).T), np.eye(6), atol=1e-10)  # whitened


def test_refit_resets_and_clone():
    X, _ = DATA["gen-300x6"]
    model = PCA(3)
    first = model.fit(X).components_.copy()
    model.fit(X[:, :4] * 2)
    assert model.n_features_in_ == 4
    np.testing.assert_array_equal(model.fit(X).components_, first)
    np.testing.assert_array_equal(clone(model).fit(X).components_, first)
    assert list(model.get_feature_names_out()) == ["pca0", "pca1", "pca2"]


def _both_raise(exc, match, ours, ref):
    with pytest.raises(exc, match=match):
        ours()
    with pytest.raises(exc, match=match):
        ref()


X_BAD = np.random.default_rng(0).normal(size=(20, 3))


@pytest.mark.parametrize(
    ("exc", "match", "call"),
    [
        (
            ValueError,
            r"n_components=5 must be between 0 and min\(n_samples, n_features\)=3",
            lambda m: m(5).fit(X_BAD),
        ),
        (ValueError, "n_components", lambda m: m(1.5).fit(X_BAD)),
        (ValueError, "n_components", lambda m: m(-1).fit(X_BAD)),
        (ValueError, "svd_solver", lambda m: m(svd_solver="lanczos").fit(X_BAD)),
        (ValueError, "NaN", lambda m: m().fit(np.r_[X_BAD, [[np.nan] * 3]])),
        (ValueError, "expecting 3 features", lambda m: m(2).fit(X_BAD).transform(X_BAD[:, :2])),
        (NotFittedError, "not fitted", lambda m: m(2).transform(X_BAD)),
        (NotFittedError, "not fitted", lambda m: m(2).inverse_transform(X_BAD[:, :2])),
    ],
)
def test_bad_input_raises_like_sklearn(exc, match, call):
    _both_raise(exc, match, lambda: call(PCA), lambda: call(decomposition.PCA))


def test_one_sample_is_refused():
    # scikit-learn returns NaN variances ("full") or fails inside eigh; a clear error instead
    with pytest.raises(ValueError, match="n_samples = 1"):
        PCA().fit(X_BAD[:1])
