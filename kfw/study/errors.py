"""Error analysis of one run: its worst rows, its scores per segment, its residuals.

Everything here reads the run's stored out-of-fold predictions; nothing is refitted.

- **Per-row loss** on the metric's scale: the log loss of the true class (clipped as
  :mod:`kfw.core.metrics` clips) for a classifier; for a regressor the squared error, of
  ``log1p`` values under ``rmsle``, the absolute error under ``mae``. Their mean is the run's
  log loss, its MSE (RMSE squared, RMSLE squared) or its MAE.
- **Nearest training rows** of a worst row: the other rows of ``train.csv`` by
  ``d(a, b)^2 = sum over numeric columns of ((a - b) / sd)^2 + the number of categorical columns
  where a != b``, numeric columns standardised by the training mean and standard deviation, a
  missing numeric cell taken at the mean (0 after standardising), a missing categorical cell a
  value of its own. The row itself is never its own neighbour.
- **Segments** (``--by``): a numeric column with more distinct values than bins is cut into
  quantile bins, otherwise taken by value; values seen fewer than ``min_count`` times are
  grouped as "other", missing cells as "missing". Each segment's score is the run's metric on
  its rows, with a 95% percentile bootstrap interval (its rows resampled with replacement,
  seeded), valid for any metric, AUC included; a resample the metric cannot score (one class
  only) is left out of the percentiles.
- **Residuals** (regression): truth minus prediction on the metric's scale, plotted against
  the features most correlated with them (|Pearson r| for a numeric column, the correlation
  ratio for a categorical one), at most 12 panels, at most 20,000 rows drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kfw import files
from kfw.core.metrics import Metric, get_metric
from kfw.core.noise import encode_labels
from kfw.core.runstore import RunStore
from kfw.errors import KfwError
from kfw.kaggle.data import has_data, load_dataset
from kfw.markdown import render

if TYPE_CHECKING:
    import pandas as pd

    from kfw.core.config import Competition

TEMPLATES = Path(__file__).parent / "templates"
N_BOOT = 500
LEVEL = 0.95
MAX_PANELS = 12
MAX_POINTS = 20_000  # rows drawn in the residual plot
EPS = np.finfo(np.float64).eps  # the clipping of kfw.core.metrics' log loss


@dataclass
class ErrorReport:
    """What :func:`analyse_errors` found.

    Attributes
    ----------
    run_id, metric : str
    score : float
        The metric on every row with a prediction.
    worst : DataFrame
        The worst rows: id, target, prediction, loss, the raw features, and for each of the
        ``k`` neighbours ``nn<j>_id``, ``nn<j>_target``, ``nn<j>_distance``.
    segments : dict of str to DataFrame
        Per ``--by`` column: ``segment``, ``rows``, ``score``, ``low``, ``high``, ``diff``
        (score minus the overall score), worst segment first.
    residuals : DataFrame or None
        Regression only: the features and the residuals, for :func:`plot_residuals`.
    """

    run_id: str
    model: str
    metric: str
    score: float
    n_rows: int
    k: int
    loss_note: str
    worst: pd.DataFrame
    segments: dict[str, pd.DataFrame] = field(default_factory=dict)
    binning: dict[str, str] = field(default_factory=dict)
    residuals: pd.DataFrame | None = None


# ---------------------------------------------------------------------------------------------
# per-row losses


def loss_note(task: str, metric: str) -> str:
    if task != "regression":
        return "the log loss of the true class"
    return {
        "rmsle": "the squared error of log1p values (their mean is the RMSLE squared)",
        "mae": "the absolute error (their mean is the MAE)",
    }.get(metric, "the squared error (their mean is the MSE)")


def metric_scale(metric: str, values: np.ndarray) -> np.ndarray:
    """Values on the scale the metric measures errors on (log1p for rmsle)."""
    return np.log1p(values) if metric == "rmsle" else np.asarray(values, dtype=float)


def row_losses(y: np.ndarray, pred: np.ndarray, task: str, metric: str) -> np.ndarray:
    """Each row's loss; ``y`` as class codes 0..K-1 for a classifier.

    Parameters
    ----------
    y : ndarray of shape (n,)
    pred : ndarray of shape (n,) (binary: P(class 1); regression: values) or (n, K)
    task, metric : str

    Returns
    -------
    ndarray of shape (n,)
    """
    if task == "binary":
        p_true = np.where(y.astype(int) == 1, pred, 1.0 - pred)
        return -np.log(np.clip(p_true, EPS, 1 - EPS))
    if task == "multiclass":
        p_true = pred[np.arange(len(y)), y.astype(int)]  # (n,)
        return -np.log(np.clip(p_true, EPS, 1 - EPS))
    residual = metric_scale(metric, y) - metric_scale(metric, pred)
    return np.abs(residual) if metric == "mae" else residual**2


# ---------------------------------------------------------------------------------------------
# nearest training rows


def _is_numeric(series: pd.Series) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def distance_parts(features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The standardised numeric matrix (missing at 0) and the categorical codes (missing: -1)."""
    numeric = [c for c in features.columns if _is_numeric(features[c])]
    z = features[numeric].to_numpy(float)  # (n, n_numeric)
    sd = np.nanstd(z, axis=0) if len(z) else np.ones(len(numeric))
    z = (z - np.nanmean(z, axis=0)) / np.where(sd > 0, sd, 1.0)
    z = np.nan_to_num(z, nan=0.0)
    cats = [c for c in features.columns if c not in numeric]
    codes = (
        np.stack([features[c].astype("category").cat.codes.to_numpy() for c in cats], axis=1)
        if cats
        else np.zeros((len(features), 0), dtype=int)
    )  # (n, n_categorical)
    return z, codes


def nearest_rows(features: pd.DataFrame, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest other rows of each of ``rows`` (positions in ``features``).

    Returns
    -------
    index : ndarray of shape (len(rows), k)
        Positions of the neighbours, nearest first (ties to the earlier row).
    distance : ndarray of shape (len(rows), k)
    """
    z, codes = distance_parts(features)
    k = min(k, len(features) - 1)
    index = np.zeros((len(rows), k), dtype=np.int64)
    distance = np.zeros((len(rows), k))
    for i, r in enumerate(rows):  # one row at a time: memory (n, n_columns), not (m, n, ...)
        d2 = ((z - z[r]) ** 2).sum(axis=1) + (codes != codes[r]).sum(axis=1)  # (n,)
        d2[r] = np.inf  # never its own neighbour
        index[i] = np.argsort(d2, kind="stable")[:k]
        distance[i] = np.sqrt(d2[index[i]])
    return index, distance


# ---------------------------------------------------------------------------------------------
# segments


def segment_labels(
    values: pd.Series, n_bins: int = 5, min_count: int = 20
) -> tuple[pd.Series, str]:
    """Each row's segment (strings), and one sentence saying how they were made."""
    import pandas as pd

    if _is_numeric(values) and values.nunique() > n_bins:
        codes, edges = pd.qcut(values, q=n_bins, labels=False, retbins=True, duplicates="drop")
        names = [
            f"{'[' if i == 0 else '('}{edges[i]:.4g}, {edges[i + 1]:.4g}]"
            for i in range(len(edges) - 1)
        ]
        labels = pd.Series(
            [names[int(c)] if c == c else "missing" for c in codes], index=values.index
        )
        return labels, f"Numeric: cut into {len(names)} quantile bins."
    labels = values.astype(str).where(values.notna(), "missing")
    counts = labels.value_counts()
    rare = counts.index[counts < min_count]
    labels = labels.where(~labels.isin(rare), "other")
    note = f"By value; values on fewer than {min_count} rows grouped as `other`."
    return labels, note


def _named(metric: Metric) -> str:
    """The metric's name, with its threshold when it is not the default 0.5 (``f1@0.302``)."""
    t = metric.threshold
    return metric.name if t is None or t == 0.5 else f"{metric.name}@{t:.3f}"


def _score(metric: Metric, y: np.ndarray, pred: np.ndarray) -> float:
    try:
        return float(metric(y, pred))
    except ValueError:
        # a sample the metric cannot score (AUC of one class): no value, left out
        return float("nan")


def bootstrap_interval(
    metric: Metric, y: np.ndarray, pred: np.ndarray, n_boot: int = N_BOOT, seed: int = 0
) -> tuple[float, float]:
    """The 95% percentile bootstrap interval of ``metric`` over the rows of ``y``."""
    rng = np.random.default_rng(seed)
    n = len(y)
    scores = np.empty(n_boot)
    for b in range(n_boot):
        i = rng.integers(0, n, n)
        scores[b] = _score(metric, y[i], pred[i])
    scores = scores[np.isfinite(scores)]
    if len(scores) == 0:
        return float("nan"), float("nan")
    tail = (1 - LEVEL) / 2 * 100
    return float(np.percentile(scores, tail)), float(np.percentile(scores, 100 - tail))


def segment_table(
    labels: pd.Series,
    y: np.ndarray,
    pred: np.ndarray,
    metric: Metric,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> pd.DataFrame:
    """Per segment: ``segment``, ``rows``, ``score``, ``low``, ``high``, ``diff``; worst first."""
    import pandas as pd

    overall = _score(metric, y, pred)
    out = []
    for value in sorted(labels.unique(), key=str):
        rows = np.flatnonzero(labels.to_numpy() == value)
        score = _score(metric, y[rows], pred[rows])
        low, high = bootstrap_interval(metric, y[rows], pred[rows], n_boot, seed)
        out.append((value, len(rows), score, low, high, score - overall))
    frame = pd.DataFrame(out, columns=["segment", "rows", "score", "low", "high", "diff"])
    # worst first: the lowest score when greater is better; unscorable segments last
    key = frame["score"] * (1 if metric.greater_is_better else -1)
    return frame.iloc[np.argsort(key.fillna(np.inf).to_numpy(), kind="stable")].reset_index(
        drop=True
    )


# ---------------------------------------------------------------------------------------------
# residuals


def residual_strength(values: pd.Series, residual: np.ndarray) -> float:
    """|Pearson r| for a numeric column, the correlation ratio for a categorical one."""
    ok = values.notna().to_numpy()
    if ok.sum() < 3 or np.std(residual[ok]) == 0:
        return 0.0
    r = residual[ok]
    if _is_numeric(values):
        x = values.to_numpy(float)[ok]
        return 0.0 if np.std(x) == 0 else float(abs(np.corrcoef(x, r)[0, 1]))
    groups = values[ok].astype(str).to_numpy()
    between = sum(
        (groups == g).sum() * (r[groups == g].mean() - r.mean()) ** 2 for g in np.unique(groups)
    )
    return float(np.sqrt(between / ((r - r.mean()) ** 2).sum()))


def plot_residuals(frame: pd.DataFrame, path: Path, max_panels: int = MAX_PANELS) -> Path:
    """A grid of residual-against-feature scatters; ``frame`` has a ``residual`` column."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if len(frame) > MAX_POINTS:  # a readable scatter; the strengths barely move
        frame = frame.sample(MAX_POINTS, random_state=0)
    residual = frame["residual"].to_numpy(float)
    features = frame.drop(columns=["residual"])
    strength = {c: residual_strength(features[c], residual) for c in features.columns}
    chosen = sorted(strength, key=lambda c: -strength[c])[:max_panels]
    cols = min(3, max(1, len(chosen)))
    nrows = max(1, -(-len(chosen) // cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3 * nrows), squeeze=False)
    for ax, col in zip(axes.flat, chosen, strict=False):
        values = features[col]
        if _is_numeric(values):
            ax.scatter(values.to_numpy(float), residual, s=6, alpha=0.5)
        else:
            codes = values.astype("category")
            ax.scatter(codes.cat.codes.to_numpy(), residual, s=6, alpha=0.5)
            names = [str(c) for c in codes.cat.categories]
            ax.set_xticks(range(len(names)), names[:30] if len(names) <= 30 else [""] * len(names))
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_title(f"{col} (strength {strength[col]:.2f})", fontsize=9)
    for ax in list(axes.flat)[len(chosen) :]:
        ax.axis("off")
    fig.supylabel("residual (truth - prediction)")
    fig.tight_layout()
    try:
        files.write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90), ".png")
    finally:
        plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------
# one run


def analyse_errors(
    spec: Competition,
    kfw_home: Path,
    run_id: str,
    by: list[str] | None = None,
    top: int = 10,
    k: int = 3,
    n_bins: int = 5,
    min_count: int = 20,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> ErrorReport:
    """Analyse the errors of run ``run_id``; raises :class:`KfwError` on bad input, writes nothing.

    Parameters
    ----------
    spec : Competition
    kfw_home : Path
    run_id : str
    by : list of str, optional
        Columns of ``train.csv`` to score the run by segment.
    top, k : int
        How many worst rows; how many nearest training rows for each.
    n_bins, min_count : int
        Quantile bins of a numeric ``by`` column; the fewest rows a value keeps its own segment.
    n_boot, seed : int
        Bootstrap resamples of each segment's interval, and their seed.
    """
    import pandas as pd

    by = list(by or [])
    if top < 1:
        raise KfwError(f"--top must be at least 1, got {top}")
    if k < 0:
        raise KfwError(f"--neighbours must be at least 0, got {k}")
    store = RunStore(kfw_home, spec.slug)
    record = store.record(run_id)
    if spec.multi_target:
        raise KfwError(f"{spec.slug} has several targets: kfw errors handles one")
    if not has_data(spec, kfw_home):
        raise KfwError(f"no data for {spec.slug!r}: run `kfw data download {spec.slug}`")
    train = load_dataset(spec, kfw_home).train
    missing = [c for c in by if c not in train.columns]
    if missing:
        raise KfwError(
            f"--by {missing[0]!r}: no such column in train (has: {', '.join(train.columns)})"
        )

    y_raw, pred, _ = store.predictions(run_id)
    ids = store.frame(run_id, "oof.parquet").iloc[:, 0].to_numpy()
    metric = get_metric(record["metric"])
    task = record["task"]
    if record.get("threshold") is not None and metric.uses_threshold and task == "binary":
        # a run with tuned thresholds: its segments are scored at the threshold its test set got
        metric = metric.at_threshold(record["threshold"])
    # rows of train.csv with a prediction, in train's order (extra training rows left out)
    position = pd.Series(np.arange(len(ids)), index=ids)
    at = position.reindex(train[spec.id].to_numpy()).to_numpy()
    keep = ~np.isnan(at)
    at = at[keep].astype(int)
    finite = np.isfinite(pred[at]).reshape(len(at), -1).all(axis=1)
    rows = np.flatnonzero(keep)[finite]  # positions in train
    at = at[finite]
    if len(rows) == 0:
        raise KfwError(f"run {run_id} has no out-of-fold predictions for rows of train")
    y = encode_labels(y_raw[at], record.get("classes")) if task != "regression" else y_raw[at]
    y = np.asarray(y, dtype=float if task == "regression" else np.int64)
    p = pred[at]
    losses = row_losses(y, p, task, metric.name)
    score = float(metric(y, p))

    features = train.drop(columns=[spec.id, *spec.targets])
    order = np.argsort(-losses, kind="stable")[:top]
    worst = pd.DataFrame({spec.id: train[spec.id].to_numpy()[rows[order]]})
    worst["target"] = y_raw[at][order]
    classes = record.get("classes")
    if task == "multiclass":
        labels = np.asarray(classes if classes is not None else range(p.shape[1]), dtype=object)
        worst["prediction"] = labels[p[order].argmax(axis=1)]
        worst["p_true"] = p[order, y[order]]
    else:
        worst["prediction"] = p[order]
    worst["loss"] = losses[order]
    worst = pd.concat([worst, features.iloc[rows[order]].reset_index(drop=True)], axis=1)
    if k > 0:
        index, distance = nearest_rows(features, rows[order], k)
        for j in range(index.shape[1]):
            worst[f"nn{j + 1}_id"] = train[spec.id].to_numpy()[index[:, j]]
            worst[f"nn{j + 1}_target"] = train[spec.targets[0]].to_numpy()[index[:, j]]
            worst[f"nn{j + 1}_distance"] = distance[:, j]

    report = ErrorReport(
        run_id, record.get("model") or record.get("label", ""), _named(metric), score, len(rows),
        k, loss_note(task, metric.name), worst,
    )  # fmt: skip
    for col in by:
        labels_, note = segment_labels(
            train[col].iloc[rows].reset_index(drop=True), n_bins, min_count
        )
        report.segments[col] = segment_table(labels_, y, p, metric, n_boot, seed)
        report.binning[col] = note
    if task == "regression":
        report.residuals = (
            features.iloc[rows]
            .reset_index(drop=True)
            .assign(residual=metric_scale(metric.name, y) - metric_scale(metric.name, p))
        )
    return report


# ---------------------------------------------------------------------------------------------
# writing


def cell(value: Any) -> str:
    """A table cell: floats to 4 significant digits, NaN empty, pipes escaped."""
    if isinstance(value, float | np.floating):
        return "" if np.isnan(value) else f"{value:.4g}"
    return str(value).replace("|", "\\|")


def markdown_table(frame: pd.DataFrame) -> str:
    head = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def errors_markdown(report: ErrorReport, seed: int = 0, n_boot: int = N_BOOT) -> str:
    """The errors section of a write-up, from the templates beside this module."""
    segments = "".join(
        render(
            TEMPLATES / "errors-segment.md",
            column=col,
            binning=report.binning[col],
            metric=report.metric,
            n_boot=n_boot,
            seed=seed,
            score=f"{report.score:.5g}",
            table=markdown_table(table),
        )
        for col, table in report.segments.items()
    )
    residuals = (
        "### Residuals\n\n![residuals against the features](residuals.png)\n"
        if report.residuals is not None
        else ""
    )
    return render(
        TEMPLATES / "errors.md",
        run=report.run_id,
        model=report.model,
        metric=report.metric,
        score=f"{report.score:.5g}",
        n_rows=report.n_rows,
        loss_note=report.loss_note,
        n_top=len(report.worst),
        k=report.k,
        worst=markdown_table(report.worst),
        segments=segments,
        residuals=residuals,
    )


def write_errors(
    report: ErrorReport, folder: Path, seed: int = 0, n_boot: int = N_BOOT
) -> list[Path]:
    """Write worst.csv, segments-<col>.csv, residuals.png (regression) and errors.md."""
    folder.mkdir(parents=True, exist_ok=True)
    out = [
        files.write_with(
            folder / "worst.csv", lambda tmp: report.worst.to_csv(tmp, index=False), ".csv"
        )
    ]
    for col, table in report.segments.items():
        out.append(
            files.write_with(
                folder / f"segments-{col}.csv",
                lambda tmp, t=table: t.to_csv(tmp, index=False),
                ".csv",
            )
        )
    if report.residuals is not None:
        out.append(plot_residuals(report.residuals, folder / "residuals.png"))
    out.append(files.write_text(folder / "errors.md", errors_markdown(report, seed, n_boot)))
    return out
