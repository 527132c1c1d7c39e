"""``kfw new``: infer a competition's spec from its download, one stated decision at a time.

From the files alone: the id column is the sample submission's first column; the targets are
the sample submission's columns that train has and test lacks (or, when the sample has one
probability column per class, the one column train has beyond test); the submission format
follows from the sample's columns and values; the task from the target; every feature
column gets a role (numeric, low- or high-cardinality categorical, text, date); the fold
scheme follows from the task (and from a group or time column when one says so). The metric
cannot be read from the files: it comes from ``--metric`` (or the Kaggle API's competition
metadata when downloading). Every decision is reported as one line, so the user can check it
and override it in the generated ``competition.toml``.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kfw.core.config import load_competition
from kfw.core.metrics import METRICS, check_metric_task, get_metric
from kfw.core.portfolio import PORTFOLIO, member
from kfw.errors import ConfigError, DataError
from kfw.kaggle.data import extract_archive, import_data, read_csv
from kfw.progress import NULL, Callback

if TYPE_CHECKING:
    import pandas as pd

HIGH_CARDINALITY = 50  # distinct values above which a categorical is target/count encoded
TEXT_MEAN_WORDS = 6  # strings averaging more words than this are text
GROUP_WORDS = ("group", "patient", "user", "customer", "subject", "session", "household", "store")
TIME_WORDS = ("date", "time", "timestamp", "datetime", "day", "month")


def _classifies(metric: str | None) -> bool:
    """Whether ``metric`` scores classes (an integer target with it is multiclass)."""
    if metric is None:
        return False
    try:
        tasks = get_metric(metric).tasks
    except ConfigError:
        return False  # an unknown name is reported below, with the known ones
    return bool(tasks & {"binary", "multiclass"})


# classification metrics of the probabilities themselves: a submission of labels cannot be
# scored by them
PROBABILITY_METRICS = frozenset({"roc_auc", "log_loss", "average_precision", "brier", "ece"})


def _reads_probabilities(metric: str | None) -> bool:
    return metric in PROBABILITY_METRICS


@dataclass
class Inferred:
    """What ``kfw new`` decided, and the lines saying so."""

    files: dict[str, str]
    id: str
    targets: list[str]
    task: str
    metric: str
    submission_format: str
    submission_columns: list[str]
    columns: dict[str, list[str]]
    folds: dict[str, Any]
    positive_class: Any = None
    decisions: list[str] = field(default_factory=list)
    roster: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# files


def _csv_names(path: Path) -> list[str]:
    if path.is_dir():
        return sorted(
            p.name for p in path.iterdir() if p.suffix == ".csv" or p.name.endswith(".csv.zip")
        )
    try:
        with zipfile.ZipFile(path) as zf:
            return sorted({Path(m).name for m in zf.namelist() if m.endswith((".csv", ".csv.zip"))})
    except zipfile.BadZipFile:
        raise DataError(f"{path} is neither a folder nor a zip file") from None


def find_files(path: Path) -> dict[str, str]:
    """Which file is train, test and the sample submission (by Kaggle's naming habits)."""
    names = [n.removesuffix(".zip") for n in _csv_names(path)]

    def pick(role: str, words: tuple[str, ...]) -> str | None:
        exact = [n for n in names if n.lower() == f"{role}.csv"]
        loose = [n for n in names if any(w in n.lower() for w in words)]
        return (exact or loose or [None])[0]

    files = {
        "sample_submission": pick("sample_submission", ("submission",)),
        "train": pick("train", ("train",)),
        "test": pick("test", ("test",)),
    }
    if files["sample_submission"] is None:
        raise DataError(
            f"{path}: no sample submission (a *submission*.csv): kfw new needs it to infer the id and targets"
        )
    for role in ("train", "test"):
        if files[role] is None:
            raise DataError(
                f"{path}: no {role} file (a *{role}*.csv) among {', '.join(names) or 'no CSV files'}"
            )
    return files  # type: ignore[return-value]


def read_files(path: Path, files: dict[str, str]) -> dict[str, pd.DataFrame]:
    """Read the three files (from a folder or a zip) through kfw's own CSV reader."""

    tmp = Path(tempfile.mkdtemp(prefix="kfw-new-"))
    try:
        if path.is_dir():
            folder = path
        else:
            extract_archive(path, list(files.values()), tmp)
            folder = tmp
        return {role: read_csv(folder / name) for role, name in files.items()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# decisions


def _is_numeric(s: pd.Series) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def _looks_like_dates(s: pd.Series) -> bool:
    import pandas as pd

    sample = s.dropna().astype(str).head(500)
    if sample.empty or not sample.str.contains(r"\d", regex=True).all():
        return False
    parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    return bool(parsed.notna().mean() > 0.95)


def _mean_words(s: pd.Series, sample: int = 20_000) -> float:
    """Mean words per non-empty cell, over a fixed random sample (a million rows need not all be split)."""
    values = s.dropna()
    if len(values) > sample:
        values = values.sample(sample, random_state=0)
    return float(values.astype(str).str.split().str.len().mean()) if len(values) else 0.0


def column_roles(train: pd.DataFrame, test: pd.DataFrame, skip: set[str]) -> dict[str, list[str]]:
    """numeric / categorical (low cardinality) / high_cardinality / text / date."""
    import pandas as pd

    roles: dict[str, list[str]] = {
        "numeric": [],
        "categorical": [],
        "high_cardinality": [],
        "text": [],
        "date": [],
    }
    for col in test.columns:
        if col in skip:
            continue
        both = pd.concat([train[col], test[col]], ignore_index=True)
        if _is_numeric(both):
            roles["numeric"].append(col)
        elif _looks_like_dates(both):
            roles["date"].append(col)
        elif _mean_words(both) > TEXT_MEAN_WORDS:
            roles["text"].append(col)
        elif both.nunique() > HIGH_CARDINALITY:
            roles["high_cardinality"].append(col)
        else:
            roles["categorical"].append(col)
    return roles


def _class_columns(sample_cols: list[str], classes: list[Any], target: str) -> bool:
    """Do the sample's value columns name the target's classes (maybe prefixed)?"""
    names = {str(c) for c in classes}
    stripped = {c.removeprefix(f"{target}_") for c in sample_cols}
    return stripped == names or set(sample_cols) == names


def infer(
    frames: dict[str, pd.DataFrame],
    files: dict[str, str],
    metric: str | None = None,
    target: str | None = None,
    id_column: str | None = None,
    report: Callback = NULL,
) -> Inferred:
    """Infer the spec of a competition from its train, test and sample-submission frames."""

    train, test, sample = frames["train"], frames["test"], frames["sample_submission"]
    decisions: list[str] = []

    def say(line: str) -> None:
        decisions.append(line)
        report.info(line)

    say(
        f"files: train {files['train']} ({len(train)} rows), test {files['test']} ({len(test)} rows), sample {files['sample_submission']}"
    )
    id_col = id_column or str(sample.columns[0])
    for name, frame in (("test", test), ("sample submission", sample)):
        if id_col not in frame.columns:
            raise DataError(f"id column {id_col!r} is not in the {name} file: pass --id COLUMN")
    say(f"id column: {id_col} ({'given' if id_column else 'the sample submission first column'})")
    value_cols = [str(c) for c in sample.columns if c != id_col]
    if target:
        targets = [t.strip() for t in target.split(",")]
    else:
        targets = [c for c in value_cols if c in train.columns and c not in test.columns]
    train_only = [c for c in train.columns if c not in test.columns and c != id_col]
    missing = [t for t in targets if t not in train.columns]
    if missing:
        raise DataError(
            f"target column {missing[0]!r} is not in the train file (its columns: {', '.join(map(str, train.columns[:12]))}...)"
        )
    fmt = None
    if not targets and len(train_only) == 1:
        classes = sorted(train[train_only[0]].dropna().unique().tolist(), key=str)
        if _class_columns(value_cols, classes, train_only[0]):
            targets, fmt = train_only, "proba"
    if not targets:
        raise DataError(
            "cannot infer the target: the sample submission's columns "
            f"{value_cols} are not train-only columns; pass --target COLUMN"
        )
    mismatch = [c for c in test.columns if c not in train.columns]
    if mismatch:
        raise DataError(
            f"test has columns train lacks: {', '.join(map(str, mismatch[:5]))}: check the files"
        )
    say(f"target{'s' if len(targets) > 1 else ''}: {', '.join(targets)}")

    y = train[targets[0]]
    if len(targets) > 1:
        task = "binary" if all(train[t].nunique() == 2 for t in targets) else "regression"
        fmt = fmt or ("proba" if task == "binary" else "value")
        say(
            f"task: {len(targets)} targets, each {task}; submission: one {'probability' if task == 'binary' else 'value'} column per target"
        )
    else:
        n_classes = y.nunique()
        integral = _is_numeric(y) and np.allclose(y.dropna(), np.round(y.dropna()))
        if not _is_numeric(y) or n_classes == 2:
            task = "binary" if n_classes == 2 else "multiclass"
        elif integral and n_classes <= 20 and _classifies(metric):
            task = "multiclass"
        else:
            task = "regression"
        if fmt is None:
            sample_values = sample[value_cols[0]] if value_cols else None
            if task == "regression":
                fmt = "value"
            elif sample_values is not None and set(sample_values.dropna().unique().tolist()) <= set(
                y.dropna().unique().tolist()
            ):
                fmt = "proba" if _reads_probabilities(metric) else "label"
            else:
                fmt = "proba"
        say(
            f"task: {task}"
            + (f" ({n_classes} classes)" if task != "regression" else "")
            + f"; submission: {fmt}"
        )
    if metric is None:
        hint = (
            "roc_auc, log_loss, accuracy or f1"
            if task != "regression"
            else "rmse, rmsle, mae or r2"
        )
        raise ConfigError(
            f"the metric cannot be read from the files: pass --metric ({hint} for a {task} task)"
        )
    if metric not in METRICS and not metric.startswith("map@"):
        get_metric(metric)  # raises with the list of known names
    check_metric_task(get_metric(metric), task)
    if fmt == "label" and _reads_probabilities(metric):
        raise ConfigError(
            f"metric {metric} scores probabilities, but the sample submission holds labels"
        )
    say(f"metric: {metric}")

    roles = column_roles(train, test, skip={id_col, *targets})
    for role, cols in roles.items():
        if cols:
            shown = ", ".join(cols[:6]) + (f" ... ({len(cols)})" if len(cols) > 6 else "")
            say(f"{role.replace('_', '-')} columns: {shown}")
    folds = _fold_scheme(train, test, roles, task, say)
    positive = None
    if task == "binary" and len(targets) == 1:
        positive = sorted(y.dropna().unique().tolist(), key=str)[-1]
        if fmt == "proba":
            say(
                f"probabilities are of class {positive!r} (the last in sorted order; set positive_class to change)"
            )
    found = Inferred(
        files,
        id_col,
        targets,
        task,
        metric,
        fmt,
        [id_col, *value_cols],
        roles,
        folds,
        positive,
        decisions,
    )
    found.roster = roster(found, y if task == "regression" else None)
    twins = [m for m in found.roster if "target_transform" in m[2]]
    say(
        "roster: " + ", ".join(m[0] for m in found.roster) + " (the portfolio chosen across "
        "the AutoML suite), then a hill-climbed ensemble"
        + (
            f"; {twins[0][0]} fits {twins[0][2]['target_transform']} of the skewed target, "
            "predicting in its units"
            if twins
            else ""
        )
    )
    return found


# below this many training rows a single 5-fold split is noisy: repeat it
SMALL = 5_000


def _fold_scheme(train, test, roles, task, say) -> dict[str, Any]:
    import pandas as pd

    for col in roles["categorical"] + roles["high_cardinality"]:
        named = any(w in col.lower() for w in GROUP_WORDS) and train[col].duplicated().any()
        if named and not set(train[col].dropna()) & set(test[col].dropna()):
            say(f"folds: group k-fold on {col} (its values never repeat between train and test)")
            return {"scheme": "group", "n_splits": 5, "group": col}
    for col in roles["date"]:
        if any(w in col.lower() for w in TIME_WORDS):
            tr, te = (
                pd.to_datetime(train[col], format="mixed"),
                pd.to_datetime(test[col], format="mixed"),
            )
            if tr.max() < te.min():
                say(f"folds: time split on {col} (test starts after train ends)")
                return {"scheme": "time", "n_splits": 5, "time": col}
    scheme = "stratified"
    repeats = 3 if len(train) < SMALL else 1
    say(
        "folds: stratified 5-fold"
        + (" on 10 quantile bins of the target" if task == "regression" else "")
        + (
            f", repeated {repeats} times ({len(train):,} rows: one split's CV moves with its seed)"
            if repeats > 1
            else ""
        )
    )
    return {"scheme": scheme, "n_splits": 5, "seed": 42, "n_repeats": repeats}


def slug_ok(slug: str) -> None:
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", slug):
        raise ConfigError(
            f"competition name {slug!r} must be lowercase letters, digits and hyphens"
        )


# ---------------------------------------------------------------------------------------------
# writing the competition

# a regression target skewed beyond this (sample skewness) also gets a member fitted on its
# logarithm (Yeo-Johnson where it goes below -1): the ensemble, fitted in the folds, weighs the two
SKEWED = 0.75


def roster(
    found: Inferred, y: Any = None, portfolio: tuple[str, ...] = PORTFOLIO
) -> list[tuple[str, str, dict[str, Any]]]:
    """The members ``kfw new`` writes: (label, model, parameters), in the order they run.

    ``portfolio`` (default the one chosen across the AutoML suite,
    :data:`kfw.core.portfolio.PORTFOLIO`); for a skewed regression target ``y``, the first
    boosted member's twin on the transformed target.
    """
    from scipy.stats import skew

    members = []
    for label in portfolio:
        name, params = member(label, found.task)
        members.append((name if label == "linear" else label, name, params))
    if found.task == "regression" and y is not None and len(found.targets) == 1:
        values = np.asarray(y, dtype=float)
        values = values[np.isfinite(values)]
        if len(values) > 2 and float(skew(values)) > SKEWED:
            how = "log1p" if values.min() > -1 else "yeo-johnson"
            i, (label, name, params) = next(
                (i, m) for i, m in enumerate(members) if m[1] in BOOSTED
            )
            twin = (f"{label}-{'log' if how == 'log1p' else 'yj'}", name,
                    {**params, "target_transform": how})  # fmt: skip
            members.insert(i + 1, twin)
    return members


BOOSTED = ("lgbm", "xgb", "catboost")


def _toml_value(value: Any) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value))  # a TOML basic string is a JSON string


def competition_toml(slug: str, kaggle: str, found: Inferred) -> str:
    """The text of ``competition.toml`` for what was inferred (every decision editable)."""
    target: Any = found.targets[0] if len(found.targets) == 1 else found.targets
    lines = [
        f"# generated by `kfw new {slug}`: every value below was inferred; edit any of them",
        f"title = {_toml_value(slug)}",
        f"kaggle = {_toml_value(kaggle)}",
        f"task = {_toml_value(found.task)}",
        f"metric = {_toml_value(found.metric)}",
        f"id = {_toml_value(found.id)}",
        f"target = {_toml_value(target)}",
        'features = "features.py"',
    ]
    if found.positive_class is not None and found.submission_format == "proba":
        lines.append(f"positive_class = {_toml_value(found.positive_class)}")
    lines += [
        "",
        "[files]",
        *(f"{role} = {_toml_value(name)}" for role, name in found.files.items()),
        "",
    ]
    lines += [
        "[submission]",
        f"columns = {_toml_value(found.submission_columns)}",
        f"format = {_toml_value(found.submission_format)}",
        "",
    ]
    lines += ["[folds]", *(f"{k} = {_toml_value(v)}" for k, v in found.folds.items()), ""]
    for label, name, params in found.roster:
        lines += ["[[models]]", f'name = "{name}"']
        if label != name:
            lines.append(f"alias = {_toml_value(label)}")
        if params:
            lines.append(f"params = {_toml_value(params)}")
        lines.append("")
    lines += ["[ensemble]", 'method = "hillclimb"', ""]
    return "\n".join(lines)


FEATURES_TEMPLATE = '''"""Features of {slug}, generated by `kfw new` from the downloaded files: edit freely.

kfw calls ``row_features(df)`` once on train + test together (no target: row-wise or
target-free work only) and clones ``fitted_features()`` into every fold, where it is fitted on
the training part only. The column roles below were inferred from the data:

{roles}
"""

from features.auto import AutoFeatures

ROLES = {roles_dict}
AUTO = AutoFeatures(ROLES, id_column={id_column!r})


def row_features(df):
    return AUTO.row_features(df)


def fitted_features():
    return AUTO.fitted_features()
'''


def features_module(slug: str, found: Inferred) -> str:
    """The text of the starter ``features.py``."""
    import pprint

    from features.auto import describe

    return FEATURES_TEMPLATE.format(
        slug=slug, roles=describe(found.columns), roles_dict=pprint.pformat(found.columns, width=96, sort_dicts=False),
        id_column=found.id,
    )  # fmt: skip


def create_competition(
    slug: str,
    source: Path,
    kfw_home: Path,
    *,
    metric: str | None = None,
    target: str | None = None,
    id_column: str | None = None,
    kaggle: str | None = None,
    force: bool = False,
    report: Callback = NULL,
) -> Path:
    """``kfw new``: infer the spec, write it (and a starter ``features.py``), import the data.

    Writes ``$KFW_HOME/competitions/<slug>/`` in a staging folder renamed into place, then
    imports the files through :func:`kfw.kaggle.data.import_data` (which validates them against the
    new spec). Nothing is left behind when a step fails.
    """
    import os

    slug_ok(slug)
    source = Path(source)
    if not source.exists():
        raise DataError(f"{source} does not exist")
    dest = kfw_home / "competitions" / slug
    if dest.exists() and not force:
        raise ConfigError(f"{dest} exists: pass --force to replace it")
    files = find_files(source)
    frames = read_files(source, files)
    empty = [role for role, frame in frames.items() if frame.empty]
    if empty:
        raise DataError(f"{source}: the {empty[0].replace('_', ' ')} file has no rows")
    found = infer(frames, files, metric=metric, target=target, id_column=id_column, report=report)
    staging = Path(tempfile.mkdtemp(prefix=f".{slug}.new-", dir=_ensure(kfw_home / "competitions")))
    old = dest.with_name(f".{slug}.old-{os.getpid()}")
    try:
        (staging / "competition.toml").write_text(competition_toml(slug, kaggle or slug, found))
        (staging / "features.py").write_text(features_module(slug, found))
        if dest.exists():
            os.replace(dest, old)
        os.replace(staging, dest)
        try:
            import_data(load_competition(slug, kfw_home), kfw_home, source)
        except Exception:
            shutil.rmtree(dest, ignore_errors=True)
            if old.exists():
                os.replace(old, dest)
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    report.info(
        f"wrote {dest / 'competition.toml'} and {dest / 'features.py'}; data in {kfw_home / 'data' / slug}"
    )
    return dest


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
