"""Oracle tests: scratch k-means against scikit-learn's KMeans(algorithm="lloyd")."""

import numpy as np
import pytest
from sklearn import cluster, datasets
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.preprocessing import StandardScaler

from scratch_models.kmeans import KMeans, _kmeans_plusplus

INERTIA_RTOL = 1e-8  # the brief's bar; measured ~1e-15
CENTER_ATOL = 1e-8  # centres and distances; measured ~1e-14
SEEDING_SLACK = 1.02  # our k-means++ (other random stream) may be 2% worse than scikit-learn's


def _blobs(seed, n, p, k, std):
    X, _ = datasets.make_blobs(n, n_features=p, centers=k, cluster_std=std, random_state=seed)
    return X, k


def _bundled(loader, k):
    return StandardScaler().fit_transform(loader(return_X_y=True)[0]), k


DATA = {
    "blobs-300x2-k3": _blobs(0, 300, 2, 3, 1.0),
    "blobs-500x5-k6-overlapping": _blobs(1, 500, 5, 6, 3.0),
    "blobs-400x10-k4-scaled": (_blobs(2, 400, 10, 4, 2.0)[0] * np.geomspace(0.1, 100, 10), 4),
    "uniform-600x3-k7": (np.random.default_rng(3).uniform(size=(600, 3)), 7),
    "iris": _bundled(datasets.load_iris, 3),
    "wine": _bundled(datasets.load_wine, 3),
    "breast_cancer": _bundled(datasets.load_breast_cancer, 2),
    "digits": _bundled(datasets.load_digits, 10),
}


def _start(X, k, seed=0):
    return X[np.random.default_rng(seed).choice(len(X), k, replace=False)]


def _assert_same(ours, ref, X):
    np.testing.assert_array_equal(ours.labels_, ref.labels_)
    np.testing.assert_allclose(ours.inertia_, ref.inertia_, rtol=INERTIA_RTOL)
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, atol=CENTER_ATOL)
    assert ours.n_iter_ == ref.n_iter_


@pytest.mark.parametrize("name", DATA)
@pytest.mark.parametrize("seed", [0, 1])
def test_same_start_same_clustering(name, seed):
    X, k = DATA[name]
    init = _start(X, k, seed)
    ours = KMeans(k, init=init, n_init=1).fit(X)
    ref = cluster.KMeans(k, init=init, n_init=1).fit(X)
    _assert_same(ours, ref, X)
    Xn = X[::3] + 0.1
    np.testing.assert_array_equal(ours.predict(Xn), ref.predict(Xn))
    np.testing.assert_allclose(ours.transform(Xn), ref.transform(Xn), atol=CENTER_ATOL)
    np.testing.assert_allclose(ours.score(Xn), ref.score(Xn), rtol=INERTIA_RTOL)


@pytest.mark.parametrize(("max_iter", "tol"), [(1, 1e-4), (2, 1e-4), (300, 0.0), (300, 0.5)])
def test_stopping_rules_match(max_iter, tol):
    # max_iter cuts before convergence (labels re-assigned to the final centres); tol = 0 runs
    # to strict convergence; a loose tol stops on the centre shift, relative to the variance
    X, k = DATA["blobs-500x5-k6-overlapping"]
    init = _start(X, k)
    params = {"init": init, "n_init": 1, "max_iter": max_iter, "tol": tol}
    _assert_same(KMeans(k, **params).fit(X), cluster.KMeans(k, **params).fit(X), X)


def test_sample_weight_matches():
    X, k = DATA["wine"]
    w = np.random.default_rng(0).uniform(0.1, 3.0, size=len(X))
    init = _start(X, k)
    ours = KMeans(k, init=init).fit(X, sample_weight=w)
    ref = cluster.KMeans(k, init=init, n_init=1).fit(X, sample_weight=w)
    _assert_same(ours, ref, X)


def test_empty_clusters_are_relocated_like_sklearn():
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(size=(50, 2)), rng.normal(size=(50, 2)) + 10]
    init = np.array([[0.0, 0.0], [10.0, 10.0], [100.0, 100.0], [200.0, 200.0]])  # two far away
    ours = KMeans(4, init=init).fit(X)
    _assert_same(ours, cluster.KMeans(4, init=init, n_init=1).fit(X), X)
    assert len(np.unique(ours.labels_)) == 4


def test_kmeans_plusplus_picks_distinct_rows_one_per_blob():
    X, _ = datasets.make_blobs(300, centers=[[0, 0], [20, 0], [0, 20], [20, 20]], random_state=0)
    w = np.ones(len(X))
    centers = _kmeans_plusplus(X, 4, w, np.random.default_rng(0))
    rows = [np.flatnonzero(np.all(np.equal(X, c), axis=1)) for c in centers]
    assert all(len(r) == 1 for r in rows) and len({int(r[0]) for r in rows}) == 4
    blob = (centers[:, 0] > 10).astype(int) + 2 * (centers[:, 1] > 10)
    assert sorted(blob) == [0, 1, 2, 3]


@pytest.mark.parametrize("name", ["blobs-500x5-k6-overlapping", "uniform-600x3-k7", "digits"])
def test_seeded_runs_are_as_good_as_sklearns(name):
    # NumPy's Generator is not scikit-learn's RandomState: compare quality, not draws
    X, k = DATA[name]
    ours = np.mean([KMeans(k, random_state=s).fit(X).inertia_ for s in range(5)])
    ref = np.mean([cluster.KMeans(k, random_state=s).fit(X).inertia_ for s in range(5)])
    assert ours <= SEEDING_SLACK * ref
    # the first of n_init seedings draws what a single seeding draws: the best can only be lower
    best = KMeans(k, n_init=5, random_state=0).fit(X).inertia_
    assert best <= KMeans(k, n_init=1, random_state=0).fit(X).inertia_


def test_random_state_reproducible_and_refit_resets():
    X, k = DATA["blobs-500x5-k6-overlapping"]
    model = KMeans(k, init="random", n_init=3, random_state=7)
    first = model.fit(X).labels_.copy()
    model.fit(X[:50, :2])  # other data and shape
    assert model.n_features_in_ == 2
    np.testing.assert_array_equal(model.fit(X).labels_, first)
    np.testing.assert_array_equal(clone(model).fit(X).labels_, first)
    gen = KMeans(k, random_state=np.random.default_rng(7)).fit(X)  # a Generator is accepted
    assert gen.cluster_centers_.shape == (k, 5)


def _both_raise(exc, match, ours, ref):
    with pytest.raises(exc, match=match):
        ours()
    with pytest.raises(exc, match=match):
        ref()


X_BAD = np.random.default_rng(0).normal(size=(20, 3))


@pytest.mark.parametrize(
    ("exc", "match", "call"),
    [
        (ValueError, "n_samples=20 should be >= n_clusters=30", lambda m: m(30).fit(X_BAD)),
        (ValueError, "n_clusters", lambda m: m(0).fit(X_BAD)),
        (ValueError, "number of clusters 2", lambda m: m(2, init=X_BAD[:3], n_init=1).fit(X_BAD)),
        (
            ValueError,
            "number of features of the data 3",
            lambda m: m(3, init=X_BAD[:3, :2], n_init=1).fit(X_BAD),
        ),
        (ValueError, "init", lambda m: m(3, init="kmeans").fit(X_BAD)),
        (ValueError, "NaN", lambda m: m(3).fit(np.r_[X_BAD, [[np.nan] * 3]])),
        (
            ValueError,
            "expecting 3 features",
            lambda m: m(3, n_init=1).fit(X_BAD).predict(X_BAD[:, :2]),
        ),
        (
            ValueError,
            r"sample_weight.shape == \(19,\), expected \(20,\)",
            lambda m: m(3).fit(X_BAD, sample_weight=np.ones(19)),
        ),
        (NotFittedError, "not fitted", lambda m: m(3).transform(X_BAD)),
    ],
)
def test_bad_input_raises_like_sklearn(exc, match, call):
    _both_raise(exc, match, lambda: call(KMeans), lambda: call(cluster.KMeans))
