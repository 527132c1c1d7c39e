"""Submission files: built from a run's test predictions, validated, written, submitted.

Validation catches what Kaggle would reject or silently mis-score: wrong columns, missing or
extra or duplicate ids, a row count that differs, NaN or infinite values, labels outside the
training classes, probabilities outside [0, 1], negative values under RMSLE.

:func:`submit_run` sends a run's file to Kaggle through the official client, or, when the data
is the embedded open copy, scores it on the local leaderboard: :func:`score_submission` reads
the file as Kaggle does (labels as labels, probabilities by class column) and scores the Public
and Private rows of the held-out solution. Either way the submission is recorded in
``submissions/<slug>/submissions.json`` beside its CV (:mod:`kfw.kaggle.leaderboard`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kfw import files
from kfw.core.config import Competition
from kfw.core.folds import stored_hash
from kfw.core.metrics import get_metric
from kfw.core.noise import choose_from_store
from kfw.core.runstore import RunStore
from kfw.errors import DataError, KfwError
from kfw.kaggle.client import (
    HOW_TO_AUTHENTICATE,
    find_credentials,
    permissions_warning,
    submit_file,
)
from kfw.kaggle.data import data_dir, load_dataset
from kfw.kaggle.leaderboard import (
    SubmissionStore,
    check_daily_limit,
    compose_message,
    daily_limit,
    fetch_kaggle_scores,
    local_ref,
    new_entry,
    now_utc,
    submissions_dir,
)
from kfw.progress import NULL, Callback

if TYPE_CHECKING:
    import pandas as pd


def build_submission(
    spec: Competition,
    ids: np.ndarray,
    pred: np.ndarray,
    classes: np.ndarray | None,
    sample: pd.DataFrame,
    threshold: float | None = None,
) -> pd.DataFrame:
    """Turn test predictions into the submission frame, rows in the sample's order.

    Parameters
    ----------
    pred : ndarray
        Regression values, the class-1 probability (binary) or (n, K) probabilities.
    classes : ndarray or None
        The training classes, in the order of the probability columns.
    threshold : float, optional
        A binary label submission's decision threshold (the run's tuned one); default 0.5.
    """
    import pandas as pd

    cols = spec.submission.columns
    fmt = spec.submission.format
    frame = pd.DataFrame({spec.id: ids})
    if spec.multi_target:
        for j, target in enumerate(spec.targets):  # (n, n_targets): a probability or a value each
            frame[target] = pred[:, j]
    elif spec.task == "regression":
        frame[cols[1]] = pred
    elif fmt == "label":
        cut = 0.5 if threshold is None else threshold
        index = (pred >= cut).astype(int) if pred.ndim == 1 else np.argmax(pred, axis=1)
        frame[cols[1]] = np.asarray(classes)[index]
    elif pred.ndim == 1:
        frame[cols[1]] = pred
    else:
        names = [str(c) for c in np.asarray(classes)]
        # a class's column is its name, or the target's name and the class (Status_C)
        column = {c.removeprefix(f"{spec.target}_"): c for c in cols[1:]}
        if sorted(names) != sorted(column):
            raise DataError(f"submission columns {list(cols[1:])} do not name the classes {names}")
        for j, name in enumerate(names):
            frame[column[name]] = pred[:, j]
        frame = frame[list(cols)]
    order = pd.Index(ids).get_indexer(sample[spec.id])
    return frame.iloc[order].reset_index(drop=True) if (order >= 0).all() else frame


def validate_submission(
    spec: Competition, sub: pd.DataFrame, sample: pd.DataFrame, classes: np.ndarray | None
) -> None:
    """Raise :class:`DataError` naming the first problem with ``sub``."""
    import pandas as pd

    if list(sub.columns) != list(sample.columns):
        raise DataError(
            f"submission columns {list(sub.columns)} differ from the sample's {list(sample.columns)}"
        )
    if len(sub) != len(sample):
        raise DataError(f"submission has {len(sub)} rows, the sample {len(sample)}")
    ids = sub[spec.id]
    if ids.duplicated().any():
        raise DataError(f"submission repeats {spec.id} {ids[ids.duplicated()].tolist()[0]!r}")
    missing = set(sample[spec.id].tolist()) - set(ids.tolist())
    if missing:
        raise DataError(
            f"submission lacks {len(missing)} ids of the sample (e.g. {sorted(missing)[0]!r})"
        )
    for col in sub.columns[1:]:
        values = sub[col]
        if values.isna().any():
            raise DataError(
                f"submission column {col!r} has {int(values.isna().sum())} missing values"
            )
        if spec.submission.format == "label":
            allowed = set(np.asarray(classes).tolist()) if classes is not None else None
            bad = sorted(set(values.tolist()) - allowed, key=str) if allowed is not None else []
            if bad:
                raise DataError(
                    f"submission column {col!r} has labels outside the training classes: {bad[:5]}"
                )
            continue
        if (
            not pd.api.types.is_numeric_dtype(values)
            or not np.isfinite(values.to_numpy(float)).all()
        ):
            raise DataError(f"submission column {col!r} has non-numeric or infinite values")
        if spec.submission.format == "proba" and ((values < 0) | (values > 1)).any():
            raise DataError(f"submission column {col!r} has probabilities outside [0, 1]")
        if spec.metric == "rmsle" and (values < 0).any():
            raise DataError(
                f"submission column {col!r} has negative values, which RMSLE cannot score"
            )


def write_submission(sub: pd.DataFrame, path: Path) -> Path:
    """Write atomically (a temporary file renamed into place)."""
    return files.write_with(
        Path(path), lambda tmp: sub.to_csv(tmp, index=False, lineterminator="\n")
    )


def submission_bytes(sub: pd.DataFrame) -> bytes:
    return sub.to_csv(index=False, lineterminator="\n").encode()


def check_and_encode(
    spec: Competition, sub: pd.DataFrame, sample: pd.DataFrame, classes: Any
) -> bytes:
    """Validate and serialise in one step (what a run stores as ``submission.csv``)."""
    validate_submission(spec, sub, sample, classes)
    return submission_bytes(sub)


# ---------------------------------------------------------------------------------------------
# scoring like Kaggle, against the held-out labels of an open copy


def read_solution(spec: Competition, folder: Path) -> pd.DataFrame:
    """The held-out labels of an open copy: ``<id>, <target>, Usage``."""
    import pandas as pd

    path = folder / ".open" / "solution.csv"
    if not path.is_file():
        raise DataError(
            f"{path} is missing: rebuild the open copy with `kfw data open {spec.slug}`"
        )
    solution = pd.read_csv(path)
    missing = [c for c in (spec.id, spec.target, "Usage") if c not in solution.columns]
    if missing:
        raise DataError(f"{path}: column {missing[0]!r} is missing")
    return solution


def _predictions(
    spec: Competition, sub: pd.DataFrame, classes: np.ndarray | None, k: int
) -> np.ndarray:
    """The submission in the layout kfw's metrics take: values, P(class 1) or (n, K)."""
    cols = spec.submission.columns
    if spec.task == "regression":
        return sub[cols[1]].to_numpy(float)
    if spec.submission.format == "proba":
        if k == 2:
            return sub[cols[1]].to_numpy(float)  # the probability of classes[1]
        by_name = {str(c): c for c in cols[1:]}
        return sub[[by_name[str(c)] for c in np.asarray(classes)]].to_numpy(float)  # (n, K)
    # labels, compared as labels: the predicted class is certain
    index = _encode(sub[cols[1]].to_numpy(), classes, f"submission column {cols[1]!r}")
    if k == 2:
        return index.astype(float)  # 1.0 where the label is classes[1]
    return np.eye(k)[index]  # (n, K) one-hot


def _encode(values: np.ndarray, classes: np.ndarray | None, what: str) -> np.ndarray:
    import pandas as pd

    index = pd.Index(np.asarray(classes)).get_indexer(values)
    if (index < 0).any():
        bad = values[index < 0][0]
        raise DataError(f"{what} has a label outside the training classes: {bad!r}")
    return index


def score_submission(
    spec: Competition,
    sub: pd.DataFrame,
    solution: pd.DataFrame,
    classes: np.ndarray | None,
) -> dict[str, float | None]:
    """Score a (validated) submission on the Public and Private rows of the solution.

    Parameters
    ----------
    sub : DataFrame
        The submission as read back from its CSV (Kaggle scores the file, not the frame).
    solution : DataFrame
        ``<id>, <target>, Usage`` with Usage ``Public`` or ``Private``.
    classes : ndarray or None
        The training classes in kfw's encoding order (``np.unique`` of the target): label
        submissions are mapped to their index, ``proba`` columns matched by class name.

    Returns
    -------
    dict
        ``{"public": float | None, "private": float | None}`` (None when a part has no rows).
    """

    metric = get_metric(spec.metric)
    truth = solution.rename(columns={spec.target: "__truth__"})[[spec.id, "__truth__", "Usage"]]
    merged = truth.merge(sub, on=spec.id, how="left", validate="one_to_one")
    if merged[list(spec.submission.columns[1:])].isna().any().any():
        raise DataError(f"the submission lacks ids of the solution (column {spec.id!r})")
    if spec.task == "regression":
        y_true = merged["__truth__"].to_numpy(float)
        k = 0
    else:
        k = len(np.asarray(classes))
        y_true = _encode(merged["__truth__"].to_numpy(), classes, "the solution")
    y_pred = _predictions(spec, merged, classes, k)
    scores: dict[str, float | None] = {}
    for part in ("Public", "Private"):
        rows = (merged["Usage"] == part).to_numpy()
        if not rows.any():
            scores[part.lower()] = None
            continue
        try:
            scores[part.lower()] = metric(y_true[rows], y_pred[rows])
        except ValueError as exc:
            raise DataError(f"{metric.name} cannot score the {part} rows: {exc}") from None
    return scores


# ---------------------------------------------------------------------------------------------
# submitting a run


@dataclass
class Submitted:
    """What :func:`submit_run` did.

    Attributes
    ----------
    path : Path
        The CSV written (and sent, unless a dry run).
    rows : int
        Its rows.
    run : dict
        The run's record (``run.json``).
    entry : dict or None
        The entry added to ``submissions.json`` (None for a dry run).
    today, limit : int
        Local submissions made today (this one included) and the daily limit; 0 for Kaggle.
    choice : kfw.core.noise.Choice or None
        Without ``--run``: the rule's choice, why, and the runs it could not tell apart.
    """

    path: Path
    rows: int
    run: dict[str, Any]
    entry: dict[str, Any] | None = None
    today: int = 0
    limit: int = 0
    choice: Any = None


def _stored_path(folder: Path, run_id: str, content: bytes) -> Path:
    """``<run>.csv``, or ``<run>-2.csv``... when another file of the same run is there."""
    n = 1
    while True:
        path = folder / (f"{run_id}.csv" if n == 1 else f"{run_id}-{n}.csv")
        if not path.exists() or path.read_bytes() == content:
            return path
        n += 1


def _default_run(store: Any, data_hash: str, fold_hash: str | None, slug: str) -> Any:
    """The noise-aware choice among the runs on the current data and folds (kfw.core.noise)."""

    if fold_hash is None:
        raise KfwError(f"no run of {slug} on the current data: run `kfw cv {slug}` first")
    return choose_from_store(store, store.records(), data_hash, fold_hash)


def _check_run_folds(record: dict[str, Any], spec: Competition, fold_hash: str | None) -> None:
    """Refuse a run made on another fold file: its CV is not comparable with this one's."""
    same_file = record["folds"]["name"] == spec.folds.name
    if not same_file or (fold_hash is not None and record["folds"]["hash"] != fold_hash):
        raise KfwError(
            f"run {record['id']} was cross-validated on other folds ({record['folds']['name']}, "
            f"hash {record['folds']['hash']}) than {spec.slug}'s {spec.folds.name}"
            f"{f' ({fold_hash})' if fold_hash else ''}: "
            f"rerun it with `kfw cv {spec.slug} --model {record.get('model') or record['label']}`"
        )


def submit_run(
    spec: Competition,
    kfw_home: Path,
    run_id: str | None = None,
    *,
    message: str = "",
    file: Path | None = None,
    cv: float | None = None,
    dry_run: bool = False,
    output: Path | None = None,
    report: Callback = NULL,
    now: datetime | None = None,
) -> Submitted:
    """Validate a run's submission, write it, and (unless ``dry_run``) submit and record it.

    On the embedded open copy the file is scored on the local leaderboard (daily limit, Public
    score shown, Private kept); otherwise it goes to Kaggle with a message carrying the run id
    and CV. A refused or failed submission records nothing.

    Parameters
    ----------
    run_id : str, optional
        Default: the run :func:`kfw.core.noise.choose` picks among the runs on the current data
        and fold file. A run of another fold file is refused.
    message : str
        The user's text, appended to the description.
    file : Path, optional
        A CSV derived from ``run_id`` (say, edited by hand) to send instead of the run's file.
    cv : float, optional
        The CV to record instead of the run's (for an edited ``file`` whose CV you measured).
    output : Path, optional
        Where to write the CSV (default ``submissions/<slug>/<run>.csv``).
    now : datetime, optional
        The submission time (UTC aware); the daily limit counts by its UTC day.
    """
    import pandas as pd

    dataset = load_dataset(spec, kfw_home)  # its data warnings were shown by `kfw cv`
    runs = RunStore(kfw_home, spec.slug)
    if file is not None and run_id is None:
        raise KfwError("--file needs --run RUN_ID: the run the file was made from")
    fold_hash = stored_hash(data_dir(kfw_home, spec.slug), spec.folds)
    choice = None
    if run_id is None:
        choice = _default_run(runs, dataset.hash, fold_hash, spec.slug)
        run_id = choice.run["id"]
    record = runs.record(run_id)
    _check_run_folds(record, spec, fold_hash)
    if file is not None:
        if not Path(file).is_file():
            raise DataError(f"{file} does not exist")
        sub = pd.read_csv(file)
    else:
        sub = runs.frame(run_id, "submission.csv")
    validate_submission(spec, sub, dataset.sample, record.get("classes"))
    folder = submissions_dir(kfw_home, spec.slug)
    if dry_run:
        path = write_submission(sub, output or folder / f"{run_id}.csv")
        return Submitted(path, len(sub), record, choice=choice)

    now = now or now_utc()
    store = SubmissionStore(kfw_home, spec.slug)
    entries = store.entries()
    local = dataset.source == "open"
    if local:  # every refusal comes before anything is written
        limit = daily_limit()
        today = check_daily_limit(entries, spec.slug, now, limit) + 1
        solution = read_solution(spec, dataset.dir)
    else:
        check_kaggle_credentials(
            report, "or use --dry-run --output PATH and upload the file yourself"
        )
    path = write_submission(sub, output or _stored_path(folder, run_id, submission_bytes(sub)))
    cv = float(record["score"] if cv is None else cv)
    text = compose_message(run_id, record["metric"], cv, message)
    fields = {
        "run": run_id,
        "file": store.relative(path),
        "message": text,
        "submitted_at": now,
        "cv": cv,
        "metric": record["metric"],
        "greater_is_better": record["greater_is_better"],
    }
    if local:
        classes = np.unique(dataset.y) if spec.task != "regression" else None
        scores = score_submission(spec, pd.read_csv(path), solution, classes)
        entry = new_entry(
            ref=local_ref(entries), source="local", status="complete", **scores, **fields
        )
        store.append(entry)
        return Submitted(path, len(sub), record, entry, today, limit, choice)

    ref = submit_file(spec.kaggle, path, text)  # raises, recording nothing, when it fails
    entry = new_entry(ref=ref, source="kaggle", **fields)
    store.append(entry)
    entry = _first_score(spec, kfw_home, entry, report) or entry
    return Submitted(path, len(sub), record, entry, choice=choice)


def check_kaggle_credentials(report: Callback, hint: str = "") -> None:
    """Refuse in one line without credentials; warn when kaggle.json is readable by others.

    ``hint`` ends the refusal: what the user can do without credentials.
    """

    if find_credentials() is None:
        raise DataError(f"{HOW_TO_AUTHENTICATE}; {hint}" if hint else HOW_TO_AUTHENTICATE)
    warning = permissions_warning()
    if warning:
        report.warning(warning)


def _first_score(
    spec: Competition, kfw_home: Path, entry: dict[str, Any], report: Callback
) -> dict[str, Any] | None:
    """One listing right after submitting: Kaggle often has the score within seconds."""

    try:
        fetch_kaggle_scores(spec, kfw_home)
    except KfwError as exc:  # the submission is made and recorded; its score can wait
        report.warning(f"the score is not fetched yet ({exc}): `kfw submissions {spec.slug}`")
        return None
    for e in reversed(SubmissionStore(kfw_home, spec.slug).entries()):
        if e["submitted_at"] == entry["submitted_at"] and e["file"] == entry["file"]:
            return e
    return None
