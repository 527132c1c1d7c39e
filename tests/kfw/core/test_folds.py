"""Fold schemes: the invariants every consumer relies on, persistence and hashing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kfw.core.folds import FoldScheme, assign_folds, get_folds, read_folds
from kfw.errors import ConfigError, FoldError

SETTINGS = settings(max_examples=40, deadline=None)


def _folds_of(scheme: FoldScheme, y=None, groups=None, times=None, task="binary"):
    from kfw.core.folds import Folds

    n = next(len(a) for a in (y, groups, times) if a is not None)
    assignment, order = assign_folds(scheme, n, y, groups, times, task)
    return Folds(scheme, np.arange(len(assignment)), assignment, order, "test")


@SETTINGS
@given(
    n=st.integers(20, 300),
    k=st.integers(2, 6),
    repeats=st.integers(1, 3),
    scheme=st.sampled_from(["kfold", "stratified"]),
    seed=st.integers(0, 10_000),
)
def test_each_row_is_validated_exactly_once_per_repeat(n, k, repeats, scheme, seed):
    y = np.random.default_rng(seed).integers(0, 2, size=n)
    if scheme == "stratified" and min(np.bincount(y, minlength=2)) < k:
        y[:k] = 0
        y[k : 2 * k] = 1
    folds = _folds_of(FoldScheme(scheme, n_splits=k, n_repeats=repeats, seed=seed), y=y)
    for r in range(repeats):
        counts = np.zeros(n, int)
        for split in folds.splits():
            if split.repeat == r:
                counts[split.valid] += 1
                assert np.intersect1d(split.train, split.valid).size == 0
                assert len(split.train) + len(split.valid) == n
        assert (counts == 1).all()


@SETTINGS
@given(
    n=st.integers(30, 400),
    k=st.integers(2, 6),
    n_classes=st.integers(2, 5),
    seed=st.integers(0, 10_000),
)
def test_stratified_class_counts_within_one_row_of_ideal(n, k, n_classes, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, size=n)
    y[: n_classes * k] = np.repeat(np.arange(n_classes), k)  # every class can fill every fold
    folds = _folds_of(FoldScheme("stratified", n_splits=k, seed=seed), y=y)
    for c in range(n_classes):
        ideal = np.sum(y == c) / k
        for split in folds.splits():
            assert abs(np.sum(y[split.valid] == c) - ideal) < 1.0 + 1e-9


@SETTINGS
@given(n=st.integers(50, 400), k=st.integers(2, 6), seed=st.integers(0, 10_000))
def test_regression_stratification_balances_the_target(n, k, seed):
    y = np.random.default_rng(seed).lognormal(size=n)
    folds = _folds_of(FoldScheme("stratified", n_splits=k, seed=seed), y=y, task="regression")
    medians = [np.median(y[s.valid]) for s in folds.splits()]
    sizes = [len(s.valid) for s in folds.splits()]
    assert max(sizes) - min(sizes) <= 1
    assert np.ptp(medians) < 2 * np.std(y)  # loose, but a sorted split would break it


@SETTINGS
@given(
    n=st.integers(40, 300),
    n_groups=st.integers(8, 40),
    k=st.integers(2, 5),
    stratified=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_groups_never_straddle_folds(n, n_groups, k, stratified, seed):
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, n_groups, size=n)
    groups[:n_groups] = np.arange(n_groups)
    y = rng.integers(0, 2, size=n)
    scheme = FoldScheme(
        "stratified_group" if stratified else "group", n_splits=k, seed=seed, group="g"
    )
    folds = _folds_of(scheme, y=y, groups=groups)
    for g in np.unique(groups):
        assert len(np.unique(folds.assignment[groups == g, 0])) == 1


@SETTINGS
@given(
    n=st.integers(60, 300),
    n_periods=st.integers(12, 60),
    k=st.integers(2, 5),
    gap=st.integers(0, 3),
    seed=st.integers(0, 10_000),
)
def test_time_folds_validate_strictly_after_training_plus_gap(n, n_periods, k, gap, seed):
    rng = np.random.default_rng(seed)
    times = rng.integers(0, n_periods, size=n)
    times[:n_periods] = np.arange(n_periods)  # every period present
    scheme = FoldScheme("time", n_splits=k, time="t", gap=gap)
    if n_periods // (k + 1) * 1 + n_periods % (k + 1) <= gap:
        with pytest.raises(FoldError, match="too few"):
            _folds_of(scheme, times=times)
        return
    folds = _folds_of(scheme, times=times)
    for split in folds.splits():
        last_train = times[split.train].max()
        first_valid = times[split.valid].min()
        # periods are consecutive integers here, so "gap periods left out" reads directly
        assert first_valid - last_train > gap
    assert (folds.assignment[:, 0] == -1).any()  # the first block is only ever trained on


def test_scheme_validation():
    with pytest.raises(ConfigError, match="folds.group"):
        FoldScheme("group")
    with pytest.raises(ConfigError, match="n_splits"):
        FoldScheme("kfold", n_splits=1)
    with pytest.raises(ConfigError, match="n_repeats"):
        FoldScheme("time", time="t", n_repeats=2)


def _train(n=120, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {"Id": np.arange(100, 100 + n), "y": rng.integers(0, 2, n), "g": rng.integers(0, 15, n)}
    )


def test_persisted_once_then_read_back_identical(tmp_path: Path):
    train = _train()
    scheme = FoldScheme("stratified", n_splits=5, seed=3)
    first, created = get_folds(tmp_path, scheme, train, "Id", train["y"].to_numpy(), "binary")
    assert created and first.path.is_file() and first.path.with_suffix(".json").is_file()
    again, created = get_folds(tmp_path, scheme, train, "Id", train["y"].to_numpy(), "binary")
    assert not created
    assert again.hash == first.hash
    np.testing.assert_array_equal(again.assignment, first.assignment)


def test_same_scheme_and_seed_give_the_same_hash_elsewhere(tmp_path: Path):
    train = _train()
    scheme = FoldScheme("kfold", n_splits=4, seed=11)
    a, _ = get_folds(tmp_path / "a", scheme, train, "Id", None, "binary")
    b, _ = get_folds(tmp_path / "b", scheme, train, "Id", None, "binary")
    c, _ = get_folds(
        tmp_path / "c", FoldScheme("kfold", n_splits=4, seed=12), train, "Id", None, "binary"
    )
    assert a.hash == b.hash != c.hash


def test_fold_file_for_other_rows_is_refused(tmp_path: Path):
    scheme = FoldScheme("kfold", n_splits=3)
    folds, _ = get_folds(tmp_path, scheme, _train(), "Id", None, "binary")
    with pytest.raises(FoldError, match="does not match train.csv"):
        read_folds(folds.path, scheme, np.arange(100, 219), "Id")


def test_edited_fold_file_is_checked(tmp_path: Path):
    scheme = FoldScheme("kfold", n_splits=3)
    folds, _ = get_folds(tmp_path, scheme, _train(), "Id", None, "binary")
    frame = pd.read_csv(folds.path)
    frame.loc[frame["fold_0"] == 2, "fold_0"] = 1  # fold 2 emptied by hand
    frame.to_csv(folds.path, index=False)
    with pytest.raises(FoldError, match="fold 2"):
        read_folds(folds.path, scheme, _train()["Id"].to_numpy(), "Id")


def test_group_column_must_exist(tmp_path: Path):
    with pytest.raises(ConfigError, match="nope"):
        get_folds(tmp_path, FoldScheme("group", group="nope"), _train(), "Id", None, "binary")


def test_rows_reordered_in_train_are_realigned(tmp_path: Path):
    train = _train()
    scheme = FoldScheme("kfold", n_splits=3)
    folds, _ = get_folds(tmp_path, scheme, train, "Id", None, "binary")
    shuffled = train.sample(frac=1.0, random_state=0).reset_index(drop=True)
    again = read_folds(folds.path, scheme, shuffled["Id"].to_numpy(), "Id")
    by_id = dict(zip(train["Id"], folds.assignment[:, 0], strict=True))
    assert [by_id[i] for i in shuffled["Id"]] == again.assignment[:, 0].tolist()


# ---------------------------------------------------------------------------------------------
# the inner early-stopping split


def _with_groups(folds, groups):
    import dataclasses

    return dataclasses.replace(folds, groups=groups)


@SETTINGS
@given(
    n=st.integers(200, 400),
    scheme=st.sampled_from(["kfold", "stratified", "group", "stratified_group"]),
    fraction=st.sampled_from([0.1, 0.2, 0.3]),
    seed=st.integers(0, 10_000),
)
def test_inner_split_partitions_the_training_part_like_the_folds(n, scheme, fraction, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    groups = rng.integers(0, n // 4, size=n) if "group" in scheme else None
    group = "g" if groups is not None else None
    scheme = FoldScheme(scheme, n_splits=4, seed=seed, group=group)
    folds = _with_groups(_folds_of(scheme, y=y, groups=groups), groups)
    for split in folds.splits():
        inner, held = folds.inner_split(split, split.train, y, "binary", fraction)
        assert np.array_equal(np.sort(np.r_[inner, held]), np.sort(split.train))
        assert not np.intersect1d(inner, held).size and not np.intersect1d(held, split.valid).size
        if groups is not None:
            assert not set(groups[inner]) & set(groups[held])  # groups stay whole
        else:
            assert abs(len(held) - fraction * len(split.train)) <= 1
            # stratified on the class: the held-out share of each class is the fraction
            for c in (0, 1):
                share = np.isin(held, np.flatnonzero(y == c)).sum() / (y[split.train] == c).sum()
                assert abs(share - fraction) < 0.06
        again = folds.inner_split(split, split.train, y, "binary", fraction)
        assert np.array_equal(again[1], held)  # seeded by (seed, repeat, fold)


def test_inner_split_reads_only_the_training_labels():
    y = np.random.default_rng(0).integers(0, 2, size=200)
    folds = _folds_of(FoldScheme("stratified", n_splits=4, seed=1), y=y)
    split = next(folds.splits())
    shuffled = y.copy()
    shuffled[split.valid] = 1 - shuffled[split.valid]
    a = folds.inner_split(split, split.train, y, "binary", 0.2)
    b = folds.inner_split(split, split.train, shuffled, "binary", 0.2)
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))


def test_inner_split_of_a_time_split_validates_the_latest_periods_after_the_gap():
    times = np.repeat(np.arange(40), 5)
    folds = _folds_of(FoldScheme("time", n_splits=3, time="t", gap=2), times=times)
    for split in folds.splits():
        inner, held = folds.inner_split(
            split, split.train, np.zeros(len(times)), "regression", 0.25
        )
        assert folds.order[inner].max() < folds.order[held].min() - 2
        assert folds.order[held].max() == folds.order[split.train].max()


def test_inner_split_of_too_few_rows_says_so():
    y = np.tile([0, 1], 15)
    folds = _folds_of(FoldScheme("stratified", n_splits=2, seed=0), y=y)
    split = next(folds.splits())
    with pytest.raises(FoldError, match=r"fold 0: its training part has 15 rows, too few"):
        folds.inner_split(split, split.train, y, "binary", 0.2)
    rare = np.r_[np.zeros(99, int), 1]
    folds = _folds_of(FoldScheme("kfold", n_splits=2, seed=0), y=rare)
    split = next(s for s in folds.splits() if rare[s.train].sum() == 1)
    with pytest.raises(FoldError, match="a class has 1 training row"):
        folds.inner_split(split, split.train, rare, "binary", 0.2)
