"""A classification run's evaluation: curves, confusion, calibration and score distributions.

:func:`write_evaluation` (``kfw report COMP RUN``) writes ``$KFW_HOME/reports/<slug>/evaluation/
<run id>/``: ``evaluation.md`` and ``roc.png``, ``pr.png``, ``confusion.png``,
``reliability.png``, ``scores.png``. The write-up's "Evaluation" section is :func:`evaluation`
on its best run, and its diagnostics draw the confusion matrix and the reliability diagram with
:func:`confusion_figure` and :func:`reliability_figure`: one copy of each figure.

What is drawn from what:

- The out-of-fold frame holds the truth, the predictions (averaged over repeats) and each row's
  fold in every repeat (the persisted fold file's columns). The OOF line is the averaged
  prediction of every validated row, the one the run's headline score is computed on. A thin
  line is one fit (repeat, fold): its validation rows. Only the repeat-averaged prediction is
  stored, so with repeated folds a thin line is that average on the fit's rows, not the fit's
  own prediction.
- Binary: curves of P(class 1). Multiclass: one-vs-rest per class, a colour per class; the
  table's AUC and average precision are the unweighted means over classes (macro).
- The threshold: the record's ``threshold``, else the mean of the fits' ``threshold``, else 0.5;
  the caption says which. Binary predicts class 1 when P(class 1) >= threshold; multiclass
  predicts the most probable class (ties to the lowest), no threshold.
- Log loss clips probabilities to [1e-15, 1]; Brier is the mean over rows of the squared
  distance between the probability vector and the one-hot truth (binary: (p - y)^2).

Regression runs are refused in one line: their residuals are in the write-up's diagnostics.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kfw import files
from kfw.core.config import Competition
from kfw.core.runstore import RunStore, frame_prediction
from kfw.errors import KfwError
from kfw.report.doc import WriteupDoc, figure, image, table

THICK, THIN = 2.5, 0.8  # line widths: the OOF line, one fit's line
N_BINS = 10  # reliability: equal-width bins of the predicted probability
EPS = 1e-15  # log loss clip
FIGURES = ("roc.png", "pr.png", "confusion.png", "reliability.png", "scores.png")
_COLOURS = ("#3d7ab8", "#d9822b", "#3f9c5a", "#b8463d", "#7d5ba6", "#8c6d46", "#c45ca2", "#6b7785")


@dataclass
class Evaluation:
    """A classification run's validated out-of-fold rows.

    Attributes
    ----------
    y : ndarray of shape (n,)
        True class codes, indices into ``classes``.
    proba : ndarray of shape (n, K)
        Out-of-fold probabilities (binary: ``[1 - p, p]``), averaged over repeats.
    fits : list of (repeat, fold, rows)
        Each fit's validation rows, as indices into ``y``.
    classes : list of str
    threshold : float
        Binary: class 1 when P(class 1) >= threshold.
    threshold_source : str
        Where the threshold came from, for the caption.
    """

    y: np.ndarray
    proba: np.ndarray
    fits: list[tuple[int, int, np.ndarray]]
    classes: list[str]
    threshold: float
    threshold_source: str

    @property
    def binary(self) -> bool:
        return len(self.classes) == 2

    def labels(self) -> np.ndarray:
        """Predicted class codes: binary at the threshold, multiclass the most probable."""
        if self.binary:
            return (self.proba[:, 1] >= self.threshold).astype(int)
        return self.proba.argmax(axis=1)

    def positives(self) -> list[int]:
        """The classes drawn one-vs-rest: binary class 1 alone, multiclass every class."""
        return [1] if self.binary else list(range(len(self.classes)))


def chosen_threshold(record: dict[str, Any]) -> tuple[float, str]:
    """The record's ``threshold``, else the mean of its fits' ``threshold``, else 0.5."""
    if isinstance(record.get("threshold"), int | float):
        return float(record["threshold"]), "the run's recorded threshold"
    fits = [f.get("threshold") for f in record.get("fold_scores") or []]
    if fits and all(isinstance(t, int | float) for t in fits):
        return float(np.mean(fits)), f"the mean of the {len(fits)} fits' recorded thresholds"
    return 0.5, "the default, as the run records no threshold"


def load_evaluation(store: RunStore, record: dict[str, Any]) -> Evaluation:
    """The validated rows of ``record``'s out-of-fold predictions.

    Raises
    ------
    KfwError
        For a regression or multi-target run, or a run without ``oof.parquet``.
    """
    _classification_only(record)
    import pandas as pd

    frame = store.frame(record["id"], "oof.parquet")
    folds = frame[sorted((c for c in frame if c.startswith("fold_")), key=lambda c: int(c[5:]))]
    assignment = folds.to_numpy()  # (n, n_repeats), -1: never validated in that repeat
    pred = frame_prediction(frame)
    keep = (assignment >= 0).any(axis=1) & ~np.isnan(pred.reshape(len(frame), -1)).any(axis=1)
    classes = [str(c) for c in record["classes"]]
    y = pd.Categorical(frame["target"].astype(str), categories=classes).codes[keep]
    pred, assignment = pred[keep], assignment[keep]
    proba = np.c_[1 - pred, pred] if pred.ndim == 1 else pred  # (n, K)
    fits = [
        (r, int(f), np.flatnonzero(assignment[:, r] == f))
        for r in range(assignment.shape[1])
        for f in np.unique(assignment[:, r])
        if f >= 0
    ]
    return Evaluation(np.asarray(y, int), proba, fits, classes, *chosen_threshold(record))


def _classification_only(record: dict[str, Any]) -> None:
    if record["task"] not in ("binary", "multiclass") or not record.get("classes"):
        raise KfwError(
            f"kfw report draws classification curves; run {record['id']} is a "
            f"{record['task']} run: run `kfw errors` for its residuals against each feature"
        )


# ---------------------------------------------------------------------------------------------
# scores


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def _ap(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(y, p)) if y.sum() > 0 else float("nan")


def scores(y: np.ndarray, proba: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """AUC, average precision (multiclass: macro one-vs-rest), log loss, Brier, accuracy."""
    k = proba.shape[1]
    positives = [1] if k == 2 else range(k)
    onehot = np.eye(k)[y]  # (n, K)
    brier = np.mean((proba[:, 1] - y) ** 2) if k == 2 else np.mean(np.sum((proba - onehot) ** 2, 1))
    return {
        "AUC": float(np.mean([_auc(y == c, proba[:, c]) for c in positives])),
        "average precision": float(np.mean([_ap(y == c, proba[:, c]) for c in positives])),
        "log loss": float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], EPS, 1)))),
        "Brier": float(brier),
        "accuracy": float(np.mean(labels == y)),
    }


# ---------------------------------------------------------------------------------------------
# figures (each returns the matplotlib Figure, unsaved)


def _curve_figure(ev: Evaluation, kind: str) -> Any:
    from sklearn.metrics import precision_recall_curve, roc_curve

    fig, ax = figure(5.5, 4.8)
    for c in ev.positives():
        colour = _COLOURS[c % len(_COLOURS)]
        for _, _, rows in ev.fits:
            t, p = ev.y[rows] == c, ev.proba[rows, c]
            if 0 < t.sum() < len(t):
                if kind == "roc":
                    x, yy, _ = roc_curve(t, p)
                else:
                    yy, x, _ = precision_recall_curve(t, p)
                ax.plot(x, yy, color=colour, linewidth=THIN, alpha=0.35)
        t, p = ev.y == c, ev.proba[:, c]
        name = ev.classes[c] if not ev.binary else "OOF"
        if kind == "roc":
            x, yy, _ = roc_curve(t, p)
            label = f"{name} (AUC {_auc(t, p):.4f})"
        else:
            yy, x, _ = precision_recall_curve(t, p)
            label = f"{name} (AP {_ap(t, p):.4f})"
        ax.plot(x, yy, color=colour, linewidth=THICK, label=label)
    if kind == "roc":
        ax.plot([0, 1], [0, 1], color="#9aa5b1", linestyle="--", linewidth=1)
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    else:
        ax.set(xlabel="recall", ylabel="precision", title="Precision-recall")
    ax.legend(loc="lower right" if kind == "roc" else "lower left", fontsize=8)
    return fig


def roc_figure(ev: Evaluation) -> Any:
    """ROC: a thin line per fit, a thick one for the OOF (one-vs-rest per class if multiclass)."""
    return _curve_figure(ev, "roc")


def pr_figure(ev: Evaluation) -> Any:
    """Precision-recall, drawn as :func:`roc_figure`."""
    return _curve_figure(ev, "pr")


def confusion_matrix(y: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """(K, K) counts: rows true, columns predicted."""
    return np.bincount(y * k + labels, minlength=k * k).reshape(k, k)


def confusion_figure(cm: np.ndarray, classes: list[str], title: str = "Confusion matrix") -> Any:
    """Counts, with each row's rate (of the true class) below them."""
    k = len(classes)
    rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = figure(1.7 + 0.7 * k, 1.4 + 0.6 * k)
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            colour = "white" if rates[i, j] > 0.5 else "black"
            ax.text(j, i, f"{cm[i, j]}\n{rates[i, j]:.0%}", ha="center", va="center", color=colour)
    ax.set_xticks(range(k), classes)
    ax.set_yticks(range(k), classes)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    return fig


@dataclass
class Reliability:
    """Equal-width bins of a predicted probability: mean prediction, observed rate, count."""

    mean_p: np.ndarray
    freq: np.ndarray
    counts: np.ndarray

    @property
    def ece(self) -> float:
        return float(np.sum(self.counts * np.abs(self.mean_p - self.freq)) / self.counts.sum())


def reliability(conf: np.ndarray, hit: np.ndarray) -> Reliability:
    bins = np.minimum((conf * N_BINS).astype(int), N_BINS - 1)
    used = [i for i in range(N_BINS) if (bins == i).any()]
    return Reliability(
        np.array([conf[bins == i].mean() for i in used]),
        np.array([hit[bins == i].mean() for i in used]),
        np.array([(bins == i).sum() for i in used]),
    )


def reliability_target(ev: Evaluation) -> tuple[np.ndarray, np.ndarray, str]:
    """Binary: P(class 1) against class 1; multiclass: the top probability against a hit."""
    if ev.binary:
        return ev.proba[:, 1], ev.y == 1, f"P({ev.classes[1]})"
    return ev.proba.max(axis=1), ev.proba.argmax(axis=1) == ev.y, "the top-class probability"


def reliability_figure(rel: Reliability, label: str, what: str) -> Any:
    """The reliability curve, each point annotated with its bin's count."""
    fig, ax = figure(5, 4.5)
    ax.plot([0, 1], [0, 1], color="#9aa5b1", linestyle="--", label="perfectly calibrated")
    ax.plot(rel.mean_p, rel.freq, marker="o", color="#3d7ab8", label=label)
    for x, y, n in zip(rel.mean_p, rel.freq, rel.counts, strict=True):
        ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set(xlabel=f"mean predicted {what}", ylabel="observed frequency", title="Reliability")
    ax.legend(fontsize=8)
    return fig


def scores_figure(ev: Evaluation) -> Any:
    """Step histograms of P(class) for rows of that class and the others, a panel per class."""
    from matplotlib.figure import Figure

    shown = ev.positives()
    cols = min(len(shown), 5)
    rows = -(-len(shown) // cols)
    fig = Figure(figsize=(4.2 * cols, 3.6 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes[len(shown) :]:
        ax.set_axis_off()
    edges = np.linspace(0, 1, 26)
    for ax, c in zip(axes, shown, strict=False):
        other = ev.classes[0] if ev.binary else f"not {ev.classes[c]}"
        for rows, name, colour in (
            (ev.y != c, f"true {other}", "#d9822b"),
            (ev.y == c, f"true {ev.classes[c]}", "#3d7ab8"),
        ):
            ax.hist(ev.proba[rows, c], bins=edges, histtype="step", color=colour, label=name)
        if ev.binary:
            ax.axvline(ev.threshold, color="#9aa5b1", linestyle="--", label="threshold")
        ax.set(xlabel=f"predicted P({ev.classes[c]})", ylabel="rows")
        ax.legend(fontsize=8)
    return fig


# ---------------------------------------------------------------------------------------------
# the section


def evaluation(doc: WriteupDoc, *, full: bool = True) -> list[str]:
    """The evaluation section of ``doc.best``; ``full=False`` leaves out the confusion matrix and
    the reliability diagram (the write-up's diagnostics already draw them)."""
    record = doc.best
    if record["task"] not in ("binary", "multiclass") or not record.get("classes"):
        return ["Curves are drawn for classification runs: the residuals are in the diagnostics."]
    ev = load_evaluation(doc.store, record)
    labels = ev.labels()
    oof = scores(ev.y, ev.proba, labels)
    per_fit = [scores(ev.y[r], ev.proba[r], labels[r]) for _, _, r in ev.fits]
    rule = (
        f"class {ev.classes[1]} when P({ev.classes[1]}) ≥ {ev.threshold:.4g}, {ev.threshold_source}"
        if ev.binary
        else "the most probable class (no threshold for multiclass)"
    )
    curves = "P(" + ev.classes[1] + ")" if ev.binary else "each class one-vs-rest"
    repeats = len({r for r, _, _ in ev.fits})
    lines = [
        f"Evaluation of **{record['label']}** (`{record['id']}`) on its {len(ev.y)} validated "
        f"out-of-fold rows and {len(ev.fits)} fits ({repeats} repeat{'s' if repeats > 1 else ''}). Predicted class: {rule}.",
        "",
        *table(
            ["metric", "OOF", "fits: mean", "fits: std"],
            [
                [name, f"{value:.5f}", *_mean_std([s[name] for s in per_fit])]
                for name, value in oof.items()
            ],
            {1, 2, 3},
        ),
        "",
        "AUC and average precision"
        + (" are macro means over classes one-vs-rest" if not ev.binary else "")
        + "; log loss clips probabilities to [1e-15, 1]; Brier is the mean squared distance to "
        "the one-hot truth; accuracy is at the predicted class above.",
        "",
        f"Curves of {curves}: a thin line per fit (its validation rows"
        + (", predictions averaged over the repeats" if repeats > 1 else "")
        + "), the thick line over every out-of-fold row.",
        "",
        image(doc, "roc.png", "ROC curves", roc_figure(ev)),
        "",
        image(doc, "pr.png", "Precision-recall curves", pr_figure(ev)),
        "",
    ]
    if full:
        cm = confusion_matrix(ev.y, labels, len(ev.classes))
        conf, hit, what = reliability_target(ev)
        rel = reliability(conf, hit)
        lines += [
            "Confusion matrix at the predicted class above (rows true, rates of each row):",
            "",
            *table(
                ["true \\ predicted", *ev.classes],
                [[c, *cm[i]] for i, c in enumerate(ev.classes)],
                set(range(1, len(ev.classes) + 1)),
            ),
            "",
            image(doc, "confusion.png", "Confusion matrix", confusion_figure(cm, ev.classes)),
            "",
            f"Reliability of {what} in {N_BINS} equal-width bins (each point's row count beside "
            f"it): expected calibration error {rel.ece:.4f}.",
            "",
            image(
                doc,
                "reliability.png",
                "Reliability",
                reliability_figure(rel, record["label"], what),
            ),
            "",
        ]
    return [
        *lines,
        "Predicted probabilities of each class, for the rows of that class and the others:",
        "",
        image(doc, "scores.png", "Score distributions per class", scores_figure(ev)),
    ]


def _mean_std(values: list[float]) -> list[str]:
    v = np.array(values, float)
    v = v[np.isfinite(v)]
    return [f"{v.mean():.5f}", f"{v.std():.5f}"] if len(v) else ["-", "-"]


def write_evaluation(spec: Competition, kfw_home: Path, run_id: str) -> Path:
    """Write ``reports/<slug>/evaluation/<run id>/``: ``evaluation.md`` and its figures.

    Everything is rendered before the first file is written, so a refused run writes nothing.

    Returns
    -------
    Path
        The folder written.

    Raises
    ------
    KfwError
        For an unknown run, a regression run, or a run without out-of-fold predictions.
    """
    store = RunStore(kfw_home, spec.slug)
    record = dict(store.record(run_id))
    _classification_only(record)
    doc = WriteupDoc(spec, kfw_home, store, [record], [record], None, None)
    lines = [f"# {spec.title}: evaluation of {record['label']}", "", *evaluation(doc)]
    markdown = "\n".join(lines) + "\n"
    folder = kfw_home / "reports" / spec.slug / "evaluation" / record["id"]
    for name, data in doc.images.items():
        files.write_bytes(folder / name, data)
    files.write_text(folder / "evaluation.md", markdown)
    return folder
