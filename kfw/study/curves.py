"""Learning and validation curves: is a model short of data, of capacity, or of neither?

``kfw curves COMP --model M --sizes 0.1,0.2,0.4,0.7,1.0`` fits the model on a growing share of
each persisted fold's training part and scores it on the fold's whole validation part, which
never changes; ``--param name=v1,v2,...`` instead varies one parameter on the full training
parts (a validation curve). Each point is the mean and standard deviation over the folds of
the training score (on the rows the fold fitted) and of the validation score.

The subsample of a fold is drawn from its training part, per class for classification:
the rows of each class are shuffled once, seeded by (seed, repeat, fold), and a size keeps
the first ``round(size * n_class)`` of them. A smaller size therefore keeps a subset of the
rows of a larger one (the curve measures data, not a new draw), and the same command gives
the same numbers. The fits go through :func:`kfw.core.cv.cross_validate` on a
:class:`SubsampledFolds`, so fitted features, excluded rows, training-part filters and early
stopping (on an inner split of the subsample) behave as in ``kfw cv`` (extra training rows,
``kfw cv --extra-train``, are not used here). The training score is read from the same fits:
the loop predicts every training row as its "test set", and each fit is scored on the rows it
was fitted on.

The verdict reads the numbers by the rule stated in :mod:`kfw.study.bias_variance`.
"""

from __future__ import annotations

import csv
import io
import math
import shlex
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kfw import files
from kfw.core.config import Competition, ModelSpec, parse_override
from kfw.core.cv import (
    TRANSFORMS,
    FoldStore,
    check_inner_splits,
    cross_validate,
    stops_early,
    training_rows,
)
from kfw.core.folds import Folds, Split
from kfw.core.metrics import get_metric
from kfw.core.registry import make_estimator
from kfw.ensemble.roster import resolve_members
from kfw.errors import ConfigError
from kfw.pipeline.context import Context
from kfw.progress import NULL, Callback
from kfw.study.audit import chance_score, perfect_score
from kfw.study.bias_variance import GAP_FLOOR, GAP_SIGMAS, GOOD, Point, Scale, reading, verdict
from kfw.threads import default_threads

SIZES = (0.1, 0.2, 0.4, 0.7, 1.0)


# ---------------------------------------------------------------------------------------------
# the arguments, checked before any data is read


def parse_sizes(text: str) -> list[float]:
    """``"0.1,0.4,1"`` -> ``[0.1, 0.4, 1.0]``: at least two distinct fractions in (0, 1]."""
    sizes = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise ConfigError(
                f"--sizes takes fractions in (0, 1] separated by commas (0.1,0.5,1), got {text!r}"
            ) from None
        if not 0 < value <= 1:  # NaN lands here too
            raise ConfigError(f"--sizes: {part.strip()} is not a fraction in (0, 1]")
        sizes.append(value)
    if len(set(sizes)) != len(sizes):
        raise ConfigError(f"--sizes repeats a size: {text}")
    if len(sizes) < 2:
        raise ConfigError(f"a learning curve needs at least two sizes, got {text!r}")
    return sorted(sizes)


def parse_values(text: str) -> tuple[str, list[Any]]:
    """``"max_depth=2,4,8"`` -> ``("max_depth", [2, 4, 8])``; values read as TOML.

    The values are first read as one TOML array (``name=["a", "b"]`` or ``name=2,4``); if that
    fails, each comma-separated value is read on its own, a bare word as a string.
    """
    name, raw = parse_override(text)
    if isinstance(raw, list):
        values = raw
    else:
        body = text.split("=", 1)[1].strip()
        try:
            values = tomllib.loads(f"v = [{body}]")["v"]
        except tomllib.TOMLDecodeError:
            values = [parse_override(f"{name}={v}")[1] for v in body.split(",")]
    if len(values) < 2:
        raise ConfigError(f"--param {name} needs at least two values (name=v1,v2,...)")
    if len({repr(v) for v in values}) != len(values):
        raise ConfigError(f"--param {name} repeats a value: {text.split('=', 1)[1].strip()}")
    return name, values


@dataclass(frozen=True)
class Plan:
    """A checked curve: the model (overrides applied) and what varies."""

    model: str  # as given: a roster label or a model name
    member: ModelSpec
    sizes: list[float] | None = None  # a learning curve
    param: str | None = None  # a validation curve of this parameter ...
    values: list[Any] = field(default_factory=list)  # ... over these values
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "validation" if self.param else "learning"


def plan(
    spec: Competition,
    model: str,
    *,
    sizes: str | None = None,
    param: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> Plan:
    """Check every argument of ``kfw curves`` without reading data.

    Raises
    ------
    ConfigError
        Unparsable sizes or values, a size outside (0, 1], both curves at once, an unknown
        model or parameter, a value of the wrong type, a competition with several targets.
    """
    if spec.multi_target:
        raise ConfigError(f"kfw curves draws one target; {spec.slug} has {len(spec.targets)}")
    if sizes is not None and param is not None:
        raise ConfigError("one curve at a time: --sizes (learning curve) or --param (validation)")
    overrides = dict(overrides or {})
    if param is None:
        (member,), _ = resolve_members(spec, [model], overrides=overrides)
        chosen = parse_sizes(sizes) if sizes is not None else list(SIZES)
        return Plan(model, member, sizes=chosen, overrides=overrides)
    name, values = parse_values(param)
    if name in overrides:
        raise ConfigError(f"--param {name} is varied; do not also --set it")
    for value in values:  # an unknown parameter or a value of the wrong type fails here
        resolve_members(spec, [model], overrides={**overrides, name: value})
    (member,), _ = resolve_members(spec, [model], overrides=overrides)
    return Plan(model, member, param=name, values=values, overrides=overrides)


# ---------------------------------------------------------------------------------------------
# the subsampled folds


def subsample(
    train: np.ndarray, fraction: float, seed: int, split: Split, strata: np.ndarray | None
) -> np.ndarray:
    """The first ``round(fraction * n)`` rows of each stratum of ``train``, shuffled once.

    The shuffle depends on (seed, repeat, fold) only, so a smaller fraction keeps a subset of
    the rows of a larger one.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, split.repeat, split.fold]))
    groups = (
        [train] if strata is None else [train[strata[train] == c] for c in np.unique(strata[train])]
    )
    kept = [rng.permutation(rows)[: math.floor(fraction * len(rows) + 0.5)] for rows in groups]
    return np.sort(np.concatenate(kept))


@dataclass(frozen=True)
class SubsampledFolds(Folds):
    """A fold file whose training parts keep ``fraction`` of their rows; validation parts whole.

    ``strata`` (the class of each row, for classification) is kept in proportion.
    """

    fraction: float = 1.0
    seed: int = 0
    strata: np.ndarray | None = None

    def splits(self) -> Iterator[Split]:
        for split in super().splits():
            train = subsample(split.train, self.fraction, self.seed, split, self.strata)
            yield Split(split.repeat, split.fold, train, split.valid)


def subsampled(folds: Folds, fraction: float, seed: int, strata: np.ndarray | None) -> Folds:
    """``folds`` with each training part subsampled to ``fraction`` (itself at 1.0)."""
    if fraction == 1.0:
        return folds
    return SubsampledFolds(
        folds.scheme, folds.ids, folds.assignment, folds.order, f"{folds.hash}-sub{fraction:g}",
        folds.path, folds.groups, fraction=fraction, seed=seed, strata=strata,
    )  # fmt: skip


class _TrainingPredictions(FoldStore):
    """Keeps each fit's predictions of every training row (passed as the loop's test set)."""

    def __init__(self) -> None:
        self.pred: dict[tuple[int, int], np.ndarray] = {}

    def save(
        self, result: Any, valid_pred: np.ndarray, test_pred: np.ndarray | None, importance: Any
    ) -> None:
        assert test_pred is not None
        self.pred[(result.repeat, result.fold)] = test_pred


# ---------------------------------------------------------------------------------------------
# drawing


@dataclass
class Curves:
    """A finished curve: its points, verdict, the folder written and its JSON."""

    points: list[Point]
    verdict: str
    folder: Path
    data: dict[str, Any]


def _strata(ctx: Context) -> np.ndarray | None:
    return None if ctx.spec.task == "regression" else np.asarray(ctx.design.y)


def check_sizes(ctx: Context, sizes: list[float], estimator: Any, seed: int) -> None:
    """Refuse a size that leaves a class out of some fold's subsample (or too few rows).

    Called after the data is read and before any fit or file: the class check needs the
    target, and so does the inner early-stopping split of a model that stops early.
    """
    d, task = ctx.design, ctx.spec.task
    y = np.asarray(d.y)
    for size in sizes:
        folds = subsampled(ctx.folds, size, seed, _strata(ctx))
        for full, split in zip(ctx.folds.splits(), folds.splits(), strict=True):
            rows = training_rows(split, d.X, y, d.exclude, d.train_mask)
            where = f"fold {split.fold}" + (f" of repeat {split.repeat}" if split.repeat else "")
            if task != "regression":
                missing = np.setdiff1d(np.unique(y[full.train]), np.unique(y[rows]))
                if len(missing):
                    raise ConfigError(
                        f"--sizes {size:g} leaves class {int(missing[0])} out of {where}'s "
                        f"training subsample ({len(rows)} rows); use a larger size"
                    )
            elif len(rows) == 0:
                raise ConfigError(f"--sizes {size:g} leaves {where} no training row")
        if stops_early(estimator):
            check_inner_splits(
                folds, d.X, y, task, ctx.spec.early_stopping, d.exclude, d.train_mask
            )


def check(ctx: Context, chosen: Plan, seed: int | None = None) -> None:
    """The checks of :func:`draw` that need the data, alone: cheap, no fit, no file."""
    if chosen.sizes is not None:
        seed = ctx.spec.seed if seed is None else seed
        estimator = make_estimator(chosen.member.name, ctx.spec.task, chosen.member.params)
        check_sizes(ctx, chosen.sizes, estimator, seed)


def point(
    ctx: Context,
    estimator: Any,
    folds: Folds,
    x: Any,
    label: str,
    callback: Callback,
) -> Point:
    """Fit ``estimator`` through the fold loop on ``folds``; score training and validation."""
    d, spec = ctx.design, ctx.spec
    metric = get_metric(spec.metric)
    keep = _TrainingPredictions()
    cv = cross_validate(estimator, d.X, d.y, folds, X_test=d.X, store=keep, **ctx.loop_args(callback, label))  # fmt: skip
    y = np.asarray(d.y)
    train, valid, sizes = [], [], []
    for split, fold in zip(folds.splits(), cv.folds, strict=True):
        rows = training_rows(split, d.X, _fit_target(y, spec), d.exclude, d.train_mask)
        train.append(metric(y[rows], keep.pred[(split.repeat, split.fold)][rows]))
        valid.append(fold.score)
        sizes.append(len(rows))
    return Point(x, float(np.mean(sizes)), train, valid)


def _fit_target(y: np.ndarray, spec: Competition) -> np.ndarray:
    """The target as the loop's training-part filter sees it (regression: transformed)."""
    if spec.task != "regression":
        return y
    return TRANSFORMS[spec.target_transform][0](y.astype(np.float64))


def draw(
    ctx: Context,
    chosen: Plan,
    *,
    seed: int | None = None,
    threads: int | None = None,
    callback: Callback = NULL,
) -> Curves:
    """Draw the curve ``chosen`` (from :func:`plan`) and write its folder.

    Parameters
    ----------
    ctx : kfw.pipeline.context.Context
        The competition, as :func:`kfw.pipeline.context.prepare` returns it.
    chosen : Plan
        The checked arguments.
    seed : int, optional
        Seeds the model and the subsamples (default: the competition's seed).

    Returns
    -------
    Curves
        Its points and verdict; written to ``KFW_HOME/reports/<slug>/curves/<time>-<label>/``
        (``curves.json``, ``curves.csv``, ``curves.png``).

    Raises
    ------
    ConfigError
        A size that leaves a class out of some fold's subsample (before any fit).
    """
    spec = ctx.spec
    seed = spec.seed if seed is None else seed
    threads = threads or default_threads()
    member = chosen.member

    def build(params: dict[str, Any]) -> Any:
        return make_estimator(member.name, spec.task, params, random_state=seed, n_jobs=threads)

    metric = get_metric(spec.metric)
    points: list[Point] = []
    if chosen.sizes is not None:
        estimator = build(member.params)
        check_sizes(ctx, chosen.sizes, estimator, seed)
        for i, size in enumerate(chosen.sizes, 1):
            callback.info(f"learning curve {i}/{len(chosen.sizes)}: size {size:g}")
            folds = subsampled(ctx.folds, size, seed, _strata(ctx))
            points.append(point(ctx, estimator, folds, size, f"{member.label} @ {size:g}", callback))  # fmt: skip
    else:
        for i, value in enumerate(chosen.values, 1):
            callback.info(f"validation curve {i}/{len(chosen.values)}: {chosen.param}={value!r}")
            estimator = build({**member.params, chosen.param: value})
            label = f"{member.label} {chosen.param}={value!r}"
            points.append(point(ctx, estimator, ctx.folds, value, label, callback))
    y = np.asarray(ctx.design.y)
    chance = chance_score(metric, spec.task, y, ctx.folds, spec.target_transform, ctx.design.exclude)  # fmt: skip
    scale = Scale(metric, chance, perfect_score(metric))
    for p in points:
        p.reading = reading(p, scale)
    said = verdict(points, scale, chosen.param)
    data = {
        "kind": chosen.kind,
        "competition": spec.slug,
        "model": member.name,
        "label": member.label,
        "params": member.params,
        "metric": metric.name,
        "greater_is_better": metric.greater_is_better,
        "chance": chance,
        "perfect": scale.perfect,
        "seed": seed,
        "folds": {"name": spec.folds.name, "hash": ctx.folds.hash, "fits": ctx.folds.n_fits},
        "param": chosen.param,
        "rule": {"gap_sigmas": GAP_SIGMAS, "gap_floor": GAP_FLOOR, "good": GOOD},
        "command": command(spec.slug, chosen),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "points": [
            {
                "x": p.x,
                "n_train": p.n_train,
                "train_mean": p.train_mean,
                "train_std": p.train_std,
                "valid_mean": p.valid_mean,
                "valid_std": p.valid_std,
                "reading": p.reading,
                "train": p.train,
                "valid": p.valid,
            }
            for p in points
        ],
        "verdict": said,
    }
    stamp = time.strftime("%Y%m%d-%H%M%S")
    root = ctx.home / "reports" / spec.slug / "curves"
    folder, n = root / f"{stamp}-{member.label}", 1
    while folder.exists():  # two curves in one second: keep both
        n += 1
        folder = root / f"{stamp}-{member.label}-{n}"
    write(folder, data)
    return Curves(points, said, folder, data)


def command(slug: str, chosen: Plan) -> str:
    """The ``kfw curves`` command line that draws this curve again."""
    parts = ["kfw", "curves", slug, "--model", chosen.model]
    if chosen.sizes is not None:
        parts += ["--sizes", ",".join(f"{s:g}" for s in chosen.sizes)]
    else:
        values = ",".join(files.dumps(v, indent=None).strip() for v in chosen.values)
        parts += ["--param", f"{chosen.param}={values}"]
    for key, value in chosen.overrides.items():
        parts += ["--set", f"{key}={files.dumps(value, indent=None).strip()}"]
    return " ".join(shlex.quote(p) for p in parts)


# ---------------------------------------------------------------------------------------------
# the files


COLUMNS = ("n_train", "train_mean", "train_std", "valid_mean", "valid_std", "reading")


def table_csv(data: dict[str, Any]) -> str:
    """``curves.csv``: one row per size (or value)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([data["param"] or "size", *COLUMNS])
    for p in data["points"]:
        writer.writerow([p["x"], *(p[c] for c in COLUMNS)])
    return out.getvalue()


def _chart(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = data["points"]
    learning = data["kind"] == "learning"
    x = np.array([p["n_train"] for p in pts]) if learning else np.arange(len(pts))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, colour, name in (("train", "#d9822b", "training"), ("valid", "#3d7ab8", "validation")):
        mean = np.array([p[f"{key}_mean"] for p in pts])
        std = np.array([p[f"{key}_std"] for p in pts])
        ax.plot(x, mean, "o-", color=colour, label=f"{name} (mean over folds)")
        ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.2)
    ax.axhline(data["chance"], color="#9aa5b1", linestyle=":", label="chance")
    if learning:
        ax.set_xlabel("training rows per fold (the subsample each fold fitted)")
    else:
        ax.set_xticks(x, [str(p["x"]) for p in pts])
        ax.set_xlabel(data["param"])
    better = "higher" if data["greater_is_better"] else "lower"
    ax.set_ylabel(f"{data['metric']} ({better} is better); bands ±1 sd over folds")
    kind = "learning curve" if learning else f"validation curve of {data['param']}"
    ax.set_title(f"{data['competition']}: {kind}, {data['label']}")
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(folder: Path, data: dict[str, Any]) -> None:
    """Write ``curves.json``, ``.csv`` and ``.png`` into a staging folder, then publish it."""

    def fill(staging: Path) -> None:
        (staging / "curves.json").write_text(files.dumps(data))
        (staging / "curves.csv").write_text(table_csv(data))
        _chart(data, staging / "curves.png")

    files.write_dir(folder, fill)
