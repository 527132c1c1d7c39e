"""``kfw report COMP RUN``: the curves equal scikit-learn's on the stored out-of-fold frame, one
thin line per fit and a thick one for the OOF, the confusion at the chosen threshold, valid PNGs,
and bad inputs refused in one line with nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)
from typer.testing import CliRunner

from kfw.cli import main
from kfw.cli.app import app
from kfw.core.runstore import RunStore
from kfw.report.evaluation import (
    FIGURES,
    THICK,
    THIN,
    chosen_threshold,
    load_evaluation,
    pr_figure,
    roc_figure,
    scores,
)
from tests.synth import make_competition

N_SPLITS = 4  # make_competition's folds


def _cv(root: Path, task: str, model: str) -> Path:
    make_competition(root, task=task, models=(model,))
    result = CliRunner().invoke(app, ["--home", str(root), "cv", "synth", "--threads", "1"])
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _cv(tmp_path_factory.mktemp("binary"), "binary", "logreg")


@pytest.fixture(scope="module")
def multiclass(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _cv(tmp_path_factory.mktemp("multiclass"), "multiclass", "logreg")


def _copy(src: Path, tmp_path: Path) -> Path:
    shutil.copytree(src, tmp_path / "home")
    return tmp_path / "home"


def _record(home: Path) -> dict:
    (path,) = (home / "runs" / "synth").glob("*/run.json")
    return json.loads(path.read_text())


def _oof(home: Path, record: dict) -> pd.DataFrame:
    return pd.read_parquet(home / "runs" / "synth" / record["id"] / "oof.parquet")


def _lines(fig) -> tuple[list, list]:
    """(thin, thick) curve lines of the figure's one axes."""
    lines = fig.axes[0].get_lines()
    return [ln for ln in lines if ln.get_linewidth() == THIN], [
        ln for ln in lines if ln.get_linewidth() == THICK
    ]


def test_binary_curves_equal_sklearns_per_fit_and_oof(binary: Path) -> None:
    record = _record(binary)
    oof = _oof(binary, record)
    y, p = (oof["target"] == 1).to_numpy(), oof["pred"].to_numpy()
    ev = load_evaluation(RunStore(binary, "synth"), record)
    assert len(ev.fits) == N_SPLITS and len(ev.y) == len(oof)
    for fig, curve in ((roc_figure(ev), roc_curve), (pr_figure(ev), precision_recall_curve)):
        thin, thick = _lines(fig)
        assert len(thin) == N_SPLITS and len(thick) == 1
        a, b, _ = curve(y, p)
        x, yy = (a, b) if curve is roc_curve else (b, a)  # PR is drawn recall -> precision
        np.testing.assert_array_equal(thick[0].get_xdata(), x)
        np.testing.assert_array_equal(thick[0].get_ydata(), yy)
        for line, f in zip(thin, range(N_SPLITS), strict=True):
            rows = (oof["fold_0"] == f).to_numpy()
            a, b, _ = curve(y[rows], p[rows])
            x, yy = (a, b) if curve is roc_curve else (b, a)
            np.testing.assert_array_equal(line.get_xdata(), x)
            np.testing.assert_array_equal(line.get_ydata(), yy)
    legend = [t.get_text() for t in roc_figure(ev).axes[0].get_legend().get_texts()]
    assert legend == [f"OOF (AUC {roc_auc_score(y, p):.4f})"]
    legend = [t.get_text() for t in pr_figure(ev).axes[0].get_legend().get_texts()]
    assert legend == [f"OOF (AP {average_precision_score(y, p):.4f})"]


def test_the_table_metrics_are_sklearns(binary: Path) -> None:
    record = _record(binary)
    oof = _oof(binary, record)
    y, p = (oof["target"] == 1).to_numpy(int), oof["pred"].to_numpy()
    ev = load_evaluation(RunStore(binary, "synth"), record)
    s = scores(ev.y, ev.proba, ev.labels())
    assert s["AUC"] == pytest.approx(roc_auc_score(y, p))
    assert s["AUC"] == pytest.approx(record["score"])  # the run's own roc_auc headline
    assert s["average precision"] == pytest.approx(average_precision_score(y, p))
    assert s["log loss"] == pytest.approx(log_loss(y, p))
    assert s["Brier"] == pytest.approx(brier_score_loss(y, p))
    assert s["accuracy"] == pytest.approx(np.mean((p >= 0.5) == y))


def _confusion_rows(md: str, k: int) -> np.ndarray:
    start = md.index("| true \\ predicted")
    rows = md[start:].splitlines()[2 : 2 + k]
    return np.array([[int(v) for v in r.strip("|").split("|")[1:]] for r in rows])


def test_the_cli_writes_every_figure_and_the_confusion_at_0_5(binary: Path, tmp_path: Path) -> None:
    home = _copy(binary, tmp_path)
    record = _record(home)
    result = CliRunner().invoke(app, ["--home", str(home), "report", "synth", record["id"]])
    assert result.exit_code == 0, result.output
    folder = home / "reports" / "synth" / "evaluation" / record["id"]
    assert result.output.strip() == str(folder / "evaluation.md")
    assert sorted(p.name for p in folder.iterdir()) == sorted([*FIGURES, "evaluation.md"])
    md = (folder / "evaluation.md").read_text()
    for name in FIGURES:
        data = (folder / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5_000, name
        assert f"]({name})" in md
    oof = _oof(home, record)
    expected = confusion_matrix(oof["target"], (oof["pred"] >= 0.5).astype(int))
    np.testing.assert_array_equal(_confusion_rows(md, 2), expected)
    assert "≥ 0.5, the default, as the run records no threshold" in md


@pytest.mark.parametrize(
    ("field", "caption"),
    [("threshold", "the run's recorded threshold"), ("fits", "the mean of the 4 fits'")],
)
def test_a_recorded_threshold_is_used(
    binary: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, caption: str
) -> None:
    home = _copy(binary, tmp_path)
    record = _record(home)
    path = home / "runs" / "synth" / record["id"] / "run.json"
    if field == "threshold":
        record["threshold"] = 0.3
    else:
        for f, t in zip(record["fold_scores"], (0.2, 0.3, 0.3, 0.4), strict=True):
            f["threshold"] = t
    path.write_text(json.dumps(record))
    assert chosen_threshold(record)[0] == pytest.approx(0.3)
    code, _, err = _main(capsys, home, "report", "synth", record["id"])
    assert code == 0 and err == "", err
    md = (home / "reports" / "synth" / "evaluation" / record["id"] / "evaluation.md").read_text()
    oof = _oof(home, record)
    expected = confusion_matrix(oof["target"], (oof["pred"] >= 0.3).astype(int))
    assert not np.array_equal(expected, confusion_matrix(oof["target"], oof["pred"] >= 0.5))
    np.testing.assert_array_equal(_confusion_rows(md, 2), expected)
    assert f"≥ 0.3 ({caption}" in md or f"≥ 0.3, {caption}" in md


def test_multiclass_is_one_vs_rest_per_class(
    multiclass: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = _copy(multiclass, tmp_path)
    record = _record(home)
    oof = _oof(home, record)
    k = len(record["classes"])
    proba = oof[[c for c in oof if c.startswith("pred_")]].to_numpy()
    codes = pd.Categorical(oof["target"].astype(str), [str(c) for c in record["classes"]]).codes
    ev = load_evaluation(RunStore(home, "synth"), record)
    thin, thick = _lines(roc_figure(ev))
    assert k > 2 and len(thick) == k and len(thin) == k * N_SPLITS
    for c, line in enumerate(thick):
        fpr, tpr, _ = roc_curve(codes == c, proba[:, c])
        np.testing.assert_array_equal(line.get_xdata(), fpr)
        np.testing.assert_array_equal(line.get_ydata(), tpr)
    s = scores(ev.y, ev.proba, ev.labels())
    assert s["AUC"] == pytest.approx(roc_auc_score(codes, proba, multi_class="ovr"))
    assert s["log loss"] == pytest.approx(log_loss(codes, proba, labels=range(k)))
    code, _, err = _main(capsys, home, "report", "synth", record["id"])
    assert code == 0, err
    md = (home / "reports" / "synth" / "evaluation" / record["id"] / "evaluation.md").read_text()
    expected = confusion_matrix(codes, proba.argmax(axis=1), labels=range(k))
    np.testing.assert_array_equal(_confusion_rows(md, k), expected)
    assert "no threshold for multiclass" in md


def _main(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> tuple[int, str, str]:
    """``kfw ARGS`` in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["--home", str(home), *args])
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def _refused(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> str:
    code, out, err = _main(capsys, home, *args)
    lines = err.strip().splitlines()
    assert code == 1 and out == "" and len(lines) == 1, (code, out, err)
    assert lines[0].startswith("kfw: error: ") and "Traceback" not in err
    assert not (home / "reports").exists()
    return lines[0]


def test_bad_inputs_are_one_line_and_write_nothing(
    binary: Path,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = _copy(binary, tmp_path)
    record = _record(home)
    assert "no run 'nope' for synth" in _refused(capsys, home, "report", "synth", "nope")
    (home / "runs" / "synth" / record["id"] / "oof.parquet").unlink()
    assert "has no oof.parquet" in _refused(capsys, home, "report", "synth", record["id"])
    regression = _cv(tmp_path_factory.mktemp("regression"), "regression", "ridge")
    line = _refused(capsys, regression, "report", "synth", _record(regression)["id"])
    assert "kfw report draws classification curves" in line and "kfw errors" in line
