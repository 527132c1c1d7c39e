"""The write-up: every section, the run records' numbers, charts on disk and inside the HTML."""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from kfw.cli import main
from kfw.cli.app import app
from kfw.report.writeup import SECTIONS, markdown_to_html, rank_correlation, to_html
from tests.conftest import in_ci
from tests.synth import FEATURES, make_competition

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

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


@pytest.fixture(scope="module")
def binary_writeup(binary: Path, tmp_path_factory: pytest.TempPathFactory):
    return _writeup(_copy(binary, tmp_path_factory.mktemp("w")), "--no-adversarial")


def test_binary_writeup_shows_confusion_and_calibration(binary_writeup) -> None:
    md, page, folder = binary_writeup
    home = folder.parents[1]
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
    assert set(names) == {
        "confusion.png", "calibration.png", "importance.png", "roc.png", "pr.png", "scores.png"
    }  # fmt: skip
    evaluation = md[md.index("## Evaluation") : md.index("## Feature importance")]
    # the run the diagnostics show (the best, by the write-up's rule), and its roc_auc headline
    shown = re.search(r"predictions of the best run, \*\*(\w+)\*\* \(`([^`]+)`\)", md)
    assert f"Evaluation of **{shown[1]}** (`{shown[2]}`)" in evaluation
    assert f"| AUC | {records[shown[1]]['score']:.5f} |" in evaluation


TOOLS = "## Thresholds, calibration, learning curve and errors"


def _tools_section(md: str) -> str:
    return md[md.index(TOOLS) : md.index("## Feature importance")]


def test_missing_evaluation_tools_are_one_sentence_each(binary_writeup) -> None:
    md, _, folder = binary_writeup
    tools = _tools_section(md)
    best = re.search(r"predictions of the best run, \*\*(\w+)\*\* \(`([^`]+)`\)", md)
    assert (
        "No run on the current data tuned its threshold; `kfw cv synth --threshold tune`" in tools
    )
    assert "No run on the current data is calibrated; `kfw cv synth --calibrate platt`" in tools
    assert "No learning curve yet; `kfw curves synth --model " in tools
    assert f"No error analysis yet; `kfw errors synth {best[2]}`" in tools
    assert "|" not in tools and "![" not in tools
    assert not (folder / "learning-curve.png").exists()


@pytest.fixture(scope="module")
def tools_writeup(tmp_path_factory: pytest.TempPathFactory):
    """A binary competition scored by F1: one run with its threshold tuned in the folds and
    Platt calibration, a learning curve, and the run's worst rows by segment."""
    home = tmp_path_factory.mktemp("tools")
    make_competition(home, task="binary", models=("logreg",))
    toml = home / "competitions" / "synth" / "competition.toml"
    toml.write_text(toml.read_text().replace('metric = "roc_auc"', 'metric = "f1"'))
    _kfw(home, "cv", "synth", "--threads", "1", "--threshold", "tune", "--calibrate", "platt")
    _kfw(home, "curves", "synth", "--model", "logreg", "--sizes", "0.3,1.0")
    (run,) = _records(home).values()
    _kfw(home, "errors", "synth", run["id"], "--by", "cat")
    return _writeup(home, "--no-adversarial")


def test_tools_section_shows_the_records_and_reports_numbers(tools_writeup) -> None:
    md, page, folder = tools_writeup
    home = folder.parents[1]
    assert re.findall(r"^## (.+)$", md, re.M) == list(SECTIONS)
    (run,) = _records(home).values()
    assert run["threshold_mode"] == "tune" and run["calibration"] == "platt"
    tools = _tools_section(md)
    # threshold: 0.5, tuned in the folds, the folds' range, the test's, the OOF-tuned optimistic
    fold_t = [f["threshold"] for f in run["fold_scores"]]
    row = (
        f"| logreg | {run['score_at_default_threshold']:.5f} | {run['score']:.5f} | "
        f"{min(fold_t):.3f}–{max(fold_t):.3f} | {run['threshold']:.3f} | "
        f"{run['score_oof_tuned']:.5f} at {run['oof_threshold']:.3f} (optimistic) |"
    )
    assert row in tools
    assert "tuned on the OOF itself (optimistic)" in tools
    # calibration: the folds' mean ECE and Brier, before -> after
    cal = [f["calibration"] for f in run["fold_scores"]]
    mean = {k: np.mean([c[k] for c in cal]) for k in cal[0] if k.endswith(("before", "after"))}
    assert (
        f"| logreg | platt | {mean['ece_before']:.4f} → {mean['ece_after']:.4f} | "
        f"{mean['brier_before']:.4f} → {mean['brier_after']:.4f} |"
    ) in tools
    # the learning curve: its verdict, its points, and its figure embedded
    (curves,) = (home / "reports" / "synth" / "curves").glob("*/curves.json")
    data = json.loads(curves.read_text())
    assert f"Verdict: {data['verdict']}" in tools
    assert data["command"] in tools
    for p in data["points"]:
        assert f"| {p['train_mean']:.4f} ± {p['train_std']:.4f} |" in tools
    assert "](learning-curve.png)" in tools
    assert (folder / "learning-curve.png").read_bytes() == (
        curves.parent / "curves.png"
    ).read_bytes()
    # the worst rows and the segment table of `kfw errors`, headings one level down
    errors = home / "reports" / "synth" / "errors" / run["id"]
    worst = pd.read_csv(errors / "worst.csv")
    assert "### Worst rows of logreg" in tools and "#### By `cat`" in tools
    assert f"| {worst.iloc[0, 0]} | {worst['target'].iloc[0]} |" in tools
    segments = pd.read_csv(errors / "segments-cat.csv")
    assert all(f"| {s} | {n} |" in tools for s, n in zip(segments["segment"], segments["rows"], strict=True))  # fmt: skip
    assert "No run" not in tools and "yet;" not in tools
    names = _check_images(md, page, folder)
    assert "learning-curve.png" in names


# the public scores of the three submissions the fixture below records
PUBLIC = {"lgbm": 0.25, "ridge": 0.12, "blend": 0.11}


@pytest.fixture(scope="module")
def submitted_writeup(regression: Path, tmp_path_factory: pytest.TempPathFactory):
    """The regression write-up after three submissions, one pending, and a bake-off."""
    home = _copy(regression, tmp_path_factory.mktemp("w"))
    records = _records(home)
    # a recorded command wins over the reconstructed one
    run_json = home / "runs" / "synth" / records["ridge"]["id"] / "run.json"
    run_json.write_text(json.dumps({**records["ridge"], "command": "kfw cv synth -m ridge"}))
    entries = []
    for i, label in enumerate(PUBLIC):
        r = records[label]
        entries.append({
            "ref": 100 + i, "run": r["id"], "file": f"{r['id']}.csv", "message": f"{label} <try> | 1",
            "submitted_at": f"2026-01-0{i + 1}T10:00:00", "cv": r["score"], "metric": "rmsle",
            "greater_is_better": False, "public": PUBLIC[label], "private": None, "status": "complete",
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

    return _writeup(home, "--no-adversarial")


def test_submissions_bakeoff_and_recorded_commands_appear(submitted_writeup) -> None:
    md, page, folder = submitted_writeup
    records = _records(folder.parents[1])
    from scipy.stats import spearmanr

    cv = [records[label]["score"] for label in PUBLIC]
    rho = spearmanr(cv, list(PUBLIC.values())).statistic
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


# ---------------------------------------------------------------------------------------------
# the page as a reader sees it, in a real browser (why Selenium: the test's docstring)

# headless, root in a container (no sandbox, small /dev/shm), and none of Chrome's own traffic
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
    "--disable-extensions", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-default-apps", "--no-first-run", "--no-default-browser-check",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost", "--window-size=1200,900",
)  # fmt: skip
# a browser that has not finished by then is killed, with its whole process group
BROWSER_DEADLINE_S = 120

# what a reader sees, measured inside the page (every list holds what is wrong)
READER_JS = """
const text = (el) => (el.getAttribute("alt") || el.textContent || "").trim().slice(0, 60);
const images = [...document.images];
const tables = [...document.querySelectorAll("table")];
const links = [...document.querySelectorAll('a[href^="#"]')];
const ids = [...document.querySelectorAll("[id]")].map((el) => el.id);
const tableProblem = (t) => {
  const box = t.getBoundingClientRect();
  const head = t.tHead ? t.tHead.querySelectorAll("th").length : 0;
  const rows = [...t.querySelectorAll("tbody tr")];
  if (!head) return "no header";
  if (!rows.length) return "no rows";
  if (rows.some((r) => r.cells.length !== head)) return "ragged rows";
  if (!(box.width > 0 && box.height > 0)) return "not rendered";
  return null;
};
return {
  headings: [...document.querySelectorAll("h2")].map((h) => h.textContent),
  images: images.length,
  broken_images: images.filter((i) => !(i.complete && i.naturalWidth > 0)).map(text),
  tables: tables.length,
  broken_tables: tables.map((t) => [tableProblem(t), text(t)]).filter(([p]) => p),
  links: links.length,
  dangling_links: links.map((a) => a.getAttribute("href"))
    .filter((h) => !document.getElementById(decodeURIComponent(h.slice(1)))),
  duplicate_ids: [...new Set(ids.filter((id, i) => ids.indexOf(id) !== i))],
};
"""


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebDriver]:
    """A headless chromium under chromedriver, killed (process group and all) however the test
    ends; outside CI a machine without it skips, in CI that fails."""
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    missing = [
        name
        for name, found in [
            ("chromium", chromium),
            ("chromium-driver", chromedriver),
            ("selenium", importlib.util.find_spec("selenium")),
        ]
        if found is None
    ]
    if missing:
        if in_ci():
            pytest.fail(f"the browser test needs {', '.join(missing)} in CI (.ci/run installs it)")
        pytest.skip(f"{', '.join(missing)} not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # its own session: chromedriver, chromium and every helper process share one group to kill
    service = Service(executable_path=chromedriver, popen_kw={"start_new_session": True})

    def kill() -> None:
        process = getattr(service, "process", None)
        if process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)

    timed_out = threading.Event()
    watchdog = threading.Timer(BROWSER_DEADLINE_S, lambda: (timed_out.set(), kill()))
    watchdog.start()
    driver = None
    try:
        driver = webdriver.Chrome(service=service, options=options)
        driver.set_page_load_timeout(60)
        driver.set_script_timeout(30)
        yield driver
    finally:
        watchdog.cancel()
        if driver is not None:
            with contextlib.suppress(Exception):  # the group is killed next in any case
                driver.quit()
        kill()
        if timed_out.is_set():  # say so, rather than leave a broken connection's traceback
            pytest.fail(f"the browser ran past {BROWSER_DEADLINE_S} s and was killed")


def _what_a_reader_sees(driver: WebDriver, page: Path) -> dict:
    driver.get(page.as_uri())  # returns once the load event has fired: every image settled
    seen = driver.execute_script(READER_JS)
    seen["console_errors"] = [
        e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"
    ]
    return seen


@pytest.fixture(
    params=["regression_writeup", "binary_writeup", "submitted_writeup", "tools_writeup"]
)
def any_writeup(request: pytest.FixtureRequest):
    """Each write-up fixture in turn: regression, binary, one with submissions and a bake-off, and
    one with a tuned threshold, calibration, a learning curve and worst rows."""
    return request.getfixturevalue(request.param)


# any_writeup comes first so that its runs are made before the browser's deadline starts
@pytest.mark.service
def test_the_html_renders_in_a_headless_browser(any_writeup, browser: WebDriver) -> None:
    """A reader's view of each write-up: every section, every figure loaded, every table with a
    header and rows on screen, every in-page link landing somewhere, and a silent console.

    Selenium drives Debian's chromium through Debian's chromedriver, packages built together so
    their versions always match; both paths are given, so Selenium Manager never runs (and
    SE_OFFLINE=true would stop it downloading if it did). chromedriver's "browser" log already
    carries console.error calls, uncaught exceptions and resources that failed to load, and
    ``get`` waits for the load event: a hand-rolled DevTools client would re-implement both.
    The only sockets are Selenium's to chromedriver and chromedriver's to chromium, on
    127.0.0.1; the page's own Content-Security-Policy lets it fetch nothing (a blocked fetch
    would be a console error), and name lookups inside chromium resolve to nothing.
    """
    md, _, folder = any_writeup
    seen = _what_a_reader_sees(browser, folder / "writeup.html")
    assert seen["headings"] == list(SECTIONS)
    figures = re.findall(r"^!\[[^\]]*\]\(([^)]+)\)$", md, re.M)
    assert seen["images"] == len(figures) >= 2 and seen["broken_images"] == []
    assert seen["tables"] == len(re.findall(r"^\|[ :]*---", md, re.M)) > 0
    assert seen["broken_tables"] == []
    # the contents under the title link every section, and each link lands on its heading
    assert seen["links"] == len(SECTIONS)
    assert seen["dangling_links"] == [] and seen["duplicate_ids"] == []
    assert seen["console_errors"] == []


# every fault the checks look for, beside a good instance of each (which must not be reported)
BROKEN_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>broken</title></head><body>
<h2 id="ok">Fine</h2><h2 id="twice">One</h2><h2 id="twice">Two</h2>
<img src="data:image/png;base64,{png}" alt="good figure">
<img src="missing.png" alt="missing file">
<img src="data:image/png;base64,iVBORw0KGgo=" alt="corrupt data">
<table><thead><tr><th>a</th><th>b</th></tr></thead><tbody><tr><td>1</td><td>2</td></tr></tbody></table>
<table><tbody><tr><td>headless</td></tr></tbody></table>
<table><thead><tr><th>empty</th></tr></thead><tbody></tbody></table>
<table><thead><tr><th>x</th><th>y</th></tr></thead><tbody><tr><td>ragged</td></tr></tbody></table>
<table style="display:none"><thead><tr><th>hidden</th></tr></thead><tbody><tr><td>1</td></tr></tbody></table>
<p><a href="#ok">fine</a> <a href="#nowhere">dangling</a> <a href="#twice">ambiguous</a></p>
<script>console.error("a deliberate console error"); throw new Error("a deliberate exception");</script>
</body></html>
"""


@pytest.mark.service
def test_the_browser_checks_catch_a_broken_page(browser: WebDriver, tmp_path: Path) -> None:
    """Each check of the test above reports its fault, and only the faulty element."""
    _png(tmp_path / "good.png")
    png = base64.b64encode((tmp_path / "good.png").read_bytes()).decode()
    page = tmp_path / "broken.html"
    page.write_text(BROKEN_PAGE.replace("{png}", png))
    seen = _what_a_reader_sees(browser, page)
    assert seen["images"] == 3 and seen["broken_images"] == ["missing file", "corrupt data"]
    assert seen["tables"] == 5
    assert [problem for problem, _ in seen["broken_tables"]] == [
        "no header", "no rows", "ragged rows", "not rendered"
    ]  # fmt: skip
    assert seen["links"] == 3 and seen["dangling_links"] == ["#nowhere"]
    assert seen["duplicate_ids"] == ["twice"]
    # the failed load may be logged before or after the script's two errors
    errors = " | ".join(seen["console_errors"])
    assert len(seen["console_errors"]) == 3, errors
    assert "a deliberate console error" in errors
    assert "Uncaught Error: a deliberate exception" in errors
    assert "missing.png - Failed to load resource: net::ERR_FILE_NOT_FOUND" in errors
