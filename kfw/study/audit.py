"""The leakage audit: rerun a pipeline on a target permuted within folds.

A permuted target carries no signal, so an honest pipeline scores at chance on it: the score
of a model that learned nothing (each fold predicts its training part's mean or class prior).
A pipeline that beats chance on noise is fitting something computed across the fold boundary:
a target statistic over all rows, a fold file that does not match, state that survives from
one fold to the next.

Skill is the fraction of the distance from chance to a perfect score that the pipeline covers:
``(score - chance) / (perfect - chance)``, sign-adjusted for losses. It is near zero (usually
slightly negative: noise costs a little) for an honest pipeline; the audit flags a skill above
``tolerance`` (default 0.05, i.e. 5% of the way from chance to perfect).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from kfw.core.cv import TRANSFORMS, cross_validate
from kfw.core.folds import Folds
from kfw.core.metrics import Metric, get_metric
from kfw.core.registry import make_estimator
from kfw.pipeline.context import Context
from kfw.progress import NULL, Callback
from kfw.threads import default_threads

TOLERANCE = 0.05

# the best score each metric can reach (the losses reach 0)
_PERFECT = {"accuracy": 1.0, "f1": 1.0, "roc_auc": 1.0, "r2": 1.0, "qwk": 1.0}


def perfect_score(metric: Metric) -> float:
    if metric.name.startswith("map@"):
        return 1.0
    return _PERFECT.get(metric.name, 0.0)


def permute_within_folds(y: np.ndarray, folds: Folds, rng: np.random.Generator) -> np.ndarray:
    """Shuffle the target among rows of the same fold (first repeat): fold balance survives."""
    out = np.array(y, copy=True)
    fold_of = folds.assignment[:, 0]
    for k in np.unique(fold_of):
        rows = np.flatnonzero(fold_of == k)
        out[rows] = y[rng.permutation(rows)]
    return out


def chance_score(
    metric: Metric,
    task: str,
    y: np.ndarray,
    folds: Folds,
    target_transform: str = "none",
    exclude: np.ndarray | None = None,
) -> float:
    """Score of the learn-nothing model: each fold predicts its training part's mean / prior."""
    forward, inverse = TRANSFORMS[target_transform if task == "regression" else "none"]
    n_classes = int(np.max(y)) + 1 if task != "regression" else 0
    oof = np.zeros((len(y), n_classes)) if task == "multiclass" else np.zeros(len(y))
    keep = ~exclude if exclude is not None else np.ones(len(y), dtype=bool)
    for split in folds.splits():
        if split.repeat:
            break
        train = y[split.train[keep[split.train]]]
        if task == "regression":
            oof[split.valid] = inverse(np.mean(forward(train.astype(float))))
        elif task == "binary":
            oof[split.valid] = np.mean(train)
        else:
            oof[split.valid] = np.bincount(train.astype(int), minlength=n_classes) / len(train)
    rows = folds.validated() & keep
    return metric(y[rows], oof[rows])


def skill(metric: Metric, score: float, chance: float) -> float:
    """Fraction of the way from chance to a perfect score (negative: worse than chance)."""
    perfect = perfect_score(metric)
    if perfect == chance:
        return 0.0
    return (score - chance) / (perfect - chance)


@dataclass
class AuditResult:
    """Scores on permuted targets beside the chance level, and the verdict."""

    label: str
    metric: str
    scores: list[float]
    chances: list[float]
    skills: list[float]
    tolerance: float

    @property
    def score(self) -> float:
        return float(np.mean(self.scores))

    @property
    def chance(self) -> float:
        return float(np.mean(self.chances))

    @property
    def skill(self) -> float:
        return float(np.mean(self.skills))

    @property
    def leak(self) -> bool:
        return self.skill > self.tolerance


def permutation_audit(
    run: Callable[[np.ndarray], np.ndarray],
    y: np.ndarray,
    folds: Folds,
    metric: Metric,
    task: str,
    *,
    target_transform: str = "none",
    n_permutations: int = 2,
    seed: int = 0,
    tolerance: float = TOLERANCE,
    label: str = "pipeline",
    exclude: np.ndarray | None = None,
) -> AuditResult:
    """Audit a pipeline: ``run(y_permuted) -> out-of-fold predictions`` must score at chance.

    ``run`` is the whole pipeline as a function of the target: everything in it that uses the
    target must receive the permuted one, which is the point.
    """
    rng = np.random.default_rng(seed)
    rows = folds.validated() & (~exclude if exclude is not None else True)
    scores, chances, skills = [], [], []
    for _ in range(n_permutations):
        y_perm = permute_within_folds(y, folds, rng)
        oof = run(y_perm)
        score = metric(y_perm[rows], oof[rows])
        chance = chance_score(metric, task, y_perm, folds, target_transform, exclude)
        scores.append(score)
        chances.append(chance)
        skills.append(skill(metric, score, chance))
    return AuditResult(label, metric.name, scores, chances, skills, tolerance)


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

    spec, d = ctx.spec, ctx.design
    seed = spec.seed if seed is None else seed
    metric = get_metric(spec.metric)
    members = [spec.model(label) for label in labels] if labels else list(spec.models)
    targets = list(spec.targets)
    results = []
    for m in members:
        estimator = make_estimator(
            m.name, spec.task, m.params, random_state=seed, n_jobs=threads or default_threads()
        )
        for t, target in enumerate(targets):  # several targets: each audited on its own
            y = d.y[:, t] if spec.multi_target else d.y
            extra = (
                None
                if d.extra is None
                else (d.extra[0], d.extra[1][:, t] if spec.multi_target else d.extra[1])
            )
            label = m.label if not spec.multi_target else f"{m.label} [{target}]"

            def run(
                y_perm: np.ndarray,
                estimator: Any = estimator,
                label: str = label,
                extra: Any = extra,
            ) -> np.ndarray:
                args = ctx.loop_args(callback, f"{label} (permuted)")
                cv = cross_validate(estimator, d.X, y_perm, ctx.folds, **{**args, "extra": extra})
                return cv.oof

            results.append(
                permutation_audit(
                    run,
                    y,
                    ctx.folds,
                    metric,
                    spec.task,
                    target_transform=spec.target_transform,
                    n_permutations=n_permutations,
                    seed=seed,
                    tolerance=tolerance or TOLERANCE,
                    label=label,
                    exclude=d.exclude,
                )
            )
    return results
