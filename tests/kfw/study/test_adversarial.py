"""Adversarial validation: chance on look-alike sets, a planted shift found and named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kfw.study.adversarial import adversarial_validation, column_auc

# how far from 0.5 the AUC of two samples of one distribution may land (1000 + 1000 rows)
CHANCE_TOLERANCE = 0.05


def _frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    x = rng.normal(size=(n, 3))
    frame = pd.DataFrame(
        {
            "a": x[:, 0],
            "b": x[:, 1],
            "shifted": x[:, 2] + shift,
            "cat": rng.choice(["u", "v", "w"], size=n),
        }
    )
    frame.loc[rng.random(n) < 0.1, "b"] = np.nan
    return frame


def test_identical_distributions_score_at_chance() -> None:
    rng = np.random.default_rng(0)
    result = adversarial_validation(_frame(rng, 1000), _frame(rng, 1000), seed=3, n_splits=4)
    assert abs(result.auc - 0.5) <= CHANCE_TOLERANCE
    assert len(result.fold_aucs) == 4
    assert (result.n_train, result.n_test) == (1000, 1000)
    assert set(result.drift["column"]) == {"a", "b", "shifted", "cat"}
    assert (result.drift["auc"] < 0.5 + CHANCE_TOLERANCE).all()
    assert result.drift["importance"].sum() == pytest.approx(1.0)


def test_a_planted_shift_is_found_and_named_first() -> None:
    rng = np.random.default_rng(1)
    train, test = _frame(rng, 800), _frame(rng, 400, shift=1.5)
    result = adversarial_validation(train, test, seed=0, n_splits=4)
    assert result.auc > 0.75
    top = result.drift.iloc[0]
    assert top["column"] == "shifted"
    assert top["auc"] > 0.8
    assert top["importance"] == result.drift["importance"].max()
    # the same seed gives the same answer
    again = adversarial_validation(train, test, seed=0, n_splits=4)
    assert again.fold_aucs == result.fold_aucs


def test_column_auc_sees_missingness_and_ignores_ids() -> None:
    rng = np.random.default_rng(2)
    n = 2000
    is_test = np.r_[np.zeros(n // 2, bool), np.ones(n // 2, bool)]
    folds = rng.integers(0, 5, size=n)
    values = pd.Series(rng.normal(size=n))
    assert column_auc(values, is_test, folds) < 0.55
    # test rows are missing far more often: drift, with the values themselves alike
    gappy = values.where(~(is_test & (rng.random(n) < 0.5)))
    assert column_auc(gappy, is_test, folds) > 0.7
    # a unique id per row separates nothing out of fold, however well it could be memorised
    ids = pd.Series([f"id{i}" for i in range(n)])
    assert column_auc(ids, is_test, folds) == pytest.approx(0.5)
    # a category present only in test is drift
    region = pd.Series(np.where(is_test & (rng.random(n) < 0.6), "new", "old"))
    assert column_auc(region, is_test, folds) > 0.75


def test_columns_must_match() -> None:
    rng = np.random.default_rng(3)
    with pytest.raises(ValueError, match="same columns"):
        adversarial_validation(_frame(rng, 50), _frame(rng, 50).drop(columns=["a"]))


def test_the_most_test_like_training_rows_are_those_that_drifted_towards_test() -> None:
    from kfw.study.adversarial import test_like_rows

    rng = np.random.default_rng(4)
    train, test = _frame(rng, 800), _frame(rng, 400, shift=1.5)
    result = adversarial_validation(train, test, seed=0, n_splits=4)
    assert result.test_likeness.shape == (800,)
    rows = test_like_rows(result.test_likeness)
    assert rows.sum() == 200  # the default share, a quarter
    # the test set sits 1.5 higher on 'shifted': its look-alikes in train do too
    assert train["shifted"][rows].mean() > train["shifted"][~rows].mean() + 1.0
