"""Out-of-fold diagnostics of the best run, and its feature importance."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from kfw.core.runstore import frame_prediction

if TYPE_CHECKING:
    import pandas as pd

from kfw.report.doc import TOP_FEATURES, WriteupDoc, figure, image, table
from kfw.report.evaluation import (
    N_BINS,
    confusion_figure,
    confusion_matrix,
    load_evaluation,
    reliability,
    reliability_figure,
    reliability_target,
)


def diagnostics(doc: WriteupDoc) -> list[str]:
    b = doc.best
    frame = doc.store.frame(b["id"], "oof.parquet")
    folds = frame[[c for c in frame.columns if c.startswith("fold_")]].to_numpy()
    pred = frame_prediction(frame)
    keep = (folds >= 0).any(axis=1) & ~np.isnan(pred.reshape(len(frame), -1)).any(axis=1)
    frame, pred = frame[keep].reset_index(drop=True), pred[keep]
    lines = [
        f"Out-of-fold predictions of the best run, **{b['label']}** (`{b['id']}`), {len(frame)} rows."
    ]
    if b["task"] == "regression":
        return lines + _residuals(doc, frame, pred)
    return lines + _classification(doc)


def _residuals(doc: WriteupDoc, frame: pd.DataFrame, pred: np.ndarray) -> list[str]:
    y = frame["target"].to_numpy(float)
    log = doc.best.get("target_transform") == "log1p" or doc.best["metric"] == "rmsle"
    t, p = (np.log1p(y), np.log1p(np.clip(pred, 0, None))) if log else (y, pred)
    res = t - p
    # rows the feature module keeps out of every fit: scored in the headline, told apart here
    out = frame.iloc[:, 0].isin(doc.best.get("excluded_ids") or []).to_numpy()
    scale = "log1p scale, the one the metric scores" if log else "target scale"
    text = f"Residuals on the {scale}: mean {res.mean():+.5f} (bias), RMS {_rms(res)}"
    if out.any():
        text += f"; without the {out.sum()} excluded rows (orange) RMS {_rms(res[~out])}"
    fig, ax = figure(7, 4.5)
    ax.scatter(p[~out], res[~out], s=8, alpha=0.5, color="#3d7ab8")
    if out.any():
        ax.scatter(p[out], res[out], s=30, marker="x", color="#d9822b", label="excluded rows")
        ax.legend()
    ax.axhline(0, color="#9aa5b1")
    ax.set(xlabel="prediction", ylabel="target - prediction", title=f"Residuals ({scale})")
    worst = np.argsort(-np.abs(res))[:5]
    header = [doc.spec.id, "target", "prediction", "residual"] + (["excluded"] if out.any() else [])
    rows = [
        [frame.iloc[i, 0], f"{y[i]:.6g}", f"{pred[i]:.6g}", f"{res[i]:+.4f}"]
        + (["yes" if out[i] else ""] if out.any() else [])
        for i in worst
    ]
    return [
        text + ".",
        "",
        image(doc, "residuals.png", "Residuals against prediction", fig),
        "",
        "Largest misses:",
        "",
        *table(header, rows, {1, 2, 3}),
    ]


def _rms(values: np.ndarray) -> str:
    return f"{np.sqrt(np.mean(values**2)):.5f}"


def _classification(doc: WriteupDoc) -> list[str]:
    ev = load_evaluation(doc.store, doc.best)  # the same validated rows as the caller's
    y, classes, threshold, source = ev.y, ev.classes, ev.threshold, ev.threshold_source
    label = ev.labels()
    k = len(classes)
    cm = confusion_matrix(y, label, k)  # rows true, columns predicted
    rule = (
        f"class {classes[1]} when its probability is ≥ {threshold:.4g} ({source})"
        if k == 2
        else "the most probable one"
    )
    lines = [
        f"Predicted class: {rule}; accuracy {np.mean(label == y):.4f}.",
        "",
        *table(
            ["true \\ predicted", *classes],
            [[c, *cm[i]] for i, c in enumerate(classes)],
            set(range(1, k + 1)),
        ),
        "",
        image(doc, "confusion.png", "Confusion matrix", confusion_figure(cm, classes)),
    ]
    conf, hit, what = reliability_target(ev)
    rel = reliability(conf, hit)
    fig = reliability_figure(rel, doc.best["label"], what)
    return [
        *lines,
        "",
        f"Calibration of {what} in {N_BINS} equal-width bins (each point's row count beside it): "
        f"expected calibration error {rel.ece:.4f} (the count-weighted gap between predicted and "
        "observed).",
        "",
        image(doc, "calibration.png", "Reliability curve", fig),
    ]


def importance(doc: WriteupDoc) -> list[str]:
    run = next(
        (r for r in doc.runs if (doc.store.root / r["id"] / "importance.csv").is_file()), None
    )
    if run is None:
        return ["No run on the current data recorded feature importances."]
    import pandas as pd

    frame = pd.read_csv(doc.store.root / run["id"] / "importance.csv", index_col=0)
    imp, fits = frame["mean"], frame.shape[1] - 1
    top = imp.sort_values(ascending=False).head(TOP_FEATURES)
    fig, ax = figure(7, 0.3 * len(top) + 1.2)
    ax.barh(range(len(top))[::-1], top.to_numpy(), color="#3d7ab8")
    ax.set_yticks(range(len(top))[::-1], [str(i) for i in top.index])
    ax.set(xlabel="importance (mean over fits)", title=f"Top features of {run['label']}")
    total = imp.clip(lower=0).sum()
    return [
        f"Importances of **{run['label']}** (`{run['id']}`, the best run that records them), as "
        f"its model reports them (split gain or impurity decrease for trees), averaged over {fits} fits; "
        f"top {len(top)} of {len(imp)}.",
        "",
        *table(
            ["feature", "importance", "share"],
            [
                [f"`{n}`", f"{v:.4g}", f"{v / total:.1%}" if total > 0 else "-"]
                for n, v in top.items()
            ],
            {1, 2},
        ),
        "",
        image(doc, "importance.png", "Feature importance", fig),
    ]
