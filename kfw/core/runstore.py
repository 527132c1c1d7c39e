"""The local run store: the truth about every run (W&B only mirrors it).

``$KFW_HOME/runs/<slug>/<run_id>/`` holds ``run.json`` (the :class:`RunRecord`: config,
parameters, seeds, fold and data hashes, git commit, library versions, scores, timings),
``oof.parquet``, ``test.parquet``, ``importance.csv`` when the model has importances, and
``submission.csv``. A run is written into a hidden staging folder and renamed into place when
complete, so a crash leaves no half-written run. Finished folds of a running job are kept in
``.partial/<key>/``, so the same command resumes after an interruption instead of starting
over.

This module is the one place a ``run.json`` is written (:meth:`RunStore.save`,
:func:`write_record`) and read (:meth:`RunStore.records`, :func:`read_record`); a record of
an older schema is upgraded as it is read (:func:`upgrade`), and a run's identity, the key
of its id and of its resumable folds, is computed by :func:`identity` alone.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np

from kfw.core.cv import FoldResult, FoldStore
from kfw.errors import KfwError
from kfw.files import dumps, replace_dir, write_bytes, write_text
from kfw.versions import library_versions

if TYPE_CHECKING:
    import pandas as pd

    from kfw.core.folds import Split


# Version 2: ``score`` covers every training row (declared outliers included) and
# ``score_without_excluded`` leaves them out (version 1 had ``score`` without them and
# ``score_all`` with them); ``early_stopping`` names where the length was chosen ("inner",
# "scored-fold") instead of a bool; ``optimistic`` lists what was chosen on the scored rows.
SCHEMA_VERSION = 2


class FoldRecord(TypedDict, total=False):
    """One fit of a run (``fold_scores[i]``): :class:`kfw.core.cv.FoldResult` as JSON."""

    repeat: int
    fold: int
    score: float
    n_train: int
    n_valid: int
    fit_seconds: float
    predict_seconds: float
    best_iteration: int | None
    restored: bool
    history: list[dict[str, float]] | None
    stopped_on: str | None
    refit: bool
    threshold: float | None  # tuned on an inner split of this fold's training part
    calibration: dict[str, Any] | None  # the calibrator, and ECE / Brier before and after


class RunRecord(TypedDict, total=False):
    """``run.json``: everything needed to trust, compare and reproduce a run.

    Every run has the identity and provenance keys; a cross-validated run (``kind`` "model"
    or "ensemble") has the scores; an ensemble its members and weights; the language-model
    and paper-reproduction runs (``kind`` "lm", "batchnorm", "dropout") their ``config``.
    """

    schema_version: int
    id: str
    competition: str
    kind: str  # "model", "ensemble", "lm", or a reproduced paper's name
    label: str
    command: str | None
    environment: dict[str, Any]
    started: str
    finished: str
    seconds: float
    wandb: dict[str, Any]  # where the W&B mirror put it (kfw.pipeline.mirror)
    # what was cross-validated
    task: str
    metric: str
    greater_is_better: bool
    folds: dict[str, Any]  # name, hash, scheme
    data: dict[str, Any]  # hash, source
    features: dict[str, Any]  # module, source_hash
    extra_train: dict[str, Any] | None
    excluded_ids: list[Any]
    target_transform: str
    classes: list[Any] | None
    # a model run
    model: str
    params: dict[str, Any]
    seed: int
    threads: int
    early_stopping_config: dict[str, Any] | None
    threshold_mode: str  # "fixed" (0.5) or "tune" (chosen in each fold on an inner split)
    calibration: str  # "none", "platt", "isotonic" or "temperature" (fitted in each fold)
    tuned_on: str | None  # the fold hash its tuned parameters were chosen on
    ablation: dict[str, Any]
    group: str
    # an ensemble
    method: str
    members: list[str]
    member_labels: list[str]
    weights: dict[str, float] | None
    fold_weights: list[list[float]]
    score_insample: float | None
    detail: dict[str, Any]
    # the scores (schema 2: the headline covers every training row)
    score: float
    score_without_excluded: float | None
    se: float | None
    mean: float
    std: float
    fold_scores: list[FoldRecord]
    early_stopping: str | None  # "inner", "scored-fold" (optimistic) or None
    best_iterations: list[int]
    resumed_folds: int
    optimistic: list[str]  # what was chosen on the rows it scores; never chosen by default
    # tuned thresholds (binary label metrics): the test set's (median of the folds'; each fold's
    # is in fold_scores), the OOF scored at 0.5, and the optimistic threshold chosen on the OOF
    # itself with its score (shown beside, labelled; never the headline)
    threshold: float | None
    score_at_default_threshold: float | None
    oof_threshold: float | None
    score_oof_tuned: float | None
    # language models and reproductions
    config: dict[str, Any]
    config_key: str
    parent: str | None  # a fine-tune's starting weights: the parent run's id, or a file's path
    parent_sha256: str | None  # of the parent run's model.pt, or of the file


# what decides a model run's results: its identity (part of its id; the key of its
# resumable folds)
MODEL_IDENTITY = (
    "label", "model", "params", "seed", "threads", "folds", "data", "features", "extra_train",
    "early_stopping_config",
)  # fmt: skip


def identity(record: RunRecord) -> str:
    """The key of a run: a hash of what decides its results.

    A model run's is :data:`MODEL_IDENTITY`; an ensemble's its members and its label (the
    method, with the level-2 model).
    """
    if record["kind"] == "ensemble":
        return config_key({"members": record["members"], "method": record["label"]})
    key = {k: record.get(k) for k in MODEL_IDENTITY}
    # absent before they existed: a run without them keeps the key it always had
    if record.get("threshold_mode", "fixed") != "fixed":
        key["threshold_mode"] = record["threshold_mode"]
    if record.get("calibration", "none") != "none":
        key["calibration"] = record["calibration"]
    if record.get("time_budget") is not None:  # a fit cut by the clock is not the full one's
        key["time_budget"] = record["time_budget"]
    return config_key(key)


def read_record(run_dir: Path) -> RunRecord:
    """The record in ``run_dir/run.json``, upgraded to the current schema."""
    return upgrade(json.loads((Path(run_dir) / "run.json").read_text()))


def write_record(run_dir: Path, record: RunRecord) -> Path:
    """Rewrite a published run's ``run.json`` atomically (the W&B mirror adds where it went)."""
    return write_text(Path(run_dir) / "run.json", dumps(record))


def upgrade(record: dict[str, Any]) -> RunRecord:
    """A record of any schema version in the current one (older runs stay readable)."""
    version = record.get("schema_version", 1)
    if version >= SCHEMA_VERSION:
        return record
    record = dict(record)
    all_rows = record.pop("score_all", None)
    if all_rows is not None:
        record["score_without_excluded"] = record["score"]
        record["score"] = all_rows
    else:
        record.setdefault("score_without_excluded", None)
    if record.get("early_stopping") is True:  # version 1 stopped on the scored folds
        record["early_stopping"] = "scored-fold"
    elif record.get("early_stopping") is False:
        record["early_stopping"] = None
    optimistic = list(record.get("optimistic") or [])
    if record.get("early_stopping") == "scored-fold" and not optimistic:
        optimistic.append("early stopping on the scored folds")
    record["optimistic"] = optimistic
    record["schema_version"] = SCHEMA_VERSION
    return record  # type: ignore[return-value]


def runs_dir(kfw_home: Path, slug: str) -> Path:
    return kfw_home / "runs" / slug


def config_key(config: dict[str, Any]) -> str:
    """A short, stable hash of a JSON-ready config (the resume key, and part of the run id)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:8]


def git_commit() -> str | None:
    """The commit of the kfw checkout (with ``-dirty`` for uncommitted changes), if any."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def environment() -> dict[str, Any]:
    """Python, platform and the versions of the libraries that shape results."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": library_versions(),
        "git_commit": git_commit(),
    }


def prediction_frame(
    ids: np.ndarray, id_col: str, pred: np.ndarray, classes: Iterable[Any] | None
) -> pd.DataFrame:
    """Predictions as a frame: ``pred`` for one column, ``pred_<class>`` for several."""
    import pandas as pd

    frame = pd.DataFrame({id_col: ids})
    if pred.ndim == 2:
        for j, c in enumerate(range(pred.shape[1]) if classes is None else classes):
            frame[f"pred_{c}"] = pred[:, j]
    else:
        frame["pred"] = pred
    return frame


def frame_prediction(frame: pd.DataFrame) -> np.ndarray:
    """The inverse of :func:`prediction_frame`: (n,) or (n, n_classes)."""
    cols = [c for c in frame.columns if c.startswith("pred_")]
    return frame[cols].to_numpy(float) if cols else frame["pred"].to_numpy(float)


class RunStore:
    """Runs of one competition."""

    def __init__(self, kfw_home: Path, slug: str) -> None:
        self.slug = slug
        self.root = runs_dir(kfw_home, slug)

    def new_id(self, label: str, key: str) -> str:
        """``YYYYmmdd-HHMMSS-<label>-<config key>``: sortable, named after its config."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_id = f"{stamp}-{label}-{key}"
        n = 1
        while (self.root / run_id).exists():
            n += 1
            run_id = f"{stamp}-{label}-{key}-{n}"
        return run_id

    def save(self, record: RunRecord, files: dict[str, Any]) -> Path:
        """Write a complete run: ``run.json`` plus ``files`` (frames -> parquet / csv, or bytes).

        Everything goes into a staging folder first; the rename publishes it whole.
        """
        run_id = record["id"]
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".staging-{run_id}-{os.getpid()}"
        staging.mkdir()
        try:
            for name, content in files.items():
                if content is None:
                    continue
                target = staging / name
                if isinstance(content, bytes):
                    target.write_bytes(content)
                elif name.endswith(".parquet"):
                    content.to_parquet(target, index=False)
                else:
                    content.to_csv(target, index=name == "importance.csv", lineterminator="\n")
            (staging / "run.json").write_text(dumps(record))
            replace_dir(staging, self.root / run_id)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return self.root / run_id

    def records(self) -> list[RunRecord]:
        """Every complete run's ``run.json``, oldest first."""
        if not self.root.is_dir():
            return []
        out = []
        for run_json in sorted(self.root.glob("*/run.json")):
            try:
                out.append(read_record(run_json.parent))
            except json.JSONDecodeError:
                continue  # a damaged record is skipped, not fatal: the others stay usable
        return out

    def record(self, run_id: str) -> RunRecord:
        """The record of run ``run_id``, or one line naming the latest runs."""
        path = self.root / run_id / "run.json"
        if not path.is_file():
            known = [r["id"] for r in self.records()][-5:]
            hint = f" (latest: {', '.join(known)})" if known else " (no runs yet: run `kfw cv`)"
            raise KfwError(f"no run {run_id!r} for {self.slug}{hint}")
        return read_record(path.parent)

    def frame(self, run_id: str, name: str) -> pd.DataFrame:
        import pandas as pd

        path = self.root / run_id / name
        if not path.is_file():
            raise KfwError(f"run {run_id} has no {name}")
        return pd.read_parquet(path) if name.endswith(".parquet") else pd.read_csv(path)

    def predictions(self, run_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A run's stored truth, out-of-fold predictions and fold assignment.

        Returns
        -------
        y : ndarray of shape (n_rows,) or (n_rows, n_targets)
        pred : ndarray of shape (n_rows,) or (n_rows, n_columns)
        assignment : ndarray of shape (n_rows, n_repeats)
        """
        frame = self.frame(run_id, "oof.parquet")
        targets = [c for c in frame.columns if c == "target" or c.startswith("target_")]
        folds = sorted(
            (c for c in frame.columns if c.startswith("fold_")), key=lambda c: int(c[5:])
        )
        y = frame[targets].to_numpy()
        return (
            (y[:, 0] if len(targets) == 1 else y),
            frame_prediction(frame),
            frame[folds].to_numpy(),
        )

    def partial(self, key: str) -> PartialFolds:
        return PartialFolds(self.root / ".partial" / key)


class PartialFolds(FoldStore):
    """Finished folds of a run in progress, one ``.npz`` each, keyed by the run's config."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, repeat: int, fold: int) -> Path:
        return self.folder / f"r{repeat}-f{fold}.npz"

    def load(self, split: Split) -> tuple[FoldResult, np.ndarray, np.ndarray | None, Any] | None:
        import pandas as pd

        path = self._path(split.repeat, split.fold)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                valid = z["valid"]
                test = z.get("test")
                imp = (
                    pd.Series(z["imp_values"], index=z["imp_names"].tolist())
                    if "imp_values" in z
                    else None
                )
        except (OSError, ValueError, KeyError):
            return None  # a damaged checkpoint is refitted rather than trusted
        if len(valid) != len(split.valid):
            return None
        return FoldResult(**{**meta, "restored": True}), valid, test, imp

    def save(
        self,
        result: FoldResult,
        valid_pred: np.ndarray,
        test_pred: np.ndarray | None,
        importance: Any,
    ) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = {"meta": np.array(json.dumps(asdict(result))), "valid": valid_pred}
        if test_pred is not None:
            arrays["test"] = test_pred
        if importance is not None:
            arrays["imp_values"] = importance.to_numpy(float)
            arrays["imp_names"] = np.array([str(i) for i in importance.index])
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        write_bytes(self._path(result.repeat, result.fold), buf.getvalue())

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def best_first(records: list[RunRecord]) -> list[RunRecord]:
    """Records sorted by CV score, best first (the metric's direction is in each record)."""
    return sorted(records, key=lambda r: -r["score"] if r["greater_is_better"] else r["score"])
