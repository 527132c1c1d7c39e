"""What the write-up sections share: the document state and the markdown and chart helpers."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kfw.core.config import Competition
from kfw.core.runstore import RunStore

if TYPE_CHECKING:
    pass

SECTIONS = (
    "Summary",
    "Task and data",
    "Validation",
    "Features",
    "Models",
    "Bake-off",
    "Ensemble",
    "CV and leaderboard",
    "Out-of-fold diagnostics",
    "Evaluation",
    "Thresholds, calibration, learning curve and errors",
    "Feature importance",
    "Reproducibility",
)
TOP_FEATURES = 20
TOP_DRIFT = 10

_SOURCES = {
    "kaggle": "Kaggle's files, downloaded through the Kaggle API.",
    "import": "Kaggle's files, imported from a download (`kfw data import`).",
    "open": (
        "**the embedded open copy, not Kaggle's files**: rebuilt offline from the public data "
        "Kaggle's files come from, in Kaggle's file format, with kfw's own train / test split. "
        "Its CV is not the CV of Kaggle's files, and its leaderboard is the local one over the "
        "held-out labels."
    ),
}

_UNKNOWN_SOURCE = (
    "unknown: the data folder has no `.source` marker saying where the files came from."
)


@dataclass
class Writeup:
    """Where the write-up went: the markdown, the HTML and the charts beside them."""

    markdown: Path
    html: Path
    images: list[Path]
    best_run: str


@dataclass
class WriteupDoc:
    """What the sections share while the write-up is rendered."""

    spec: Competition
    home: Path
    store: RunStore
    runs: list[dict[str, Any]]  # the latest run of each label on the current data, best first
    all_runs: list[dict[str, Any]]
    dataset: Any  # kfw.kaggle.data.Dataset, or None when the data files are absent
    design: Any  # kfw.pipeline.runs.Design, or None
    images: dict[str, bytes] = field(default_factory=dict)

    @property
    def best(self) -> dict[str, Any]:
        return self.runs[0]


# ---------------------------------------------------------------------------------------------
# markdown helpers


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(header: list[str], rows: list[list[Any]], numeric: set[int] | None = None) -> list[str]:
    """A pipe table; columns in ``numeric`` are right-aligned."""
    numeric = numeric or set()
    align = ["---:" if j in numeric else "---" for j in range(len(header))]
    out = ["| " + " | ".join(_cell(h) for h in header) + " |", "| " + " | ".join(align) + " |"]
    out += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return out


def _f(value: float | None, digits: int = 5) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _direction(record: dict[str, Any]) -> str:
    return "higher is better" if record["greater_is_better"] else "lower is better"


def image(doc: WriteupDoc, name: str, alt: str, fig: Any) -> str:
    """Render a matplotlib figure to PNG bytes (Agg, no global backend switch)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    doc.images[name] = buf.getvalue()
    return f"![{alt}]({name})"


def figure(width: float, height: float, ncols: int = 1) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(1, ncols)
