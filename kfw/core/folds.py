"""Folds are data: computed once per (scheme, seed), persisted, hashed, validated.

Every model, encoder and stacker of a competition reads the same fold file, so their
out-of-fold predictions are comparable and can be stacked honestly. The splitting itself is
scikit-learn's (``KFold``, ``StratifiedKFold``, ``GroupKFold``, ``StratifiedGroupKFold``,
``TimeSeriesSplit``); kfw adds persistence, the content hash, binned-target stratification for
regression, and checks of the invariants when a file is read back.

File layout (``data/<slug>/folds/<name>.csv``): the id column, then ``fold_0`` .. ``fold_{R-1}``
(one column per repeat; ``-1`` marks a row that is only ever trained on, as in the first block
of a time split), then ``t`` for time schemes (the dense rank of the time column). A sidecar
``<name>.json`` holds the scheme and the hash.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from kfw import files
from kfw.errors import ConfigError, FoldError

if TYPE_CHECKING:
    import pandas as pd

Scheme = Literal["kfold", "stratified", "group", "stratified_group", "time"]
# the fewest rows an inner early-stopping split may leave on either side
MIN_INNER_ROWS = 10


@dataclass(frozen=True)
class FoldScheme:
    """How a competition's training rows are split.

    Parameters
    ----------
    scheme : str
        ``kfold``; ``stratified`` (on the class, or on ``bins`` quantile bins of a regression
        target); ``group`` (rows sharing ``group`` stay together); ``stratified_group``;
        ``time`` (expanding window over the sorted unique values of ``time``: fold k validates
        one block and trains on every earlier period except the last ``gap`` periods).
    n_splits, n_repeats, seed : int
        Repeat r uses seed ``seed + r``.
    bins : int
        Quantile bins of a regression target for ``stratified``.
    group, time : str or None
        Column names for the group and time schemes.
    gap : int
        Time periods left out between a time fold's training part and its validation block.
    """

    scheme: Scheme = "kfold"
    n_splits: int = 5
    n_repeats: int = 1
    seed: int = 42
    bins: int = 10
    group: str | None = None
    time: str | None = None
    gap: int = 0

    def __post_init__(self) -> None:
        if self.n_splits < 2:
            raise ConfigError(f"folds.n_splits must be at least 2, got {self.n_splits}")
        if self.n_repeats < 1:
            raise ConfigError(f"folds.n_repeats must be at least 1, got {self.n_repeats}")
        if self.scheme in ("group", "stratified_group") and not self.group:
            raise ConfigError(f"folds.scheme = {self.scheme!r} needs folds.group (a column)")
        if self.scheme == "time":
            if not self.time:
                raise ConfigError("folds.scheme = 'time' needs folds.time (a column)")
            if self.n_repeats != 1:
                raise ConfigError("a time split has one ordering: folds.n_repeats must be 1")
        if self.gap < 0:
            raise ConfigError(f"folds.gap must be >= 0, got {self.gap}")

    @property
    def name(self) -> str:
        """File stem, e.g. ``stratified-k5-s42`` or ``time-k5-gap7-date``."""
        parts = [self.scheme.replace("_", "-"), f"k{self.n_splits}"]
        if self.scheme != "time":
            parts.append(f"s{self.seed}")
        if self.n_repeats > 1:
            parts.append(f"r{self.n_repeats}")
        if self.scheme in ("group", "stratified_group"):
            parts.append(f"g-{self.group}")
        if self.scheme == "stratified" and self.bins != 10:
            parts.append(f"b{self.bins}")
        if self.scheme == "time":
            parts += [f"gap{self.gap}", str(self.time)]
        return "-".join(_safe(p) for p in parts)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


@dataclass(frozen=True)
class Split:
    """One fit of the fold loop: row positions of its training and validation parts."""

    repeat: int
    fold: int
    train: np.ndarray
    valid: np.ndarray


@dataclass(frozen=True)
class Folds:
    """A persisted split of the training rows.

    Attributes
    ----------
    assignment : ndarray of shape (n_rows, n_repeats)
        Validation fold of each row per repeat; -1 for rows that are never validated.
    order : ndarray of shape (n_rows,) or None
        Time schemes: dense rank of each row's time value.
    hash : str
        Content hash of the file and scheme; every run records it.
    groups : ndarray of shape (n_rows,) or None
        Group schemes: each row's group, so that an inner split keeps groups together too.
    """

    scheme: FoldScheme
    ids: np.ndarray
    assignment: np.ndarray
    order: np.ndarray | None
    hash: str
    path: Path | None = None
    groups: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        return len(self.ids)

    @property
    def n_fits(self) -> int:
        return self.scheme.n_splits * self.scheme.n_repeats

    def splits(self) -> Iterator[Split]:
        """Training / validation row positions of every fold of every repeat."""
        for r in range(self.scheme.n_repeats):
            col = self.assignment[:, r]
            for k in range(self.scheme.n_splits):
                valid = np.flatnonzero(col == k)
                if self.order is None:
                    train = np.flatnonzero(col != k)
                else:
                    # expanding window: every period before the block, less the gap
                    start = self.order[valid].min()
                    train = np.flatnonzero(self.order < start - self.scheme.gap)
                yield Split(r, k, train, valid)

    def validated(self) -> np.ndarray:
        """Boolean mask of the rows that some fold validates (all of them except time splits)."""
        return (self.assignment >= 0).any(axis=1)

    def inner_split(
        self, split: Split, train: np.ndarray, y: np.ndarray, task: str, fraction: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Carve an early-stopping set out of a fold's training part, the way the folds were cut.

        Anything a model chooses by watching scores (boosting rounds, a network's best epoch)
        is chosen here, on rows of the training part, so the fold's validation part is never
        seen before it is scored. The inner split follows the outer scheme: stratified on the
        class (or on quantile bins of a regression target), groups kept whole, and for a time
        split the latest ``fraction`` of the training periods (less the gap) validates. It
        reads only the training part's labels and is seeded by (seed, repeat, fold), so it is
        the same for every model and every run.

        Parameters
        ----------
        split : Split
            The outer fit; its repeat and fold seed the inner split.
        train : ndarray of int
            Row positions of the training part actually fitted (outliers and masked rows
            already removed).
        y : ndarray
            Target of every row (only ``y[train]`` is read).
        fraction : float
            Share of the training part that validates, in (0, 0.5].

        Returns
        -------
        inner_train, inner_valid : ndarray of int
            Row positions (a partition of ``train``).

        Raises
        ------
        FoldError
            When the training part is too small (or a class too rare) to split.
        """
        from sklearn.model_selection import (
            GroupShuffleSplit,
            ShuffleSplit,
            StratifiedGroupKFold,
            StratifiedShuffleSplit,
        )

        where = f"fold {split.fold}" + (f" of repeat {split.repeat}" if split.repeat else "")
        n = len(train)
        n_valid = round(n * fraction)
        if n_valid < MIN_INNER_ROWS or n - n_valid < MIN_INNER_ROWS:
            raise FoldError(
                f"{where}: its training part has {n} rows, too few to hold out {fraction:.0%} "
                f"for early stopping (at least {MIN_INNER_ROWS} rows on each side); turn early "
                "stopping off (early_stopping_rounds = 0) or use fewer folds"
            )
        scheme = self.scheme
        if self.order is not None:
            # time: the latest periods validate; the gap separates them from what trains
            periods = np.unique(self.order[train])
            n_periods = max(1, round(len(periods) * fraction))
            if len(periods) - n_periods - scheme.gap < 1:
                raise FoldError(
                    f"{where}: {len(periods)} training periods are too few for an inner "
                    f"early-stopping block of {n_periods} with a gap of {scheme.gap}"
                )
            start = periods[-n_periods]
            valid = train[self.order[train] >= start]
            inner = train[self.order[train] < periods[-n_periods - scheme.gap]]
            return inner, valid
        seed = int(
            np.random.SeedSequence([scheme.seed, split.repeat, split.fold]).generate_state(1)[0]
        )
        zeros = np.zeros(n)
        # classes are always stratified (a rare class must reach both sides); a regression
        # target only when the outer folds were stratified on it
        strata = None
        yt = np.asarray(y)[train]
        if task != "regression":
            strata = yt
            _, counts = np.unique(strata, return_counts=True)
            if counts.min() < 2:
                raise FoldError(
                    f"{where}: a class has {counts.min()} training row(s), too few to stratify "
                    "an early-stopping split; turn early stopping off or merge rare classes"
                )
        elif scheme.scheme in ("stratified", "stratified_group"):
            strata = _regression_bins(yt.astype(float), max(1, min(scheme.bins, n_valid // 2)))
        groups = self.groups[train] if self.groups is not None else None
        if scheme.scheme == "group":
            splitter = GroupShuffleSplit(1, test_size=fraction, random_state=seed)
            it, iv = next(splitter.split(zeros, groups=groups))
        elif scheme.scheme == "stratified_group":
            k = max(2, round(1 / fraction))
            it, iv = next(
                StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(
                    zeros, strata, groups
                )
            )
        elif strata is not None:
            it, iv = next(
                StratifiedShuffleSplit(1, test_size=n_valid, random_state=seed).split(zeros, strata)
            )
        else:
            it, iv = next(ShuffleSplit(1, test_size=n_valid, random_state=seed).split(zeros))
        if len(it) == 0 or len(iv) == 0:
            raise FoldError(f"{where}: the inner early-stopping split left one side empty")
        return train[np.sort(it)], train[np.sort(iv)]


# ---------------------------------------------------------------------------------------------
# computing


def _regression_bins(y: np.ndarray, bins: int) -> np.ndarray:
    """Equal-count quantile bins of a continuous target (ties broken by row order)."""
    ranks = np.argsort(np.argsort(y, kind="stable"), kind="stable")
    return (ranks * bins // len(y)).astype(int)


def assign_folds(
    scheme: FoldScheme,
    n: int,
    y: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    times: np.ndarray | None = None,
    task: str = "regression",
) -> tuple[np.ndarray, np.ndarray | None]:
    """Compute the fold assignment with scikit-learn's splitters.

    Returns
    -------
    assignment : ndarray of shape (n_rows, n_repeats)
    order : ndarray or None
        Dense time rank (time scheme only).
    """
    from sklearn.model_selection import (
        GroupKFold,
        KFold,
        StratifiedGroupKFold,
        StratifiedKFold,
        TimeSeriesSplit,
    )

    out = np.full((n, scheme.n_repeats), -1, dtype=np.int64)
    if scheme.scheme == "time":
        values, order = np.unique(times, return_inverse=True)
        splitter = TimeSeriesSplit(n_splits=scheme.n_splits, gap=scheme.gap)
        try:
            blocks = [(train, valid) for train, valid in splitter.split(values)]
        except ValueError:
            blocks = []
        if not blocks or any(len(train) == 0 for train, _ in blocks):
            raise FoldError(
                f"{len(values)} distinct values of {scheme.time!r} are too few for a time split into "
                f"{scheme.n_splits} folds with a gap of {scheme.gap}"
            )
        for k, (_, valid_periods) in enumerate(blocks):
            out[np.isin(order, valid_periods), 0] = k
        return out, order.astype(np.int64)

    strata = None
    if scheme.scheme in ("stratified", "stratified_group"):
        if y is None:
            raise FoldError(f"scheme {scheme.scheme!r} needs the target")
        if task == "regression":
            # at least n_splits rows per bin, or StratifiedKFold cannot honour the strata
            bins = max(1, min(scheme.bins, n // scheme.n_splits))
            strata = _regression_bins(np.asarray(y, float), bins)
        else:
            strata = y
    for r in range(scheme.n_repeats):
        seed = scheme.seed + r
        if scheme.scheme == "kfold":
            splits = KFold(scheme.n_splits, shuffle=True, random_state=seed).split(np.zeros(n))
        elif scheme.scheme == "stratified":
            splits = StratifiedKFold(scheme.n_splits, shuffle=True, random_state=seed).split(
                np.zeros(n), strata
            )
        elif scheme.scheme == "group":
            splits = GroupKFold(scheme.n_splits, shuffle=True, random_state=seed).split(
                np.zeros(n), groups=groups
            )
        else:
            splits = StratifiedGroupKFold(scheme.n_splits, shuffle=True, random_state=seed).split(
                np.zeros(n), strata, groups
            )
        for k, (_, valid) in enumerate(splits):
            out[valid, r] = k
    return out, None


# ---------------------------------------------------------------------------------------------
# persistence


def _to_csv(
    id_name: str, ids: np.ndarray, assignment: np.ndarray, order: np.ndarray | None
) -> bytes:
    import pandas as pd

    frame = pd.DataFrame({id_name: ids})
    for r in range(assignment.shape[1]):
        frame[f"fold_{r}"] = assignment[:, r]
    if order is not None:
        frame["t"] = order
    buf = io.StringIO()
    frame.to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue().encode()


def content_hash(csv_bytes: bytes, scheme: FoldScheme) -> str:
    """Hash of the fold file and the scheme (the gap changes the training parts of a time split)."""
    h = hashlib.sha256(csv_bytes)
    h.update(json.dumps(dataclasses.asdict(scheme), sort_keys=True).encode())
    return h.hexdigest()[:12]


def folds_path(data_dir: Path, scheme: FoldScheme) -> Path:
    return data_dir / "folds" / f"{scheme.name}.csv"


def stored_hash(data_dir: Path, scheme: FoldScheme) -> str | None:
    """The hash of the competition's fold file for ``scheme`` (None before it is computed)."""
    path = folds_path(data_dir, scheme)
    return content_hash(path.read_bytes(), scheme) if path.is_file() else None


def get_folds(
    data_dir: Path,
    scheme: FoldScheme,
    train: pd.DataFrame,
    id_col: str,
    target: np.ndarray | None,
    task: str,
    force: bool = False,
) -> tuple[Folds, bool]:
    """Read the competition's fold file for ``scheme``, computing and writing it the first time.

    Returns
    -------
    folds : Folds
    created : bool
        Whether the file was (re)computed by this call.

    Raises
    ------
    FoldError
        The file exists but does not match the training rows, or breaks an invariant.
    """
    path = folds_path(data_dir, scheme)
    ids = train[id_col].to_numpy()
    groups = _column(train, scheme.group) if scheme.group else None
    if path.exists() and not force:
        folds = read_folds(path, scheme, ids, id_col)
        return dataclasses.replace(folds, groups=groups), False
    times = _column(train, scheme.time) if scheme.time else None
    assignment, order = assign_folds(scheme, len(ids), target, groups, times, task)
    data = _to_csv(id_col, ids, assignment, order)
    digest = content_hash(data, scheme)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"scheme": dataclasses.asdict(scheme), "hash": digest, "rows": len(ids)}
    files.write_bytes(path.with_suffix(".json"), json.dumps(meta, indent=2).encode())
    files.write_bytes(path, data)
    folds = Folds(scheme, ids, assignment, order, digest, path, groups)
    check_folds(folds, groups=groups)
    return folds, True


def _column(train: pd.DataFrame, name: str) -> np.ndarray:
    if name not in train.columns:
        raise ConfigError(f"folds: column {name!r} is not in train.csv")
    values = train[name]
    if values.isna().any():
        raise FoldError(f"folds: column {name!r} has {int(values.isna().sum())} missing values")
    return values.to_numpy()


def read_folds(path: Path, scheme: FoldScheme, ids: np.ndarray, id_col: str) -> Folds:
    """Read a fold file back, align it to the training rows and check it."""
    import pandas as pd

    data = path.read_bytes()
    try:
        frame = pd.read_csv(io.BytesIO(data))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise FoldError(f"{path}: unreadable fold file ({exc}); delete it to recompute") from None
    cols = [f"fold_{r}" for r in range(scheme.n_repeats)]
    missing = [c for c in [id_col, *cols] if c not in frame.columns]
    if missing:
        raise FoldError(f"{path}: column {missing[0]!r} is missing; delete the file to recompute")
    if len(frame) != len(ids) or not np.array_equal(frame[id_col].to_numpy(), ids):
        same = set(frame[id_col].tolist()) == set(ids.tolist())
        if not same or len(frame) != len(ids):
            raise FoldError(
                f"{path} does not match train.csv ({len(frame)} fold rows, {len(ids)} training "
                "rows); the data changed: delete the file (or run kfw folds --force) to recompute"
            )
        frame = frame.set_index(id_col).loc[ids].reset_index()
    assignment = frame[cols].to_numpy(np.int64)
    order = frame["t"].to_numpy(np.int64) if scheme.scheme == "time" and "t" in frame else None
    if scheme.scheme == "time" and order is None:
        raise FoldError(f"{path}: a time split needs its 't' column; delete the file to recompute")
    folds = Folds(scheme, ids, assignment, order, content_hash(data, scheme), path)
    check_folds(folds)
    return folds


def check_folds(folds: Folds, groups: np.ndarray | None = None) -> None:
    """Check the invariants every consumer relies on.

    Every fold is non-empty; outside time splits each row is validated exactly once per repeat;
    groups never straddle folds; time folds validate strictly after their training part plus
    the gap.
    """
    where = folds.path or "folds"
    k = folds.scheme.n_splits
    a = folds.assignment
    if a.min() < -1 or a.max() >= k:
        raise FoldError(f"{where}: fold ids must lie in 0..{k - 1}")
    if folds.order is None and (a < 0).any():
        raise FoldError(f"{where}: {int((a < 0).sum())} rows are never validated")
    for split in folds.splits():
        if len(split.valid) == 0 or len(split.train) == 0:
            raise FoldError(f"{where}: fold {split.fold} (repeat {split.repeat}) is empty")
        if np.intersect1d(split.train, split.valid).size:
            raise FoldError(f"{where}: fold {split.fold} trains on rows it validates")
    if groups is not None:
        for r in range(a.shape[1]):
            per_group = {}
            for g, f in zip(groups.tolist(), a[:, r].tolist(), strict=True):
                if per_group.setdefault(g, f) != f:
                    raise FoldError(f"{where}: group {g!r} straddles folds")
