"""From a competition's files to what the fold loop sees: row features, target, the rest.

The row features of the competition's feature module are computed once on train and test
(and any extra training rows) together, without the target, so nothing computed there can
carry it; the target is encoded (classes 0..K-1, a binary competition's positive class as
1); the module's fitted features, training-part filter and declared outliers come along.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from kfw.core.config import Competition
from kfw.errors import ConfigError, KfwError
from kfw.kaggle.data import Dataset, read_csv

if TYPE_CHECKING:
    import pandas as pd


def load_feature_module(spec: Competition) -> ModuleType:
    """The competition's feature module: ``features.<name>`` or a ``.py`` beside the toml."""
    if spec.features.endswith(".py"):
        path = spec.dir / spec.features
        if not path.is_file():
            raise ConfigError(
                f"{spec.dir / 'competition.toml'}: features file {path} does not exist"
            )
        module_spec = importlib.util.spec_from_file_location(
            f"kfw_features_{spec.slug.replace('-', '_')}", path
        )
        module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
        module_spec.loader.exec_module(module)  # type: ignore[union-attr]
    else:
        try:
            module = importlib.import_module(f"features.{spec.features}")
        except ModuleNotFoundError as exc:
            if exc.name != f"features.{spec.features}":
                raise
            raise ConfigError(
                f"{spec.slug}: feature module features/{spec.features}.py does not exist"
            ) from None
    if not callable(getattr(module, "row_features", None)):
        raise ConfigError(f"{module.__name__}: defines no row_features(df)")
    return module


@dataclass
class Design:
    """What the fold loop sees: row features, encoded target, the fitted-feature step."""

    X: pd.DataFrame
    X_test: pd.DataFrame
    y: np.ndarray
    classes: np.ndarray | None
    ids: np.ndarray
    test_ids: np.ndarray
    features: Any
    train_mask: Callable[[Any, np.ndarray], np.ndarray] | None
    exclude: np.ndarray | None
    module: str
    module_hash: str
    extra: tuple[pd.DataFrame, np.ndarray] | None = None  # extra training rows and their target
    extra_info: dict[str, Any] | None = None  # where they came from (recorded in every run)


def build_design(spec: Competition, dataset: Dataset, extra_train: Path | None = None) -> Design:
    """Apply the row features to train + test (+ extra rows; target removed), encode the target.

    ``extra_train``: a CSV with train's columns (e.g. the original data set a Playground
    episode was generated from). Its rows get the row features too, an ``is_extra``
    indicator column marks them (0 for train and test), and the fold loop adds them to
    every training part, never to a validation part.
    """
    import pandas as pd

    module = load_feature_module(spec)
    columns = [c for c in dataset.train.columns if c not in spec.targets]
    parts = [dataset.train[columns], dataset.test[columns]]
    extra_raw = _read_extra(spec, extra_train, columns) if extra_train else None
    if extra_raw is not None:
        parts.append(extra_raw[columns])
    n, n_test, n_all = len(dataset.train), len(dataset.test), sum(len(p) for p in parts)
    # the one copy of the raw rows handed to row_features (nothing else holds it: a million
    # rows of strings are the largest thing kfw ever has in memory)
    both = pd.concat(parts, ignore_index=True)
    del parts
    rows = module.row_features(both)
    del both
    if not isinstance(rows, pd.DataFrame) or len(rows) != n_all:
        raise KfwError(
            f"{module.__name__}.row_features must return a DataFrame with one row per input row"
        )
    rows = rows.drop(columns=[spec.id], errors="ignore").reset_index(drop=True)
    if extra_raw is not None:
        rows["is_extra"] = np.r_[np.zeros(n + n_test), np.ones(len(extra_raw))]
    classes, y = _encode_target(spec, dataset.y)
    extra = extra_info = None
    if extra_raw is not None:
        extra = (
            rows.iloc[n + n_test :].reset_index(drop=True),
            _encode_extra(spec, extra_raw, classes),
        )
        extra_info = {
            "path": str(extra_train),
            "rows": len(extra_raw),
            "hash": _file_hash(Path(extra_train)),
        }
    fitted = getattr(module, "fitted_features", None)
    X = rows.iloc[:n].reset_index(drop=True)
    exclude = None
    if callable(getattr(module, "exclude_rows", None)):
        exclude = np.asarray(module.exclude_rows(X, dataset.y), dtype=bool)
        if exclude.shape != (n,):
            raise KfwError(
                f"{module.__name__}.exclude_rows must return one boolean per training row"
            )
    return Design(
        X=X,
        X_test=rows.iloc[n : n + n_test].reset_index(drop=True),
        y=y,
        classes=classes,
        ids=dataset.train[spec.id].to_numpy(),
        test_ids=dataset.test[spec.id].to_numpy(),
        features=fitted() if callable(fitted) else None,
        train_mask=getattr(module, "train_mask", None),
        exclude=exclude if exclude is not None and exclude.any() else None,
        module=module.__name__,
        module_hash=_source_hash(module),
        extra=extra,
        extra_info=extra_info,
    )


def _read_extra(spec: Competition, path: Path, columns: Any) -> pd.DataFrame:
    """The extra training rows: every column of train (and the targets), nothing missing."""

    frame = read_csv(Path(path))
    needed = [c for c in [*columns, *spec.targets] if c != spec.id]
    lacking = [c for c in needed if c not in frame.columns]
    if lacking:
        raise KfwError(
            f"{path}: extra training rows lack columns of train.csv: {', '.join(map(str, lacking[:5]))}"
        )
    if spec.id not in frame.columns:
        frame[spec.id] = -np.arange(1, len(frame) + 1)  # never an id of train or test
    bad = frame[list(spec.targets)].isna().any(axis=1)
    if bad.all():
        raise KfwError(f"{path}: no extra row has a target")
    return frame.loc[~bad].reset_index(drop=True)


def _encode_extra(spec: Competition, frame: pd.DataFrame, classes: np.ndarray | None) -> np.ndarray:
    """The extra rows' target on the fold loop's scale (classes as train's codes)."""
    raw = (
        frame[list(spec.targets)].to_numpy() if spec.multi_target else frame[spec.target].to_numpy()
    )
    if spec.task == "regression":
        return raw.astype(np.float64)
    if spec.multi_target:
        return np.column_stack(
            [
                (raw[:, t] == np.sort(np.unique(raw[:, t]))[-1]).astype(int)
                for t in range(raw.shape[1])
            ]
        )
    codes = {c: i for i, c in enumerate(classes.tolist())}  # type: ignore[union-attr]
    unknown = sorted({v for v in raw.tolist() if v not in codes}, key=str)
    if unknown:
        raise KfwError(f"extra training rows have classes train lacks: {unknown[:5]}")
    return np.array([codes[v] for v in raw.tolist()])


def _file_hash(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


def _encode_target(spec: Competition, raw: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """Classes (None for regression and multi-target) and the target the fold loop fits.

    Classes are encoded 0..K-1 in sorted order; a binary competition's ``positive_class``
    becomes class 1 (the probability a ``proba`` submission holds).
    """
    if spec.task == "regression":
        return None, raw.astype(np.float64)
    if spec.multi_target:
        return None, np.column_stack(
            [np.unique(raw[:, t], return_inverse=True)[1] for t in range(raw.shape[1])]
        )
    classes, y = np.unique(raw, return_inverse=True)
    positive = spec.positive_class
    if spec.task == "binary" and positive is not None:
        if positive not in classes.tolist():
            raise ConfigError(
                f"positive_class {positive!r} is not a class of {spec.target!r} ({classes.tolist()})"
            )
        if classes[0] == positive:
            classes, y = classes[::-1], 1 - y
    return classes, y


def _source_hash(module: ModuleType) -> str:
    """Hash of the feature module's source and of the ``features.*`` helpers it uses (a
    generated ``features.py`` is two lines over ``features.auto``): an edited module, or an
    edited helper, must not resume old folds."""
    import hashlib
    import sys

    path = getattr(module, "__file__", None)
    if not path:
        return "none"
    helpers = {_defined_in(v) for v in vars(module).values()} - {module.__name__, None}
    used = sorted(
        Path(sys.modules[name].__file__)
        for name in helpers
        if name.startswith("features.") and getattr(sys.modules.get(name), "__file__", None)
    )
    files = [Path(path), *used]
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


def _defined_in(value: object) -> str | None:
    """The module a global of a feature module comes from (a module, class, function or instance)."""
    if isinstance(value, ModuleType):
        return value.__name__
    owner = value if isinstance(value, type) or callable(value) else type(value)
    module = getattr(owner, "__module__", None)
    return module if isinstance(module, str) else None
