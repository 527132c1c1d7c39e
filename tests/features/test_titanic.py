"""Titanic features on Kaggle's files: row-wise and target-free rows, fold-local fitted part.

Every test runs on the embedded open copy (same Kaggle format) and, when ../shared holds it, on
the real Kaggle download too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal
from sklearn.base import clone

from features import titanic
from kfw.core.cv import fit_fold
from tests.features.frames import SOURCES, Capture, eighty_twenty, kaggle_frames, without_target

ID, TARGET = "PassengerId", "Survived"
TITLES = {"Mr", "Mrs", "Miss", "Master", "Rare"}
CROSS_ROW = ["ticket_count", "fare_pp"]  # documented: counted over all rows passed together
GROUP_COLUMNS = ["group_known", "group_rate", "group_rate_woman_child"]


@pytest.fixture(scope="module", params=SOURCES)
def raw(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """Kaggle's train and test frames, and which copy they are."""
    return kaggle_frames(request.param, "titanic", "titanic.zip", tmp_path_factory)


@pytest.fixture(scope="module")
def both(raw) -> pd.DataFrame:
    return without_target(raw[0], raw[1], TARGET)


@pytest.fixture(scope="module")
def design(raw, both):
    """Row features of the training rows, their labels, and of the test rows."""
    rows = titanic.row_features(both.copy())
    n = len(raw[0])
    return rows.iloc[:n], raw[0][TARGET].to_numpy(), rows.iloc[n:]


def _fitted_parts(design, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The calls kfw's fit_fold makes: fit_transform on the training part, transform the rest."""
    X, y, X_test = design
    split = eighty_twenty(len(X), seed)
    step = clone(titanic.fitted_features())
    train = step.fit_transform(X.iloc[split.train], y[split.train])
    return train, step.transform(X.iloc[split.valid]), step.transform(X_test)


# --------------------------------------------------------------------------------------------
# row features


def test_row_features_keep_rows_and_index_drop_the_id_and_need_no_target(both) -> None:
    assert TARGET not in both.columns
    shuffled = both.sample(frac=1.0, random_state=0)  # a non-default index must be kept
    before = shuffled.copy()
    rows = titanic.row_features(shuffled)
    assert_frame_equal(shuffled, before)  # input untouched
    assert rows.index.equals(shuffled.index)
    assert ID not in rows.columns
    assert rows.columns.tolist() == [
        "Pclass", "is_male", "Age", "title", "family_size", "ticket_count", "fare_pp",
        "deck", "woman_child", "ticket", "family",
    ]  # fmt: skip


def test_row_features_are_row_wise_except_the_documented_counts(both) -> None:
    full = titanic.row_features(both)
    subset = both.sample(n=300, random_state=1)
    part = titanic.row_features(subset)
    others = [c for c in full.columns if c not in CROSS_ROW]
    assert_frame_equal(part[others], full.loc[subset.index, others])
    # the counts span every row passed together (train + test in kfw)
    counts = both["Ticket"].map(both["Ticket"].value_counts()).astype(float)
    np.testing.assert_array_equal(full["ticket_count"], counts)
    np.testing.assert_allclose(full["fare_pp"], both["Fare"] / counts)
    assert (part["ticket_count"] <= full.loc[subset.index, "ticket_count"]).all()


def test_titles_map_to_five_levels_and_woman_child_marks_females_and_masters(both) -> None:
    rows = titanic.row_features(both)
    assert set(rows["title"]) == TITLES
    is_master = rows["title"] == "Master"
    assert (rows.loc[is_master, "is_male"] == 1.0).all()
    expected = ((both["Sex"] == "female") | is_master).astype(float)
    np.testing.assert_array_equal(rows["woman_child"], expected)
    # a Rare title is never Mr/Mrs/Miss/Master or one of their spellings
    raw_title = both["Name"].str.extract(r",\s*([^.]+)\.", expand=False).str.strip()
    assert not raw_title[rows["title"] == "Rare"].isin(list(titanic.TITLES)).any()


def test_titles_of_hand_written_passengers() -> None:
    names = {
        "Braund, Mr. Owen Harris": ("Mr", "male", 0.0),
        "Cumings, Mrs. John Bradley (Florence Briggs Thayer)": ("Mrs", "female", 1.0),
        "Aubart, Mme. Leontine Pauline": ("Mrs", "female", 1.0),
        "Heikkinen, Miss. Laina": ("Miss", "female", 1.0),
        "Sagesser, Mlle. Emma": ("Miss", "female", 1.0),
        "Reynaldo, Ms. Encarnacion": ("Miss", "female", 1.0),
        "Palsson, Master. Gosta Leonard": ("Master", "male", 1.0),
        "Rothes, the Countess. of (Lucy Noel Martha Dyer-Edwards)": ("Rare", "female", 1.0),
        "Byles, Rev. Thomas Roussel Davids": ("Rare", "male", 0.0),
        "Crosby, Capt. Edward Gifford": ("Rare", "male", 0.0),
        "Uruchurtu, Don. Manuel E": ("Rare", "male", 0.0),
    }
    n = len(names)
    df = pd.DataFrame(
        {
            ID: np.arange(n),
            "Pclass": 1,
            "Name": list(names),
            "Sex": [sex for _, sex, _ in names.values()],
            "Age": 30.0,
            "SibSp": 0,
            "Parch": 0,
            "Ticket": [f"T{i}" for i in range(n)],
            "Fare": 10.0,
            "Cabin": ["C85", "T", None] + [None] * (n - 3),
            "Embarked": "S",
        }
    )
    rows = titanic.row_features(df)
    assert rows["title"].tolist() == [t for t, _, _ in names.values()]
    assert rows["woman_child"].tolist() == [w for _, _, w in names.values()]
    assert rows["deck"].tolist()[:3] == ["C", "A", "U"]  # the one T cabin joins A


# --------------------------------------------------------------------------------------------
# fitted features through a fold


def test_fitted_features_give_complete_float_columns_alike_in_every_part(design) -> None:
    parts = _fitted_parts(design)
    train, valid, test = parts
    assert "ticket" not in train.columns and "family" not in train.columns  # keys consumed
    assert set(GROUP_COLUMNS) <= set(train.columns)
    for part in parts:
        assert part.columns.tolist() == train.columns.tolist()
        assert not part.isna().any().any(), part.columns[part.isna().any()].tolist()
        numeric = part.drop(columns=["title", "deck"])
        assert (numeric.dtypes == np.float64).all(), numeric.dtypes[numeric.dtypes != np.float64]
    assert len(valid) + len(train) == len(design[0])
    assert len(test) == len(design[2])


def test_fitted_features_are_deterministic(design) -> None:
    for a, b in zip(_fitted_parts(design), _fitted_parts(design), strict=True):
        assert_frame_equal(a, b)


def test_training_part_is_encoded_without_its_own_labels(design) -> None:
    X, y, _ = design
    split = eighty_twenty(len(X))
    X_train, y_train = X.iloc[split.train], y[split.train]
    out = clone(titanic.fitted_features()).fit_transform(X_train, y_train)
    # a passenger whose ticket and family no other training passenger shares knows nobody
    ticket_n = X_train["ticket"].map(X_train["ticket"].value_counts())
    family_n = X_train["family"].map(X_train["family"].value_counts()).fillna(1)
    alone = ((ticket_n == 1) & (family_n == 1)).to_numpy()
    assert alone.sum() > 100
    assert (out.loc[alone, "group_known"] == 0).all()
    assert (out.loc[alone, "group_rate"] == 0.5).all()
    # for a pair sharing a ticket and no family, each row's rate is the other's label when the
    # inner K-fold encoding put them in different inner folds, else nobody is known (0.5)
    pairs = X_train.groupby("ticket").filter(lambda g: len(g) == 2 and g["family"].nunique() == 2)
    pairs = pairs[pairs["family"].map(X_train["family"].value_counts()) == 1]
    pos = {label: i for i, label in enumerate(X_train.index)}
    seen = 0
    for _, pair in pairs.groupby("ticket"):
        if len(pair) == 2:
            i, j = (pos[label] for label in pair.index)
            known = out["group_known"].iloc[i]
            assert known == out["group_known"].iloc[j]
            if known == 1:
                assert out["group_rate"].iloc[i] == y_train[j]
                assert out["group_rate"].iloc[j] == y_train[i]
                seen += 1
            else:
                assert out["group_rate"].iloc[i] == out["group_rate"].iloc[j] == 0.5
    assert seen > 10


def test_fold_loop_hands_the_model_float_and_category_columns(design) -> None:
    X, y, X_test = design
    fit = fit_fold(
        Capture(),
        X,
        y.astype(float),
        eighty_twenty(len(X)),
        task="regression",  # the capture model only records; the task does not matter here
        X_test=X_test,
        features=titanic.fitted_features(),
    )
    train, valid, test = fit.model.frames_
    assert fit.n_train == len(train)
    for part in (train, valid, test):
        assert part.columns.tolist() == train.columns.tolist()
        kinds = {c: str(t) for c, t in part.dtypes.items() if t != np.float64}
        assert kinds == {"title": "category", "deck": "category"}
        assert part["title"].cat.categories.tolist() == train["title"].cat.categories.tolist()
