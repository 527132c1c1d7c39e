"""Ensembles of runs that share a fold file: blend, rank average, hill climbing, level 2.

Every method's reported CV is honest: whatever it fits (blend weights, the hill climber's
picks, a level-2 model) is fitted on the other folds' out-of-fold predictions and applied to
the held-out fold, fold by fold, on the same folds the members were run on. What the same
fit scores on the rows it was fitted on is optimistic; it is returned too, labelled
in-sample. (A second-order optimism remains, as in every stack: the members' out-of-fold
predictions for the other folds came from models that saw the held-out fold.)

- ``blend``: non-negative weights summing to one, fitted on a smooth surrogate of the metric
  (squared error on the model scale for regression, log-loss for classification) so that
  accuracy-like metrics do not make the optimisation flat.
- ``hillclimb``: Caruana et al. (2004) ensemble selection with replacement, starting from the
  best single member and adding, while the metric improves, the member that improves it most.
- ``rank``: the mean of the members' normalised ranks, for metrics that only read the order
  (binary ROC-AUC); nothing is fitted.
- ``level2``: a model (ridge, logistic regression or a shallow LightGBM) trained on the
  members' out-of-fold predictions, cross-validated by kfw's own fold loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from kfw.core.cv import TRANSFORMS, at_threshold, choose_threshold, cross_validate
from kfw.core.folds import Folds
from kfw.core.metrics import Metric, get_metric
from kfw.core.noise import run_se
from kfw.core.registry import make_estimator
from kfw.core.runstore import frame_prediction, identity
from kfw.errors import ConfigError, KfwError
from kfw.pipeline.runs import base_record, iso_time, mirror_run, run_files
from kfw.progress import NULL, Callback

if TYPE_CHECKING:
    from kfw.pipeline.context import Context

_EPS = 1e-15
METHODS = ("blend", "hillclimb", "rank", "level2")
LEVEL2 = {
    "ridge": ("ridge", {"alpha": 1.0, "scaler": "standard"}),
    "logreg": ("logreg", {"C": 1.0}),
    "lgbm": (
        "lgbm",
        {
            "n_estimators": 300,
            "learning_rate": 0.03,
            "num_leaves": 4,
            "min_child_samples": 20,
            "early_stopping_rounds": None,
        },
    ),
}


@dataclass
class StackResult:
    """Honest and in-sample out-of-fold scores, test predictions and what was fitted."""

    method: str
    oof: np.ndarray
    test: np.ndarray | None
    score: float
    fold_scores: list[float]
    score_insample: float | None
    weights: np.ndarray | None = None
    fold_weights: list[np.ndarray] = field(default_factory=list)
    score_without_excluded: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    # (repeat, fold) of each entry of fold_scores
    fits: list[tuple[int, int]] = field(default_factory=list)
    # tuned thresholds (threshold = "tune"): each fit's, chosen on the other folds; the test
    # set's (their median); the honest OOF at 0.5 for comparison
    fold_thresholds: list[float] = field(default_factory=list)
    threshold: float | None = None
    score_at_default: float | None = None


def _combine(preds: np.ndarray, w: np.ndarray) -> np.ndarray:
    # preds: (m, n) or (m, n, K); weights (m,)
    return np.tensordot(w, preds, axes=1)


def _loss(preds: np.ndarray, y: np.ndarray, task: str, w: np.ndarray) -> float:
    p = _combine(preds, w)
    if task == "regression":
        return float(np.mean((p - y) ** 2))
    if task == "binary":
        p = np.clip(p, _EPS, 1 - _EPS)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    p = np.clip(p[np.arange(len(y)), y.astype(int)], _EPS, 1)
    return float(-np.mean(np.log(p)))


def fit_weights(preds: np.ndarray, y: np.ndarray, task: str) -> np.ndarray:
    """Non-negative weights summing to one that minimise the surrogate loss.

    Parameters
    ----------
    preds : ndarray of shape (n_members, n_rows) or (n_members, n_rows, n_classes)
        Members' predictions on the model scale (transformed target, or probabilities).
    """
    from scipy.optimize import minimize

    m = preds.shape[0]
    if m == 1:
        return np.ones(1)
    result = minimize(
        lambda w: _loss(preds, y, task, w),
        x0=np.full(m, 1.0 / m),
        method="SLSQP",
        bounds=[(0.0, 1.0)] * m,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0}],
        options={"ftol": 1e-12, "maxiter": 500},
    )
    w = np.clip(result.x, 0.0, None)
    return w / w.sum()


def hill_climb_weights(
    preds: np.ndarray,
    score: Callable[[np.ndarray], float],
    greater_is_better: bool,
    max_rounds: int = 100,
) -> np.ndarray:
    """Caruana's ensemble selection with replacement; returns each member's share of picks.

    ``score(combined)`` scores a combination of rows on the metric itself. Starts from the
    best single member; each round adds the member whose inclusion scores best, and stops
    when no inclusion improves the score (or after ``max_rounds`` picks).
    """
    sign = 1.0 if greater_is_better else -1.0
    singles = [sign * score(p) for p in preds]
    counts = np.zeros(len(preds))
    best = int(np.argmax(singles))
    counts[best], current, current_score = 1, preds[best].copy(), singles[best]
    for _ in range(max_rounds):
        total = counts.sum()
        trials = [sign * score((current * total + p) / (total + 1)) for p in preds]
        pick = int(np.argmax(trials))
        if trials[pick] <= current_score:
            break
        counts[pick] += 1
        current = (current * total + preds[pick]) / (total + 1)
        current_score = trials[pick]
    return counts / counts.sum()


def _rows(folds: Folds, exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Validated rows (scored) and the rows weights may be fitted on (no declared outliers)."""
    validated = folds.validated()
    fitted = validated & ~exclude if exclude is not None else validated
    return validated, fitted


def _fits(folds: Folds) -> list[tuple[int, int, np.ndarray]]:
    """(repeat, fold, validation mask) of every fit of the fold file."""
    out = []
    for r in range(folds.assignment.shape[1]):
        col = folds.assignment[:, r]
        out += [(r, int(k), col == k) for k in np.unique(col) if k >= 0]
    return out


def _without(
    metric: Metric, y: np.ndarray, oof: np.ndarray, fitted: np.ndarray, exclude: np.ndarray | None
) -> float | None:
    """The score without the declared outliers (None when there are none)."""
    return metric(y[fitted], oof[fitted]) if exclude is not None else None


def _oof_tuned(result: StackResult, y: np.ndarray, metric: Metric) -> dict[str, Any]:
    """The optimistic shortcut beside a tuned ensemble: a threshold chosen on its OOF itself."""
    if result.threshold is None:
        return {}
    rows = ~np.isnan(result.oof)
    t = choose_threshold(metric, y[rows], result.oof[rows])
    return {
        "oof_threshold": t,
        "score_oof_tuned": metric(y[rows], at_threshold(result.oof[rows], t)),
    }


def _early(records: list[dict[str, Any]]) -> str | None:
    """The members' early stopping, the optimistic mode winning (old records said True)."""
    modes = {r.get("early_stopping") for r in records}
    if "scored-fold" in modes or True in modes:
        return "scored-fold"
    return "inner" if "inner" in modes else None


def _weighted(
    oofs: list[np.ndarray],
    tests: list[np.ndarray | None],
    y: np.ndarray,
    folds: Folds,
    metric: Metric,
    task: str,
    target_transform: str,
    exclude: np.ndarray | None,
    method: str,
    threshold: str = "fixed",
) -> StackResult:
    """Methods that fit member weights: fitted on the other folds, applied to the held-out one.

    ``threshold = "tune"`` (a binary label metric): each held-out fold's threshold is chosen,
    like its weights, on the other folds' rows (combined with those weights), and the fold is
    scored at it; a row's label is the majority over repeats, the test set gets the median.
    """
    forward, inverse = TRANSFORMS[target_transform if task == "regression" else "none"]
    preds = np.stack([forward(o) for o in oofs])  # (m, n[, K])
    y_fit = forward(np.asarray(y, float)) if task == "regression" else np.asarray(y)

    def fit(rows: np.ndarray) -> np.ndarray:
        if method == "blend":
            return fit_weights(preds[:, rows], y_fit[rows], task)
        return hill_climb_weights(
            preds[:, rows], lambda p: metric(y[rows], inverse(p)), metric.greater_is_better
        )

    validated, fitted = _rows(folds, exclude)
    # each repeat's folds in turn: weights fitted on the other folds' rows (never on declared
    # outliers), applied to the held-out fold; the repeats' honest predictions are averaged
    tuned = threshold == "tune"
    honest_sum = np.zeros(preds.shape[1:])
    honest_n, votes = np.zeros(preds.shape[1]), np.zeros(preds.shape[1])
    fold_scores, fold_weights, fits, thresholds = [], [], [], []
    for r, k, in_fold in _fits(folds):
        col = folds.assignment[:, r]
        others = np.flatnonzero(fitted & (col != k) & (col >= 0))
        w = fit(others)
        rows = np.flatnonzero(in_fold)  # excluded rows are predicted (and scored) too
        combined = _combine(preds[:, rows], w)
        honest_sum[rows] += combined
        honest_n[rows] += 1
        fold_weights.append(w)
        if tuned:
            t = choose_threshold(metric, y[others], _combine(preds[:, others], w))
            thresholds.append(t)
            votes[rows] += at_threshold(combined, t)
            fold_scores.append(metric(y[rows], at_threshold(combined, t)))
        else:
            fold_scores.append(metric(y[rows], inverse(combined)))
        fits.append((r, k))
    weights = fit(np.flatnonzero(fitted))
    test = None
    if all(t is not None for t in tests):
        test = inverse(_combine(np.stack([forward(t) for t in tests]), weights))
    oof = np.full(preds.shape[1:], np.nan)
    oof[validated] = inverse((honest_sum[validated].T / honest_n[validated]).T)
    insample = np.full(preds.shape[1:], np.nan)
    insample[validated] = inverse(_combine(preds[:, validated], weights))
    decided, tuning = oof, {}
    if tuned:  # the headline scores each row's label, the majority of its repeats' labels
        decided = np.full(len(y), np.nan)
        decided[validated] = (votes[validated] / honest_n[validated] >= 0.5).astype(float)
        tuning = dict(
            fold_thresholds=thresholds,
            threshold=float(np.median(thresholds)),
            score_at_default=metric(y[validated], oof[validated]),
        )
    return StackResult(
        method=method,
        oof=oof,
        test=test,
        score=metric(y[validated], decided[validated]),
        fold_scores=fold_scores,
        score_insample=metric(y[validated], insample[validated]),
        weights=weights,
        fold_weights=fold_weights,
        score_without_excluded=_without(metric, y, decided, fitted, exclude),
        fits=fits,
        **tuning,
    )


def blend(
    oofs, tests, y, folds, metric, task, target_transform="none", exclude=None
) -> StackResult:
    """OOF-optimised weighted blend (see the module docstring); arguments as :func:`stack`."""
    return _weighted(oofs, tests, y, folds, metric, task, target_transform, exclude, "blend")


def _rank(values: np.ndarray) -> np.ndarray:
    ranks = np.empty(len(values))
    ranks[np.argsort(values, kind="stable")] = np.arange(len(values))
    return ranks / max(len(values) - 1, 1)


def rank_average(oofs, tests, y, folds, metric, task, exclude=None) -> StackResult:
    """Mean of normalised ranks; only for binary tasks scored by ROC-AUC (order is all)."""
    if task != "binary" or metric.name != "roc_auc":
        raise ConfigError(
            f"rank averaging needs a metric that reads only the order (binary roc_auc), not {metric.name}"
        )
    validated, fitted = _rows(folds, exclude)
    oof = np.full(len(y), np.nan)
    oof[validated] = np.mean([_rank(o[validated]) for o in oofs], axis=0)
    test = np.mean([_rank(t) for t in tests], axis=0) if all(t is not None for t in tests) else None
    fits = _fits(folds)
    return StackResult(
        "rank",
        oof,
        test,
        metric(y[validated], oof[validated]),
        [metric(y[mask], oof[mask]) for _, _, mask in fits],
        None,
        np.full(len(oofs), 1 / len(oofs)),
        score_without_excluded=_without(metric, y, oof, fitted, exclude),
        fits=[(r, k) for r, k, _ in fits],
    )


def level2(
    oofs, tests, y, folds, metric, task, target_transform="none", exclude=None, model="ridge",
    threshold="fixed",
) -> StackResult:  # fmt: skip
    """A model on the members' predictions, cross-validated by the fold loop on the same folds."""
    import pandas as pd

    if model not in LEVEL2:
        raise ConfigError(f"unknown level-2 model {model!r} (choose from: {', '.join(LEVEL2)})")
    name, params = LEVEL2[model]
    forward, _ = TRANSFORMS[target_transform if task == "regression" else "none"]

    def features(preds: list[np.ndarray]) -> pd.DataFrame:
        cols = {}
        for i, p in enumerate(preds):
            p = forward(p)
            if p.ndim == 2:
                cols.update({f"m{i}_c{j}": p[:, j] for j in range(p.shape[1])})
            else:
                cols[f"m{i}"] = p
        return pd.DataFrame(cols)

    X = features(oofs)
    X_test = features(tests) if all(t is not None for t in tests) else None
    estimator = make_estimator(name, task, params, random_state=0, n_jobs=1)
    cv = cross_validate(
        estimator, X, y, folds, metric=metric, task=task, X_test=X_test,
        target_transform=target_transform, exclude=exclude, label=f"level 2 ({model})",
        threshold=threshold,
    )  # fmt: skip
    return StackResult(
        "level2", cv.oof, cv.test, cv.score, [f.score for f in cv.folds], None,
        score_without_excluded=cv.score_without_excluded, detail={"model": model, "params": params},
        fits=[(f.repeat, f.fold) for f in cv.folds],
        fold_thresholds=[f.threshold for f in cv.folds if f.threshold is not None],
        threshold=cv.threshold, score_at_default=cv.score_at_default,
    )  # fmt: skip


def stack(
    method: str,
    oofs: list[np.ndarray],
    tests: list[np.ndarray | None],
    y: np.ndarray,
    folds: Folds,
    metric: Metric,
    task: str,
    target_transform: str = "none",
    exclude: np.ndarray | None = None,
    level2_model: str = "ridge",
    threshold: str = "fixed",
) -> StackResult:
    """Combine members' out-of-fold (and test) predictions with ``method``.

    Parameters
    ----------
    oofs, tests : lists of ndarray
        Each member's predictions on the target's own scale (as runs store them).
    y : ndarray
        Encoded classes or the regression target (own scale).
    folds : Folds
        The fold file every member was run on; the first repeat defines the held-out folds.
    exclude : bool ndarray, optional
        Declared outliers: nothing is fitted on them, but they are scored (the headline
        covers every row); ``score_without_excluded`` leaves them out.
    threshold : {"fixed", "tune"}
        ``"tune"``: the ensemble's decision threshold is chosen per held-out fold on rows
        that fold's labels never reached (see :func:`_weighted`, and the fold loop for level 2).
    """
    if method in ("blend", "hillclimb"):
        return _weighted(
            oofs, tests, y, folds, metric, task, target_transform, exclude, method, threshold
        )
    if method == "rank":
        return rank_average(oofs, tests, y, folds, metric, task, exclude)
    if method == "level2":
        return level2(
            oofs, tests, y, folds, metric, task, target_transform, exclude, level2_model, threshold
        )
    raise ConfigError(f"unknown ensemble method {method!r} (choose from: {', '.join(METHODS)})")


def stack_targets(
    method: str,
    oofs: list[np.ndarray],
    tests: list[np.ndarray | None],
    Y: np.ndarray,
    *args: Any,
    **kwargs: Any,
) -> StackResult:
    """Several targets: one ensemble per target column, scores averaged over targets."""
    parts = [
        stack(
            method,
            [o[:, t] for o in oofs],
            [None if p is None else p[:, t] for p in tests],
            Y[:, t],
            *args,
            **kwargs,
        )
        for t in range(Y.shape[1])
    ]

    def mean(values: list[Any]) -> float | None:
        return None if any(v is None for v in values) else float(np.mean(values))

    return StackResult(
        method=method,
        oof=np.column_stack([p.oof for p in parts]),
        test=None if parts[0].test is None else np.column_stack([p.test for p in parts]),
        score=float(np.mean([p.score for p in parts])),
        fold_scores=np.mean([p.fold_scores for p in parts], axis=0).tolist(),
        score_insample=mean([p.score_insample for p in parts]),
        score_without_excluded=mean([p.score_without_excluded for p in parts]),
        fits=parts[0].fits,
        detail={
            "per_target": [
                {"weights": None if p.weights is None else p.weights.tolist(), "score": p.score}
                for p in parts
            ]
        },
    )


# ---------------------------------------------------------------------------------------------
# ensembles as runs


def load_members(
    ctx: Context, records: list[dict[str, Any]]
) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """Members' out-of-fold and test predictions, refusing runs that cannot be stacked.

    A member must share this competition's fold hash and data hash, and its out-of-fold
    predictions must cover every validated training row.
    """

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

    spec = ctx.spec
    if len(records) < 2:
        raise KfwError(f"stacking needs at least two runs, got {len(records)}")
    oofs, tests = load_members(ctx, records)
    started = time.time()
    combine = stack_targets if spec.multi_target else stack
    # rank averaging reads only the order: no threshold applies to it
    threshold = spec.threshold if method != "rank" else "fixed"
    extra = {"threshold": threshold} if not spec.multi_target else {}
    result = combine(
        method, oofs, tests, ctx.design.y, ctx.folds, get_metric(spec.metric), spec.task,
        spec.target_transform, exclude=ctx.design.exclude, level2_model=level2_model, **extra,
    )  # fmt: skip
    label = method if method != "level2" else f"level2-{level2_model}"
    record = base_record(ctx, "ensemble", label)
    record["members"] = members = [r["id"] for r in records]
    sizes = {
        (sp.repeat, sp.fold): {"n_train": len(sp.train), "n_valid": len(sp.valid)}
        for sp in ctx.folds.splits()
    }
    weights = result.weights.tolist() if result.weights is not None else None
    record.update(
        id=ctx.store.new_id(label, identity(record)),
        method=method,
        member_labels=[r["label"] for r in records],
        weights=dict(zip(members, weights, strict=True)) if weights is not None else None,
        fold_weights=[w.tolist() for w in result.fold_weights],
        score=result.score,
        score_without_excluded=result.score_without_excluded,
        mean=float(np.mean(result.fold_scores)),
        std=float(np.std(result.fold_scores)),
        fold_scores=[
            {"repeat": r, "fold": k, "score": s, **sizes.get((r, k), {})}
            | ({"threshold": result.fold_thresholds[i]} if result.fold_thresholds else {})
            for i, ((r, k), s) in enumerate(zip(result.fits, result.fold_scores, strict=True))
        ],
        threshold_mode="tune" if result.threshold is not None else "fixed",
        threshold=result.threshold,
        score_at_default_threshold=result.score_at_default,
        **_oof_tuned(result, ctx.design.y, get_metric(spec.metric)),
        score_insample=result.score_insample,
        early_stopping=_early(records),
        optimistic=sorted({why for r in records for why in r.get("optimistic") or []}),
        detail=result.detail,
        seconds=time.time() - started,
        started=iso_time(started),
        finished=iso_time(time.time()),
    )
    record["se"] = run_se(record)
    ctx.store.save(record, run_files(ctx, result.oof, result.test, None, result.threshold))
    record = mirror_run(ctx, record, callback)
    if weights is not None:
        shares = ", ".join(f"{r['label']} {w:.3f}" for r, w in zip(records, weights, strict=True))
        callback.info(f"{label} weights: {shares}")
    return record
