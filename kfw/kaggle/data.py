"""A competition's files: import, download, the embedded open copy, loading and validation.

``$KFW_HOME/data/<slug>/`` holds the files exactly as Kaggle hands them out, a ``.source``
marker saying where they came from, and ``folds/``. Every way in (``kfw data import``,
``kfw data download``, ``kfw data open``) assembles the files in a staging folder, validates
them against the competition spec, and only then swaps them into place, so a failure never
leaves a half-written data folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kfw import files
from kfw.core.config import Competition
from kfw.errors import DataError
from kfw.kaggle.client import download_competition
from kfw.kaggle.guard import refuse_declared
from kfw.kaggle.opendata import OPEN_COPIES, build_open_copy
from kfw.progress import NULL, Callback

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl

SOURCE_FILE = ".source"


def data_dir(kfw_home: Path, slug: str) -> Path:
    return kfw_home / "data" / slug


@dataclass
class Dataset:
    """The loaded, validated files of one competition.

    Attributes
    ----------
    train, test : DataFrame
        As read from the CSVs; ``train`` still holds the target column.
    y : ndarray
        The raw target (``train[spec.target]``); ``(n_rows, n_targets)`` for several.
    source : str
        ``kaggle``, ``import`` or ``open`` (the embedded open copy).
    hash : str
        Content hash of the train, test and sample files; recorded in every run.
    """

    spec: Competition
    train: pd.DataFrame
    test: pd.DataFrame
    sample: pd.DataFrame
    y: np.ndarray
    source: str
    hash: str
    dir: Path


# ---------------------------------------------------------------------------------------------
# reading and validating


# what pandas reads as missing by default; polars is given the same list so both agree
NA_VALUES = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
]  # fmt: skip


def read_csv(path: Path) -> pd.DataFrame:
    """Read a competition CSV through polars (multi-threaded, lean), as a pandas frame.

    Missing-value spellings are pandas' defaults, and types are those ``pandas.read_csv``
    would give, faster and with a smaller peak on the million-row files of a Playground
    competition. Types are inferred from the first ``SCHEMA_ROWS`` rows; when a later row does
    not fit them (polars refuses the file) or a column was empty that far, the whole file is
    scanned first (a full scan of 42,000 x 785 pixels takes 15x longer, so only when needed).
    Where polars is not installed (a GPU image with torch and pandas only), pandas reads it.
    """
    if not path.is_file():
        raise DataError(f"{path} is missing")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty")
    if importlib.util.find_spec("polars") is None:
        return _read_csv_pandas(path)
    import polars as pl

    read = partial(pl.read_csv, path, null_values=NA_VALUES, try_parse_dates=False)
    try:
        frame = read(infer_schema_length=SCHEMA_ROWS)
    except (pl.exceptions.PolarsError, UnicodeDecodeError):
        frame = None
    try:
        if frame is None or _empty_so_far(frame):
            frame = read(infer_schema_length=None)
    except (pl.exceptions.PolarsError, UnicodeDecodeError):
        # polars cannot say where a file is broken; pandas names the line (or copes)
        return _read_csv_pandas(path)
    if frame.height == 0:
        raise DataError(f"{path} has a header but no rows")
    return frame.to_pandas()


SCHEMA_ROWS = 10_000


def _empty_so_far(frame: pl.DataFrame) -> bool:
    """Was some column missing in every row types were inferred from (its type a guess)?"""
    head = frame.head(SCHEMA_ROWS)
    return bool(head.height) and any(n == head.height for n in head.null_count().row(0))


def _read_csv_pandas(path: Path) -> pd.DataFrame:
    import pandas as pd

    try:
        frame = pd.read_csv(path, low_memory=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        reason = str(exc).strip().splitlines()[-1]
        raise DataError(f"{path} is not a readable CSV: {reason}") from None
    if frame.empty:
        raise DataError(f"{path} has a header but no rows")
    return frame


def _describe(values: list[object], limit: int = 5) -> str:
    shown = ", ".join(repr(v) for v in values[:limit])
    return shown + (f" ... ({len(values)} in all)" if len(values) > limit else "")


def validate(spec: Competition, folder: Path, train, test, sample, report: Callback = NULL) -> None:
    """Check the files against the spec; raise :class:`DataError` naming the first problem.

    Checks: id and target columns present; no missing target; no duplicate ids; test has
    exactly train's columns less the target; the sample submission has the spec's columns and
    the test ids; the target fits the task; categories of the test set never seen in train
    (a warning, or an error when ``unseen_categories = "error"``).
    """
    f = spec.files
    for name, frame in ((f.train, train), (f.test, test), (f.sample_submission, sample)):
        if spec.id not in frame.columns:
            raise DataError(f"{folder / name}: id column {spec.id!r} is missing")
        dupes = frame[spec.id][frame[spec.id].duplicated()].unique().tolist()
        if dupes:
            raise DataError(f"{folder / name}: duplicate {spec.id} values: {_describe(dupes)}")
    for target in spec.targets:
        if target not in train.columns:
            raise DataError(f"{folder / f.train}: target column {target!r} is missing")
        missing_target = train[target].isna()
        if missing_target.any():
            first = train.loc[missing_target, spec.id].tolist()[0]  # a plain value, not np.int64
            raise DataError(
                f"{folder / f.train}: target {target!r} is missing in {int(missing_target.sum())} "
                f"rows (first {spec.id} = {first!r})"
            )
    features = [c for c in train.columns if c not in spec.targets]
    extra = [c for c in test.columns if c not in features]
    lacking = [c for c in features if c not in test.columns]
    if lacking:
        raise DataError(
            f"{folder / f.test}: columns of {f.train} missing here: {_describe(lacking)}"
        )
    if extra:
        raise DataError(f"{folder / f.test}: columns not in {f.train}: {_describe(extra)}")
    if tuple(sample.columns) != spec.submission.columns:
        raise DataError(
            f"{folder / f.sample_submission}: columns {list(sample.columns)} differ from the "
            f"spec's submission columns {list(spec.submission.columns)}"
        )
    if set(sample[spec.id].tolist()) != set(test[spec.id].tolist()):
        raise DataError(f"{folder / f.sample_submission}: ids differ from those of {f.test}")
    for target in spec.targets:
        _check_target(spec, folder / f.train, target, train[target])
    _check_unseen(spec, folder, train, test, report)


def _check_target(spec: Competition, path: Path, name: str, target: pd.Series) -> None:
    import pandas as pd

    if spec.task == "regression":
        if not pd.api.types.is_numeric_dtype(target):
            raise DataError(f"{path}: regression target {name!r} is not numeric")
        if not np.isfinite(target.to_numpy(float)).all():
            raise DataError(f"{path}: target {name!r} has infinite values")
        if spec.metric == "rmsle" and (target < 0).any():
            raise DataError(f"{path}: rmsle needs a non-negative target; {name!r} has negatives")
        return
    n_classes = target.nunique()
    if spec.task == "binary" and n_classes != 2:
        raise DataError(f"{path}: a binary target needs 2 classes, {name!r} has {n_classes}")
    if spec.task == "multiclass" and n_classes < 3:
        raise DataError(f"{path}: a multiclass target needs 3+ classes, {name!r} has {n_classes}")


def _check_unseen(spec: Competition, folder: Path, train, test, report: Callback) -> None:
    import pandas as pd

    found = []
    for col in test.columns:
        if col == spec.id or pd.api.types.is_numeric_dtype(train[col]):
            continue
        if train[col].nunique() > 0.5 * len(train):
            continue  # an identifier or free text (names, tickets): new values are expected
        seen = set(train[col].dropna().tolist())
        new = sorted({v for v in test[col].dropna().tolist() if v not in seen}, key=str)
        if new:
            rows = int(test[col].isin(new).sum())
            found.append(f"{col!r} {_describe(new, 3)} ({rows} row{'s' if rows > 1 else ''})")
    if not found:
        return
    message = f"{folder / spec.files.test}: values never seen in {spec.files.train}: " + "; ".join(
        found
    )
    if spec.unseen_categories == "error":
        raise DataError(message)
    report.warning(message + " - treated as missing")


def _hash_files(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for path in paths:
        with path.open("rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:12]


def read_source(folder: Path) -> str:
    marker = folder / SOURCE_FILE
    if not marker.is_file():
        return "unknown"
    try:
        return json.loads(marker.read_text()).get("source", "unknown")
    except json.JSONDecodeError:
        return "unknown"


def read_dataset(spec: Competition, folder: Path, report: Callback = NULL) -> Dataset:
    """Read and validate the files in ``folder``."""
    f = spec.files
    train = read_csv(folder / f.train)
    test = read_csv(folder / f.test)
    sample = read_csv(folder / f.sample_submission)
    if spec.row_ids:
        _number_rows(spec, folder / f.train, train)
        _number_rows(spec, folder / f.test, test)
    validate(spec, folder, train, test, sample, report)
    digest = _hash_files([folder / f.train, folder / f.test, folder / f.sample_submission])
    y = train[list(spec.targets)].to_numpy() if spec.multi_target else train[spec.target].to_numpy()
    return Dataset(spec, train, test, sample, y, read_source(folder), digest, folder)


def _number_rows(spec: Competition, path: Path, frame: pd.DataFrame) -> None:
    """``row_ids``: the id is the row number from 1, inserted in place as the first column."""
    if spec.id in frame.columns:
        raise DataError(
            f"{path}: has a column {spec.id!r}, but the spec says row_ids = true "
            "(the id is the row number)"
        )
    frame.insert(0, spec.id, np.arange(1, len(frame) + 1))


def has_data(spec: Competition, kfw_home: Path) -> bool:
    folder = data_dir(kfw_home, spec.slug)
    return (folder / spec.files.train).is_file()


def load_dataset(spec: Competition, kfw_home: Path, report: Callback = NULL) -> Dataset:
    """Load a competition's data, building the embedded open copy when none is present."""

    folder = data_dir(kfw_home, spec.slug)
    if not has_data(spec, kfw_home):
        if spec.slug not in OPEN_COPIES:
            raise DataError(
                f"no data for {spec.slug!r} in {folder}: run `kfw data download {spec.slug}` or "
                f"`kfw data import {spec.slug} PATH`"
            )
        open_data(spec, kfw_home)
        report.info(
            f"no Kaggle download for {spec.slug}: using the embedded open copy in {folder} "
            f"(`kfw data import {spec.slug} ZIP` switches to the real files)"
        )
    dataset = read_dataset(spec, folder, report)
    if dataset.source == "open":
        report.info(f"data: embedded open copy of {spec.slug} (not Kaggle's files)")
    return dataset


# ---------------------------------------------------------------------------------------------
# the three ways in


def _install(spec: Competition, kfw_home: Path, staged: Path, source: dict[str, str]) -> Path:
    """Validate ``staged`` and swap it in for the competition's data folder."""
    read_dataset(spec, staged)  # raises on any problem; nothing has been touched yet
    source = {**source, "at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    (staged / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n")
    # the old folder leaves whole, and the folds of the old data with it
    return files.replace_dir(staged, data_dir(kfw_home, spec.slug))


def _staging(kfw_home: Path, slug: str) -> Path:
    root = kfw_home / "data"
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{slug}.staging-", dir=root))


def extract_archive(archive: Path, wanted: list[str], staged: Path) -> None:
    """Pull the wanted files out of a Kaggle zip (top level, a sub-folder, or nested zips)."""
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise DataError(f"{archive} is not a zip file") from None
    with zf:
        members = {Path(m).name: m for m in zf.namelist() if not m.endswith("/")}
        for name in wanted:
            if name in members:
                _copy_member(zf, archive, members[name], staged / name)
            elif f"{name}.zip" in members:  # some competitions zip each file again
                inner = staged / f"{name}.zip"
                _copy_member(zf, archive, members[f"{name}.zip"], inner)
                extract_archive(inner, [name], staged)
                inner.unlink()


def _copy_member(zf: zipfile.ZipFile, archive: Path, member: str, dest: Path) -> None:
    try:
        with zf.open(member) as src, dest.open("wb") as dst:
            shutil.copyfileobj(src, dst)
    # a damaged member fails only when read (bad CRC, a broken deflate stream, truncation);
    # an encrypted one raises RuntimeError, an unknown compression NotImplementedError
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError) as exc:
        raise DataError(f"{archive}: {member} cannot be extracted: {exc}") from None


def import_data(spec: Competition, kfw_home: Path, path: Path) -> Path:
    """``kfw data import``: a Kaggle zip or a folder of its files into ``data/<slug>/``."""

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist")
    refuse_declared(spec, path)  # before anything is staged
    f = spec.files
    required = [f.train, f.test, f.sample_submission]
    staged = _staging(kfw_home, spec.slug)
    try:
        if path.is_dir():
            for name in [*required, *f.extra]:
                if (path / name).is_file():
                    shutil.copy2(path / name, staged / name)
        else:
            extract_archive(path, [*required, *f.extra], staged)
        absent = [n for n in required if not (staged / n).is_file()]
        if absent:
            raise DataError(f"{path}: {absent[0]} is missing (expected {', '.join(required)})")
        return _install(spec, kfw_home, staged, {"source": "import", "from": str(path.resolve())})
    except DataError as exc:
        # name the file the user gave, not the staging copy that is about to vanish
        raise DataError(str(exc).replace(str(staged), str(path))) from None
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def download_data(spec: Competition, kfw_home: Path) -> Path:
    """``kfw data download``: the official Kaggle client, then the same checks as an import."""

    with tempfile.TemporaryDirectory(dir=_ensure(kfw_home / "data")) as tmp:
        archive = download_competition(spec.kaggle, Path(tmp))
        dest = import_data(spec, kfw_home, archive)
    marker = dest / SOURCE_FILE
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "source": "kaggle"}, indent=2))
    return dest


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def open_data(spec: Competition, kfw_home: Path) -> Path:
    """``kfw data open``: build the embedded open copy offline, test labels held out."""

    staged = _staging(kfw_home, spec.slug)
    try:
        build_open_copy(spec.slug, staged / "copy")
        return _install(spec, kfw_home, staged / "copy", {"source": "open"})
    finally:
        shutil.rmtree(staged, ignore_errors=True)
