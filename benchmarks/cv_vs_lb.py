"""Does kfw's CV predict the leaderboard? CV against a local LB on the open copies, re-split.

For each competition (titanic, house-prices) and each split, a fresh KFW_HOME gets the data,
`kfw cv SLUG` runs the roster and its ensemble, and every run's submission.csv is scored on the
held-out test labels with the competition's metric: the run's local LB. Split 0 is the open copy
itself (`kfw data open`); split s >= 1 pools the open copy's train rows and its labelled test rows,
draws a new partition of the same sizes with numpy's default_rng(s), writes it in the open copy's
exact file format and brings it in with `kfw data import` (rows with a value missing in a column
that the open copy's train.csv has complete stay in test, as in Kaggle's files, so no train column
changes type). Per split: the mean gap CV - LB (oriented: positive = CV optimistic), the Spearman
rank correlation of CV and LB over the runs, and whether the run `kfw submit --dry-run` picks by
default is the best LB run or within noise of it (a paired bootstrap over test rows of the LB
difference: its 95% percentile interval holds 0). kfw is driven only through its command line, so
an older checkout can be measured the same way:

    KFW_THREADS=1 WANDB_MODE=disabled .venv/bin/python benchmarks/cv_vs_lb.py --label after
    KFW_THREADS=1 WANDB_MODE=disabled .venv/bin/python benchmarks/cv_vs_lb.py --label before \\
        --kfw-path /tmp/kfw-before
    # options: --comp titanic (repeatable), --splits 5, --work DIR (resumes there), --keep

A split takes about 40 s (titanic and house-prices, this code) on 2 cores with KFW_THREADS=1.
Results are printed and written to benchmarks/results/cv_vs_lb-<label>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from kfw.core.metrics import Metric, get_metric

REPO = Path(__file__).resolve().parents[1]
COMPS = ("titanic", "house-prices")
N_BOOT = 2000
RUN_ID = re.compile(r"run (\d{8}-\d{6}-[\w-]+)")


def kfw(args: list[str], home: Path, kfw_path: Path) -> str:
    """Run ``python -m kfw ARGS`` with KFW_HOME=home and kfw imported from ``kfw_path``."""
    env = {**os.environ, "KFW_HOME": str(home), "PYTHONPATH": str(kfw_path)}
    env.setdefault("WANDB_MODE", "disabled")
    # cwd outside any checkout: `python -m` puts the cwd before PYTHONPATH on sys.path
    done = subprocess.run(
        [sys.executable, "-m", "kfw", *args], env=env, cwd=home, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"kfw {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def check_import(kfw_path: Path, home: Path) -> None:
    """Refuse to measure if the subprocesses would import kfw from somewhere else."""
    code = "import kfw, models, features; print(kfw.__file__, models.__file__, features.__file__)"
    env = {**os.environ, "PYTHONPATH": str(kfw_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=home, capture_output=True)
    files = out.stdout.decode().split()
    if len(files) != 3 or not all(Path(f).is_relative_to(kfw_path) for f in files):
        raise SystemExit(f"--kfw-path {kfw_path}: the packages come from {files or out.stderr}")


def resplit(open_dir: Path, spec: dict[str, Any], seed: int, dest: Path) -> pd.DataFrame:
    """Write a re-drawn train/test partition of the open copy into ``dest``; return test labels.

    Files are read as text and written back unchanged cell by cell (the open copy's own rows in
    their own order would come out byte for byte); only the ids are renumbered as Kaggle's are.
    """
    id_, target, names = spec["id"], spec["target"], spec["files"]
    kinds = ("train", "test", "sample_submission")
    text = {k: pd.read_csv(open_dir / names[k], dtype=str, keep_default_na=False) for k in kinds}
    train, test, sample = text["train"], text["test"], text["sample_submission"]
    solution = pd.read_csv(open_dir / ".open" / "solution.csv", dtype=str, keep_default_na=False)
    test = test.merge(solution[[id_, target]], on=id_, how="left", validate="one_to_one")
    pool = pd.concat([train, test[train.columns]], ignore_index=True)  # (n_train + n_test, cols)

    parsed_train, parsed_test = (pd.read_csv(open_dir / names[k]) for k in ("train", "test"))
    complete = parsed_train.columns[parsed_train.notna().all()].drop(target)
    forced = len(train) + np.flatnonzero(parsed_test[complete].isna().any(axis=1).to_numpy())
    rng = np.random.default_rng(seed)
    order = rng.permutation(np.setdiff1d(np.arange(len(pool)), forced))
    new_train = pool.iloc[order[: len(train)]].copy()
    new_test = pool.iloc[rng.permutation(np.r_[order[len(train) :], forced])].copy()
    new_train[id_] = [str(i) for i in range(1, len(train) + 1)]
    new_test[id_] = [str(i) for i in range(len(train) + 1, len(pool) + 1)]

    dest.mkdir(parents=True, exist_ok=True)
    new_sample = pd.DataFrame({id_: new_test[id_].to_numpy()})
    for column in sample.columns.drop(id_):
        new_sample[column] = sample[column].to_numpy()  # the open copy's values, as a placeholder
    for frame, name in ((new_train, "train"), (new_test.drop(columns=target), "test")):
        frame.to_csv(dest / names[name], index=False, lineterminator="\n")
    new_sample.to_csv(dest / names["sample_submission"], index=False, lineterminator="\n")
    for extra in spec["files"].get("extra", []):
        shutil.copy2(open_dir / extra, dest / extra)
    return new_test[[id_, target]]


def paired_interval(
    metric: Metric, y: np.ndarray, a: np.ndarray, b: np.ndarray
) -> tuple[float, float]:
    """95% percentile interval of metric(a) - metric(b) over bootstrap resamples of the rows."""
    rng = np.random.default_rng(0)
    diffs = np.empty(N_BOOT)
    for i in range(N_BOOT):
        rows = rng.integers(0, len(y), len(y))  # (n_test,)
        diffs[i] = metric(y[rows], a[rows]) - metric(y[rows], b[rows])
    low, high = np.percentile(diffs, [2.5, 97.5])
    return float(low), float(high)


def run_split(slug: str, split: int, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One (version, competition, split): data, `kfw cv`, the default choice, every run's LB."""
    marker = folder / "done.json"
    if marker.is_file():
        return json.loads(marker.read_text())
    shutil.rmtree(folder, ignore_errors=True)  # a half-done split is redone whole
    home = folder / "home"
    home.mkdir(parents=True)
    spec = tomllib.loads((args.kfw_path / "competitions" / slug / "competition.toml").read_text())
    id_, target = spec["id"], spec["target"]
    started = time.perf_counter()
    if split == 0:
        kfw(["data", "open", slug], home, args.kfw_path)
        solution = pd.read_csv(home / "data" / slug / ".open" / "solution.csv")
        labels = solution[[id_, target]]
    else:
        open_home = folder.parent / "open"
        if not (open_home / "data" / slug / ".open").is_dir():
            open_home.mkdir(parents=True, exist_ok=True)
            kfw(["data", "open", slug], open_home, args.kfw_path)
        files = folder / "files"
        # the new test labels stay outside the data folder: only this script reads them
        resplit(open_home / "data" / slug, spec, split, files).to_csv(
            folder / "labels.csv", index=False
        )
        kfw(["data", "import", slug, str(files)], home, args.kfw_path)
        shutil.rmtree(files)
        labels = pd.read_csv(folder / "labels.csv")
    kfw(["cv", slug, "--no-wandb"], home, args.kfw_path)
    out = folder / "default.csv"
    said = kfw(["submit", slug, "--dry-run", "--output", str(out)], home, args.kfw_path)
    found = [RUN_ID.search(line) for line in said.splitlines() if line.startswith(str(out))]
    if not found or found[-1] is None:
        raise SystemExit(f"no run id in `kfw submit` output:\n{said}")
    chosen = found[-1].group(1)

    metric = get_metric(spec["metric"])
    y = labels[target].to_numpy(float)  # (n_test,)
    runs, preds = [], {}
    for path in sorted((home / "runs" / slug).glob("*/run.json")):
        record = json.loads(path.read_text())
        sub = pd.read_csv(path.parent / "submission.csv")
        merged = labels.merge(sub, on=id_, suffixes=("", "_pred"), validate="one_to_one")
        assert len(merged) == len(labels), f"{path.parent}: submission ids differ from test"
        preds[record["id"]] = merged[f"{target}_pred"].to_numpy(float)
        runs.append(
            {
                "id": record["id"],
                "label": record["label"],
                "kind": record.get("kind"),
                "cv": record["score"],
                # every training row scored (the versions differ on which one "score" is)
                "cv_all": record.get("score_all") or record["score"],
                "lb": metric(y, preds[record["id"]]),
            }
        )
    sign = 1 if metric.greater_is_better else -1
    best = max(runs, key=lambda r: sign * r["lb"])
    pick = next(r for r in runs if r["id"] == chosen)
    low, high = paired_interval(metric, y, preds[chosen], preds[best["id"]])
    result = {
        "split": split,
        "metric": metric.name,
        "greater_is_better": metric.greater_is_better,
        "n_test": len(y),
        "runs": runs,
        "chosen": chosen,
        "best": best["id"],
        "is_best": pick["lb"] == best["lb"],
        "interval": [low, high],
        "within_noise": pick["lb"] == best["lb"] or low <= 0 <= high,
        "seconds": time.perf_counter() - started,
    }
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, marker)  # written last: its presence means the split is complete
    if not args.keep:
        shutil.rmtree(home)
    return result


def summarise(splits: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-split rows, the aggregate across splits and the per-label table, as plain data."""
    rows: list[dict[str, Any]] = []
    per_run: list[dict[str, Any]] = []
    for s in splits:
        sign = 1 if s["greater_is_better"] else -1
        cv = np.array([r["cv"] for r in s["runs"]])
        lb = np.array([r["lb"] for r in s["runs"]])
        pick = next(r for r in s["runs"] if r["id"] == s["chosen"])
        best = next(r for r in s["runs"] if r["id"] == s["best"])
        rho = spearmanr(cv, lb).statistic if len(cv) > 2 else float("nan")
        rows.append(
            {
                "split": s["split"],
                "runs": len(cv),
                "gap": float(np.mean(sign * (cv - lb))),
                "spearman": float(rho),
                "default": pick["label"],
                "default_lb": pick["lb"],
                "best": best["label"],
                "best_lb": best["lb"],
                "is_best": s["is_best"],
                "within_noise": s["within_noise"],
            }
        )
        per_run += [{**r, "gap": sign * (r["cv"] - r["lb"])} for r in s["runs"]]
    gaps = np.array([r["gap"] for r in rows])
    aggregate = {
        "gap_mean": float(gaps.mean()),
        "gap_std": float(gaps.std(ddof=1)) if len(gaps) > 1 else float("nan"),
        "spearman_mean": float(np.nanmean([r["spearman"] for r in rows])),
        "n_best": sum(r["is_best"] for r in rows),
        "n_within_noise": sum(r["within_noise"] for r in rows),
        "n_splits": len(rows),
    }
    labels = pd.DataFrame(per_run).groupby("label")[["cv", "lb", "gap"]].agg("mean")
    labels.insert(0, "splits", pd.DataFrame(per_run).groupby("label").size())
    return {"rows": rows, "aggregate": aggregate, "labels": labels.reset_index().to_dict("records")}


def report(slug: str, label: str, metric: str, summary: dict[str, Any]) -> None:
    a = summary["aggregate"]
    print(f"\n{slug} · {label} · {metric}, gap = CV - LB oriented (positive: CV optimistic)")
    print(
        f"{'split':>5}{'runs':>6}{'gap':>10}{'spearman':>10}  {'default':<12}{'LB default':>11}"
        f"  {'best':<12}{'best LB':>9}{'is best':>9}{'in noise':>10}"
    )
    for r in summary["rows"]:
        print(
            f"{r['split']:>5}{r['runs']:>6}{r['gap']:>+10.5f}{r['spearman']:>10.3f}  "
            f"{r['default']:<12}{r['default_lb']:>11.5f}  {r['best']:<12}{r['best_lb']:>9.5f}"
            f"{'yes' if r['is_best'] else 'no':>9}{'yes' if r['within_noise'] else 'no':>10}"
        )
    n = a["n_splits"]
    print(
        f"  all: gap {a['gap_mean']:+.5f} ± {a['gap_std']:.5f} (std over splits) · mean spearman "
        f"{a['spearman_mean']:.3f} · default best {a['n_best']}/{n} · within noise "
        f"{a['n_within_noise']}/{n}"
    )
    print(f"\n{'label':<14}{'splits':>7}{'mean CV':>10}{'mean LB':>10}{'mean gap':>10}")
    for r in summary["labels"]:
        print(f"{r['label']:<14}{r['splits']:>7}{r['cv']:>10.5f}{r['lb']:>10.5f}{r['gap']:>+10.5f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kfw-path", type=Path, default=REPO, help="the kfw checkout to measure")
    parser.add_argument("--label", default="after", help="names this version in the outputs")
    parser.add_argument("--comp", action="append", choices=COMPS, help="default: both")
    parser.add_argument("--splits", type=int, default=5, help="re-splits besides the open one")
    parser.add_argument("--work", type=Path, help="where the KFW_HOMEs go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the KFW_HOMEs")
    parser.add_argument("--out", type=Path, help="default: benchmarks/results/cv_vs_lb-LABEL.json")
    args = parser.parse_args()
    args.kfw_path = args.kfw_path.resolve()
    work = (args.work or Path(tempfile.mkdtemp(prefix="kfw-cvlb-"))).resolve() / args.label
    work.mkdir(parents=True, exist_ok=True)
    print(f"work: {work.parent} (--work {work.parent} resumes)", file=sys.stderr)
    check_import(args.kfw_path, work)
    out = args.out or REPO / "benchmarks" / "results" / f"cv_vs_lb-{args.label}.json"
    results: dict[str, Any] = {"label": args.label, "kfw_path": str(args.kfw_path), "comps": {}}
    ratios = []
    for slug in args.comp or COMPS:
        splits = []
        for split in range(args.splits + 1):
            folder = work / slug / f"split-{split}"
            reused = (folder / "done.json").is_file()
            print(f"{slug} split {split} ({args.label})...", end=" ", file=sys.stderr, flush=True)
            splits.append(run_split(slug, split, folder, args))
            print("done before" if reused else f"{splits[-1]['seconds']:.0f} s", file=sys.stderr)
        summary = summarise(splits)
        report(slug, args.label, splits[0]["metric"], summary)
        results["comps"][slug] = {"splits": splits, **summary}
        a = summary["aggregate"]
        ratios.append(
            f"{slug} ({args.label}): default within noise of the best LB in "
            f"{a['n_within_noise']} of {a['n_splits']} splits (the best in {a['n_best']})"
        )
    print("\n" + "\n".join(ratios))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"results: {out}")
    if args.work is None and not args.keep:
        shutil.rmtree(work.parent)


if __name__ == "__main__":
    main()
