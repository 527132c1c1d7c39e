"""Competition metrics in NumPy, scored on what the fold loop stores as out-of-fold predictions.

``y_pred`` is, per task: ``binary`` a 1-D array of P(class 1); ``multiclass`` an ``(n, K)`` array
of class probabilities; ``regression`` a 1-D array of values. Label metrics derive labels
themselves (binary ``p >= threshold``, 0.5 unless :meth:`Metric.at_threshold` says otherwise;
multiclass ``argmax`` with ties to the lowest class). Each metric matches its scikit-learn twin
(checked in ``tests/kfw/core/test_metrics.py``); scikit-learn is not imported here so that
``import kfw.core.metrics`` stays light.

Multiclass label scores (``f1``, ``f2``, ``precision``, ``recall``) and ``average_precision`` are
macro means; ``brier`` is the binary mean of ``(p - y)**2`` and, for K >= 3 columns, the mean over
rows of ``sum_k (p_k - [y == k])**2``, in [0, 2] (scikit-learn's ``brier_score_loss`` with
``scale_by_half="auto"``, which halves two columns so they equal the binary score). ``ece`` has
no scikit-learn twin: ``ECE_BINS`` equal-width bins over P(class 1) for binary, over the top
label's probability for multiclass (Guo et al. 2017), checked against a loop.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from kfw.errors import ConfigError

TASKS = ("binary", "multiclass", "regression")
# QWK builds an (L, L) confusion matrix over the integer label range; past this it is not ordinal.
_MAX_QWK_LEVELS = 1000
# equal-width bins of the expected calibration error, right-closed as in Guo et al. (2017)
ECE_BINS = 10


@dataclass(frozen=True)
class Metric:
    """A named score with its direction and the tasks it applies to.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"rmsle"`` or ``"map@3"``.
    greater_is_better : bool
        Direction of improvement.
    tasks : frozenset of str
        Tasks among ``"binary"``, ``"multiclass"``, ``"regression"`` the metric applies to.
    fn : callable
        ``fn(y_true, y_pred) -> float`` on arrays already checked by :meth:`__call__`.
    threshold : float or None
        For a metric of labels, the cut that turns a binary P(class 1) into a label
        (``p >= threshold``; multiclass labels are the ``argmax`` whatever it is); ``None`` for
        a metric of the probabilities or values themselves.
    """

    name: str
    greater_is_better: bool
    tasks: frozenset[str]
    fn: Callable[[np.ndarray, np.ndarray], float]
    threshold: float | None = None

    @property
    def uses_threshold(self) -> bool:
        """Whether the score depends on a binary threshold (the label metrics)."""
        return self.threshold is not None

    def at_threshold(self, threshold: float) -> Metric:
        """The same metric with binary labels cut at ``p >= threshold`` instead of 0.5.

        Parameters
        ----------
        threshold : float
            A cut in ``[0, 1]``.

        Returns
        -------
        Metric
            A copy with the same name and direction; multiclass scores are unchanged.

        Raises
        ------
        ValueError
            If the metric scores probabilities (``uses_threshold`` is False) or the cut is not
            a number in ``[0, 1]``.
        """
        if not self.uses_threshold:
            raise ValueError(f"{self.name} scores the predictions themselves: it has no threshold")
        return replace(self, threshold=_check_threshold(threshold))

    def __call__(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        """Validate shapes and finiteness, then score.

        Parameters
        ----------
        y_true : array-like of shape (n,)
            Encoded labels (classification) or targets (regression).
        y_pred : array-like of shape (n,) or (n, K)
            Out-of-fold predictions in the per-task layout described in the module docstring.

        Returns
        -------
        float
            The score.

        Raises
        ------
        ValueError
            On a length mismatch, empty input, non-numeric or non-finite values, or a
            dimensionality that does not fit the metric's tasks.
        """
        allowed = {2} if "multiclass" in self.tasks else set()
        if self.tasks & {"binary", "regression"}:
            allowed.add(1)
        y_true, y_pred = _checked(self.name, y_true, y_pred, allowed)
        if self.threshold is not None and y_pred.ndim == 1:
            _check_proba(y_pred)
            # the label functions cut at 0.5: handing them p >= t as exact 0.0 / 1.0 cuts at t
            y_pred = (y_pred >= self.threshold).astype(np.float64)
        return float(self.fn(y_true, y_pred))

    def is_better(self, a: float, b: float) -> bool:
        """Return whether score ``a`` is strictly better than score ``b`` (False on NaN)."""
        return bool(a > b) if self.greater_is_better else bool(a < b)

    def sign(self) -> int:
        """Return +1 if greater is better, else -1; ``-metric.sign() * score`` is a loss."""
        return 1 if self.greater_is_better else -1


# --- input helpers ------------------------------------------------------------------------------


def _checked(
    name: str, y_true: np.ndarray, y_pred: np.ndarray, allowed: set[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Arrays checked for shape, length, dtype and finiteness; ``y_pred`` as float64."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.dtype == bool:
        y_true = y_true.astype(np.int64)
    if y_true.ndim != 1:
        raise ValueError(f"{name}: y_true must be 1-D, got shape {y_true.shape}")
    if y_pred.ndim == 0 or len(y_true) != len(y_pred):
        raise ValueError(
            f"{name}: y_true has {len(y_true)} rows but y_pred has shape {y_pred.shape}"
        )
    if len(y_true) == 0:
        raise ValueError(f"{name}: cannot score empty arrays")
    for what, arr in (("y_true", y_true), ("y_pred", y_pred)):
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"{name}: {what} must be numeric, got dtype {arr.dtype}")
        if not np.isfinite(arr).all():
            raise ValueError(f"{name}: {what} contains NaN or inf")
    if y_pred.ndim not in allowed:
        kinds = {1: "1-D y_pred (binary or regression)", 2: "2-D y_pred (n, K) of probabilities"}
        want = " or ".join(kinds[d] for d in sorted(allowed))
        raise ValueError(f"{name}: expects {want}, got shape {y_pred.shape}")
    return y_true, y_pred.astype(np.float64)


def _check_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(
        threshold, int | float | np.integer | np.floating
    ):
        raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}")
    if not 0.0 <= float(threshold) <= 1.0:  # NaN fails this too
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    return float(threshold)


def _labels(y_true: np.ndarray, n_classes: int) -> np.ndarray:
    """Check that ``y_true`` holds integers in ``[0, n_classes)`` and return them as int64."""
    if (y_true != np.round(y_true)).any() or y_true.min() < 0 or y_true.max() >= n_classes:
        raise ValueError(
            f"y_true must hold encoded labels 0..{n_classes - 1}, "
            f"got values in [{y_true.min()}, {y_true.max()}]"
        )
    return y_true.astype(np.int64)


def _check_proba(y_pred: np.ndarray) -> None:
    if y_pred.min() < 0 or y_pred.max() > 1:
        raise ValueError(
            f"y_pred must be probabilities in [0, 1], got values in [{y_pred.min()}, {y_pred.max()}]"
        )


def _class_pairs(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Encoded (true, predicted) labels and the class count, from probabilities."""
    if y_pred.ndim == 1:
        _check_proba(y_pred)
        return _labels(y_true, 2), (y_pred >= 0.5).astype(np.int64), 2
    k = y_pred.shape[1]
    return _labels(y_true, k), np.argmax(y_pred, axis=1), k


def _confusion(t: np.ndarray, p: np.ndarray, k: int) -> np.ndarray:
    """Confusion counts, rows true and columns predicted: ``(k, k)`` float64."""
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k).astype(np.float64)


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x``, ties given the mean of the ranks they span (as in Mann–Whitney U)."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    new_group = np.r_[True, xs[1:] != xs[:-1]]
    starts = np.r_[np.flatnonzero(new_group), len(x)]  # (n_groups + 1,)
    # a group spanning sorted positions s..e-1 holds ranks s+1..e, whose mean is (s + 1 + e) / 2
    group_rank = (starts[:-1] + 1 + starts[1:]) / 2.0
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = group_rank[np.cumsum(new_group) - 1]
    return ranks


def binary_auc(positive: np.ndarray, score: np.ndarray) -> float:
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("roc_auc is undefined when y_true holds a single class")
    # U statistic of the positives; ranks are half-integers, so the sum is exact in float64
    u = average_ranks(score)[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


# --- metric functions ---------------------------------------------------------------------------


def _accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    t, p, _ = _class_pairs(y_true, y_pred)
    return float(np.mean(t == p))


def _counts(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per class: true positives, true count, predicted count, each ``(k,)`` float64."""
    t, p, k = _class_pairs(y_true, y_pred)
    cm = _confusion(t, p, k)
    return np.diag(cm), cm.sum(axis=1), cm.sum(axis=0)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    # scikit-learn's zero_division="warn" scores 0.0 where the denominator is 0
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def _macro(
    per_class: np.ndarray, y_pred: np.ndarray, true_sum: np.ndarray, pred_sum: np.ndarray
) -> float:
    """Class 1's score for a binary (1-D) ``y_pred``; else the mean over the classes seen in
    ``y_true`` or the predictions, the labels scikit-learn infers for ``average="macro"``."""
    if y_pred.ndim == 1:
        return float(per_class[1])
    return float(np.mean(per_class[true_sum + pred_sum > 0]))


def fbeta(beta: float) -> Metric:
    """The F-beta score, named ``f<beta>`` (``fbeta(2)`` is ``"f2"``).

    Binary: of class 1; multiclass: the macro mean over the classes seen in ``y_true`` or the
    predictions, as scikit-learn infers labels (``average="macro"``).

    Parameters
    ----------
    beta : float
        Weight of recall against precision, > 0.

    Returns
    -------
    Metric
        A label metric (``uses_threshold``), cut at 0.5 until :meth:`Metric.at_threshold`.

    Raises
    ------
    ValueError
        If ``beta`` is not a finite number > 0.
    """
    if not beta > 0 or not np.isfinite(beta):
        raise ValueError(f"fbeta needs a finite beta > 0, got {beta}")
    b2 = float(beta) ** 2

    def f_beta(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        tp, true_sum, pred_sum = _counts(y_true, y_pred)
        # (1 + b2) tp / ((1 + b2) tp + b2 fn + fp), as scikit-learn writes it
        return _macro(_ratio((1 + b2) * tp, b2 * true_sum + pred_sum), y_pred, true_sum, pred_sum)

    return Metric(f"f{beta:g}", True, _CLASSIFICATION, f_beta, threshold=0.5)


def cost_metric(fn_cost: float) -> Metric:
    """The mean cost of a binary decision, named ``cost@<fn_cost>``: a false positive costs 1,
    a false negative ``fn_cost`` (``cost@5``: missing a positive is five times as bad as a
    false alarm). Lower is better; a label metric, so ``threshold = "tune"`` chooses the cut
    that costs least (for calibrated probabilities, near ``1 / (1 + fn_cost)``)."""
    if not fn_cost > 0 or not np.isfinite(fn_cost):
        raise ConfigError(f"cost@<w> needs a finite false-negative cost w > 0, got {fn_cost}")

    def cost(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        t = _labels(y_true, 2)
        p = (y_pred >= 0.5).astype(np.int64)
        return float(np.mean((p == 1) & (t == 0)) + fn_cost * np.mean((p == 0) & (t == 1)))

    return Metric(f"cost@{fn_cost:g}", False, frozenset({"binary"}), cost, threshold=0.5)


def _precision(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    tp, true_sum, pred_sum = _counts(y_true, y_pred)
    return _macro(_ratio(tp, pred_sum), y_pred, true_sum, pred_sum)


def _recall(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    tp, true_sum, pred_sum = _counts(y_true, y_pred)
    return _macro(_ratio(tp, true_sum), y_pred, true_sum, pred_sum)


def _balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    tp, true_sum, _ = _counts(y_true, y_pred)
    # the mean recall over the classes present in y_true (a class only predicted is dropped)
    present = true_sum > 0
    return float(np.mean(tp[present] / true_sum[present]))


def _mcc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    tp, true_sum, pred_sum = _counts(y_true, y_pred)
    n = true_sum.sum()
    # the multiclass (R_K) form scikit-learn computes, term for term
    cov_tp = tp.sum() * n - true_sum @ pred_sum
    cov_pp = n**2 - pred_sum @ pred_sum
    cov_tt = n**2 - true_sum @ true_sum
    if cov_pp * cov_tt == 0:
        return 0.0  # a constant side: scikit-learn scores 0.0
    return float(cov_tp / np.sqrt(cov_pp * cov_tt))


def _roc_auc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    if y_pred.ndim == 1:
        return binary_auc(_labels(y_true, 2) == 1, y_pred)
    t = _labels(y_true, y_pred.shape[1])
    # one-vs-rest, macro: each class's column scored against "is this class"
    return float(np.mean([binary_auc(t == c, y_pred[:, c]) for c in range(y_pred.shape[1])]))


def _log_loss(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    _check_proba(y_pred)
    # scikit-learn >= 1.5 clips to [eps, 1 - eps] with eps of the dtype (float64: 2.2e-16) and
    # no longer renormalises rows; binary builds the column 1 - p before clipping, as here.
    eps = np.finfo(np.float64).eps
    if y_pred.ndim == 1:
        t = _labels(y_true, 2)
        p_true = np.where(t == 1, y_pred, 1.0 - y_pred)
    else:
        t = _labels(y_true, y_pred.shape[1])
        p_true = y_pred[np.arange(len(t)), t]
    return float(-np.mean(np.log(np.clip(p_true, eps, 1 - eps))))


def binary_average_precision(positive: np.ndarray, score: np.ndarray) -> float:
    """Area under the precision-recall steps: sum over thresholds of precision x recall gained.

    One threshold per distinct score, as scikit-learn's ``average_precision_score`` (no
    interpolation): tied rows enter together.
    """
    n_pos = int(positive.sum())
    if n_pos == 0:
        raise ValueError("average_precision is undefined when a class has no positives in y_true")
    order = np.argsort(-score, kind="mergesort")
    s = score[order]
    last = np.r_[s[1:] != s[:-1], True]  # the last row of each run of tied scores
    tp = np.cumsum(positive[order])[last]  # (n_thresholds,)
    precision = tp / (np.flatnonzero(last) + 1)
    return float(np.sum(np.diff(tp, prepend=0) / n_pos * precision))


def _average_precision(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    if y_pred.ndim == 1:
        return binary_average_precision(_labels(y_true, 2) == 1, y_pred)
    t = _labels(y_true, y_pred.shape[1])
    # one-vs-rest, macro (scikit-learn refuses a class absent from y_true; so does this)
    k = y_pred.shape[1]
    return float(np.mean([binary_average_precision(t == c, y_pred[:, c]) for c in range(k)]))


def _brier(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    _check_proba(y_pred)
    if y_pred.ndim == 1:
        return float(np.mean((y_pred - _labels(y_true, 2)) ** 2))
    k = y_pred.shape[1]
    onehot = np.eye(k)[_labels(y_true, k)]  # (n, k)
    score = np.mean(np.sum((y_pred - onehot) ** 2, axis=1))
    # scikit-learn's scale_by_half="auto": two columns are halved, to equal the binary score
    return float(score / 2 if k == 2 else score)


def _ece(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    _check_proba(y_pred)
    if y_pred.ndim == 1:
        # the calibration of P(class 1): predicted against observed frequency of class 1
        confidence, outcome = y_pred, _labels(y_true, 2).astype(np.float64)
    else:
        # top label (Guo et al. 2017): the largest probability against the argmax being right
        t = _labels(y_true, y_pred.shape[1])
        confidence = y_pred.max(axis=1)
        outcome = (np.argmax(y_pred, axis=1) == t).astype(np.float64)
    # bins (i/B, (i+1)/B], the first holding 0 too, on the edges calibration_curve uses
    edges = np.linspace(0.0, 1.0, ECE_BINS + 1)
    bins = np.searchsorted(edges[1:-1], confidence)
    # sum_b (n_b / n) |mean confidence_b - mean outcome_b| = sum_b |sum_b (conf. - outcome)| / n
    gap = np.bincount(bins, weights=confidence - outcome, minlength=ECE_BINS)
    return float(np.abs(gap).sum() / len(confidence))


def _rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2)))


def _rmsle(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    if y_true.min() < 0 or y_pred.min() < 0:
        raise ValueError(
            "rmsle is defined for non-negative values only; got minimum "
            f"y_true={y_true.min()}, y_pred={y_pred.min()} (clip predictions at 0?)"
        )
    return _rmse(np.log1p(y_true), np.log1p(y_pred))


def _mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(np.abs(y_true - y_pred)))


def _r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    if len(y_true) < 2:
        raise ValueError("r2 needs at least two samples")
    residual = np.sum((y_true - y_pred) ** 2)
    total = np.sum((y_true - np.mean(y_true)) ** 2)
    if total == 0:
        # scikit-learn's force_finite: a constant target is 1.0 if matched exactly, else 0.0
        return 1.0 if residual == 0 else 0.0
    return float(1 - residual / total)


def _qwk(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    if y_pred.ndim == 2:
        k = y_pred.shape[1]
        t, p, lo = _labels(y_true, k), np.argmax(y_pred, axis=1), 0
    else:
        if (y_true != np.round(y_true)).any():
            raise ValueError("qwk on regression needs integer-valued y_true (ordinal labels)")
        lo, hi = int(y_true.min()), int(y_true.max())
        k = hi - lo + 1
        if k > _MAX_QWK_LEVELS:
            raise ValueError(f"qwk: y_true spans {k} integer levels; expected ordinal labels")
        t = y_true.astype(np.int64) - lo
        p = np.clip(np.rint(y_pred), lo, hi).astype(np.int64) - lo
    # weights by label value over the full range lo..hi (scikit-learn with labels=range),
    # so a level that nobody predicts still counts in the distances
    cm = _confusion(t, p, k)
    expected = np.outer(cm.sum(axis=0), cm.sum(axis=1)) / cm.sum()
    levels = np.arange(k, dtype=np.float64)
    weights = (levels[:, None] - levels[None, :]) ** 2
    denom = np.sum(weights * expected)
    if denom == 0:
        raise ValueError("qwk is undefined when y_true and predictions share a single level")
    return float(1 - np.sum(weights * cm) / denom)


def _map_metric(k: int) -> Metric:
    def map_at_k(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        t = _labels(y_true, y_pred.shape[1])
        # stable sort of -p: the top-k by probability, ties to the lowest class like argmax
        top = np.argsort(-y_pred, axis=1, kind="stable")[:, :k]  # (n, min(k, K))
        # one relevant label per row: precision at its rank, 0 if it is not in the top k
        hits = top == t[:, None]
        return float(np.mean((hits / np.arange(1, top.shape[1] + 1)).sum(axis=1)))

    return Metric(f"map@{k}", True, frozenset({"multiclass"}), map_at_k)


_CLASSIFICATION = frozenset({"binary", "multiclass"})
_REGRESSION = frozenset({"regression"})

METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("accuracy", True, _CLASSIFICATION, _accuracy, threshold=0.5),
        fbeta(1),
        Metric("roc_auc", True, _CLASSIFICATION, _roc_auc),
        Metric("log_loss", False, _CLASSIFICATION, _log_loss),
        Metric("rmse", False, _REGRESSION, _rmse),
        Metric("rmsle", False, _REGRESSION, _rmsle),
        Metric("mae", False, _REGRESSION, _mae),
        Metric("r2", True, _REGRESSION, _r2),
        Metric("qwk", True, frozenset({"multiclass", "regression"}), _qwk),
        _map_metric(3),
        Metric("precision", True, _CLASSIFICATION, _precision, threshold=0.5),
        Metric("recall", True, _CLASSIFICATION, _recall, threshold=0.5),
        fbeta(2),
        Metric("balanced_accuracy", True, _CLASSIFICATION, _balanced_accuracy, threshold=0.5),
        Metric("mcc", True, _CLASSIFICATION, _mcc, threshold=0.5),
        Metric("average_precision", True, _CLASSIFICATION, _average_precision),
        Metric("brier", False, _CLASSIFICATION, _brier),
        Metric("ece", False, _CLASSIFICATION, _ece),
    )
}


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Counts of (true, predicted) labels, rows true and columns predicted.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        Encoded labels ``0..K-1``.
    y_pred : array-like of shape (n,) or (n, K)
        P(class 1) for binary, labelled ``p >= threshold``; class probabilities for
        multiclass, labelled by ``argmax``.
    threshold : float, default=0.5
        The binary cut, in ``[0, 1]``; ignored for multiclass.

    Returns
    -------
    ndarray of shape (K, K), int64
        scikit-learn's ``confusion_matrix(y_true, labels, labels=range(K))``, K = 2 for binary.
    """
    y_true, y_pred = _checked("confusion_matrix", y_true, y_pred, {1, 2})
    if y_pred.ndim == 1:
        _check_proba(y_pred)
        y_pred = (y_pred >= _check_threshold(threshold)).astype(np.float64)
    t, p, k = _class_pairs(y_true, y_pred)
    return _confusion(t, p, k).astype(np.int64)


def get_metric(name: str) -> Metric:
    """Look up a metric by name; ``map@<k>`` works for any ``k >= 1``, ``cost@<w>`` for any
    false-negative cost ``w > 0`` (:func:`cost_metric`).

    Parameters
    ----------
    name : str
        A key of :data:`METRICS` or ``"map@<k>"``.

    Returns
    -------
    Metric

    Raises
    ------
    ConfigError
        If the name is unknown.
    """
    if name in METRICS:
        return METRICS[name]
    match = re.fullmatch(r"map@([1-9][0-9]*)", name)
    if match:
        return _map_metric(int(match.group(1)))
    match = re.fullmatch(r"cost@([0-9]+(?:\.[0-9]+)?)", name)
    if match:
        return cost_metric(float(match.group(1)))
    known = ", ".join(METRICS)
    raise ConfigError(
        f"unknown metric {name!r}; known: {known} (and map@<k> for any k >= 1, cost@<w> for a "
        "binary decision whose false negative costs w false positives)"
    )


def check_metric_task(metric: Metric, task: str) -> None:
    """Raise :class:`~kfw.errors.ConfigError` unless ``metric`` applies to ``task``.

    Parameters
    ----------
    metric : Metric
        The metric a competition declares.
    task : str
        One of ``"binary"``, ``"multiclass"``, ``"regression"``.
    """
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    if task not in metric.tasks:
        raise ConfigError(f"metric {metric.name!r} does not fit task {task!r}")


def uses_threshold(metric: Metric, task: str) -> bool:
    """Whether ``metric`` scores binary labels (``p >= t``), so that a threshold changes it."""
    return task == "binary" and metric.uses_threshold
