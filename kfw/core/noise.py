"""Selection under noise: how sure a CV is, which runs it cannot tell apart, and what to submit.

On 891 rows a fold's accuracy moves by 0.01-0.02 from one split to the next, so most of the
differences between roster runs are noise, and the run with the highest CV is, more often
than not, the luckiest. Three tools keep that in view:

- :func:`corrected_se`, the standard error of a CV score. The folds share most of their
  training rows, so their scores are correlated and ``std / sqrt(J)`` is too small. Nadeau &
  Bengio (2003, "Inference for the generalization error", Machine Learning 52) correct the
  variance of the mean of J resampled scores to ``(1/J + n_valid/n_train) * s^2``, with ``s^2``
  the sample variance of the J fold scores; for K-fold repeated R times, J = K*R and
  n_valid/n_train = 1/(K-1). Bouckaert & Frank (2004) recommend exactly this for repeated CV.
- :func:`paired_difference`, the difference between two runs with its interval. The runs were
  scored on the same folds, so the same correction applies to the per-fit differences (the
  corrected paired t-test), with a Student t interval on J - 1 degrees of freedom. Each fit's
  score is computed from the run's stored out-of-fold predictions on that fit's validation
  rows, so single models, repeated runs and ensembles are compared alike.
- :func:`choose`, the rule ``kfw submit`` follows without ``--run`` (and ``kfw select`` for its
  first pick). It is the one-standard-error idea of Breiman et al. (1984, CART, section 3.4)
  and Hastie, Tibshirani & Friedman (ESL, section 7.10), made paired:

  1. candidates are the runs on the competition's current data and fold file whose score is
     honest (nothing in it was chosen on the rows it scores; optimistic runs are listed and
     skipped);
  2. the best CV among them is the reference; a run is *indistinguishable* from it when the
     95% interval of their paired difference contains zero;
  3. among the indistinguishable runs: an ensemble if there is one (the best by CV: an
     average of fitted models has less variance than any of them), else the simplest model
     (the registry's complexity rank: linear < neighbours / one tree < bagged trees < boosted
     trees < networks), ties broken by CV.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kfw.core.metrics import get_metric
from kfw.core.registry import complexity
from kfw.errors import KfwError

LEVEL = 0.95  # the confidence level of every interval kfw shows


class NoiseError(KfwError):
    """A standard error or a comparison that the scores at hand cannot define."""


def _t_quantile(df: int, level: float = LEVEL) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, df))


def mean_interval(
    values: Sequence[float] | np.ndarray, level: float = LEVEL
) -> tuple[float, float]:
    """The mean of independent values (seeds of a run, not folds: no correction) and the
    half-width of its t interval; NaN half-width for a single value."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float(values.mean()), float("nan")
    half = _t_quantile(len(values) - 1, level) * values.std(ddof=1) / np.sqrt(len(values))
    return float(values.mean()), float(half)


def _checked(scores: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    values = np.asarray(scores, dtype=float)
    if values.ndim != 1 or len(values) < 2:
        raise NoiseError(
            f"{what}: a standard error needs at least 2 scored fits, got {values.size}"
        )
    if not np.isfinite(values).all():
        bad = int((~np.isfinite(values)).sum())
        raise NoiseError(
            f"{what}: {bad} of {len(values)} fits have no finite score, so the standard "
            "error is undefined (the metric may be undefined on a fold, e.g. ROC-AUC on a "
            "fold with one class)"
        )
    return values


def corrected_se(
    scores: Sequence[float] | np.ndarray, n_train: float, n_valid: float, what: str = "CV"
) -> float:
    """Standard error of the mean of J fold scores, corrected for their overlap.

    ``sqrt((1/J + n_valid/n_train) * var(scores, ddof=1))`` (Nadeau & Bengio 2003).

    Parameters
    ----------
    scores : array-like of shape (J,)
        One score per fit (every fold of every repeat).
    n_train, n_valid : float
        Rows in a fit's training and validation parts (their means over the fits).
    what : str
        Names the scores in the error message.

    Raises
    ------
    NoiseError
        Fewer than two scores, a non-finite score, or empty parts.
    """
    values = _checked(scores, what)
    if n_train <= 0 or n_valid <= 0:
        raise NoiseError(f"{what}: fits of {n_train} training and {n_valid} validation rows")
    return math.sqrt((1.0 / len(values) + n_valid / n_train) * values.var(ddof=1))


def run_se(record: dict[str, Any]) -> float | None:
    """The corrected standard error of a run's CV from its record (None if it cannot have one)."""
    fits = record.get("fold_scores") or []
    scores = [f.get("score") for f in fits]
    n_train = np.mean([f["n_train"] for f in fits if f.get("n_train")] or [np.nan])
    n_valid = np.mean([f["n_valid"] for f in fits if f.get("n_valid")] or [np.nan])
    if len(scores) < 2 or any(s is None for s in scores) or not np.isfinite(n_train + n_valid):
        return None
    try:
        return corrected_se(scores, float(n_train), float(n_valid))
    except NoiseError:
        return None


@dataclass(frozen=True)
class Difference:
    """``a - b`` in the metric's units, with its corrected standard error and interval."""

    mean: float
    se: float
    low: float
    high: float
    n_fits: int

    @property
    def clear(self) -> bool:
        """Whether the interval excludes zero: the two runs can be told apart."""
        return self.low > 0 or self.high < 0


def paired_difference(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    n_train: float,
    n_valid: float,
    level: float = LEVEL,
) -> Difference:
    """The corrected paired t interval of ``mean(a - b)`` over fits scored on the same rows.

    Parameters
    ----------
    a, b : array-like of shape (J,)
        Per-fit scores of two runs, fit j of each on the same training and validation rows.
    n_train, n_valid : float
        Rows in a fit's training and validation parts.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise NoiseError(f"paired scores of different lengths: {a.shape} and {b.shape}")
    d = a - b
    if np.isfinite(d).all() and len(d) >= 2 and np.ptp(d) == 0:
        se = 0.0  # identical predictions, or a constant shift: no noise to speak of
    else:
        se = corrected_se(d, n_train, n_valid, "the paired difference")
    half = _t_quantile(len(d) - 1, level) * se
    mean = float(d.mean())
    return Difference(mean, se, mean - half, mean + half, len(d))


# ---------------------------------------------------------------------------------------------
# per-fit scores of stored predictions


def score_rows(
    metric: Callable[[np.ndarray, np.ndarray], float],
    y: np.ndarray,
    pred: np.ndarray,
    rows: np.ndarray,
) -> float:
    """The metric on ``rows``; with several targets (``y`` 2-D) the mean over targets."""
    if y.ndim == 2:
        return float(np.mean([metric(y[rows, t], pred[rows, t]) for t in range(y.shape[1])]))
    return float(metric(y[rows], pred[rows]))


def fit_scores(
    metric: Callable[[np.ndarray, np.ndarray], float],
    y: np.ndarray,
    pred: np.ndarray,
    assignment: np.ndarray,
) -> dict[tuple[int, int], float]:
    """The score of stored out-of-fold predictions on each fit's validation rows.

    Parameters
    ----------
    assignment : ndarray of shape (n_rows, n_repeats)
        The fold file's assignment (``-1``: never validated).

    Returns
    -------
    dict
        ``(repeat, fold) -> score``.

    Raises
    ------
    NoiseError
        When the metric is undefined on a fit's rows alone (ROC-AUC on a fold of one class):
        without per-fit scores there is no standard error to compare runs with.
    """
    out = {}
    for r in range(assignment.shape[1]):
        for k in np.unique(assignment[:, r]):
            if k < 0:
                continue
            rows = np.flatnonzero(assignment[:, r] == k)
            try:
                out[(r, int(k))] = score_rows(metric, y, pred, rows)
            except ValueError as exc:
                name = getattr(metric, "name", "the metric")
                raise NoiseError(
                    f"{name} is undefined on fold {k} of repeat {r} alone ({exc}), so its runs "
                    "have no standard error to be compared by: choose one with --run"
                ) from None
    return out


# ---------------------------------------------------------------------------------------------
# the choice


@dataclass
class Compared:
    """One run beside the reference (the best honest CV)."""

    record: dict[str, Any]
    difference: Difference | None  # run - best, oriented so that negative is worse
    indistinguishable: bool
    note: str = ""


@dataclass
class Choice:
    """The run ``kfw submit`` sends by default, and the evidence for it."""

    run: dict[str, Any]
    reason: str
    best: dict[str, Any]
    compared: list[Compared] = field(default_factory=list)
    skipped: list[tuple[dict[str, Any], str]] = field(default_factory=list)

    @property
    def indistinguishable(self) -> list[dict[str, Any]]:
        return [c.record for c in self.compared if c.indistinguishable]


def _better(record: dict[str, Any]) -> float:
    return record["score"] if record["greater_is_better"] else -record["score"]


def compare(
    records: Iterable[dict[str, Any]],
    scores: Callable[[dict[str, Any]], dict[tuple[int, int], float]],
    n_train: float,
    n_valid: float,
) -> list[Compared]:
    """Every run against the best of them, best first (the records must share their folds).

    ``scores(record)`` gives the run's per-fit scores (:func:`fit_scores` of its stored
    predictions). A run with fewer than two fits in common with the best gets no interval.
    """
    ranked = sorted(records, key=_better, reverse=True)
    if not ranked:
        return []
    best = ranked[0]
    ref = scores(best)
    out = [Compared(best, None, True, "best CV")]
    for r in ranked[1:]:
        mine = scores(r)
        common = sorted(set(ref) & set(mine))
        if len(common) < 2:
            out.append(Compared(r, None, False, "no common fits with the best"))
            continue
        d = paired_difference([mine[f] for f in common], [ref[f] for f in common], n_train, n_valid)
        # centred on the difference of the headline scores (for a metric that is not a mean
        # over rows, ROC-AUC say, the mean of per-fit differences is not quite that), with
        # the per-fit differences' corrected standard error
        mean = r["score"] - best["score"]
        half = (d.high - d.low) / 2
        shown = Difference(mean, d.se, mean - half, mean + half, d.n_fits)
        out.append(Compared(r, shown, not shown.clear))
    return out


def choose(
    records: Iterable[dict[str, Any]],
    scores: Callable[[dict[str, Any]], dict[tuple[int, int], float]],
    n_train: float,
    n_valid: float,
    complexity: Callable[[dict[str, Any]], int],
) -> Choice:
    """Apply the module's rule to the runs of one fold file (see the module docstring).

    Parameters
    ----------
    records : iterable of dict
        Run records on the current data and folds. Each difference is ``run - best`` in the
        metric's own units, centred on the headline scores.
    scores : callable
        ``scores(record) -> {(repeat, fold): score}`` from the run's stored predictions.
    complexity : callable
        ``complexity(record) -> int``, smaller is simpler.

    Raises
    ------
    NoiseError
        No run with an honest score.
    """
    records = list(records)
    skipped = [
        (r, "optimistic: " + "; ".join(r["optimistic"])) for r in records if r.get("optimistic")
    ]
    honest = [r for r in records if not r.get("optimistic")]
    if not honest:
        raise NoiseError(
            "every candidate run's score is optimistic ("
            + "; ".join(sorted({w for r, w in skipped}))
            + "): rerun without the shortcut, or choose one with --run"
        )
    compared = compare(honest, scores, n_train, n_valid)
    best = compared[0].record
    close = [c for c in compared if c.indistinguishable]
    ensembles = [c.record for c in close if c.record["kind"] == "ensemble"]
    others = len(close) - 1
    tied = f"{others} other run{'s' * (others != 1)} within noise of the best CV"
    if ensembles:
        pick = max(ensembles, key=_better)
        why = (
            f"an ensemble within noise of the best CV ({tied}): averaging fitted models "
            "lowers the variance that makes single runs' CVs differ"
        )
        if pick is best:
            why = f"the best CV, and an ensemble ({tied})"
    else:
        pick = min((c.record for c in close), key=lambda r: (complexity(r), -_better(r)))
        why = (
            f"the simplest run within noise of the best CV ({tied}); more freedom to fit the "
            "folds' noise buys nothing CV can show"
        )
        if pick is best:
            why = (
                "the best CV, and no simpler run is within noise of it"
                if others
                else "the best CV, clearly ahead of every other run"
            )
    return Choice(pick, why, best, compared, skipped)


# ---------------------------------------------------------------------------------------------
# runs in the store


def encode_labels(y: np.ndarray, classes: list[Any] | None) -> np.ndarray:
    """Stored labels (the competition's own values) as the class codes 0..K-1."""
    if classes is None:
        return np.asarray(y, dtype=float)
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[v.item() if hasattr(v, "item") else v] for v in y], dtype=np.int64)


def store_scores(store: Any) -> Callable[[dict[str, Any]], dict[tuple[int, int], float]]:
    """``scores(record)`` for :func:`compare` / :func:`choose`, read from ``store`` once each."""

    cache: dict[str, dict[tuple[int, int], float]] = {}

    def scores(record: dict[str, Any]) -> dict[tuple[int, int], float]:
        if record["id"] not in cache:
            y, pred, assignment = store.predictions(record["id"])
            multi = y.ndim == 2
            y = y.astype(float) if multi else encode_labels(y, record.get("classes"))
            cache[record["id"]] = fit_scores(get_metric(record["metric"]), y, pred, assignment)
        return cache[record["id"]]

    return scores


def fit_sizes(records: Sequence[dict[str, Any]]) -> tuple[float, float]:
    """Mean training and validation rows of a fit, from the model runs' records."""
    fits = [f for r in records for f in r.get("fold_scores") or [] if f.get("n_train")]
    if not fits:
        raise NoiseError("no run records its fits' sizes: rerun one model with `kfw cv`")
    return float(np.mean([f["n_train"] for f in fits])), float(
        np.mean([f["n_valid"] for f in fits])
    )


def split_candidates(
    records: Iterable[dict[str, Any]], data_hash: str, fold_hash: str
) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], str]]]:
    """Runs that can be compared (current data and folds, not an ablation's variant) and the rest."""
    same, skipped = [], []
    for r in records:
        if r.get("score") is None:
            skipped.append((r, "no score"))
        elif r["data"]["hash"] != data_hash:
            skipped.append((r, "other data"))
        elif r["folds"]["hash"] != fold_hash:
            skipped.append((r, f"other folds ({r['folds']['name']})"))
        elif r.get("ablation"):
            skipped.append((r, "an ablation's variant"))
        else:
            same.append(r)
    return same, skipped


def choose_from_store(
    store: Any, records: Iterable[dict[str, Any]], data_hash: str, fold_hash: str
) -> Choice:
    """:func:`choose` over the store's runs on the current data and fold file."""

    same, skipped = split_candidates(records, data_hash, fold_hash)
    if not same:
        raise NoiseError(
            "no run on the current data and fold file: run `kfw cv` first"
            + (f" ({len(skipped)} older runs do not qualify)" if skipped else "")
        )
    n_train, n_valid = fit_sizes(same)
    choice = choose(
        same,
        store_scores(store),
        n_train,
        n_valid,
        lambda r: complexity(r.get("model") or ""),
    )
    choice.skipped = skipped + choice.skipped
    return choice
