"""Out-of-fold diagnostics of the best run, and its feature importance."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from kfw.core.runstore import frame_prediction

if TYPE_CHECKING:
    import pandas as pd

from kfw.report.doc import TOP_FEATURES, WriteupDoc, figure, image, table


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
    return lines + _classification(doc, frame, pred)


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


def _classification(doc: WriteupDoc, frame: pd.DataFrame, pred: np.ndarray) -> list[str]:
    import pandas as pd

    classes = [str(c) for c in doc.best["classes"]]
    y = pd.Categorical(frame["target"].astype(str), categories=classes).codes
    proba = np.c_[1 - pred, pred] if pred.ndim == 1 else pred  # (n, K)
    # the metrics' rule: binary p >= 0.5, multiclass argmax (ties to the lowest class)
    label = (pred >= 0.5).astype(int) if pred.ndim == 1 else proba.argmax(axis=1)
    k = len(classes)
    cm = np.bincount(y * k + label, minlength=k * k).reshape(k, k)  # rows true, columns predicted
    fig, ax = figure(1.5 + 0.5 * k, 1.2 + 0.5 * k)
    ax.imshow(cm, cmap="Blues")
    for i in range(k):
        for j in range(k):
            colour = "white" if cm[i, j] > cm.max() / 2 else "black"
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color=colour)
    ax.set_xticks(range(k), classes)
    ax.set_yticks(range(k), classes)
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix")
    lines = [
        "Predicted class: the most probable one (binary: probability ≥ 0.5); accuracy "
        f"{np.mean(label == y):.4f}.",
        "",
        *table(
            ["true \\ predicted", *classes],
            [[c, *cm[i]] for i, c in enumerate(classes)],
            set(range(1, k + 1)),
        ),
        "",
        image(doc, "confusion.png", "Confusion matrix", fig),
    ]
    # reliability: binary the positive class's probability; multiclass the top class's
    conf, hit = (proba[:, 1], y == 1) if k == 2 else (proba.max(axis=1), label == y)
    bins = np.minimum((conf * 10).astype(int), 9)
    used = [i for i in range(10) if (bins == i).any()]
    mean_p = np.array([conf[bins == i].mean() for i in used])
    freq = np.array([hit[bins == i].mean() for i in used])
    counts = np.array([(bins == i).sum() for i in used])
    ece = float(np.sum(counts * np.abs(mean_p - freq)) / len(conf))
    fig, ax = figure(5, 4.5)
    ax.plot([0, 1], [0, 1], color="#9aa5b1", linestyle="--", label="perfectly calibrated")
    ax.plot(mean_p, freq, marker="o", color="#3d7ab8", label=doc.best["label"])
    what = f"P({classes[1]})" if k == 2 else "the top-class probability"
    ax.set(xlabel=f"mean predicted {what}", ylabel="observed frequency", title="Reliability")
    ax.legend()
    return [
        *lines,
        "",
        f"Calibration of {what} in ten equal-width bins: expected calibration error "
        f"{ece:.4f} (the count-weighted gap between predicted and observed).",
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
