"""Oracle tests: scratch k-nearest neighbours against scikit-learn's brute-force search."""

import numpy as np
import pytest
from sklearn import datasets
from sklearn import neighbors as sk
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.preprocessing import StandardScaler

from scratch_models.neighbors import KNeighborsClassifier, KNeighborsRegressor

DIST_ATOL = 1e-10  # neighbour distances: same formula, different summation order
PROBA_ATOL = 1e-12  # class probabilities / regression means built from identical neighbours
TIE_GAP = 1e-9  # test data must separate the k-th and (k+1)-th distances by at least this


def _generated(seed: int, n: int, p: int, noise: float):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)) * rng.uniform(0.5, 3.0, size=p)
    signal = X[:, 0] - 0.5 * X[:, 1] ** 2 + noise * rng.normal(size=n)
    y_class = np.digitize(signal, np.quantile(signal, [0.33, 0.66]))  # three classes
    return X[: n // 2 * 2 * 3 // 4], X[n * 3 // 4 :], y_class[: n * 3 // 4], signal[: n * 3 // 4]


def _bundled(loader, seed: int = 0, rows: int = 400):
    X, y = loader(return_X_y=True)
    X, y = X[:rows], y[:rows]
    X = StandardScaler().fit_transform(X)
    # iris and digits repeat values: a tiny jitter breaks exact distance ties (see _no_ties)
    X = X + 1e-6 * np.random.default_rng(seed).normal(size=X.shape)
    cut = len(X) * 3 // 4
    perm = np.random.default_rng(seed).permutation(len(X))
    X, y = X[perm], y[perm]
    return X[:cut], X[cut:], y[:cut], y[:cut].astype(float)


DATA = {
    "gen-300x3": _generated(0, 300, 3, 0.1),
    "gen-400x8-noisy": _generated(1, 400, 8, 1.0),
    "gen-160x20": _generated(2, 160, 20, 0.3),
    "iris": _bundled(datasets.load_iris),
    "wine": _bundled(datasets.load_wine),
    "breast_cancer": _bundled(datasets.load_breast_cancer),
    "digits": _bundled(datasets.load_digits),
}


def _no_ties(X, Xq, k, p):
    """The test's precondition: no exact distance tie decides who is the k-th neighbour."""
    d = sk.NearestNeighbors(n_neighbors=k + 1, p=p).fit(X).kneighbors(Xq)[0]  # (n_q, k + 1)
    assert np.all(d[:, k] - d[:, k - 1] > TIE_GAP)


CASES = [(1, 2, "uniform"), (5, 2, "distance"), (9, 1, "uniform"), (4, 3, "distance")]
LOW_DIM = ["gen-300x3", "gen-400x8-noisy", "iris", "wine"]  # where a KD-tree prunes
ORACLE = [(name, "brute", *case) for name in DATA for case in CASES]
ORACLE += [(name, "kd_tree", *case) for name in LOW_DIM for case in CASES]
ORACLE += [(name, "kd_tree", 5, 2, "distance") for name in DATA if name not in LOW_DIM]


@pytest.mark.parametrize(("name", "algorithm", "k", "p", "weights"), ORACLE)
def test_classifier_matches_sklearn(name, algorithm, k, p, weights):
    X, Xq, y, _ = DATA[name]
    _no_ties(X, Xq, k, p)
    params = {"n_neighbors": k, "p": p, "weights": weights}
    ours = KNeighborsClassifier(algorithm=algorithm, leaf_size=12, **params).fit(X, y)
    ref = sk.KNeighborsClassifier(algorithm="brute", **params).fit(X, y)
    dist, ind = ours.kneighbors(Xq)
    ref_dist, ref_ind = ref.kneighbors(Xq)
    np.testing.assert_array_equal(ind, ref_ind)
    np.testing.assert_allclose(dist, ref_dist, rtol=0, atol=DIST_ATOL)
    np.testing.assert_array_equal(ours.predict(Xq), ref.predict(Xq))
    np.testing.assert_allclose(ours.predict_proba(Xq), ref.predict_proba(Xq), atol=PROBA_ATOL)


@pytest.mark.parametrize("name", ["gen-300x3", "gen-160x20", "wine"])
@pytest.mark.parametrize("algorithm", ["brute", "kd_tree"])
@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_regressor_matches_sklearn(name, algorithm, weights):
    X, Xq, _, t = DATA[name]
    _no_ties(X, Xq, 6, 2)
    ours = KNeighborsRegressor(6, weights=weights, algorithm=algorithm).fit(X, t)
    ref = sk.KNeighborsRegressor(6, weights=weights, algorithm="brute").fit(X, t)
    np.testing.assert_allclose(ours.predict(Xq), ref.predict(Xq), atol=PROBA_ATOL)
    # two target columns
    T = np.c_[t, -2 * t]
    np.testing.assert_allclose(
        clone(ours).fit(X, T).predict(Xq), clone(ref).fit(X, T).predict(Xq), atol=PROBA_ATOL
    )


@pytest.mark.parametrize("algorithm", ["brute", "kd_tree"])
def test_self_query_drops_the_point_itself(algorithm):
    X, _, y, _ = DATA["gen-300x3"]
    ours = KNeighborsClassifier(4, algorithm=algorithm).fit(X, y)
    ref = sk.KNeighborsClassifier(4).fit(X, y)
    np.testing.assert_array_equal(
        ours.kneighbors(return_distance=False), ref.kneighbors(return_distance=False)
    )


@pytest.mark.parametrize("algorithm", ["brute", "kd_tree"])
def test_ties_are_broken_by_training_index(algorithm):
    # distances from 0: 2, 1, 1, 1, 1, 0 -> the three nearest are 5, then 1 and 2 (lowest index)
    X = np.array([[2.0], [1.0], [-1.0], [1.0], [-1.0], [0.0]])
    model = KNeighborsRegressor(3, algorithm=algorithm, leaf_size=1).fit(X, np.arange(6.0))
    dist, ind = model.kneighbors([[0.0]])
    np.testing.assert_array_equal(ind, [[5, 1, 2]])
    np.testing.assert_allclose(dist, [[0.0, 1.0, 1.0]])


@pytest.mark.parametrize("algorithm", ["brute", "kd_tree"])
def test_query_on_a_training_point_takes_all_the_distance_weight(algorithm):
    X, _, y, _ = DATA["gen-300x3"]
    ours = KNeighborsClassifier(7, weights="distance", algorithm=algorithm).fit(X, y)
    ref = sk.KNeighborsClassifier(7, weights="distance").fit(X, y)
    np.testing.assert_array_equal(ours.predict(X[:50]), y[:50])
    np.testing.assert_allclose(
        ours.predict_proba(X[:50]), ref.predict_proba(X[:50]), atol=PROBA_ATOL
    )


@pytest.mark.parametrize("leaf_size", [1, 2, 5, 40, 1000])
def test_kd_tree_equals_brute_force_for_any_leaf_size(leaf_size):
    X, Xq, y, _ = DATA["gen-400x8-noisy"]
    brute = KNeighborsClassifier(10, algorithm="brute").fit(X, y)
    tree = KNeighborsClassifier(10, algorithm="kd_tree", leaf_size=leaf_size).fit(X, y)
    np.testing.assert_array_equal(tree.kneighbors(Xq)[1], brute.kneighbors(Xq)[1])


def test_string_labels_and_refit_resets():
    X, Xq, y, _ = DATA["gen-300x3"]
    labels = np.array(["low", "mid", "high"])[y]
    model = KNeighborsClassifier(3)
    first = model.fit(X, labels).predict(Xq)
    model.fit(Xq[:20], np.array(["a", "b"] * 10))  # other data, other classes
    assert list(model.classes_) == ["a", "b"]
    np.testing.assert_array_equal(model.fit(X, labels).predict(Xq), first)
    np.testing.assert_array_equal(first, sk.KNeighborsClassifier(3).fit(X, labels).predict(Xq))


def _both_raise(exc, match, ours, ref):
    with pytest.raises(exc, match=match):
        ours()
    with pytest.raises(exc, match=match):
        ref()


X_BAD, _, Y_BAD, _ = DATA["gen-300x3"]


@pytest.mark.parametrize(
    ("exc", "match", "call"),
    [
        (ValueError, "n_neighbors", lambda m: m(n_neighbors=0).fit(X_BAD, Y_BAD)),
        (ValueError, "algorithm", lambda m: m(algorithm="quadtree").fit(X_BAD, Y_BAD)),
        (ValueError, "weights", lambda m: m(weights="inverse").fit(X_BAD, Y_BAD)),
        (ValueError, "NaN", lambda m: m().fit(np.r_[X_BAD[:-1], [[np.nan] * 3]], Y_BAD)),
        (ValueError, "Unknown label type", lambda m: m().fit(X_BAD, Y_BAD + 0.5 * X_BAD[:, 0])),
        (ValueError, "expecting 3 features", lambda m: m().fit(X_BAD, Y_BAD).predict(X_BAD[:, :2])),
        (
            ValueError,
            "n_neighbors <= n_samples_fit",
            lambda m: m(300).fit(X_BAD[:20], Y_BAD[:20]).predict(X_BAD),
        ),
        (ValueError, "inconsistent numbers of samples", lambda m: m().fit(X_BAD, Y_BAD[:-1])),
        (NotFittedError, "not fitted", lambda m: m().predict(X_BAD)),
    ],
)
def test_bad_input_raises_like_sklearn(exc, match, call):
    _both_raise(
        exc, match, lambda: call(KNeighborsClassifier), lambda: call(sk.KNeighborsClassifier)
    )


def test_p_below_one_is_refused():
    # scikit-learn accepts 0 < p < 1 (not a metric); the KD-tree's box bound needs one
    with pytest.raises(ValueError, match="'p' parameter"):
        KNeighborsRegressor(p=0.5).fit(X_BAD, Y_BAD)
