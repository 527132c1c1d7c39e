"""One competition end to end: data -> folds -> features -> models -> runs -> blend.

This is what ``kfw cv`` calls. The row features of the competition's feature module are
computed once on train and test together, without the target (so nothing computed there can
carry it); the fitted features and the model then go through the fold loop of :mod:`kfw.cv`.
Each model becomes a run in the store; the roster's runs are blended into one more run.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from kfw.config import Competition, ModelSpec, to_dict
from kfw.cv import CVResult, cross_validate, cross_validate_targets
from kfw.data import Dataset, data_dir, load_dataset
from kfw.errors import ConfigError, KfwError
from kfw.folds import Folds, get_folds
from kfw.metrics import get_metric
from kfw.progress import NULL, Callback
from kfw.submit import build_submission, check_and_encode
from kfw.track import RunStore, config_key, environment, prediction_frame
from kfw.wandb_mirror import Mirror

if TYPE_CHECKING:
    import pandas as pd


def default_threads() -> int:
    """``KFW_THREADS``, else every core: one model fits at a time, so it may use them all."""
    value = os.environ.get("KFW_THREADS")
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ConfigError(f"KFW_THREADS must be a positive integer, got {value!r}")
        return int(value)
    return max(
        1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )


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


def build_design(spec: Competition, dataset: Dataset) -> Design:
    """Apply the row features to train + test (target removed) and encode the target."""
    import pandas as pd

    module = load_feature_module(spec)
    train = dataset.train.drop(columns=list(spec.targets))
    both = pd.concat([train, dataset.test[train.columns]], ignore_index=True)
    rows = module.row_features(both.copy())
    if not isinstance(rows, pd.DataFrame) or len(rows) != len(both):
        raise KfwError(
            f"{module.__name__}.row_features must return a DataFrame with one row per input row"
        )
    rows = rows.drop(columns=[spec.id], errors="ignore").reset_index(drop=True)
    n = len(train)
    classes, y = _encode_target(spec, dataset.y)
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
        X_test=rows.iloc[n:].reset_index(drop=True),
        y=y,
        classes=classes,
        ids=dataset.train[spec.id].to_numpy(),
        test_ids=dataset.test[spec.id].to_numpy(),
        features=fitted() if callable(fitted) else None,
        train_mask=getattr(module, "train_mask", None),
        exclude=exclude if exclude is not None and exclude.any() else None,
        module=module.__name__,
        module_hash=_source_hash(module),
    )


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
    """Hash of the feature module's source: an edited module must not resume old folds."""
    import hashlib

    path = getattr(module, "__file__", None)
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12] if path else "none"


@dataclass
class Context:
    """Everything the runs of one competition share."""

    spec: Competition
    home: Path
    dataset: Dataset
    folds: Folds
    design: Design
    store: RunStore
    mirror: Mirror | None = None  # W&B, called after each run is saved


def prepare(
    spec: Competition,
    kfw_home: Path,
    callback: Callback = NULL,
    force_folds: bool = False,
    wandb: bool = True,
) -> Context:
    """Load the data (the open copy when none is present), the folds and the design.

    ``wandb=False`` (``--no-wandb``) keeps the runs out of W&B (see :mod:`kfw.wandb_mirror`).
    """
    dataset = load_dataset(spec, kfw_home, callback)
    folds, created = get_folds(
        data_dir(kfw_home, spec.slug),
        spec.folds,
        dataset.train,
        spec.id,
        dataset.y[:, 0]
        if spec.multi_target
        else dataset.y,  # several targets: the first stratifies
        spec.task,
        force=force_folds,
    )
    state = "computed and saved" if created else "read"
    callback.info(f"folds: {spec.folds.name} ({folds.n_fits} fits, hash {folds.hash}), {state}")
    return Context(
        spec, kfw_home, dataset, folds, build_design(spec, dataset), RunStore(kfw_home, spec.slug),
        Mirror(kfw_home, enabled=wandb),
    )  # fmt: skip


def _base_record(ctx: Context, kind: str, label: str) -> dict[str, Any]:
    spec = ctx.spec
    metric = get_metric(spec.metric)
    return {
        "competition": spec.slug,
        "kind": kind,
        "label": label,
        "task": spec.task,
        "metric": metric.name,
        "greater_is_better": metric.greater_is_better,
        "folds": {"name": spec.folds.name, "hash": ctx.folds.hash, "scheme": asdict(spec.folds)},
        "data": {"hash": ctx.dataset.hash, "source": ctx.dataset.source},
        "features": {"module": ctx.design.module, "source_hash": ctx.design.module_hash},
        "excluded_ids": ctx.design.ids[ctx.design.exclude].tolist()
        if ctx.design.exclude is not None
        else [],
        "target_transform": spec.target_transform,
        "classes": ctx.design.classes.tolist() if ctx.design.classes is not None else None,
        "command": " ".join(["kfw", *sys.argv[1:]])
        if sys.argv and sys.argv[0].endswith("kfw")
        else None,
        "environment": environment(),
    }


def _files(
    ctx: Context, oof: np.ndarray, test: np.ndarray | None, importances: Any
) -> dict[str, Any]:
    spec, d = ctx.spec, ctx.design
    names = list(spec.targets) if spec.multi_target else d.classes
    oof_frame = prediction_frame(d.ids, spec.id, oof, names)
    truth = {"target": ctx.dataset.y} if not spec.multi_target else {
        f"target_{t}": ctx.dataset.y[:, j] for j, t in enumerate(spec.targets)
    }  # fmt: skip
    for j, (name, values) in enumerate(truth.items()):
        oof_frame.insert(1 + j, name, values)
    for r in range(ctx.folds.assignment.shape[1]):
        oof_frame.insert(1 + len(truth) + r, f"fold_{r}", ctx.folds.assignment[:, r])
    files: dict[str, Any] = {"oof.parquet": oof_frame, "importance.csv": importances}
    if test is not None:
        files["test.parquet"] = prediction_frame(d.test_ids, spec.id, test, names)
        sub = build_submission(spec, d.test_ids, test, d.classes, ctx.dataset.sample)
        files["submission.csv"] = check_and_encode(spec, sub, ctx.dataset.sample, d.classes)
    return files


def run_model(
    ctx: Context,
    model: ModelSpec,
    *,
    seed: int | None = None,
    threads: int | None = None,
    callback: Callback = NULL,
) -> dict[str, Any]:
    """Cross-validate one roster member and save it as a run; returns its record."""
    from kfw.registry import make_estimator

    spec = ctx.spec
    seed = spec.seed if seed is None else seed
    threads = threads or default_threads()
    estimator = make_estimator(
        model.name, spec.task, model.params, random_state=seed, n_jobs=threads
    )
    record = _base_record(ctx, "model", model.label)
    record.update(model=model.name, params=_params(estimator), seed=seed, threads=threads)
    key = config_key(
        {
            k: record[k]
            for k in ("label", "model", "params", "seed", "threads", "folds", "data", "features")
        }
    )
    started = time.time()
    common = dict(
        metric=get_metric(spec.metric), task=spec.task, X_test=ctx.design.X_test,
        features=ctx.design.features, target_transform=spec.target_transform,
        train_mask=ctx.design.train_mask, callback=callback, label=model.label,
        exclude=ctx.design.exclude,
    )  # fmt: skip
    if spec.multi_target:
        partials = [ctx.store.partial(f"{key}-t{t}") for t in range(len(spec.targets))]
        cv = cross_validate_targets(
            estimator, ctx.design.X, ctx.design.y, ctx.folds, stores=partials, **common
        )
    else:
        partials = [ctx.store.partial(key)]
        cv = cross_validate(
            estimator, ctx.design.X, ctx.design.y, ctx.folds, store=partials[0], **common
        )
    record["id"] = ctx.store.new_id(model.label, key)
    record.update(_scores(cv), started=_iso(started), finished=_iso(time.time()))
    importances = (
        cv.importances.assign(mean=cv.importances.mean(axis=1))
        if cv.importances is not None
        else None
    )
    ctx.store.save(record, _files(ctx, cv.oof, cv.test, importances))
    for partial in partials:
        partial.clear()
    return _mirror(ctx, record, callback)


def _params(estimator: Any) -> dict[str, Any]:
    """JSON-ready parameters; a wrapped estimator shows as its class and ``estimator__`` keys."""
    deep = any(hasattr(v, "get_params") for v in estimator.get_params(deep=False).values())
    params = estimator.get_params(deep=deep)
    return {k: type(v).__name__ if hasattr(v, "get_params") else v for k, v in params.items()}


def _mirror(ctx: Context, record: dict[str, Any], callback: Callback) -> dict[str, Any]:
    """Mirror a saved run to W&B; the record comes back with where it went (never raises)."""
    if ctx.mirror is None:
        return record
    return ctx.mirror(record, ctx.store.root / record["id"], callback)


def _scores(cv: CVResult) -> dict[str, Any]:
    return {
        "score": cv.score,
        "score_all": cv.score_all,
        "mean": cv.mean,
        "std": cv.std,
        "fold_scores": [asdict(f) for f in cv.folds],
        "early_stopping": cv.early_stopping,
        "best_iterations": [f.best_iteration for f in cv.folds if f.best_iteration is not None],
        "seconds": cv.seconds,
        "resumed_folds": sum(f.restored for f in cv.folds),
    }


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t))


def load_members(
    ctx: Context, records: list[dict[str, Any]]
) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """Members' out-of-fold and test predictions, refusing runs that cannot be stacked.

    A member must share this competition's fold hash and data hash, and its out-of-fold
    predictions must cover every validated training row.
    """
    from kfw.track import frame_prediction

    spec, d = ctx.spec, ctx.design
    oofs, tests = [], []
    for r in records:
        if r["folds"]["hash"] != ctx.folds.hash:
            raise KfwError(
                f"run {r['id']} used other folds ({r['folds']['name']}, {r['folds']['hash']}) than "
                f"{spec.folds.name} ({ctx.folds.hash}): rerun it before stacking"
            )
        if r["data"]["hash"] != ctx.dataset.hash:
            raise KfwError(
                f"run {r['id']} was fitted on other data (hash {r['data']['hash']}): rerun it"
            )
        frame = ctx.store.frame(r["id"], "oof.parquet")
        oof = frame_prediction(frame)
        validated = ctx.folds.validated()
        if len(frame) != len(d.ids) or not np.array_equal(frame[spec.id].to_numpy(), d.ids):
            raise KfwError(f"run {r['id']}: its out-of-fold file does not cover the training rows")
        if np.isnan(oof[validated]).any():
            raise KfwError(
                f"run {r['id']}: out-of-fold predictions are incomplete (missing values)"
            )
        oofs.append(oof)
        path = ctx.store.root / r["id"] / "test.parquet"
        tests.append(
            frame_prediction(ctx.store.frame(r["id"], "test.parquet")) if path.is_file() else None
        )
    return oofs, tests


def run_stack(
    ctx: Context,
    records: list[dict[str, Any]],
    method: str = "blend",
    level2_model: str = "ridge",
    callback: Callback = NULL,
) -> dict[str, Any]:
    """Combine runs of this competition (same folds, same data) into a new run."""
    from kfw.stack import stack, stack_targets

    spec = ctx.spec
    if len(records) < 2:
        raise KfwError(f"stacking needs at least two runs, got {len(records)}")
    oofs, tests = load_members(ctx, records)
    started = time.time()
    combine = stack_targets if spec.multi_target else stack
    result = combine(
        method, oofs, tests, ctx.design.y, ctx.folds, get_metric(spec.metric), spec.task,
        spec.target_transform, exclude=ctx.design.exclude, level2_model=level2_model,
    )  # fmt: skip
    label = method if method != "level2" else f"level2-{level2_model}"
    record = _base_record(ctx, "ensemble", label)
    members = [r["id"] for r in records]
    weights = result.weights.tolist() if result.weights is not None else None
    record.update(
        id=ctx.store.new_id(label, config_key({"members": members, "method": label})),
        method=method,
        members=members,
        member_labels=[r["label"] for r in records],
        weights=dict(zip(members, weights, strict=True)) if weights is not None else None,
        fold_weights=[w.tolist() for w in result.fold_weights],
        score=result.score,
        score_all=result.score_all,
        mean=float(np.mean(result.fold_scores)),
        std=float(np.std(result.fold_scores)),
        fold_scores=[
            {"repeat": 0, "fold": k, "score": s} for k, s in enumerate(result.fold_scores)
        ],
        score_insample=result.score_insample,
        early_stopping=any(r.get("early_stopping") for r in records),
        detail=result.detail,
        seconds=time.time() - started,
        started=_iso(started),
        finished=_iso(time.time()),
    )
    ctx.store.save(record, _files(ctx, result.oof, result.test, None))
    record = _mirror(ctx, record, callback)
    if weights is not None:
        shares = ", ".join(f"{r['label']} {w:.3f}" for r, w in zip(records, weights, strict=True))
        callback.info(f"{label} weights: {shares}")
    return record


def run_competition(
    ctx: Context,
    labels: list[str] | None = None,
    *,
    seed: int | None = None,
    threads: int | None = None,
    overrides: dict[str, Any] | None = None,
    blend_runs: bool = True,
    tuned: bool = False,
    callback: Callback = NULL,
) -> list[dict[str, Any]]:
    """Run the roster (or the named models) and, for several, the competition's ensemble.

    ``tuned`` runs each model with the best parameters ``kfw tune`` saved for it, labelled
    ``<label>-tuned``.
    """
    from kfw.registry import make_estimator

    members = [ctx.spec.model(label) for label in labels] if labels else list(ctx.spec.models)
    if tuned:
        from kfw.tune import load_tuned

        members = [
            ModelSpec(m.name, load_tuned(ctx.home, ctx.spec.slug, m.label), f"{m.label}-tuned")
            for m in members
        ]
    if overrides:
        if len(members) != 1:
            raise ConfigError("--param applies to one model: name it with --model")
        members = [ModelSpec(members[0].name, {**members[0].params, **overrides}, members[0].alias)]
    for m in members:  # an unknown model or parameter fails before any run is written
        make_estimator(m.name, ctx.spec.task, m.params)
    records = [run_model(ctx, m, seed=seed, threads=threads, callback=callback) for m in members]
    ensemble = ctx.spec.ensemble
    if blend_runs and len(records) > 1 and ensemble.method != "best":
        records.append(run_stack(ctx, records, ensemble.method, ensemble.level2, callback=callback))
    return records


def resolved_config(spec: Competition) -> dict[str, Any]:
    """The competition spec as written into runs and shown by ``kfw show``."""
    return to_dict(spec)


def audit_competition(
    ctx: Context,
    labels: list[str] | None = None,
    *,
    n_permutations: int = 2,
    seed: int | None = None,
    threads: int | None = None,
    tolerance: float | None = None,
    callback: Callback = NULL,
) -> list[Any]:
    """Permuted-target audit of each roster member's whole fold pipeline (fitted features too)."""
    from kfw.audit import TOLERANCE, permutation_audit
    from kfw.registry import make_estimator

    spec, d = ctx.spec, ctx.design
    seed = spec.seed if seed is None else seed
    metric = get_metric(spec.metric)
    members = [spec.model(label) for label in labels] if labels else list(spec.models)
    results = []
    for m in members:
        estimator = make_estimator(
            m.name, spec.task, m.params, random_state=seed, n_jobs=threads or default_threads()
        )

        def run(y_perm: np.ndarray, estimator: Any = estimator, label: str = m.label) -> np.ndarray:
            cv = cross_validate(
                estimator,
                d.X,
                y_perm,
                ctx.folds,
                metric=metric,
                task=spec.task,
                features=d.features,
                target_transform=spec.target_transform,
                train_mask=d.train_mask,
                callback=callback,
                label=f"{label} (permuted)",
                exclude=d.exclude,
            )
            return cv.oof

        results.append(
            permutation_audit(
                run,
                d.y,
                ctx.folds,
                metric,
                spec.task,
                target_transform=spec.target_transform,
                n_permutations=n_permutations,
                seed=seed,
                tolerance=tolerance or TOLERANCE,
                label=m.label,
                exclude=d.exclude,
            )
        )
    return results
