"""The write-up sections, in order; each returns markdown lines."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kfw.progress import Callback

if TYPE_CHECKING:
    pass

from kfw.core.metrics import average_ranks
from kfw.kaggle.leaderboard import SubmissionStore
from kfw.markdown import render
from kfw.pipeline.design import load_feature_module
from kfw.report.doc import (
    _SOURCES,
    _UNKNOWN_SOURCE,
    TOP_DRIFT,
    WriteupDoc,
    _direction,
    _f,
    figure,
    image,
    table,
)
from kfw.study import ablate, bakeoff
from kfw.study.adversarial import adversarial_validation
from kfw.threads import default_threads

TEMPLATES = Path(__file__).parent / "templates"  # the prose, with $placeholders


def _prose(template: str, **values: Any) -> list[str]:
    """The lines of ``templates/<template>.md`` filled with ``values``."""
    return render(TEMPLATES / f"{template}.md", **values).rstrip("\n").split("\n")


# ---------------------------------------------------------------------------------------------
# the sections, in order; each returns markdown lines


def summary(doc: WriteupDoc) -> list[str]:
    b, spec = doc.best, doc.spec
    lines = [
        (f"{spec.description} " if spec.description else "")
        + f"Kaggle competition `{spec.kaggle}`: {spec.task}, scored by {b['metric']} "
        f"({_direction(b)}).",
        "",
        f"- Best cross-validated run: **{b['label']}** ({b['kind']}), CV {b['metric']} "
        f"**{_f(b['score'])}** (folds {_f(b['mean'])} ± {_f(b['std'])}), run `{b['id']}`.",
        f"- Runs on the current data: {len(doc.runs)} (latest of each label; "
        f"{len(doc.all_runs)} runs in the store).",
    ]
    subs = _read_submissions(doc)
    scored = [s for s in subs or [] if s.get("public") is not None]
    if scored:
        s = scored[-1]
        lines.append(
            f"- Latest leaderboard score: public {_f(s['public'])}"
            + (f", private {_f(s['private'])}" if s.get("private") is not None else "")
            + f" (CV {_f(s.get('cv'))}, run `{s.get('run')}`)."
        )
    return lines


def task_and_data(doc: WriteupDoc) -> list[str]:
    spec, b = doc.spec, doc.best
    source = b["data"]["source"] if doc.dataset is None else doc.dataset.source
    lines = [
        f"**Task**: {spec.task}; target `{spec.target}`, id `{spec.id}`; metric {b['metric']} "
        f"({_direction(b)})"
        + (
            f"; models fit `{spec.target_transform}` of the target"
            if spec.target_transform != "none"
            else ""
        )
        + ".",
        "",
        f"**Data source**: {_SOURCES.get(source, _UNKNOWN_SOURCE)}",
        "",
    ]
    if doc.dataset is None:
        return [*lines, "The data files are not present, so they are not described here."]
    ds = doc.dataset
    if ds.hash != b["data"]["hash"]:
        lines += [
            f"The runs below were made on data hash `{b['data']['hash']}`; the files now in "
            f"the data folder (hash `{ds.hash}`) are the ones described here.",
            "",
        ]
    both = [ds.train.drop(columns=[spec.target]), ds.test]
    categorical = sum(1 for c in ds.test.columns if c != spec.id and not _numeric(ds.test[c].dtype))
    lines += table(
        ["file", "rows", "columns"],
        [
            [spec.files.train, len(ds.train), ds.train.shape[1]],
            [spec.files.test, len(ds.test), ds.test.shape[1]],
        ],
        {1, 2},
    )
    lines += [
        "",
        f"Input columns: {ds.test.shape[1] - 1} besides the id ({categorical} categorical), "
        f"data hash `{ds.hash}`.",
    ]
    import pandas as pd

    missing = pd.concat(both, ignore_index=True).isna().mean().sort_values(ascending=False)
    missing = missing[missing > 0].head(8)
    if len(missing):
        shown = ", ".join(f"`{c}` {v:.1%}" for c, v in missing.items())
        lines.append(f"Most missing (train + test): {shown}.")
    lines += ["", "**Target distribution** (train):", ""]
    y = pd.Series(ds.y)
    if spec.task == "regression":
        q = y.describe()
        keys = ["count", "mean", "std", "min", "25%", "50%", "75%", "max"]
        lines += table(keys, [[f"{q[k]:.6g}" for k in keys]], set(range(len(keys))))
    else:
        counts = y.value_counts().sort_index()
        lines += table(
            ["class", "rows", "share"],
            [[c, n, f"{n / len(y):.1%}"] for c, n in counts.items()],
            {1, 2},
        )
    notes = doc.spec.dir / "notes.md"
    if notes.is_file():
        lines += ["", "### Notes", "", notes.read_text().strip()]
    return lines


def _numeric(dtype: Any) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def scheme_reason(scheme: dict[str, Any], task: str) -> str:
    """Why the fold scheme fits: one sentence per scheme."""
    kind = scheme["scheme"]
    if kind == "time":
        return (
            f"an expanding window over `{scheme['time']}`: each fold validates a later block and "
            f"trains on earlier periods only (gap {scheme['gap']}), as the test set lies after "
            "the training data."
        )
    group = f"rows sharing `{scheme['group']}` stay in one fold, so every score is on unseen groups"
    strat = (
        "stratified on the class, so every fold keeps the training set's class balance"
        if task != "regression"
        else f"stratified on {scheme['bins']} quantile bins of the target, so every fold sees "
        "the whole range of the target"
    )
    return {
        "kfold": "plain K-fold: the rows are exchangeable (no groups or time order to respect).",
        "stratified": strat + ", and fold scores vary less.",
        "group": group + ", as the test set's are.",
        "stratified_group": f"{group}, {strat.split(', so')[0]}.",
    }[kind]


def validation(
    doc: WriteupDoc, adversarial: bool, threads: int | None, callback: Callback
) -> list[str]:
    b = doc.best
    s = b["folds"]["scheme"]
    lines = _prose(
        "validation",
        name=b["folds"]["name"],
        n_splits=s["n_splits"],
        repeats=f", {s['n_repeats']} repeats" if s["n_repeats"] > 1 else "",
        seed=s["seed"],
        hash=b["folds"]["hash"],
        reason=scheme_reason(s, b["task"]),
    )
    others = sorted({r["folds"]["hash"] for r in doc.runs} - {b["folds"]["hash"]})
    if others:
        lines.append(f"Some runs used other fold files ({', '.join(others)}); see the tables.")
    lines += ["", "### Adversarial validation", ""]
    if not adversarial:
        return [*lines, "Skipped (`--no-adversarial`)."]
    if doc.design is None:
        return [*lines, "Skipped: the data files are not present."]

    result = adversarial_validation(
        doc.design.X, doc.design.X_test, seed=doc.spec.seed, threads=threads or default_threads()
    )
    callback.info(f"adversarial validation: AUC {result.auc:.3f}")
    verdict = (
        "train and test look alike, so a CV score on the training rows should carry to the test set"
        if result.auc < 0.55
        else "a mild shift between train and test: the CV may be slightly off for the test set"
        if result.auc < 0.7
        else "train and test differ clearly: trust the CV less, and look at the columns below"
    )
    top = result.drift.head(TOP_DRIFT)
    return lines + _prose(
        "adversarial",
        n_folds=len(result.fold_aucs),
        n_train=result.n_train,
        n_test=result.n_test,
        auc=f"{result.auc:.3f}",
        fold_mean=f"{np.mean(result.fold_aucs):.3f}",
        fold_std=f"{np.std(result.fold_aucs):.3f}",
        verdict=verdict,
        table="\n".join(
            table(
                ["column", "AUC alone", "gain share"],
                [[f"`{c}`", f"{a:.3f}", f"{g:.1%}"] for c, a, g in top.itertuples(index=False)],
                {1, 2},
            )
        ),
    )


def features(doc: WriteupDoc) -> list[str]:

    f = doc.best["features"]
    lines = [f"Feature module `{f['module']}` (source hash `{f['source_hash']}`)."]
    if doc.design is not None and doc.design.module_hash != f["source_hash"]:
        lines.append(
            f"It has changed since the best run (source hash now `{doc.design.module_hash}`): "
            "the text below is the current module's."
        )
    if doc.design is not None:
        cols = [str(c) for c in doc.design.X.columns]
        lines += [
            "",
            f"Row features: {len(cols)} columns: "
            + ", ".join(f"`{c}`" for c in cols[:60])
            + (f" and {len(cols) - 60} more" if len(cols) > 60 else "")
            + ".",
        ]
        if doc.design.features is not None:
            lines.append(f"Fitted inside each fold: `{type(doc.design.features).__name__}`.")
    doc_text = (load_feature_module(doc.spec).__doc__ or "").strip()
    # reST ``literal`` and :role:`target` -> markdown `literal`
    doc_text = re.sub(r"``(.+?)``", r"`\1`", re.sub(r":[a-z]+:`", "`", doc_text))
    return [*lines, "", doc_text or "The feature module has no docstring."]


# the early-stopping column of the runs table
_STOPPED = {"inner": "inner split", "scored-fold": "scored fold (optimistic)"}


def _fold_key(f: dict[str, Any], repeats: bool) -> str:
    return f"r{f['repeat']} f{f['fold']}" if repeats else str(f["fold"])


def models(doc: WriteupDoc) -> list[str]:
    metric = doc.best["metric"]
    rows = []
    for r in doc.runs:
        what = r.get("model") or f"{r.get('method')} of {len(r.get('members') or [])}"
        rows.append([
            r["label"], what, _f(r["score"]), f"{_f(r['mean'])} ± {_f(r['std'])}",
            f"{r.get('seconds', 0):.1f}", _STOPPED.get(r.get("early_stopping"), "no"), f"`{r['id']}`",
        ])  # fmt: skip
    header = ["run", "model", f"CV {metric}", "folds mean ± std", "seconds", "early stop", "id"]
    lines = _prose(
        "models",
        metric=metric,
        direction=_direction(doc.best),
        table="\n".join(table(header, rows, {2, 3, 4})),
    )
    if any(r.get("early_stopping") == "inner" for r in doc.runs):
        lines += ["", *_prose("models-inner")]
    optimistic = [r for r in doc.runs if r.get("optimistic")]
    if optimistic:
        shown = "; ".join(f"{r['label']}: {', '.join(r['optimistic'])}" for r in optimistic)
        lines += ["", *_prose("models-optimistic", runs=shown)]
    excluded = doc.best.get("excluded_ids") or []
    if excluded:
        lines += [
            "",
            *_prose(
                "models-excluded",
                n=len(excluded),
                id=doc.spec.id,
                shown=", ".join(str(i) for i in excluded[:10]),
                score=_f(doc.best.get("score_without_excluded")),
            ),
        ]
    repeats = any(f["repeat"] for r in doc.runs for f in r["fold_scores"])
    keys: list[str] = []
    per_run = []
    for r in doc.runs:
        scores = {_fold_key(f, repeats): f["score"] for f in r["fold_scores"]}
        keys += [k for k in scores if k not in keys]
        per_run.append(scores)
    lines += ["", "Per-fold scores:", ""]
    lines += table(
        ["fold", *[r["label"] for r in doc.runs]],
        [[k, *[_f(s.get(k)) for s in per_run]] for k in keys],
        set(range(1, len(doc.runs) + 1)),
    )
    return lines


def _latest_bakeoff(doc: WriteupDoc) -> Path | None:
    found = sorted((doc.store.root / "bakeoffs").glob("*/bakeoff.json"))
    return found[-1].parent if found else None


def bakeoff_section(doc: WriteupDoc) -> list[str]:

    folder = _latest_bakeoff(doc)
    if folder is None:
        return [f"No bake-off yet: `kfw bakeoff {doc.spec.slug}` runs one."]
    data = json.loads((folder / "bakeoff.json").read_text())
    lines = _prose(
        "bakeoff",
        name=folder.name,
        trials=data["trials"],
        table=bakeoff.table([bakeoff.Row(**r) for r in data["rows"]], data["metric"]),
    )
    if (folder / "bakeoff.png").is_file():
        doc.images["bakeoff.png"] = (folder / "bakeoff.png").read_bytes()
        lines += ["", "![Bake-off: CV of each variant](bakeoff.png)"]
    return lines


def ablation_section(doc: WriteupDoc) -> list[str]:
    """The latest ``kfw ablate`` table and chart, as a subsection; nothing when there is none."""

    found = [
        json.loads(p.read_text()) for p in (doc.store.root / "ablations").glob("*/ablation.json")
    ]
    if not found:
        return []
    data = max(found, key=lambda d: d["finished"])
    f = data["folds"]
    lines = [
        "",
        *_prose(
            "ablation",
            label=data["label"],
            model=data["model"],
            how="every combination" if data["factorial"] else "one at a time",
            seeds=", ".join(map(str, data["seeds"])),
            folds=f["name"],
            subset=f" (the first {f['used']} of {f['of']})" if f["used"] != f["of"] else "",
            command=data["command"],
            table=ablate.table(data),
        ),
    ]
    png = doc.store.root / "ablations" / data["id"] / "ablation.png"
    if png.is_file():
        doc.images["ablation.png"] = png.read_bytes()
        lines += ["", "![Ablation: each variant's difference from the base](ablation.png)"]
    return lines


def ensemble(doc: WriteupDoc) -> list[str]:
    ensembles = [r for r in doc.runs if r["kind"] == "ensemble"]
    if not ensembles:
        return ["No ensemble on the current data (a roster of one, or `--no-blend`)."]
    by_id = {r["id"]: r for r in doc.all_runs}
    lines = []
    for e in ensembles:
        weights = e.get("weights")
        lines += _prose(
            "ensemble",
            label=e["label"],
            method=e["method"],
            n_members=len(e["members"]),
            metric=e["metric"],
            score=_f(e["score"]),
        )
        if e.get("score_insample") is not None:
            lines.append(
                f"Fitted once on all out-of-fold predictions it scores {_f(e['score_insample'])} "
                "(in-sample, optimistic); the weights below are that fit."
            )
        rows = [
            [
                label,
                f"`{m}`",
                _f(by_id.get(m, {}).get("score")),
                _f(weights[m], 4) if weights else "-",
            ]
            for m, label in zip(e["members"], e["member_labels"], strict=True)
        ]
        lines += ["", *table(["member", "run", "CV", "weight"], rows, {2, 3}), ""]
        if not weights:
            lines += ["No weights: the members are combined by a model or by ranks.", ""]
    return lines


def _read_submissions(doc: WriteupDoc) -> list[dict[str, Any]] | None:
    store = SubmissionStore(doc.home, doc.spec.slug)
    return store.entries() if store.path.is_file() else None


def rank_correlation(a: Any, b: Any) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN when either side is constant."""

    ra, rb = average_ranks(np.asarray(a, float)), average_ranks(np.asarray(b, float))
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def leaderboard(doc: WriteupDoc) -> list[str]:
    subs = _read_submissions(doc)
    if subs is None:
        return [f"No submissions yet (`kfw submit {doc.spec.slug}` records them)."]
    labels = {r["id"]: r["label"] for r in doc.all_runs}
    rows = [
        [
            s.get("submitted_at", ""), labels.get(s.get("run"), s.get("run", "")), s.get("message", ""),
            _f(s.get("cv")), _f(s.get("public")), _f(s.get("private")), s.get("status", ""), s.get("source", ""),
        ]
        for s in subs
    ]  # fmt: skip
    lines = table(
        ["submitted", "run", "message", "CV", "public", "private", "status", "source"],
        rows,
        {3, 4, 5},
    )
    pairs = [s for s in subs if s.get("cv") is not None and s.get("public") is not None]
    if not pairs:
        return [*lines, "", "No submission has a public score yet."]
    cv = np.array([s["cv"] for s in pairs], float)
    public = np.array([s["public"] for s in pairs], float)
    lines.append("")
    for part in ("public", "private"):
        both = [s for s in pairs if s.get(part) is not None]
        if len(both) < 3:
            if part == "public":
                lines.append(f"{len(both)} scored submissions: a rank correlation needs 3.")
            continue
        rho = rank_correlation([s["cv"] for s in both], [s[part] for s in both])
        lines.append(
            f"Rank correlation (Spearman) of CV and {part} score over {len(both)} submissions: "
            f"**{_f(rho, 3)}**"
            + (" (+1: the CV orders them as the leaderboard does)." if part == "public" else ".")
        )
    gap = public - cv
    lines.append(
        f"Public minus CV: mean {gap.mean():+.5f}, from {gap.min():+.5f} to {gap.max():+.5f}."
    )
    fig, ax = figure(6.5, 4.5)
    ax.scatter(cv, public, color="#3d7ab8", label="public", zorder=3)
    private = [(s["cv"], s["private"]) for s in pairs if s.get("private") is not None]
    if private:
        ax.scatter(*zip(*private, strict=True), color="#d9822b", marker="s", label="private")
    for s, x, y in zip(pairs, cv, public, strict=True):
        name = labels.get(s.get("run"), str(s.get("run", "")))
        ax.annotate(name, (x, y), xytext=(4, 4), textcoords="offset points", fontsize=8)
    ax.set(xlabel=f"CV {doc.best['metric']}", ylabel="leaderboard score", title="CV vs leaderboard")
    ax.margins(0.15)
    ax.legend()
    return [*lines, "", image(doc, "leaderboard.png", "CV against leaderboard score", fig)]


def _command(doc: WriteupDoc, r: dict[str, Any], bakeoff_runs: dict[str, Any]) -> str:
    """The run's recorded command, else one that reproduces it (ends in ``# reconstructed``)."""
    if r.get("command"):
        return r["command"]
    slug = doc.spec.slug
    if r["id"] in bakeoff_runs:
        cmd = f"kfw bakeoff {slug} --trials {bakeoff_runs[r['id']]}"
    elif r["kind"] == "ensemble":
        level2 = f" --level2 {r['label'].split('-', 1)[1]}" if r["method"] == "level2" else ""
        cmd = f"kfw stack {slug} --method {r['method']}{level2}" + "".join(
            f" -r {m}" for m in r["members"]
        )
    else:
        label, tuned = r["label"], ""
        if label.endswith("-tuned"):
            label, tuned = label.removesuffix("-tuned"), " --tuned"
        seed = f" --seed {r['seed']}" if r.get("seed") not in (None, doc.spec.seed) else ""
        cmd = f"kfw cv {slug} --model {label}{tuned}{seed} --no-blend"
    return f"{cmd}  # reconstructed"


def reproducibility(doc: WriteupDoc) -> list[str]:
    b = doc.best
    bakeoff_runs = {}
    for path in (doc.store.root / "bakeoffs").glob("*/bakeoff.json"):
        data = json.loads(path.read_text())
        bakeoff_runs.update({row["run"]: data["trials"] for row in data["rows"]})
    commands: dict[str, list[str]] = {}  # one command, every run it made
    for r in doc.runs:
        commands.setdefault(_command(doc, r, bakeoff_runs), []).append(r["label"])
    commits = sorted({str(r["environment"].get("git_commit")) for r in doc.runs})
    env = b["environment"]
    seeds = [
        [r["label"], r.get("seed", "-"), r.get("threads", "-"), r["folds"]["scheme"]["seed"]]
        for r in doc.runs
    ]
    return _prose(
        "reproducibility",
        data_hash=b["data"]["hash"],
        data_source=b["data"]["source"],
        folds=b["folds"]["name"],
        folds_hash=b["folds"]["hash"],
        module=b["features"]["module"],
        source_hash=b["features"]["source_hash"],
        commands="\n".join(f"# {', '.join(labels)}\n{cmd}" for cmd, labels in commands.items()),
        plural="s" if len(commits) > 1 else "",
        commits=", ".join(f"`{c}`" for c in commits),
        dirty=" (`-dirty`: uncommitted changes were present)."
        if any("dirty" in c for c in commits)
        else ".",
        python=env["python"],
        platform=env["platform"],
        versions="\n".join(
            table(["library", "version"], [[k, v] for k, v in env["versions"].items()])
        ),
        seeds="\n".join(table(["run", "model seed", "threads", "fold seed"], seeds, {1, 2, 3})),
    )
