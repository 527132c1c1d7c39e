"""The fold-local transformers of features/common.py: what they learn from, and from what not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal
from scipy import stats
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from features.common import GroupMedianImputer, GroupTargetRate, QuantileClipper, SkewCorrector
from kfw.core.cv import cross_validate
from kfw.core.folds import Folds, FoldScheme, assign_folds
from kfw.core.metrics import get_metric
from models.lgbm import LGBMClassifier

# Pure-noise labels must score at chance through the fold loop. On 2000 rows the out-of-fold
# AUC of noise spreads with a standard deviation of about 0.017 (12 seeds, with the rates or
# without), so this is four of them; an encoding fitted outside the folds scores 0.72-0.78.
CHANCE_TOLERANCE = 0.07
LEAKED_AUC = 0.65


def _imputer_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    fit = pd.DataFrame(
        {
            "g": ["a", "a", "a", "b", "b", "c"],
            "x": [1.0, 2.0, 3.0, 10.0, 20.0, np.nan],
            "s": ["p", "q", "r", "s", "t", "u"],
        }
    )
    # other values and other groups: nothing here may move what was learned from `fit`
    new = pd.DataFrame(
        {
            "g": ["a", "b", "c", "z", None, "a"],
            "x": [np.nan, np.nan, np.nan, np.nan, np.nan, 1000.0],
            "s": ["v"] * 6,
        },
        index=[10, 11, 12, 13, 14, 15],
    )
    return fit, new


def _numeric_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    n = 400
    fit = pd.DataFrame(
        {
            "right": rng.exponential(5.0, n),  # skewed, non-negative
            "normal": 50 + rng.normal(0, 5, n),  # symmetric
            "signed": rng.exponential(5.0, n) - 1.0,  # skewed, but negative values
            "name": rng.choice(["u", "v"], n),
        }
    )
    # the opposite shapes: a decision taken on this frame would differ
    new = pd.DataFrame(
        {
            "right": 50 + rng.normal(0, 5, 50),
            "normal": rng.exponential(5.0, 50),
            "signed": rng.exponential(5.0, 50),
            "name": rng.choice(["u", "v"], 50),
        }
    )
    new.loc[0, "right"] = -3.0  # below the fitted range: clipped to 0 before the log
    return fit, new


def _group_frame() -> tuple[pd.DataFrame, np.ndarray]:
    # rows 0-1 share a ticket; row 2 shares its family with row 1 (so 0, 1, 2 are one group
    # through the union); row 3 is alone; rows 4 and 5 have no keys at all.
    X = pd.DataFrame(
        {
            "ticket": ["T1", "T1", "T2", "T3", None, None],
            "family": ["F1", "F2", "F2", "F3", None, np.nan],
            "kid": [1.0, 0.0, 1.0, 0.0, 1.0, 0.0],
            "x": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
        }
    )
    y = np.array([1, 0, 1, 1, 0, 1])
    return X, y


# --------------------------------------------------------------------------------------------
# contract shared by the four transformers


def _fitted(name: str):
    fit, _ = _imputer_frames()
    X, y = _group_frame()
    return {
        "imputer": lambda: GroupMedianImputer("g", ["x"]).fit(fit),
        "skew": lambda: SkewCorrector().fit(_numeric_frames()[0]),
        "clip": lambda: QuantileClipper().fit(_numeric_frames()[0]),
        "rate": lambda: GroupTargetRate(["ticket", "family"], flag="kid").fit(X, y),
    }[name]()


def _input_for(name: str) -> pd.DataFrame:
    return {
        "imputer": _imputer_frames()[1],
        "skew": _numeric_frames()[1],
        "clip": _numeric_frames()[1],
        "rate": _group_frame()[0],
    }[name]


ALL = ["imputer", "skew", "clip", "rate"]


@pytest.mark.parametrize("name", ALL)
def test_transform_does_not_mutate_its_input(name: str) -> None:
    X = _input_for(name)
    before = X.copy()
    out = _fitted(name).transform(X)
    assert_frame_equal(X, before)
    assert out is not X
    assert out.index.equals(X.index)


@pytest.mark.parametrize("name", ALL)
def test_non_dataframe_input_raises_type_error(name: str) -> None:
    X = _input_for(name)
    unfitted = clone(_fitted(name))
    with pytest.raises(TypeError, match="expected a pandas DataFrame, got ndarray"):
        unfitted.fit(X.to_numpy(), np.zeros(len(X)))
    with pytest.raises(TypeError, match="expected a pandas DataFrame, got ndarray"):
        _fitted(name).transform(X.to_numpy())


@pytest.mark.parametrize("name", ALL)
def test_transform_before_fit_raises_not_fitted(name: str) -> None:
    with pytest.raises(NotFittedError):
        clone(_fitted(name)).transform(_input_for(name))


# --------------------------------------------------------------------------------------------
# GroupMedianImputer


def test_imputer_fills_with_medians_of_the_fit_frame_and_falls_back_to_the_global_one() -> None:
    fit, new = _imputer_frames()
    out = GroupMedianImputer("g", ["x"]).fit(fit).transform(new)
    global_median = 3.0  # median of 1, 2, 3, 10, 20
    # a: median(1, 2, 3); b: median(10, 20); c: no observed value; z: unseen; None: no group
    assert out["x"].tolist() == [2.0, 15.0, global_median, global_median, global_median, 1000.0]
    assert out["s"].tolist() == new["s"].tolist()


def test_imputer_refit_forgets_the_first_fit() -> None:
    fit, new = _imputer_frames()
    other = pd.DataFrame({"g": ["a", "q"], "x": [7.0, 9.0], "s": ["p", "q"]})
    imputer = GroupMedianImputer("g", ["x"]).fit(fit).fit(other)
    assert set(imputer.medians_["x"].index) == {"a", "q"}
    assert imputer.transform(new)["x"].tolist()[:2] == [7.0, 8.0]


# --------------------------------------------------------------------------------------------
# SkewCorrector


def test_skew_decisions_come_from_the_fit_frame() -> None:
    fit, new = _numeric_frames()
    skew = SkewCorrector(threshold=0.75).fit(fit)
    assert set(skew.skewness_) == {"right", "normal", "signed"}  # numeric columns only
    assert skew.lambdas_ == {"right": 0.0}  # "signed" is skewed but has negative values
    out = skew.transform(new)
    expected = np.log1p(new["right"].clip(lower=0.0))
    np.testing.assert_allclose(out["right"], expected)
    assert out.loc[0, "right"] == 0.0
    # skewed in `new`, not in `fit`: untouched
    assert_frame_equal(out.drop(columns="right"), new.drop(columns="right"))


def test_skew_boxcox_uses_the_lambda_of_the_fit_frame() -> None:
    fit, new = _numeric_frames()
    skew = SkewCorrector(columns=["right"], method="boxcox1p").fit(fit)
    lam = stats.boxcox_normmax(1.0 + fit["right"].to_numpy(), method="mle")
    assert skew.lambdas_["right"] == pytest.approx(lam)
    x = 1.0 + new["right"].clip(lower=0.0).to_numpy()
    np.testing.assert_allclose(skew.transform(new)["right"], (x**lam - 1.0) / lam, rtol=1e-10)


def test_skew_rejects_an_unknown_method() -> None:
    with pytest.raises(ValueError, match="method must be 'log1p' or 'boxcox1p', got 'sqrt'"):
        SkewCorrector(method="sqrt").fit(_numeric_frames()[0])


# --------------------------------------------------------------------------------------------
# QuantileClipper


def test_clip_bounds_come_from_the_fit_frame() -> None:
    fit = pd.DataFrame({"a": np.arange(101, dtype=float), "b": np.arange(101), "s": ["x"] * 101})
    new = pd.DataFrame({"a": [-50.0, 50.0, 500.0, np.nan], "b": [-1, 0, 1000, 7], "s": ["y"] * 4})
    clipper = QuantileClipper(lower=0.0, upper=0.9).fit(fit)
    assert clipper.bounds_ == {"a": (0.0, 90.0), "b": (0.0, 90.0)}  # numeric columns only
    out = clipper.transform(new)
    np.testing.assert_array_equal(out["a"], [0.0, 50.0, 90.0, np.nan])
    np.testing.assert_array_equal(out["b"], [0.0, 0.0, 90.0, 7.0])
    assert out["s"].tolist() == ["y"] * 4


# --------------------------------------------------------------------------------------------
# GroupTargetRate


def test_rate_fit_transform_never_uses_a_rows_own_label() -> None:
    X, y = _group_frame()
    out = GroupTargetRate(["ticket", "family"], fill=0.5, encoding="loo").fit_transform(X, y)
    # row 0's group (by ticket T1) is {1}; row 1's is {0} by ticket and {2} by family;
    # row 2's is {1}; row 3 is alone; rows 4 and 5 have only missing keys.
    assert out["group_known"].tolist() == [1.0, 2.0, 1.0, 0.0, 0.0, 0.0]
    assert out["group_rate"].tolist() == [y[1], (y[0] + y[2]) / 2, y[1], 0.5, 0.5, 0.5]


def test_rate_pair_each_row_gets_the_others_label() -> None:
    X = pd.DataFrame({"k": ["p", "p", "q", "q"]})
    y = np.array([0, 1, 1, 1])
    out = GroupTargetRate(["k"], encoding="loo").fit_transform(X, y)
    assert out["group_rate"].tolist() == [1.0, 0.0, 1.0, 1.0]
    assert out["group_known"].tolist() == [1.0] * 4


def test_rate_alone_in_its_group_gets_fill_whatever_its_label() -> None:
    X = pd.DataFrame({"k": ["a", "b"]})
    for label in (0, 1):
        out = GroupTargetRate(["k"], fill=0.3).fit_transform(X, np.array([label, label]))
        assert out["group_rate"].tolist() == [0.3, 0.3]
        assert out["group_known"].tolist() == [0.0, 0.0]
    out = GroupTargetRate(["k"], fill=np.nan).fit_transform(X, np.array([1, 0]))
    assert out["group_rate"].isna().all()


def test_rate_kfold_encoding_sees_only_the_other_inner_folds() -> None:
    X = pd.DataFrame({"k": ["g"] * 10})
    y = np.arange(10) % 2
    rate = GroupTargetRate(["k"], n_splits=5, random_state=3)
    out = rate.fit_transform(X, y)
    order = np.random.default_rng(3).permutation(10)
    fold = np.empty(10, dtype=int)
    fold[order] = np.arange(10) % 5
    for i in range(10):
        others = fold != fold[i]
        assert out["group_known"].iloc[i] == others.sum() == 8
        assert out["group_rate"].iloc[i] == pytest.approx(y[others].mean())


def test_leave_one_out_rates_order_a_group_by_its_own_labels_and_kfold_less_so() -> None:
    """The CatBoost paper's point (section 3.2): a leave-one-out rate is (S - y_i)/(n - 1)
    within a group, so on the training rows it orders each group by the rows' own labels, even
    for pure noise. The inner K-fold rate also leaves out the group-mates that share the row's
    inner fold, which breaks that order in most groups (not all: a row alone in its inner fold
    is encoded as leave-one-out would)."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"k": np.repeat([f"g{i}" for i in range(60)], 6)})
    y = rng.integers(0, 2, len(X))  # pure noise: nothing to learn from the groups
    within, separated = {}, {}
    for encoding in ("loo", "kfold"):
        out = GroupTargetRate(["k"], encoding=encoding).fit_transform(X, y)
        rate = out["group_rate"].to_numpy()
        centred = rate - out.groupby(X["k"])["group_rate"].transform("mean").to_numpy()
        within[encoding] = np.corrcoef(centred, y)[0, 1]
        # groups of mixed labels in which every positive's rate is below every negative's
        mixed = [g for g in np.unique(X["k"]) if 0 < y[X["k"] == g].sum() < 6]
        separated[encoding] = np.mean(
            [
                rate[(X["k"] == g) & (y == 1)].max() < rate[(X["k"] == g) & (y == 0)].min()
                for g in mixed
            ]
        )
    assert separated["loo"] == 1.0 and within["loo"] < -0.85  # separates noise, on training rows
    assert separated["kfold"] < 0.5 and within["kfold"] > within["loo"] + 0.2


def test_rate_transform_uses_every_training_member() -> None:
    X, y = _group_frame()
    rate = GroupTargetRate(["ticket", "family"], flag="kid", prefix="g").fit(X, y)
    new = pd.DataFrame(
        {
            "ticket": ["T1", "T3", "T9", None],
            "family": ["F2", None, "F9", "F1"],
            "kid": [0.0, 1.0, 0.0, 0.0],
            "x": [1.0, 2.0, 3.0, 4.0],
        },
        index=["n0", "n1", "n2", "n3"],
    )
    out = rate.transform(new)
    assert list(out.columns) == ["kid", "x", "g_known", "g_rate", "g_rate_kid"]  # keys dropped
    assert out.index.tolist() == ["n0", "n1", "n2", "n3"]
    # n0 joins rows 0, 1 (T1) and 1, 2 (F2); n1 row 3; n2 nobody; n3 row 0 (F1)
    assert out["g_known"].tolist() == [3.0, 1.0, 0.0, 1.0]
    assert out["g_rate"].tolist() == [2 / 3, 1.0, 0.5, 1.0]
    # flagged (kid) members: rows 0 and 2 for n0; none for n1 and n2; row 0 for n3
    assert out["g_rate_kid"].tolist() == [1.0, 0.5, 0.5, 1.0]


def test_rate_missing_keys_never_link_rows() -> None:
    X = pd.DataFrame({"a": [None, None, np.nan, "k"], "b": [np.nan, None, np.nan, None]})
    y = np.array([1, 1, 0, 0])
    rate = GroupTargetRate(["a", "b"], fill=0.5)
    assert rate.fit_transform(X, y)["group_known"].tolist() == [0.0] * 4
    new = pd.DataFrame({"a": [np.nan, None], "b": [None, np.nan]})
    out = rate.transform(new)
    assert out["group_known"].tolist() == [0.0, 0.0]
    assert out["group_rate"].tolist() == [0.5, 0.5]


def test_rate_looks_rows_up_by_position_not_by_index_label() -> None:
    X, y = _group_frame()
    shuffled = X.set_axis([50, 3, 7, 0, 1, 2])
    a = GroupTargetRate(["ticket", "family"]).fit_transform(X, y)
    b = GroupTargetRate(["ticket", "family"]).fit_transform(shuffled, y)
    assert b.index.tolist() == [50, 3, 7, 0, 1, 2]
    assert_frame_equal(a, b.reset_index(drop=True))


def test_rate_second_fit_fully_resets() -> None:
    X, y = _group_frame()
    other = pd.DataFrame(
        {"ticket": ["T9", "T9", "T1"], "family": ["G", "H", "H"], "kid": [0.0, 0.0, 1.0]}
    )
    y_other = np.array([0, 1, 0])
    new = pd.DataFrame(
        {"ticket": ["T1", "T9", "T2"], "family": ["F1", "G", "F2"], "kid": [1.0] * 3}
    )
    refit = GroupTargetRate(["ticket", "family"], flag="kid").fit(X, y)
    refit_out = refit.fit_transform(other, y_other)
    fresh = GroupTargetRate(["ticket", "family"], flag="kid")
    assert_frame_equal(refit_out, fresh.fit_transform(other, y_other))
    assert_frame_equal(refit.transform(new), fresh.transform(new))
    # T1 now points at `other`'s row 2 only; F1 and F2 of the first fit are forgotten
    assert refit.transform(new)["group_known"].tolist() == [1.0, 2.0, 0.0]


def test_rate_fit_then_transform_differs_from_fit_transform() -> None:
    # documented, as for scikit-learn's TargetEncoder: only fit_transform is leave-one-out
    X, y = _group_frame()
    rate = GroupTargetRate(["ticket", "family"])
    in_sample = rate.fit(X, y).transform(X)
    cross_fitted = rate.fit_transform(X, y)
    assert in_sample["group_known"].tolist() == [2.0, 3.0, 2.0, 1.0, 0.0, 0.0]
    assert in_sample.loc[3, "group_rate"] == y[3]  # its own label
    assert cross_fitted.loc[3, "group_rate"] == 0.5
    assert not in_sample.equals(cross_fitted)


def test_rate_rejects_a_target_of_the_wrong_length() -> None:
    X, y = _group_frame()
    with pytest.raises(ValueError, match="X has 6 rows but y has 5"):
        GroupTargetRate(["ticket"]).fit(X, y[:5])


def test_rate_without_a_target_raises_a_clear_error() -> None:
    X, _ = _group_frame()
    with pytest.raises(ValueError, match="GroupTargetRate requires y"):
        GroupTargetRate(["ticket"]).fit_transform(X)


def _noise(n: int = 2000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """High-cardinality group keys and labels that are independent of everything."""
    rng = np.random.default_rng(seed)
    ticket = rng.integers(0, n // 2, n).astype(str)  # about two rows per ticket
    family = rng.integers(0, n // 3, n).astype(object)
    family[rng.random(n) < 0.1] = None
    X = pd.DataFrame({"ticket": ticket, "family": family, "x": rng.normal(size=n)})
    return X, rng.integers(0, 2, n)


def _auc_on_noise(X: pd.DataFrame, y: np.ndarray, features: object) -> float:
    scheme = FoldScheme("stratified", n_splits=4, seed=0)
    assignment, _ = assign_folds(scheme, len(y), y, task="binary")
    folds = Folds(scheme, np.arange(len(y)), assignment, None, "h")
    # no early stopping: choosing the iteration on the scored rows would itself be optimistic
    model = LGBMClassifier(n_estimators=30, n_jobs=1, early_stopping_rounds=None)
    cv = cross_validate(
        model, X, y, folds, metric=get_metric("roc_auc"), task="binary", features=features
    )
    return cv.score


def test_rate_scores_noise_at_chance_through_the_fold_loop() -> None:
    X, y = _noise()
    auc = _auc_on_noise(X, y, GroupTargetRate(["ticket", "family"]))
    assert abs(auc - 0.5) < CHANCE_TOLERANCE, auc


def test_rate_noise_canary_catches_an_encoding_fitted_outside_the_folds() -> None:
    # the canary has teeth: the same rates fitted once on every row carry each label
    X, y = _noise()
    leaked = GroupTargetRate(["ticket", "family"]).fit(X, y).transform(X)
    assert _auc_on_noise(leaked, y, None) > LEAKED_AUC
