"""Figures and write-ups of the reproductions, generated from their run records.

``write_report("batchnorm" | "dropout", home, docs)`` reads the latest runs of
``$KFW_HOME/runs/repro-*/`` and writes ``docs/repro-<paper>.md`` (figures beside it in
``docs/img/``) and ``docs/repro-<paper>.html`` (the same text, images embedded as data URIs,
through :func:`kfw.markdown.to_html`). Every number in the text is read from a run record;
the paper's numbers are quoted from the paper. All files are rendered in memory first, then
written to temporary names and renamed.

No torch here: matplotlib (Agg, no global backend) and NumPy only.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kfw import files
from kfw.dl.idx import load_idx_dir
from kfw.dl.repro import complete_runs, latest_run
from kfw.errors import DataError, KfwError
from kfw.markdown import render, to_html

ARM_STYLE = {"baseline": ("without BN", "#d62728"), "bn": ("with BN", "#1f77b4")}

TEMPLATES = Path(__file__).parent / "templates"  # the prose of the write-ups
PAPER_DECAY = 0.998**3000  # the learning rate's factor over the paper's 3000 epochs
# The max-norm row has not yet run at length on a CPU: its cost was timed instead. Seconds per
# epoch (training and the epoch's test error), wall clock, 1 thread, on the shared 2-core
# machine, 2026-12-06: the row alone over 2 epochs (`kfw repro dropout --data DIR --device cpu
# --threads 1 --epochs 2 --rows dropout-maxnorm`: 31.4 s per epoch, 25 s of it CPU time),
# the three rows over 1 (the same with `--epochs 1` and every row: 97.6 s, 78 s of CPU time).
MAXNORM_SECONDS = {"alone": 31.4, "all rows": 97.6}
MAXNORM_NOTE = (
    "Timed on 2026-12-06 beside other work, at a load average of 3.3 to 4.3 on the 2 cores: a "
    "quiet machine is faster."
)


def _figure(width: float, height: float, ncols: int = 1) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(1, ncols)


def _png(fig: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# figures (called at the end of each run; bytes go into the run folder)


def figure1a(results: dict[str, Any]) -> bytes:
    """Test accuracy against steps: mean over seeds and a min-max band, both networks."""
    fig, ax = _figure(6.0, 4.0)
    steps = np.array(results["steps"])
    for arm, (label, color) in ARM_STYLE.items():
        acc = np.array(results["test_accuracy"][arm])  # (S, n_steps)
        ax.plot(steps, acc.mean(0), color=color, label=f"{label} (mean of {len(acc)})")
        ax.fill_between(steps, acc.min(0), acc.max(0), color=color, alpha=0.2, lw=0)
    ax.set(xlabel="training step", ylabel="test accuracy", ylim=(0.0, 1.0))
    ax.set_title("(a) MNIST test accuracy (band: min-max over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return _png(fig)


def figure1bc(results: dict[str, Any]) -> bytes:
    """The 15/50/85th percentiles of one last-layer sigmoid input, without (b) and with BN (c)."""
    fig, axes = _figure(10.0, 3.8, ncols=2)
    steps = np.array(results["steps"])
    pct = results["percentiles"]
    lo = min(np.min(pct[a]) for a in ARM_STYLE)
    hi = max(np.max(pct[a]) for a in ARM_STYLE)
    for ax, (arm, (label, color)), letter in zip(axes, ARM_STYLE.items(), "bc", strict=False):
        q = np.array(pct[arm])[0]  # the first seed: (n_steps, 3)
        for j, (p, style) in enumerate(zip(pct["q"], (":", "-", "--"), strict=False)):
            ax.plot(steps, q[:, j], style, color=color, label=f"{p}th percentile")
        ax.set(xlabel="training step", ylabel="sigmoid input", ylim=(lo - 0.2, hi + 0.2))
        ax.set_title(f"({letter}) {label}: unit {pct['unit']} of hidden layer 3")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    return _png(fig)


def modification_figure(results: dict[str, Any]) -> bytes:
    """Final test accuracy against the learning rate, mean and 95% CI, both networks."""
    fig, ax = _figure(6.0, 4.0)
    lrs = np.array(results["lrs"])
    for arm, (label, color) in ARM_STYLE.items():
        final = results[arm]["final"]
        mean = np.array([f["mean"] for f in final])
        err = np.array([[f["mean"] - f["lo"] for f in final], [f["hi"] - f["mean"] for f in final]])
        ax.errorbar(lrs, mean, yerr=err, color=color, marker="o", capsize=4, label=label)
    ax.set(
        xscale="log",
        xlabel="SGD learning rate",
        ylabel=f"test accuracy at step {results['steps'][-1]}",
    )
    ax.set_title("Learning rate tolerated (mean, 95% CI over seeds)")
    ax.grid(alpha=0.3)
    ax.legend()
    return _png(fig)


def dropout_figure(results: dict[str, Any]) -> bytes:
    """Test error (%) against epochs for every row."""
    fig, ax = _figure(6.0, 4.0)
    epochs = np.array(results["epochs"])
    for row in results["rows"]:
        ax.plot(
            epochs, results["test_error"][row], marker="." if len(epochs) < 30 else None, label=row
        )
    ax.set(xlabel="epoch", ylabel="test error (%)", yscale="log")
    from matplotlib.ticker import FuncFormatter

    for axis in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
        axis(FuncFormatter(lambda v, _: f"{v:g}"))  # 1.5, 2, 3 rather than 2 x 10^0
    ax.set_title("MNIST test error, 3 x 1024 ReLU networks")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return _png(fig)


FIGURES = {
    "figure1a.png": figure1a,
    "figure1bc.png": figure1bc,
    "modification_lr.png": modification_figure,
    "table2.png": dropout_figure,
}

# ---------------------------------------------------------------------------------------------
# the write-ups


@dataclass
class Report:
    """Where a write-up went."""

    markdown: Path
    html: Path
    images: list[Path]
    runs: list[str]


def _load(run: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    return json.loads((run / "run.json").read_text()), json.loads(
        (run / "results.json").read_text()
    )


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    align = ["---"] + ["---:"] * (len(header) - 1)
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    return out + ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]


def _at(results: dict[str, Any], arm: str, step: int) -> np.ndarray | None:
    if step not in results["steps"]:
        return None
    return np.array(results["test_accuracy"][arm])[:, results["steps"].index(step)]


def _pct(v: np.ndarray | None) -> str:
    return "-" if v is None else f"{100 * np.median(v):.2f}%"


def batchnorm_markdown(
    main: tuple[dict[str, Any], dict[str, Any]],
    mod: tuple[dict[str, Any], dict[str, Any]] | None,
) -> tuple[str, dict[str, str]]:
    """The text of ``docs/repro-batchnorm.md``, and its images (name -> run file)."""
    record, res = main
    cfg = record["config"]
    images = {
        "img/repro-batchnorm-figure1a.png": "figure1a.png",
        "img/repro-batchnorm-figure1bc.png": "figure1bc.png",
    }
    s = len(res["seeds"])
    rows = []
    for step in (5000, 10000, 20000, 50000):
        b, n = _at(res, "baseline", step), _at(res, "bn", step)
        gap = "-" if b is None else f"{100 * (np.median(n) - np.median(b)):+.2f}"
        rows.append([f"{step:,}", _pct(b), _pct(n), gap])
    last = res["steps"][-1]
    b_last, n_last = _at(res, "baseline", last), _at(res, "bn", last)
    b20, n10 = _at(res, "baseline", 20000), _at(res, "bn", 10000)
    checks = [
        (
            "BN >= 97.5% at step 50,000",
            None if _at(res, "bn", 50000) is None else np.median(_at(res, "bn", 50000)) >= 0.975,
        ),
        ("BN >= 96.5% at step 10,000", None if n10 is None else np.median(n10) >= 0.965),
        ("baseline <= 60% at step 20,000", None if b20 is None else np.median(b20) <= 0.60),
        (
            "baseline >= 2 points lower at step 50,000",
            None
            if _at(res, "bn", 50000) is None
            else np.median(_at(res, "bn", 50000)) - np.median(_at(res, "baseline", 50000)) >= 0.02,
        ),
    ]
    pct = res["percentiles"]
    drift = {}  # how far the median sigmoid input wanders over training: max - min, per seed
    for arm in ("baseline", "bn"):
        q = np.array(pct[arm])[:, :, 1]  # (S, n_steps)
        drift[arm] = float(np.mean(q.max(1) - q.min(1)))
    bn_final, b_final = float(np.median(n_last)), float(np.median(b_last))
    figure1a, figure1bc = images
    text = render(
        TEMPLATES / "batchnorm.md",
        run=record["id"],
        torch=record["environment"].get("torch", "?"),
        device=res["device"],
        data=cfg["data"],
        n_train=f"{res['n_train']:,}",
        n_test=f"{res['n_test']:,}",
        init_std=cfg["init_std"],
        lr=cfg["lr"],
        batch_size=cfg["batch_size"],
        steps=f"{cfg['steps']:,}",
        config_steps=cfg["steps"],
        n_seeds=s,
        seeds=", ".join(map(str, res["seeds"])),
        momentum=cfg["momentum"],
        unit=pct["unit"],
        test_batch=pct["test_batch"],
        seconds_baseline=f"{res['seconds']['baseline']:.0f}",
        seconds_bn=f"{res['seconds']['bn']:.0f}",
        accuracy_table="\n".join(
            _table(["step", "without BN", "with BN", "BN - baseline (points)"], rows)
        ),
        checks_table="\n".join(
            _table(
                ["what the issue asks", "met"],
                [[c, "-" if ok is None else ("yes" if ok else "**no**")] for c, ok in checks],
            )
        ),
        figure1a=figure1a,
        figure1bc=figure1bc,
        drift_baseline=f"{drift['baseline']:.2f}",
        drift_bn=f"{drift['bn']:.2f}",
        last=f"{last:,}",
        bn_final=f"{100 * bn_final:.2f}%",
        baseline_final=f"{100 * b_final:.2f}%",
        final_gap=f"{100 * (bn_final - b_final):+.2f}",
        ordering="The paper's ordering holds."
        if bn_final > b_final
        else "The paper's ordering does NOT hold.",
        speed=f"at step 10,000 the BN network is at {_pct(n10)} while the baseline is at "
        f"{_pct(_at(res, 'baseline', 10000))}."
        if n10 is not None
        else "the run is shorter than 10,000 steps.",
        distributions="the baseline's sigmoid input drifts more than the BN network's, as in "
        "Figure 1(b, c)."
        if drift["baseline"] > drift["bn"]
        else "in this run the BN network's sigmoid input moved at least as much as the "
        "baseline's: the paper's picture is not reproduced here.",
        modification=_modification_section(mod),
        where=_device_options(record, res),
        reproduce_modification=(
            f"kfw repro batchnorm --data DIR {_device_options(*mod)} --modification lr "
            f"--seeds {len(mod[1]['seeds'])} --steps {mod[1]['steps'][-1]}"
            if mod
            else "kfw repro batchnorm --data DIR --modification lr"
        ),
    )
    return text, images


def _modification_section(mod: tuple[dict[str, Any], dict[str, Any]] | None) -> str:
    if mod is None:
        return "*Not run yet: `kfw repro batchnorm --data DIR --modification lr`.*\n"
    record, res = mod
    rows = []
    for i, lr in enumerate(res["lrs"]):
        cells = [f"{lr:g}"]
        for arm in ("baseline", "bn"):
            f = res[arm]["final"][i]
            cells.append(f"{100 * f['mean']:.2f}% [{100 * f['lo']:.2f}, {100 * f['hi']:.2f}]")
        rows.append(cells)
    means = {arm: [100 * f["mean"] for f in res[arm]["final"]] for arm in ("baseline", "bn")}
    best = {arm: int(np.argmax(means[arm])) for arm in means}
    spread = {arm: max(m) - min(m) for arm, m in means.items()}
    return render(
        TEMPLATES / "batchnorm-modification.md",
        lrs=", ".join(f"{lr:g}" for lr in res["lrs"]),
        n_seeds=len(res["seeds"]),
        steps=f"{res['steps'][-1]:,}",
        run=record["id"],
        device=res["device"],
        table="\n".join(_table(["learning rate", "without BN", "with BN"], rows)),
        best_bn_lr=f"{res['lrs'][best['bn']]:g}",
        best_bn=f"{100 * res['bn']['final'][best['bn']]['mean']:.2f}%",
        best_baseline_lr=f"{res['lrs'][best['baseline']]:g}",
        best_baseline=f"{100 * res['baseline']['final'][best['baseline']]['mean']:.2f}%",
        range=f"{res['lrs'][-1] / res['lrs'][0]:g}",
        spread_bn=f"{spread['bn']:.2f}",
        spread_baseline=f"{spread['baseline']:.2f}",
        sensitivity="BN makes the network nearly indifferent to the learning rate, while "
        "without it the rate decides whether the net learns at all in this budget"
        if spread["bn"] < spread["baseline"]
        else "BN does not make the network less sensitive to the rate here",
        gap=f"{means['baseline'][best['baseline']] - means['bn'][best['bn']]:+.2f}",
        limit=f"No rate in the range hurt BN: its limit lies above {res['lrs'][-1]:g}."
        if spread["bn"] < 1.0
        else f"BN's worst rate here is {res['lrs'][int(np.argmin(means['bn']))]:g}.",
    )


def _dropout_runs(latest: Path, home: Path, slug: str) -> tuple[Path, list[Path]]:
    """The main run (the newest on the paper's compressed schedule, else the newest), and the
    newest run of each other total learning-rate decay (the schedule's sensitivity)."""

    newest: dict[float, Path] = {}
    for run in complete_runs(home, slug, "table2"):
        decay = json.loads((run / "run.json").read_text())["config"].get("total_decay")
        newest[round(float(decay or PAPER_DECAY), 12)] = run  # oldest first: the newest wins
    paper = [d for d in newest if math.isclose(d, PAPER_DECAY, rel_tol=1e-6)]
    main = newest.pop(paper[0]) if paper else latest
    return main, [run for run in newest.values() if run != main]


@dataclass(frozen=True)
class Gap:
    """Standard minus dropout test error, in points, and its standard error.

    Paired (``discordant`` set) when the run kept both networks' test labels: the two networks
    are scored on the same 10,000 images, so only the images exactly one of them gets wrong
    carry information (McNemar's test; Dietterich 1998). ``discordant`` is (images only the
    standard network gets wrong, images only the dropout network gets wrong) and ``p`` the
    exact two-sided McNemar p-value. Without predictions (older runs): two independent
    binomials, a conservative standard error.
    """

    points: float
    se: float
    discordant: tuple[int, int] | None = None
    p: float | None = None

    @property
    def clear(self) -> bool:
        return self.points > 2 * self.se

    def describe(self) -> str:
        if self.discordant is None:
            return f"standard error of the difference {self.se:.2f} points, two binomials"
        b, c = self.discordant
        return (
            f"paired standard error {self.se:.2f} points; {b} test images only the standard "
            f"network gets wrong, {c} only the dropout network, McNemar p = {self.p:.2g}"
        )


def _test_labels(res: dict[str, Any], data: str | None) -> np.ndarray | None:
    """The run's test labels: kept in the record, else re-read from the run's data folder."""
    if "test_labels" in res:
        return np.asarray(res["test_labels"])

    if not data:
        return None
    try:
        labels = load_idx_dir(data)[3]
    except (DataError, OSError):
        return None
    return labels if len(labels) == res["n_test"] else None


def _gap(res: dict[str, Any], data: str | None = None) -> Gap | None:
    """Standard minus dropout test error (points), paired when the predictions were kept."""
    final = res["final_error"]
    if "standard" not in final or "dropout" not in final:
        return None
    n, points = res["n_test"], final["standard"] - final["dropout"]
    preds = res.get("test_predictions", {})
    labels = _test_labels(res, data) if {"standard", "dropout"} <= set(preds) else None
    if labels is None:
        se = math.sqrt(
            sum(e / 100 * (1 - e / 100) / n for e in (final["standard"], final["dropout"]))
        )
        return Gap(points, 100 * se)
    from scipy.stats import binomtest

    std_wrong = np.asarray(preds["standard"]) != labels
    drop_wrong = np.asarray(preds["dropout"]) != labels
    b, c = int(np.sum(std_wrong & ~drop_wrong)), int(np.sum(~std_wrong & drop_wrong))
    d = (b - c) / n
    se = math.sqrt(max((b + c) / n - d * d, 0.0) / n)
    p = binomtest(min(b, c), b + c, 0.5).pvalue if b + c else 1.0
    return Gap(100 * d, 100 * se, (b, c), float(p))


def dropout_markdown(
    main: tuple[dict[str, Any], dict[str, Any]],
    others: list[tuple[dict[str, Any], dict[str, Any]]] | None = None,
) -> tuple[str, dict[str, str]]:
    """The text of ``docs/repro-dropout.md``, and its images (name -> the id of the run drawn)."""
    record, res, others = *main, others or []
    cfg = record["config"]
    images = {"img/repro-dropout-table2.png": record["id"]}
    settings = {r["name"]: r for r in res["row_settings"]}
    rows = []
    for name in res["rows"]:
        st = settings[name]
        paper = "-" if st["paper_error"] is None else f"{st['paper_error']:.2f}%"
        c = (
            "none"
            if st["max_norm"] is None or not np.isfinite(st["max_norm"])
            else f"{st['max_norm']:g}"
        )
        rows.append(
            [
                st["description"],
                f"{st['p_input']:g} / {st['p_hidden']:g}",
                c,
                f"{st['lr']:g}",
                f"{res['final_error'][name]:.2f}%",
                f"{min(res['test_error'][name]):.2f}%",
                paper,
            ]
        )
    final = res["final_error"]
    matched = []
    if "dropout" in final:
        d = final["dropout"]
        matched.append(
            f"- Dropout network: {d:.2f}% after {len(res['epochs'])} epochs; the CPU target is "
            f"<= 1.40% ({'met' if d <= 1.40 else 'not met at this length'}), the paper's 1.25% ± 0.15 "
            f"{'matched' if abs(d - 1.25) <= 0.15 else 'not matched at this length'}."
        )
    if "dropout-maxnorm" in final:
        d = final["dropout-maxnorm"]
        matched.append(
            f"- With max-norm: {d:.2f}% (paper 1.06%: "
            f"{'within 0.15 points' if abs(d - 1.06) <= 0.15 else 'not within 0.15 points'})."
        )
    # once per run: an older run's paired gap re-reads its test labels from the IDX files
    gaps = {rec["id"]: _gap(r, rec["config"].get("data")) for rec, r in [main, *others]}
    gap = gaps[record["id"]]
    if gap is not None:
        verdict = "clearly worse" if gap.clear else "not clearly worse: within noise"
        matched.append(
            f"- Without dropout: {final['standard']:.2f}%, {gap.points:+.2f} points against the "
            f"dropout network ({gap.describe()}; {res['n_test']:,} test images): {verdict} at "
            f"this length (clearly: more than 2 standard errors). The paper puts standard "
            f"networks at about 1.6%; ours, on the same schedule as the dropout rows, is at "
            f"{final['standard']:.2f}%."
        )
    commands = [_dropout_command(record, res)]
    decay_section = ""
    if others:
        table, figures = [], ""
        for rec, r in [main, *others]:
            g = gaps[rec["id"]]
            fin = r["final_error"]
            table.append(
                [
                    f"`{rec['id']}`",
                    f"{rec['config']['total_decay']:.4f}",
                    len(r["epochs"]),
                    *(f"{fin[k]:.2f}%" if k in fin else "-" for k in ("standard", "dropout")),
                    "-" if g is None else f"{g.points:+.2f} ± {g.se:.2f}",
                    f"{r['seconds'] / 60:.0f} min",
                ]
            )
        for rec, r in others:
            name = f"img/repro-dropout-decay-{rec['config']['total_decay']:g}.png"
            images[name] = rec["id"]
            figures += f"\n\n![Test error against epochs, total decay {rec['config']['total_decay']:g}]({name})"
            commands.append(_dropout_command(rec, r))
        measured = [g for g in gaps.values() if g is not None]
        header = ["run", "total decay", "epochs", "standard", "dropout", "gap (SE)", "time"]
        decay_section = "\n\n" + render(
            TEMPLATES / "dropout-decay.md",
            table="\n".join(_table(header, table)),
            clear=sum(g.clear for g in measured),
            measured=len(measured),
            figures=figures,
        ).rstrip("\n")
    maxnorm_section = ""
    if "dropout-maxnorm" not in res["rows"]:
        n = len(res["epochs"])
        cost = {k: {"run": v * n, "paper": v * 3000} for k, v in MAXNORM_SECONDS.items()}
        maxnorm_section = "\n\n" + render(
            TEMPLATES / "dropout-maxnorm.md",
            alone=f"{MAXNORM_SECONDS['alone']:.1f}",
            all_rows=f"{MAXNORM_SECONDS['all rows']:.1f}",
            n_epochs=n,
            alone_run=_duration(cost["alone"]["run"]),
            all_run=_duration(cost["all rows"]["run"]),
            alone_paper=_duration(cost["alone"]["paper"]),
            all_paper=_duration(cost["all rows"]["paper"]),
            note=MAXNORM_NOTE,
        ).rstrip("\n")
    text = render(
        TEMPLATES / "dropout.md",
        run=record["id"],
        where=_where(record, res),
        n_epochs=len(res["epochs"]),
        seconds_per_epoch=f"{res['seconds_per_epoch']:.1f}",
        minutes=f"{res['seconds'] / 60:.1f}",
        n_train=f"{res['n_train']:,}",
        n_test=f"{res['n_test']:,}",
        batch_size=cfg["batch_size"],
        init_std=cfg["init_std"],
        momentum_start=cfg["momentum_start"],
        momentum_end=cfg["momentum_end"],
        ramp_epochs=f"{cfg['ramp_fraction'] * cfg['epochs']:.1f}",
        total_decay=f"{cfg['total_decay']:.4f}",
        decay_note="(0.998^3000, the paper's schedule compressed)"
        if math.isclose(cfg["total_decay"], PAPER_DECAY, rel_tol=1e-6)
        else f"(the paper's 0.998^3000 is {PAPER_DECAY:.4f})",
        table="\n".join(
            _table(
                [
                    "row",
                    "p input / hidden",
                    "max-norm c",
                    "eps0",
                    "test error (final)",
                    "best epoch",
                    "paper (Table 2)",
                ],
                rows,
            )
        ),
        figure=next(iter(images)),
        matched="".join(f"\n{line}" for line in matched),  # one line each, after a blank
        decay_section=decay_section,
        maxnorm_section=maxnorm_section,
        commands="\n".join(commands),
    )
    return text, images


def _duration(seconds: float) -> str:
    """``63 min`` under an hour and a half, ``3.3 h`` above."""
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _threads(record: dict[str, Any], res: dict[str, Any]) -> int | None:
    """The CPU threads a run trained with (its float sums, hence its numbers, depend on them).

    The config's ``threads`` when the run set them (torch had its own setting back before the
    record was written), else torch's own setting, which the record's environment holds.
    """
    threads = record["config"].get("threads") or record.get("environment", {}).get("threads")
    return threads if res["device"] == "cpu" and threads else None


def _where(record: dict[str, Any], res: dict[str, Any]) -> str:
    threads = _threads(record, res)
    return res["device"] if threads is None else f"cpu, {threads} thread{'s' * (threads > 1)}"


def _device_options(record: dict[str, Any], res: dict[str, Any]) -> str:
    """``--device`` and ``--threads`` as the run had them: the command runs where the run ran
    (the default ``auto`` would take a GPU where there is one, and the numbers would move)."""
    threads = _threads(record, res)
    return f"--device {res['device']}" + ("" if threads is None else f" --threads {threads}")


def _dropout_command(record: dict[str, Any], res: dict[str, Any]) -> str:
    cfg = record["config"]
    decay = cfg.get("total_decay", PAPER_DECAY)
    extra = "" if math.isclose(decay, PAPER_DECAY, rel_tol=1e-6) else f" --total-decay {decay:g}"
    rows = ",".join(res["rows"])
    where = _device_options(record, res)
    return f"kfw repro dropout --data DIR {where} --epochs {cfg['epochs']} --rows {rows}{extra}"


def write_report(paper: str, home: Path, docs: Path) -> Report:
    """Write ``docs/repro-<paper>.md``, its images in ``docs/img/`` and the HTML version.

    Raises
    ------
    KfwError
        An unknown paper or no run to report on.
    """

    slug = f"repro-{paper}"
    # figures are redrawn from results.json, so a better plot applies to old runs too
    if paper == "batchnorm":
        main_run = latest_run(home, slug, "figure1")
        try:
            mod_run: Path | None = latest_run(home, slug, "modification-lr")
        except KfwError:
            mod_run = None
        main, mod = _load(main_run), _load(mod_run) if mod_run else None
        text, names = batchnorm_markdown(main, mod)
        blobs = {name: FIGURES[f](main[1]) for name, f in names.items()}
        if mod is not None:
            blobs["img/repro-batchnorm-modification-lr.png"] = modification_figure(mod[1])
        runs = [main_run.name] + ([mod_run.name] if mod_run else [])
    elif paper == "dropout":
        main_run, other_runs = _dropout_runs(latest_run(home, slug, "table2"), home, slug)
        main, others = _load(main_run), [_load(r) for r in other_runs]
        text, names = dropout_markdown(main, others)
        by_id = {rec["id"]: res for rec, res in [main, *others]}
        blobs = {name: dropout_figure(by_id[run_id]) for name, run_id in names.items()}
        runs = [main_run.name] + [r.name for r in other_runs]
    else:
        raise KfwError(f"no reproduction {paper!r}: choose batchnorm or dropout")
    title = text.splitlines()[0].lstrip("# ")
    page = to_html(text, blobs, title)
    (docs / "img").mkdir(parents=True, exist_ok=True)
    for name, data in blobs.items():
        files.write_bytes(docs / name, data)
    md, html = docs / f"{slug}.md", docs / f"{slug}.html"
    files.write_text(md, text)
    files.write_text(html, page)
    return Report(md, html, [docs / n for n in blobs], runs)
