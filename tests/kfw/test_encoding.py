"""CategoricalAligner: one code book per fold, unseen categories missing."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from kfw.encoding import CategoricalAligner


def test_training_categories_fix_the_code_book_and_unseen_become_missing():
    train = pd.DataFrame(
        {"c": ["b", "a", "b", None], "n": [1, 2, 3, 4], "k": pd.Categorical(["x", "y", "x", "y"])}
    )
    other = pd.DataFrame(
        {
            "c": ["a", "zebra", None, "b"],
            "n": [5, 6, 7, 8],
            "k": pd.Categorical(["y", "w", "x", "x"]),
        }
    )
    aligner = CategoricalAligner().fit(train)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no pandas deprecation on unseen values
        out = aligner.transform(other)
    assert list(out["c"].cat.categories) == ["a", "b"]
    assert out["c"].isna().tolist() == [False, True, True, False]
    assert out["k"].isna().tolist() == [False, True, False, False]
    assert out["n"].dtype == np.float64
    # the same value has the same code in every part of the fold
    assert aligner.transform(train)["c"].cat.codes[1] == out["c"].cat.codes[0]


def test_numbers_stored_as_categories_keep_their_values():
    train = pd.DataFrame({"m": pd.Categorical([20, 60, 20])})
    out = CategoricalAligner().fit(train).transform(pd.DataFrame({"m": pd.Categorical([60, 150])}))
    assert out["m"].tolist()[0] == 60 and pd.isna(out["m"].tolist()[1])
