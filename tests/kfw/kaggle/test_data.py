"""Getting a competition's files in: import from a zip or a folder, and every bad input refused.

Each bad input raises one :class:`DataError` naming the file, column or value at fault, and
leaves the previous data folder byte-for-byte as it was, with no staging folder behind.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kfw.core.config import Competition, load_competition
from kfw.errors import DataError
from kfw.kaggle.data import import_data, load_dataset, read_dataset
from kfw.progress import Collect
from tests.synth import frames, make_competition, write_files

FILES = ("train.csv", "test.csv", "sample_submission.csv")


def _spec(home: Path, slug: str = "synth", task: str = "binary", **kw) -> Competition:
    make_competition(home, slug, task, write_data=False, **kw)
    return load_competition(slug, home)


def _source(folder: Path, task: str = "binary", seed: int = 0) -> Path:
    """A folder with the three files of a generated competition, as Kaggle names them."""
    train, test = frames(task, n_train=120, n_test=40, seed=seed)
    write_files(folder, train, test)
    return folder


def _zip(folder: Path, dest: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.iterdir()):
            zf.write(path, prefix + path.name)
    return dest


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _edit(name: str, change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], None]:
    """A mutation of one CSV of a source folder, through pandas."""

    def apply(folder: Path) -> None:
        frame = pd.read_csv(folder / name)
        change(frame).to_csv(folder / name, index=False)

    return apply


def _write(name: str, content: bytes) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        (folder / name).write_bytes(content)

    return apply


def _set(frame: pd.DataFrame, rows: list[int], col: str, value: object) -> pd.DataFrame:
    frame[col] = frame[col].astype(object)
    frame.loc[rows, col] = value
    return frame


# ---------------------------------------------------------------------------------------------
# the good ways in


def test_import_from_a_folder(home: Path, tmp_path: Path) -> None:
    spec = _spec(home)
    src = _source(tmp_path / "src")
    dest = import_data(spec, home, src)
    assert dest == home / "data" / "synth"
    for name in FILES:
        assert (dest / name).read_bytes() == (src / name).read_bytes()
    marker = json.loads((dest / ".source").read_text())
    assert marker["source"] == "import"
    assert marker["from"] == str(src.resolve())
    ds = load_dataset(spec, home)
    assert ds.source == "import"
    assert (len(ds.train), len(ds.test)) == (120, 40)
    np.testing.assert_array_equal(ds.y, ds.train["target"].to_numpy())
    assert sorted(p.name for p in (home / "data").iterdir()) == ["synth"]


@pytest.mark.parametrize("prefix", ["", "synthetic-synth/"], ids=["top-level", "sub-folder"])
def test_import_from_a_zip(home: Path, tmp_path: Path, prefix: str) -> None:
    spec = _spec(home)
    src = _source(tmp_path / "src")
    dest = import_data(spec, home, _zip(src, tmp_path / "synth.zip", prefix))
    assert _tree(dest).keys() == {*FILES, ".source"}
    for name in FILES:
        assert (dest / name).read_bytes() == (src / name).read_bytes()
    assert read_dataset(spec, dest).source == "import"


def test_import_from_a_zip_with_a_nested_train_zip(home: Path, tmp_path: Path) -> None:
    spec = _spec(home)
    src = _source(tmp_path / "src")
    inner = tmp_path / "train.csv.zip"
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(src / "train.csv", "train.csv")
    outer = tmp_path / "synth.zip"
    with zipfile.ZipFile(outer, "w") as zf:
        zf.write(inner, "train.csv.zip")
        zf.write(src / "test.csv", "test.csv")
        zf.write(src / "sample_submission.csv", "sample_submission.csv")
    dest = import_data(spec, home, outer)
    assert (dest / "train.csv").read_bytes() == (src / "train.csv").read_bytes()
    assert not (dest / "train.csv.zip").exists()


def test_a_new_import_replaces_the_data_and_its_folds(home: Path, tmp_path: Path) -> None:
    spec = _spec(home)
    dest = import_data(spec, home, _source(tmp_path / "a", seed=0))
    (dest / "folds").mkdir()
    (dest / "folds" / "old.csv").write_text("fold\n0\n")
    import_data(spec, home, _source(tmp_path / "b", seed=1))
    assert (dest / "train.csv").read_bytes() == (tmp_path / "b" / "train.csv").read_bytes()
    assert not (dest / "folds").exists()  # folds of the old data leave with it
    assert sorted(p.name for p in (home / "data").iterdir()) == ["synth"]


def test_load_dataset_without_data_says_how_to_get_it(home: Path) -> None:
    spec = _spec(home)
    with pytest.raises(
        DataError,
        match=r"no data for 'synth' in .*: run `kfw data download synth` or "
        r"`kfw data import synth PATH`",
    ):
        load_dataset(spec, home)
    assert not (home / "data" / "synth").exists()


# ---------------------------------------------------------------------------------------------
# bad input: one DataError naming the problem, the previous data untouched

GARBAGE = bytes(range(256)) * 20
RAGGED = b"Id,x0,x1,x2,cat,target\n1,0.1,0.2,0.3,a,1\n2,0.1,0.2,0.3,a,1,9,9\n"

BAD_INPUTS: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing file": (
        lambda d: (d / "test.csv").unlink(),
        r"test\.csv is missing \(expected train\.csv, test\.csv, sample_submission\.csv\)",
    ),
    "empty file": (_write("test.csv", b""), r"test\.csv is empty"),
    "header only": (
        _write("test.csv", b"Id,x0,x1,x2,cat\n"),
        r"test\.csv has a header but no rows",
    ),
    "binary garbage": (_write("train.csv", GARBAGE), r"train\.csv is not a readable CSV: "),
    "ragged row": (
        _write("train.csv", RAGGED),
        r"train\.csv is not a readable CSV: .*Expected 6 fields in line 3, saw 8",
    ),
    "missing id column": (
        _edit("train.csv", lambda f: f.drop(columns=["Id"])),
        r"train\.csv: id column 'Id' is missing",
    ),
    "missing id column in the sample": (
        _edit("sample_submission.csv", lambda f: f.rename(columns={"Id": "id"})),
        r"sample_submission\.csv: id column 'Id' is missing",
    ),
    "missing target": (
        _edit("train.csv", lambda f: f.drop(columns=["target"])),
        r"train\.csv: target column 'target' is missing",
    ),
    "NaN target": (
        _edit("train.csv", lambda f: _set(f, [3, 10, 20], "target", np.nan)),
        r"train\.csv: target 'target' is missing in 3 rows \(first Id = 4\)",
    ),
    "duplicate ids": (
        _edit("train.csv", lambda f: _set(f, [6], "Id", 6)),
        r"train\.csv: duplicate Id values: 6$",
    ),
    "duplicate test ids": (
        _edit("test.csv", lambda f: _set(f, [1, 2], "Id", 121)),
        r"test\.csv: duplicate Id values: 121$",
    ),
    "test lacks a train column": (
        _edit("test.csv", lambda f: f.drop(columns=["x2"])),
        r"test\.csv: columns of train\.csv missing here: 'x2'$",
    ),
    "test has an extra column": (
        _edit("test.csv", lambda f: f.assign(leak=1.0)),
        r"test\.csv: columns not in train\.csv: 'leak'$",
    ),
    "sample with the wrong columns": (
        _edit("sample_submission.csv", lambda f: f.rename(columns={"target": "Survived"})),
        r"sample_submission\.csv: columns \['Id', 'Survived'\] differ from the spec's "
        r"submission columns \['Id', 'target'\]",
    ),
    "sample with other ids": (
        _edit("sample_submission.csv", lambda f: f.assign(Id=f["Id"] + 1000)),
        r"sample_submission\.csv: ids differ from those of test\.csv",
    ),
    "binary target with 3 classes": (
        _edit("train.csv", lambda f: _set(f, [0, 1], "target", 2)),
        r"train\.csv: a binary target needs 2 classes, 'target' has 3",
    ),
}


@pytest.fixture
def imported(home: Path, tmp_path: Path) -> tuple[Competition, Path, dict[str, bytes]]:
    """Good data imported first: (spec, data folder, its bytes)."""
    spec = _spec(home)
    dest = import_data(spec, home, _source(tmp_path / "good"))
    return spec, dest, _tree(dest)


def _assert_untouched(home: Path, dest: Path, before: dict[str, bytes]) -> None:
    assert _tree(dest) == before
    assert sorted(p.name for p in (home / "data").iterdir()) == ["synth"]  # no staging left


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_a_bad_zip_is_refused_and_the_data_kept(
    home: Path, tmp_path: Path, imported: tuple[Competition, Path, dict[str, bytes]], case: str
) -> None:
    spec, dest, before = imported
    mutate, pattern = BAD_INPUTS[case]
    src = _source(tmp_path / "bad", seed=3)
    mutate(src)
    bad = _zip(src, tmp_path / "bad.zip")
    with pytest.raises(DataError, match=pattern) as err:
        import_data(spec, home, bad)
    message = str(err.value)
    assert "\n" not in message
    assert "staging" not in message  # names what the user gave, not a vanished temp copy
    assert message.startswith(str(bad))
    _assert_untouched(home, dest, before)


def test_a_bad_folder_names_its_own_file(
    home: Path, tmp_path: Path, imported: tuple[Competition, Path, dict[str, bytes]]
) -> None:
    spec, dest, before = imported
    src = _source(tmp_path / "bad")
    _edit("train.csv", lambda f: f.drop(columns=["Id"]))(src)
    with pytest.raises(DataError, match=f"^{src / 'train.csv'}: id column 'Id' is missing$"):
        import_data(spec, home, src)
    _assert_untouched(home, dest, before)


def test_a_path_that_does_not_exist(
    home: Path, tmp_path: Path, imported: tuple[Competition, Path, dict[str, bytes]]
) -> None:
    spec, dest, before = imported
    with pytest.raises(DataError, match=r"nowhere\.zip does not exist"):
        import_data(spec, home, tmp_path / "nowhere.zip")
    _assert_untouched(home, dest, before)


def test_a_file_that_is_not_a_zip(
    home: Path, tmp_path: Path, imported: tuple[Competition, Path, dict[str, bytes]]
) -> None:
    spec, dest, before = imported
    bogus = tmp_path / "train.csv"
    bogus.write_text("Id,target\n1,0\n")
    with pytest.raises(DataError, match=f"^{bogus} is not a zip file$"):
        import_data(spec, home, bogus)
    _assert_untouched(home, dest, before)


def _corrupt(archive: Path, member: str) -> None:
    """Overwrite bytes inside ``member``'s compressed data (the zip directory stays valid)."""
    raw = bytearray(archive.read_bytes())
    at = raw.find(member.encode()) + len(member) + 100
    raw[at : at + 60] = b"\x00" * 60
    archive.write_bytes(bytes(raw))


def test_a_damaged_zip_member_is_a_data_error(
    home: Path, tmp_path: Path, imported: tuple[Competition, Path, dict[str, bytes]]
) -> None:
    spec, dest, before = imported
    bad = _zip(_source(tmp_path / "bad"), tmp_path / "bad.zip")
    _corrupt(bad, "train.csv")
    with pytest.raises(DataError, match=f"^{bad}: train.csv cannot be extracted: "):
        import_data(spec, home, bad)
    _assert_untouched(home, dest, before)


def test_a_damaged_nested_zip_names_the_outer_zip(
    home: Path, tmp_path: Path, imported: tuple[Competition, Path, dict[str, bytes]]
) -> None:
    spec, dest, before = imported
    src = _source(tmp_path / "bad")
    (tmp_path / "train.csv.zip").write_bytes(b"not a zip at all")
    outer = tmp_path / "bad.zip"
    with zipfile.ZipFile(outer, "w") as zf:
        zf.write(tmp_path / "train.csv.zip", "train.csv.zip")
        zf.write(src / "test.csv", "test.csv")
        zf.write(src / "sample_submission.csv", "sample_submission.csv")
    with pytest.raises(DataError, match=f"^{outer}/train.csv.zip is not a zip file$"):
        import_data(spec, home, outer)
    _assert_untouched(home, dest, before)


def test_rmsle_refuses_a_negative_target(home: Path, tmp_path: Path) -> None:
    spec = _spec(home, "reg", "regression")
    assert spec.metric == "rmsle"
    src = _source(tmp_path / "src", task="regression")
    _edit("train.csv", lambda f: _set(f, [5], "target", -3.0))(src)
    with pytest.raises(
        DataError, match=r"train\.csv: rmsle needs a non-negative target; 'target' has negatives"
    ):
        import_data(spec, home, src)
    assert list((home / "data").iterdir()) == []


def test_a_non_numeric_regression_target(home: Path, tmp_path: Path) -> None:
    spec = _spec(home, "reg", "regression")
    src = _source(tmp_path / "src", task="regression")
    _edit("train.csv", lambda f: _set(f, [5], "target", "lots"))(src)
    with pytest.raises(DataError, match=r"regression target 'target' is not numeric"):
        import_data(spec, home, src)


# ---------------------------------------------------------------------------------------------
# categories of the test set never seen in train


def _unseen(folder: Path) -> None:
    _edit("test.csv", lambda f: _set(f, [0, 1, 2], "cat", "zebra"))(folder)


def test_unseen_categories_warn_through_the_callback(home: Path, tmp_path: Path) -> None:
    spec = _spec(home)
    src = _source(tmp_path / "src")
    _unseen(src)
    import_data(spec, home, src)
    report = Collect()
    load_dataset(spec, home, report)
    assert report.warnings == [
        f"{home / 'data' / 'synth' / 'test.csv'}: values never seen in train.csv: "
        "'cat' 'zebra' (3 rows) - treated as missing"
    ]


def test_unseen_categories_are_an_error_when_the_spec_says_so(home: Path, tmp_path: Path) -> None:
    spec = _spec(home, extra_toml='unseen_categories = "error"\n')
    assert spec.unseen_categories == "error"
    src = _source(tmp_path / "src")
    _unseen(src)
    with pytest.raises(
        DataError,
        match=f"^{src / 'test.csv'}: values never seen in train.csv: " r"'cat' 'zebra' \(3 rows\)$",
    ):
        import_data(spec, home, src)
    assert list((home / "data").iterdir()) == []


@pytest.mark.parametrize(
    "late",
    [
        "a float after ints",  # polars refuses the sampled types: the whole file is scanned
        "a word after numbers",
        "values after an empty stretch",  # a column empty in the sample: its type was a guess
    ],
)
def test_read_csv_gives_pandas_dtypes_whatever_comes_after_the_sampled_rows(tmp_path, late):
    from kfw.kaggle.data import SCHEMA_ROWS, read_csv

    n = SCHEMA_ROWS + 50
    col = pd.Series(np.arange(n), dtype=object)
    if late == "a float after ints":
        col.iloc[-1] = 2.5
    elif late == "a word after numbers":
        col.iloc[-1] = "seven"
    else:
        col.iloc[: SCHEMA_ROWS + 10] = None
    path = tmp_path / "train.csv"
    pd.DataFrame({"id": np.arange(n), "x": col, "y": np.ones(n)}).to_csv(path, index=False)
    ours, theirs = read_csv(path), pd.read_csv(path, low_memory=False)
    assert list(ours.dtypes) == list(theirs.dtypes)
    pd.testing.assert_frame_equal(ours, theirs, check_dtype=True)


def test_read_csv_without_polars_reads_the_same_frame_through_pandas(tmp_path, monkeypatch):
    import importlib.util

    from kfw.kaggle.data import read_csv

    path = tmp_path / "train.csv"
    path.write_text("id,x,name\n1,2.5,NA\n2,,bob\n3,4.0,n/a\n")
    with_polars = read_csv(path)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "polars" else real(name, *a)
    )
    pd.testing.assert_frame_equal(read_csv(path), with_polars, check_dtype=True)
