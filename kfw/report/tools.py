"""The write-up's "Thresholds, calibration, learning curve and errors" section.

Read, never refitted: the threshold and calibration numbers come from the run records of the
write-up's runs (the latest run of each label on the current data, ``WriteupDoc.runs``), the
learning curve from the latest ``reports/<slug>/curves/*/curves.json`` and its ``curves.png``,
the worst rows from ``reports/<slug>/errors/<run id>/errors.md`` (the best run's, else the
first of the write-up's runs that has one, else the newest). A missing piece is one sentence
with the command that makes it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from kfw.core.calibration import calibration_means
from kfw.markdown import render
from kfw.report.doc import WriteupDoc, table
from kfw.report.sections import TEMPLATES

CURVE_FIGURE = "learning-curve.png"  # names inside the write-up's folder
RESIDUALS_FIGURE = "errors-residuals.png"


def _prose(template: str, **values: Any) -> list[str]:
    return render(TEMPLATES / f"tools-{template}.md", **values).rstrip("\n").split("\n")


def _score(value: Any) -> str:
    return f"{value:.5f}" if isinstance(value, int | float) and np.isfinite(value) else "-"


def evaluation_tools(doc: WriteupDoc) -> list[str]:
    """The four sub-sections: threshold, calibration, learning curve, worst rows."""
    return [*thresholds(doc), "", *calibration(doc), "", *learning_curve(doc), "", *worst_rows(doc)]


def thresholds(doc: WriteupDoc) -> list[str]:
    """CV at 0.5 against CV with the threshold tuned in the folds, per run that tuned."""
    tuned = [r for r in doc.runs if r.get("threshold_mode") == "tune"]
    if not tuned:
        return _prose("threshold-none", slug=doc.spec.slug)
    rows = []
    for r in tuned:
        fits = r.get("fold_scores") or []
        folds = [f["threshold"] for f in fits if f.get("threshold") is not None]
        span = f"{min(folds):.3f}–{max(folds):.3f}" if folds else "-"
        test = f"{r['threshold']:.3f}" if r.get("threshold") is not None else "-"
        oof = (
            f"{_score(r['score_oof_tuned'])} at {r['oof_threshold']:.3f} (optimistic)"
            if r.get("score_oof_tuned") is not None and r.get("oof_threshold") is not None
            else "-"
        )
        at_default = _score(r.get("score_at_default_threshold"))
        rows.append([r["label"], at_default, _score(r["score"]), span, test, oof])
    metric = tuned[0]["metric"]
    header = [
        "run",
        f"CV {metric} at 0.5",
        f"CV {metric}, tuned in the folds",
        "fold thresholds",
        "test threshold",
        "tuned on the OOF itself (optimistic)",
    ]
    return _prose("threshold", table="\n".join(table(header, rows, {1, 2, 3, 4, 5})))


def calibration(doc: WriteupDoc) -> list[str]:
    """Mean ECE and Brier before -> after, per calibrated run."""
    calibrated = [r for r in doc.runs if r.get("calibration", "none") != "none"]
    if not calibrated:
        return _prose("calibration-none", slug=doc.spec.slug)
    rows, n_folds = [], set()
    for r in calibrated:
        mean = calibration_means(r)
        n_folds.add(len(r.get("fold_scores") or []))
        if mean is None:
            rows.append([r["label"], r["calibration"], "-", "-"])
            continue
        rows.append([
            r["label"],
            r["calibration"],
            f"{mean['ece_before']:.4f} → {mean['ece_after']:.4f}",
            f"{mean['brier_before']:.4f} → {mean['brier_after']:.4f}",
        ])  # fmt: skip
    what = f"{n_folds.pop()} folds" if len(n_folds) == 1 else "folds of each run"
    header = ["run", "method", "ECE before → after", "Brier before → after"]
    return _prose("calibration", what=what, table="\n".join(table(header, rows, {2, 3})))


def _latest_curves(root: Path) -> tuple[Path, dict[str, Any]] | None:
    found = []
    for path in root.glob("*/curves.json"):
        try:
            found.append((path.parent, json.loads(path.read_text())))
        except (OSError, ValueError):
            continue  # a half-written or foreign file is not a curve: the others still are
    if not found:
        return None
    return max(found, key=lambda f: (f[1].get("finished", ""), f[0].name))


def learning_curve(doc: WriteupDoc) -> list[str]:
    """The latest ``kfw curves`` of the competition: its points, verdict and figure."""
    latest = _latest_curves(doc.home / "reports" / doc.spec.slug / "curves")
    if latest is None:
        models = [r["label"] for r in doc.runs if r["kind"] != "ensemble"]
        return _prose("curve-none", slug=doc.spec.slug, model=models[0] if models else "MODEL")
    folder, data = latest
    learning = data["kind"] == "learning"
    rows = [
        [
            p["x"],
            int(p["n_train"]),
            f"{p['train_mean']:.4f} ± {p['train_std']:.4f}",
            f"{p['valid_mean']:.4f} ± {p['valid_std']:.4f}",
            p["reading"],
        ]
        for p in data["points"]
    ]
    header = [data["param"] or "size", "rows fitted", "training", "validation", "reading"]
    lines = _prose(
        "curve",
        kind="learning curve" if learning else f"validation curve of `{data['param']}`",
        label=data["label"],
        finished=data.get("finished", "-"),
        metric=data["metric"],
        direction="higher is better" if data["greater_is_better"] else "lower is better",
        fits=data["folds"]["fits"],
        folds=data["folds"]["name"],
        command=data["command"],
        table="\n".join(table(header, rows, {1, 2, 3})),
        verdict=data["verdict"],
    )
    png = folder / "curves.png"
    if png.is_file():
        doc.images[CURVE_FIGURE] = png.read_bytes()
        lines += ["", f"![{data['label']}: training and validation scores]({CURVE_FIGURE})"]
    return lines


def _errors_file(doc: WriteupDoc) -> tuple[dict[str, Any] | None, Path] | None:
    root = doc.home / "reports" / doc.spec.slug / "errors"
    for r in doc.runs:  # best first
        if (root / r["id"] / "errors.md").is_file():
            return r, root / r["id"] / "errors.md"
    others = sorted(root.glob("*/errors.md"), key=lambda p: p.stat().st_mtime)
    return (None, others[-1]) if others else None


def worst_rows(doc: WriteupDoc) -> list[str]:
    """The worst rows and segment tables of ``kfw errors``, its headings one level down."""
    found = _errors_file(doc)
    if found is None:
        return _prose("errors-none", slug=doc.spec.slug, run=doc.best["id"])
    record, path = found
    lines = path.read_text(encoding="utf-8").rstrip("\n").split("\n")
    if lines and lines[0].startswith("## "):  # its own title: the sub-section's heading instead
        lines = lines[1:]
    body = []
    for line in lines:
        if line.startswith("### Residuals"):
            break  # the residual plot follows: embedded below when it is on disk
        body.append(re.sub(r"^(#{2,5}) ", r"#\1 ", line))
    residuals = path.parent / "residuals.png"
    if residuals.is_file():
        doc.images[RESIDUALS_FIGURE] = residuals.read_bytes()
        body += ["#### Residuals", "", f"![Residuals against the features]({RESIDUALS_FIGURE})"]
    label = record["label"] if record else f"run `{path.parent.name}`"
    relative = path.relative_to(doc.home).as_posix()
    return _prose("errors", label=label, path=relative, body="\n".join(body).strip("\n"))
