"""``kfw runs``: the run store as a table, two runs side by side, the folds of every run as a chart.

``kfw runs COMP`` lists the runs best CV first, with the best public leaderboard score of each
(from ``$KFW_HOME/submissions/COMP/submissions.json``); ``--plot`` writes ``runs/COMP/runs.png``.
``kfw runs diff A B`` compares two runs of any competition (ids, or any unique part of one).
A competition literally named ``diff`` is shadowed by that form: list it with ``kfw list``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from kfw.cli.common import competition, console, fmt_score, kfw_home
from kfw.errors import KfwError

Target = Annotated[
    str,
    typer.Argument(
        help="Competition name, or `diff` followed by two run ids.",
        metavar="COMP",
        show_default=False,
    ),
]
Ids = Annotated[
    list[str] | None,
    typer.Argument(
        help="With `diff`: the two runs (ids, or unique parts of them).",
        metavar="[A B]",
        show_default=False,
    ),
]


def runs(
    ctx: typer.Context,
    comp: Target,
    ids: Ids = None,
    plot: Annotated[
        bool, typer.Option("--plot", help="Chart every run's fold scores into runs/COMP/runs.png.")
    ] = False,
    test_like: Annotated[
        bool,
        typer.Option(
            "--test-like",
            help="Add each run's CV on the training rows most like the test set (after kfw audit).",
        ),
    ] = False,
) -> None:
    """The competition's runs, best CV first; `kfw runs diff A B` compares two runs."""
    from rich.table import Table

    from kfw.core.runstore import RunStore, best_first

    if comp == "diff":
        diff(ctx, ids or [])
        return
    if ids:
        raise typer.BadParameter(
            f"unexpected run ids {' '.join(ids)} (did you mean `kfw runs diff`?)"
        )
    spec = competition(ctx, comp)
    store = RunStore(kfw_home(ctx), comp)
    records = best_first(store.records())
    if not records:
        console().print(f"no runs for {comp} yet: `kfw cv {comp}`")
        return
    lb = best_public(kfw_home(ctx), comp, records[0]["greater_is_better"])
    compared = compare_current(store, records, spec, kfw_home(ctx))
    like = _test_like(store, records, kfw_home(ctx), comp) if test_like else None
    table = Table(
        "run", "model", f"{spec.metric} ± SE", "vs best [95%]", "", "folds mean ± std", "time",
        "LB public", "W&B", *(["test-like CV"] if like is not None else []),
    )  # fmt: skip
    for column in table.columns[:4]:
        column.no_wrap = True
    for r in records:
        c = compared.get(r["id"])
        se = f" ± {r['se']:.5f}" if r.get("se") is not None else ""
        table.add_row(
            r["id"],
            _model(r),
            fmt_score(r["score"]) + se,
            _interval(c) if c is not None or not compared else "other folds or data",
            _mark(r, c),
            f"{r['mean']:.5f} ± {r['std']:.5f}",
            f"{r['seconds']:.1f} s",
            fmt_score(lb.get(r["id"])),
            (r.get("wandb") or {}).get("mode", "-"),
            *([fmt_score(like.get(r["id"]))] if like is not None else []),
        )
    console().print(table)
    if compared:
        console().print(
            "≈: within noise of the best run on the same folds (the 95% corrected paired "
            "interval of the difference contains 0); !: optimistic CV, never chosen by default",
            highlight=False,
        )
    if plot:
        path = plot_runs(records, lb, store.root / "runs.png", comp)
        console().print(str(path), highlight=False)


def diff(ctx: typer.Context, ids: list[str]) -> None:
    """Parameters and scores of two runs side by side (``kfw runs diff A B``)."""
    from rich.table import Table

    if len(ids) != 2:
        raise typer.BadParameter(f"`kfw runs diff` takes two run ids, got {len(ids)}")
    home = kfw_home(ctx)
    a, b = (find_run(home, i) for i in ids)
    table = Table("", f"A {a['id']}", f"B {b['id']}", "B − A", title=None)
    for key, va, vb in param_diff(a, b) or [("parameters", "identical", "identical")]:
        table.add_row(key, _cell(va), _cell(vb), "")
    table.add_section()
    for key, va, vb, delta in score_diff(a, b):
        if key == "seconds":
            table.add_row("time", _seconds(va), _seconds(vb), _seconds(delta, "+"))
        else:
            table.add_row(key, fmt_score(va), fmt_score(vb), _delta(delta))
    lb_a = best_public(home, a["competition"], a["greater_is_better"]).get(a["id"])
    lb_b = best_public(home, b["competition"], b["greater_is_better"]).get(b["id"])
    if lb_a is not None or lb_b is not None:
        both = lb_a is not None and lb_b is not None
        table.add_row(
            "LB public", fmt_score(lb_a), fmt_score(lb_b), _delta(lb_b - lb_a if both else None)
        )
    console().print(table)
    console().print(_verdict(a, b), highlight=False)


def compare_current(
    store: Any, records: list[dict[str, Any]], spec: Any, home: Path
) -> dict[str, Any]:
    """Each run on the competition's current fold file against the best of them (kfw.core.noise)."""
    from kfw.core.folds import stored_hash
    from kfw.core.noise import NoiseError, compare, fit_sizes, store_scores
    from kfw.kaggle.data import data_dir

    fold_hash = stored_hash(data_dir(home, spec.slug), spec.folds)
    same = [r for r in records if r["folds"]["hash"] == fold_hash and not r.get("ablation")]
    if not same:
        return {}
    newest = max(same, key=lambda r: r.get("finished") or "")
    same = [r for r in same if r["data"]["hash"] == newest["data"]["hash"]]
    try:
        return {c.record["id"]: c for c in compare(same, store_scores(store), *fit_sizes(same))}
    except NoiseError as exc:
        from kfw.cli.common import RichProgress

        RichProgress().warning(f"runs not compared: {exc}")
        return {}


def _test_like(
    store: Any, records: list[dict[str, Any]], home: Path, comp: str
) -> dict[str, float]:
    """Each run's CV on the training rows most like the test set (kfw.study.adversarial)."""
    from kfw.study.adversarial import load_test_likeness, test_like_scores

    p_test = load_test_likeness(home, comp)
    if p_test is None:
        raise KfwError(f"no test-likeness for {comp} yet: run `kfw audit {comp}` first")
    return test_like_scores(store, records, p_test)


def _interval(c: Any) -> str:
    if c is None:
        return ""
    if c.difference is None:
        return "best" if c.indistinguishable else "-"
    d = c.difference
    return f"{d.mean:+.5f} [{d.low:+.5f}, {d.high:+.5f}]"


def _mark(r: dict[str, Any], c: Any) -> str:
    mark = "≈" if c is not None and c.indistinguishable else ""
    return mark + ("!" if r.get("optimistic") else "")


def _model(r: dict[str, Any]) -> str:
    if r["kind"] == "ensemble":
        return f"{r['label']} of {len(r.get('members') or [])}"
    return r["label"] if r["label"] == r.get("model") else f"{r['label']} ({r.get('model')})"


def _cell(value: Any) -> str:
    return "-" if value is None else json.dumps(value) if not isinstance(value, str) else value


def _seconds(value: float | None, sign: str = "") -> str:
    return "-" if value is None else f"{value:{sign}.1f} s"


def _delta(value: float | None) -> str:
    return "" if value is None else f"{value:+.5f}"


# ---------------------------------------------------------------------------------------------
# what the commands compute


def find_run(kfw_home: Path, key: str) -> dict[str, Any]:
    """The record of run ``key`` in any competition: its id, or a part of exactly one id."""
    paths = sorted((kfw_home / "runs").glob("*/*/run.json"))
    exact = [p for p in paths if p.parent.name == key]
    found = exact or [p for p in paths if key in p.parent.name]
    if not found:
        raise KfwError(f"no run matches {key!r} under {kfw_home / 'runs'}")
    if len(found) > 1:
        names = ", ".join(f"{p.parent.parent.name}/{p.parent.name}" for p in found[:5])
        more = f" and {len(found) - 5} more" if len(found) > 5 else ""
        raise KfwError(f"{key!r} matches {len(found)} runs: {names}{more}; give more of the id")
    from kfw.core.runstore import read_record

    return read_record(found[0].parent)


def best_public(kfw_home: Path, slug: str, greater_is_better: bool) -> dict[str, float]:
    """The best public leaderboard score of each run, from ``submissions/<slug>/submissions.json``."""
    from kfw.kaggle.leaderboard import SubmissionStore

    best: dict[str, float] = {}
    for e in SubmissionStore(kfw_home, slug).entries():
        try:
            score = float(e["public"])  # the Kaggle API reports scores as strings
        except (KeyError, TypeError, ValueError):
            continue  # pending, failed, or not scored yet
        run = e.get("run")
        if run is not None and (
            run not in best or (score > best[run] if greater_is_better else score < best[run])
        ):
            best[run] = score
    return best


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def param_diff(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(key, value in A, value in B)`` for every configuration entry that differs."""
    from kfw.pipeline.mirror import config

    fa, fb = (_flatten({k: v for k, v in config(r).items() if k != "kfw_run_id"}) for r in (a, b))
    return [
        (k, fa.get(k), fb.get(k)) for k in sorted(fa.keys() | fb.keys()) if fa.get(k) != fb.get(k)
    ]


def score_diff(
    a: dict[str, Any], b: dict[str, Any]
) -> list[tuple[str, float | None, float | None, float | None]]:
    """``(name, A, B, B − A)``: the overall scores, the time, and each fold when the folds match."""
    rows = []
    for key in ("score", "score_without_excluded", "mean", "std", "seconds"):
        va, vb = a.get(key), b.get(key)
        if va is not None or vb is not None:
            delta = vb - va if va is not None and vb is not None else None
            rows.append(("CV" if key == "score" else key, va, vb, delta))
    if a["folds"]["hash"] == b["folds"]["hash"]:
        fb = {(f["repeat"], f["fold"]): f["score"] for f in b.get("fold_scores") or []}
        for f in a.get("fold_scores") or []:
            vb = fb.get((f["repeat"], f["fold"]))
            delta = vb - f["score"] if vb is not None else None
            rows.append((f"fold r{f['repeat']} f{f['fold']}", f["score"], vb, delta))
    return rows


def _verdict(a: dict[str, Any], b: dict[str, Any]) -> str:
    if a["metric"] != b["metric"]:
        return (
            f"the runs use different metrics ({a['metric']}, {b['metric']}): scores do not compare"
        )
    sign = 1 if a["greater_is_better"] else -1
    better = (
        "B" if sign * (b["score"] - a["score"]) > 0 else "A" if b["score"] != a["score"] else None
    )
    head = f"{better} is better on the CV {a['metric']}" if better else f"same CV {a['metric']}"
    if a["folds"]["hash"] != b["folds"]["hash"]:
        return f"{head}; different fold files ({a['folds']['hash']}, {b['folds']['hash']}): folds are not paired"
    pairs = [r for r in score_diff(a, b) if r[0].startswith("fold ") and r[3] is not None]
    wins = sum(sign * r[3] > 0 for r in pairs)
    return (
        f"{head}; B beats A on {wins} of {len(pairs)} folds (same fold file {a['folds']['hash']})"
    )


def plot_runs(records: list[dict[str, Any]], lb: dict[str, float], path: Path, title: str) -> Path:
    """One row per run (best first, on top): fold scores as points, mean ± std, CV, public LB."""

    import numpy as np
    from matplotlib.figure import Figure  # no pyplot: no global figure state, Agg canvas

    n = len(records)
    fig = Figure(figsize=(11, max(2.5, 0.45 * n + 1.3)))
    ax = fig.subplots()
    for i, r in enumerate(records):
        y = n - 1 - i
        scores = [f["score"] for f in r.get("fold_scores") or []]
        jitter = np.linspace(-0.18, 0.18, len(scores)) if len(scores) > 1 else np.zeros(len(scores))
        first = i == 0
        ax.scatter(scores, y + jitter, s=16, alpha=0.6, color="C0", label="fold" if first else None)
        ax.errorbar(r["mean"], y, xerr=r["std"], fmt="|", color="C0", capsize=3,
                    label="folds mean ± std" if first else None)  # fmt: skip
        ax.plot(
            r["score"], y, "D", color="C3", ms=6, label="CV (all out-of-fold)" if first else None
        )
        if r["id"] in lb:
            ax.plot(lb[r["id"]], y, "*", color="C2", ms=11, label="public LB")
    ax.set_yticks(range(n), labels=[r["id"] for r in reversed(records)], fontsize=8)
    direction = "higher" if records[0]["greater_is_better"] else "lower"
    ax.set_xlabel(f"{records[0]['metric']} ({direction} is better)")
    ax.set_title(f"{title}: {n} runs, per-fold scores", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    ax.legend(
        unique.values(), unique.keys(), fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1)
    )
    fig.tight_layout()
    from kfw import files

    return files.write_with(path, lambda tmp: fig.savefig(tmp, dpi=110), suffix=".png")


def register(app: typer.Typer) -> None:
    app.command()(runs)
