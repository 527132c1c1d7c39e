"""The write-up: every section, the run records' numbers, charts on disk and inside the HTML."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from kfw.cli import main
from kfw.cli.app import app
from kfw.report.writeup import SECTIONS, markdown_to_html, rank_correlation, to_html
from tests.synth import FEATURES, make_competition

# anything that would make the page fetch or link outside itself
EXTERNAL = re.compile(r"https?://|//[a-z]|<link|<script|@import|url\(|src=\"(?!data:)", re.I)


def _kfw(home: Path, *args: str) -> str:
    result = CliRunner().invoke(app, ["--home", str(home), *args])
    assert result.exit_code == 0, result.output
    return result.output


# the regression's feature module keeps two rows out of the headline CV
EXCLUDING = (
    '"""Synthetic features: ``x_sum`` adds two columns.\n\n- kept: the :func:`raw` columns\n"""\n'
    + FEATURES
    + """

def exclude_rows(X, y):
    return (X.index == 3) | (X.index == 7)
"""
)


def _competition(root: Path, task: str, models: tuple[str, ...], features: str = FEATURES) -> Path:
    make_competition(root, task=task, models=models, features=features)
    _kfw(root, "cv", "synth", "--threads", "1")
    return root


@pytest.fixture(scope="module")
def regression(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A regression competition with its lgbm, ridge and blend runs (shared: copy to write)."""
    root = tmp_path_factory.mktemp("regression")
    return _competition(root, "regression", ("lgbm", "ridge"), EXCLUDING)


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _competition(tmp_path_factory.mktemp("binary"), "binary", ("lgbm", "logreg"))


def _copy(src: Path, tmp_path: Path) -> Path:
    home = tmp_path / "home"
    shutil.copytree(src, home)
    return home


def _records(home: Path) -> dict[str, dict]:
    runs = [json.loads(p.read_text()) for p in (home / "runs" / "synth").glob("*/run.json")]
    return {r["label"]: r for r in runs}


def _writeup(home: Path, *extra: str) -> tuple[str, str, Path]:
    _kfw(home, "writeup", "synth", "--threads", "1", *extra)
    folder = home / "reports" / "synth"
    return (folder / "writeup.md").read_text(), (folder / "writeup.html").read_text(), folder


def _check_images(md: str, page: str, folder: Path) -> list[str]:
    names = re.findall(r"^!\[[^\]]*\]\(([^)]+)\)$", md, re.M)
    for name in names:
        data = (folder / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5_000, name
        assert f'src="data:image/png;base64,{base64.b64encode(data).decode()}"' in page, name
    assert page.count("<img ") == len(names)
    outside_images = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "data:", page)
    assert not EXTERNAL.search(outside_images), EXTERNAL.search(outside_images)
    return names


@pytest.fixture(scope="module")
def regression_writeup(regression: Path, tmp_path_factory: pytest.TempPathFactory):
    return _writeup(_copy(regression, tmp_path_factory.mktemp("w")))


def test_regression_writeup_has_every_section_and_the_records_numbers(regression_writeup) -> None:
    md, page, folder = regression_writeup
    headings = re.findall(r"^## (.+)$", md, re.M)
    assert headings == list(SECTIONS)
    records = _records(folder.parents[1])
    assert set(records) == {"lgbm", "ridge", "blend"}
    for r in records.values():
        assert f"{r['score']:.5f}" in md
        assert f"{r['mean']:.5f} ± {r['std']:.5f}" in md
        for f in r["fold_scores"]:
            assert f"{f['score']:.5f}" in md
        assert f"kfw cv synth --model {r['label']} --no-blend" in md or r["kind"] == "ensemble"
    blend = records["blend"]
    for member, label in zip(blend["members"], blend["member_labels"], strict=True):
        weight = blend["weights"][member]
        row = f"| {label} | `{member}` | {records[label]['score']:.5f} | {weight:.4f} |"
        assert row in md
    best = min(records.values(), key=lambda r: r["score"])  # rmsle: lower is better
    assert f"Best cross-validated run: **{best['label']}**" in md
    # the residuals' RMS on the log1p scale is the run's RMSLE, with and without excluded rows
    assert best["excluded_ids"] == [4, 8]
    assert f"RMS {best['score']:.5f}; without the 2 excluded rows (orange) RMS " in md
    assert f"RMS {best['score_without_excluded']:.5f}." in md
    assert "2 training rows (Id 4, 8) are left out of every fit" in md
    assert "No submissions yet" in md and "No bake-off yet" in md
    # lgbm chose its rounds on an inner split: said so, and not called optimistic
    assert "| inner split |" in md and "chose the rounds on an inner split" in md
    assert "scored fold (optimistic)" not in md and "Optimistic CVs" not in md
    assert "out-of-fold AUC of **0." in md  # adversarial validation ran on the row features
    assert "stratified on 10 quantile bins" in md
    # the feature module's docstring, reST literals and roles turned into markdown code
    assert "Synthetic features: `x_sum` adds two columns.\n\n- kept: the `raw` columns" in md
    assert "<ul><li>kept: the <code>raw</code> columns</li></ul>" in page
    assert "240 | 6 |" in md  # train rows and columns
    assert set(_check_images(md, page, folder)) == {"residuals.png", "importance.png"}
    assert '<h2 id="reproducibility">Reproducibility</h2>' in page
    assert records["lgbm"]["environment"]["versions"]["lightgbm"] in md


def test_binary_writeup_shows_confusion_and_calibration(binary: Path, tmp_path: Path) -> None:
    home = _copy(binary, tmp_path)
    md, page, folder = _writeup(home, "--no-adversarial")
    assert re.findall(r"^## (.+)$", md, re.M) == list(SECTIONS)
    records = _records(home)
    best = max(records.values(), key=lambda r: r["score"])  # roc_auc: higher is better
    oof = pd.read_parquet(home / "runs" / "synth" / best["id"] / "oof.parquet")
    accuracy = np.mean((oof["pred"] >= 0.5) == (oof["target"] == 1))
    assert f"accuracy {accuracy:.4f}" in md
    tp = int(((oof["pred"] >= 0.5) & (oof["target"] == 1)).sum())
    assert re.search(rf"^\| 1 \| \d+ \| {tp} \|$", md, re.M)
    for r in records.values():
        assert f"{r['score']:.5f}" in md
    for member, weight in records["blend"]["weights"].items():
        assert f"`{member}` |" in md and f"{weight:.4f}" in md
    assert "Skipped (`--no-adversarial`)" in md
    names = _check_images(md, page, folder)
    assert set(names) == {"confusion.png", "calibration.png", "importance.png"}


def test_submissions_bakeoff_and_recorded_commands_appear(regression: Path, tmp_path: Path) -> None:
    home = _copy(regression, tmp_path)
    records = _records(home)
    # a recorded command wins over the reconstructed one
    run_json = home / "runs" / "synth" / records["ridge"]["id"] / "run.json"
    run_json.write_text(json.dumps({**records["ridge"], "command": "kfw cv synth -m ridge"}))
    entries = []
    public = {"lgbm": 0.25, "ridge": 0.12, "blend": 0.11}
    for i, label in enumerate(public):
        r = records[label]
        entries.append({
            "ref": 100 + i, "run": r["id"], "file": f"{r['id']}.csv", "message": f"{label} <try> | 1",
            "submitted_at": f"2026-01-0{i + 1}T10:00:00", "cv": r["score"], "metric": "rmsle",
            "greater_is_better": False, "public": public[label], "private": None, "status": "complete",
            "source": "local",
        })  # fmt: skip
    entries.append({**entries[0], "ref": 200, "public": None, "status": "pending"})
    subs = home / "submissions" / "synth"
    subs.mkdir(parents=True)
    (subs / "submissions.json").write_text(json.dumps(entries))
    bakeoff = home / "runs" / "synth" / "bakeoffs" / "20260101-000000"
    bakeoff.mkdir(parents=True)
    rows = [
        {"variant": "ridge (defaults)", "layer": "default", "run": records["ridge"]["id"],
         "score": records["ridge"]["score"], "mean": 0.1, "std": 0.01, "fit_seconds": 0.5,
         "tune_seconds": 0.0},
    ]  # fmt: skip
    (bakeoff / "bakeoff.json").write_text(
        json.dumps({"competition": "synth", "metric": "rmsle", "trials": 3, "rows": rows})
    )
    _png(bakeoff / "bakeoff.png")

    md, page, folder = _writeup(home, "--no-adversarial")
    from scipy.stats import spearmanr

    cv = [records[label]["score"] for label in public]
    rho = spearmanr(cv, list(public.values())).statistic
    assert f"over 3 submissions: **{rho:.3f}**" in md
    assert f"| 2026-01-01T10:00:00 | lgbm | lgbm <try> \\| 1 | {cv[0]:.5f} | 0.25000 | - |" in md
    assert "lgbm &lt;try&gt; | 1" in page and "<try>" not in page  # escaped, pipe restored
    assert "| pending |" in md
    assert f"| ridge (defaults) | {records['ridge']['score']:.5f} |" in md
    assert "# ridge\nkfw cv synth -m ridge\n" in md
    assert "kfw cv synth --model lgbm --no-blend  # reconstructed" in md
    names = _check_images(md, page, folder)
    assert {"leaderboard.png", "bakeoff.png"} <= set(names)


def _png(path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3))
    FigureCanvasAgg(fig)
    fig.subplots().barh([0, 1, 2], [3, 1, 2])
    fig.savefig(path, format="png")


def test_no_runs_is_one_error_line(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_competition(home, task="binary")
    with pytest.raises(SystemExit) as exit_info:
        main(["writeup", "synth"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err == "kfw: error: no runs for synth yet: run `kfw cv synth` first"
    assert not (home / "reports").exists()


def test_markdown_subset_converts_and_escapes() -> None:
    md = "\n".join([
        "# Title <b>", "", "A paragraph with `a<b>` and **bold**", "continued & *done*.", "",
        "| name | score |", "| --- | ---: |", "| a\\|b | 1.5 |", "",
        "- one", "  more of one", "- two `x`", "", "```", "if a < b:", "```", "",
        "![chart](chart.png)", "", "![absent](http://example.com/x.png)",
    ])  # fmt: skip
    png = b"\x89PNGdata"
    body = markdown_to_html(md, {"chart.png": png})
    assert '<h1 id="title-b">Title &lt;b&gt;</h1>' in body
    assert (
        "<p>A paragraph with <code>a&lt;b&gt;</code> and <strong>bold</strong> continued &amp; "
        "<em>done</em>.</p>"
    ) in body
    assert "<th>name</th><th class=r>score</th>" in body
    assert "<td>a|b</td><td class=r>1.5</td>" in body
    assert "<ul><li>one more of one</li><li>two <code>x</code></li></ul>" in body
    assert "<pre><code>if a &lt; b:</code></pre>" in body
    assert f'src="data:image/png;base64,{base64.b64encode(png).decode()}"' in body
    assert "example.com" not in body.replace("[absent]", "")  # an unknown image is never fetched
    page = to_html(md, {}, "T & t")
    assert page.startswith("<!DOCTYPE html>") and "<title>T &amp; t</title>" in page


def test_rank_correlation_is_spearman() -> None:
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=12), rng.normal(size=12)
    b[3] = b[4]  # a tie
    assert rank_correlation(a, b) == pytest.approx(spearmanr(a, b).statistic)
    assert np.isnan(rank_correlation(np.ones(3), np.arange(3.0)))


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_the_html_renders_in_a_headless_browser(regression_writeup, tmp_path: Path) -> None:
    _, _, folder = regression_writeup
    url = (folder / "writeup.html").as_uri()
    flags = [
        "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as profile:
        base = [*flags, f"--user-data-dir={profile}"]
        dom = subprocess.run(
            [*base, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True
        ).stdout
        shot = tmp_path / "page.png"
        subprocess.run(
            [*base, f"--screenshot={shot}", "--window-size=1200,3000", url],
            capture_output=True,
            timeout=120,
            check=True,
        )
    for title in SECTIONS:
        assert re.search(rf"<h2 id=\"[a-z-]+\">{re.escape(title)}</h2>", dom), title
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', dom)
    assert len(images) == 2
    assert all(base64.b64decode(data).startswith(b"\x89PNG") for data in images)
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 100_000
