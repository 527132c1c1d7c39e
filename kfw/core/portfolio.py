"""The roster ``kfw new`` writes: a portfolio of configurations chosen across a suite of data sets.

In the spirit of AutoGluon's zero-shot portfolios (TabRepo; Salinas and Erickson 2023): a
fixed pool of :data:`CANDIDATES`, each scored by kfw's own cross-validation on every data set
of a suite (``benchmarks/automl_suite.py --roster candidates``: never a test label), and a
greedy forward selection (:func:`choose`) that adds, one at a time, the configuration that
most lowers the suite's mean *portfolio error*: on each data set, the normalised error of the
best configuration chosen so far (0 the best candidate there, 1 the worst). The order of
selection is the roster's order: under a time limit the members run in it until the time is
spent (:func:`kfw.ensemble.roster.run_competition`).

To measure a portfolio honestly it is chosen by leave-one-data-set-out (:func:`leave_one_out`):
the portfolio a data set is run with was chosen on the other data sets' results alone, and
:func:`choose` reads nothing else. :data:`PORTFOLIO` is the choice made on the whole suite,
for a competition the suite has never seen (``kfw new``); ``docs/automl-suite.md`` says how
it was measured.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kfw.errors import ConfigError

_GBM = {"n_estimators": 5000, "early_stopping_rounds": 100}

# label -> (model name, parameters); the linear candidate is logreg or ridge by task
CANDIDATES: dict[str, tuple[str, dict[str, Any]]] = {
    "lgbm": ("lgbm", {"learning_rate": 0.05, "num_leaves": 31, **_GBM}),
    "lgbm-large": (
        "lgbm",
        {"learning_rate": 0.03, "num_leaves": 128, "min_child_samples": 5,
         "colsample_bytree": 0.9, **_GBM},
    ),
    "lgbm-xt": ("lgbm", {"learning_rate": 0.05, "num_leaves": 31, "extra": {"extra_trees": True},
                         **_GBM}),
    "lgbm-small": (
        "lgbm",
        {"learning_rate": 0.05, "num_leaves": 8, "min_child_samples": 40, "reg_lambda": 5.0,
         "colsample_bytree": 0.7, "subsample": 0.8, "subsample_freq": 1, **_GBM},
    ),
    "xgb": ("xgb", {"learning_rate": 0.05, "max_depth": 6, **_GBM}),
    "xgb-shallow": (
        "xgb",
        {"learning_rate": 0.08, "max_depth": 3, "min_child_weight": 3.0, "subsample": 0.8,
         "colsample_bytree": 0.8, **_GBM},
    ),
    "catboost": ("catboost", {"learning_rate": 0.08, "iterations": 5000,
                              "early_stopping_rounds": 100}),
    "extratrees": ("extratrees", {"n_estimators": 300, "min_samples_leaf": 2}),
    "linear": ("linear", {}),
}  # fmt: skip

# chosen by `benchmarks/automl_suite.py --choose` on the whole suite (docs/automl-suite.md)
PORTFOLIO: tuple[str, ...] = ("xgb-shallow", "extratrees", "catboost", "xgb")
SIZE = 5  # members of a chosen portfolio


def member(label: str, task: str) -> tuple[str, dict[str, Any]]:
    """Candidate ``label``'s model name and parameters for ``task``."""
    if label not in CANDIDATES:
        raise ConfigError(f"no portfolio candidate {label!r} (there are: {', '.join(CANDIDATES)})")
    name, params = CANDIDATES[label]
    if name == "linear":
        name = "ridge" if task == "regression" else "logreg"
    return name, dict(params)


def seeded(name: str, params: dict[str, Any]) -> bool:
    """Whether another seed fits model ``name`` with ``params`` differently (worth bagging):
    forests and CatBoost always; LightGBM and XGBoost when they subsample rows or columns."""
    if name in ("catboost", "extratrees", "rf"):
        return True
    rows = params.get("subsample", 1.0) < 1 and (
        name == "xgb" or params.get("subsample_freq", 0) > 0
    )
    extra = bool((params.get("extra") or {}).get("extra_trees"))
    return name in ("lgbm", "xgb") and (rows or params.get("colsample_bytree", 1.0) < 1 or extra)


def normalised(errors: Mapping[str, float]) -> dict[str, float]:
    """Each configuration's error on one data set scaled to [0, 1] (0 the best, 1 the worst)."""
    low, high = min(errors.values()), max(errors.values())
    span = high - low
    return {c: (e - low) / span if span > 0 else 0.0 for c, e in errors.items()}


def choose(
    errors: Mapping[str, Mapping[str, float]], size: int = SIZE, exclude: str | None = None
) -> list[str]:
    """The greedy portfolio over ``errors[data_set][configuration]`` (lower is better).

    Data set ``exclude`` is never read (not even its key's value): the portfolio a held-out
    data set is run with comes from the others alone. A configuration missing on a data set
    counts as that data set's worst. Ties go to the configuration listed first.
    """
    seen = [d for d in errors if d != exclude]
    if not seen:
        raise ConfigError("a portfolio needs the results of at least one other data set")
    scaled = {d: normalised(errors[d]) for d in seen}
    pool: list[str] = []
    for d in seen:
        pool += [c for c in scaled[d] if c not in pool]
    chosen: list[str] = []
    best = {d: 1.0 for d in seen}  # the portfolio error so far on each data set
    while pool and len(chosen) < size:
        after = {
            c: sum(min(best[d], scaled[d].get(c, 1.0)) for d in seen) / len(seen) for c in pool
        }
        pick = min(pool, key=after.__getitem__)
        if chosen and after[pick] >= sum(best.values()) / len(seen):
            break  # nothing left lowers the suite's error
        chosen.append(pick)
        pool.remove(pick)
        best = {d: min(best[d], scaled[d].get(pick, 1.0)) for d in seen}
    return chosen


def leave_one_out(
    errors: Mapping[str, Mapping[str, float]], size: int = SIZE
) -> dict[str, list[str]]:
    """Each data set's portfolio, chosen without it (:func:`choose` with ``exclude``)."""
    return {d: choose(errors, size, exclude=d) for d in errors}
