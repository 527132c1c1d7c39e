"""``kfw rl ablate``: what each implementation detail is worth, over seeds, with paired intervals.

Every variant (the baseline, each switch turned off, any named variant) is trained with the
same seeds; seed ``s`` of a variant and seed ``s`` of the baseline share their initial weights'
seed and their environments' seeds, so their difference is paired. A run already in the store
with the same algorithm, environment, config and seed is reused, not retrained.

Two numbers per run: the *final* return (the mean of the last 100 training episodes) and the
*area under the curve* (the mean, over 100 evenly spaced points of training, of the mean return
of the last 100 episodes finished by then: how fast it learned, not only where it ended). Each
variant gets its mean over seeds with a 95% t-interval, and the paired difference from the
baseline with its own 95% t-interval; the curves are drawn with their 95% bands.
"""

from __future__ import annotations

import dataclasses
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kfw.core.config import parse_override
from kfw.core.executor import Executor
from kfw.core.noise import mean_interval
from kfw.core.runstore import RunStore, config_key
from kfw.errors import ConfigError
from kfw.files import write_bytes, write_json, write_text
from kfw.pipeline.mirror import Mirror
from kfw.progress import NULL, Callback
from kfw.rl.runs import LAST, resolve, slug_for, train_rl

# a switch named on the command line -> the settings that turn that detail off
TOGGLES: dict[str, dict[str, dict[str, Any]]] = {
    "ppo": {
        "clip": {"objective": "none"},
        "gae": {"gae": False},
        "advnorm": {"advnorm": False},
        "vclip": {"vclip": False},
        "anneal": {"anneal_lr": False},
        "ortho": {"ortho_init": False},
        "gradclip": {"max_grad_norm": 0.0},
        "separate": {"separate": False},
        "entropy": {"ent_coef": 0.0},
        "adameps": {"adam_eps": 1e-8},
    },
    "dqn": {"replay": {"replay": False}, "target": {"target": False}, "double": {"double": True}},
}
GRID = 100  # points of the learning curves


def plan(
    algorithm: str,
    env_id: str,
    toggle: str,
    named: list[str],
    steps: int | None,
    overrides: dict[str, Any],
) -> list[tuple[str, Any]]:
    """``(name, config)`` of every variant, the baseline first; all checked before any run."""
    variants = [("baseline", resolve(algorithm, env_id, steps, overrides))]
    switches = TOGGLES.get(algorithm, {})
    for name in [t.strip() for t in toggle.split(",") if t.strip()]:
        if name not in switches:
            raise ConfigError(f"unknown {algorithm} switch {name!r}: one of {', '.join(switches)}")
        label = f"no-{name}" if name != "double" else "double"
        variants.append((label, resolve(algorithm, env_id, steps, {**overrides, **switches[name]})))
    for text in named:
        name, _, spec = text.partition(":")
        if not name or not spec:
            raise ConfigError(f"--variant {text!r}: NAME:key=value[,key=value]")
        settings = dict(parse_override(part) for part in spec.split(","))
        variants.append((name, resolve(algorithm, env_id, steps, {**overrides, **settings})))
    names = [n for n, _ in variants]
    if len(set(names)) != len(names):
        raise ConfigError(f"variant names repeat: {', '.join(names)}")
    if len(variants) < 2:
        raise ConfigError("nothing to compare: give --toggle or --variant")
    return variants


def curve(episodes: np.ndarray, steps: int, grid: int = GRID) -> np.ndarray:
    """The mean return of the last :data:`LAST` episodes finished by each of ``grid`` evenly
    spaced steps (NaN before the first episode ends)."""
    at = np.linspace(steps / grid, steps, grid)
    ends, returns = episodes[:, 0], episodes[:, 1]
    out = np.full(grid, np.nan)
    for i, step in enumerate(at):
        done = returns[ends <= step]
        if len(done):
            out[i] = done[-LAST:].mean()
    return out


interval = mean_interval  # mean over seeds and the half-width of its 95% t interval


@dataclass
class Ablation:
    table: str
    png: Path
    markdown: Path
    rows: list[dict[str, Any]]


def _existing(store: RunStore, key: str) -> Path | None:
    """A finished run of the store with ``key`` (the same algorithm, env, config and seed)."""
    if not store.root.is_dir():
        return None
    for run in sorted(store.root.glob("*-*")):
        record_file = run / "run.json"
        if record_file.is_file() and json.loads(record_file.read_text()).get("key") == key:
            return run
    return None


def _task(work: dict[str, Any], item: tuple[str, Any, int]) -> dict[str, Any]:
    name, cfg, seed = item
    return train_rl(
        work["algorithm"], work["env"], Path(work["home"]), cfg, seed=seed, wandb=False,
        annotations={"ablation": work["stamp"], "variant": name},
    )  # fmt: skip


def run_all(
    algorithm: str,
    env_id: str,
    variants: list[tuple[str, Any]],
    seeds: int,
    kfw_home: Path,
    *,
    callback: Callback = NULL,
    wandb: bool = False,
    executor: Executor | None = None,
    stamp: str | None = None,
) -> dict[str, list[Path]]:
    """Train (or find) every variant x seed; the run folders, per variant, in seed order."""
    store = RunStore(kfw_home, slug_for(env_id))
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S")
    runs: dict[str, list[Path | None]] = {name: [None] * seeds for name, _ in variants}
    todo = []
    for name, cfg in variants:
        for s in range(seeds):
            key_src = {
                "algorithm": algorithm,
                "env": env_id,
                "config": dataclasses.asdict(cfg),
                "seed": s + 1,
            }
            found = _existing(store, config_key(key_src))
            if found is not None:
                runs[name][s] = found
            else:
                todo.append((name, cfg, s + 1))
    callback.info(
        f"{algorithm} on {env_id}: {len(variants)} variants x {seeds} seeds; "
        f"{len(todo)} runs to train, {len(variants) * seeds - len(todo)} found in the store"
    )
    executor = executor or Executor()
    work = {"algorithm": algorithm, "env": env_id, "home": str(kfw_home), "stamp": stamp}
    mirror = Mirror(kfw_home, enabled=wandb)
    for i, record, placed in executor.run(_task, todo, executor.share(work)):
        name, _, seed = todo[i]
        run_dir = store.root / record["id"]
        runs[name][seed - 1] = run_dir
        where = f" on {placed.worker}" if executor.parallel else ""
        callback.info(f"{name} seed {seed}: mean return {record['score']:.1f}{where}")
        mirror({**record, "group": f"ablate-{stamp}"}, run_dir, callback)
    return runs  # type: ignore[return-value]


def summarise(
    runs: dict[str, list[Path]], steps: int
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Per variant: final and AUC (mean, interval), paired differences from the first variant."""
    finals, aucs, curves = {}, {}, {}
    for name, dirs in runs.items():
        per_seed = []
        for d in dirs:
            episodes = np.loadtxt(d / "episodes.csv", delimiter=",", skiprows=1, ndmin=2)
            per_seed.append(curve(episodes, steps))
        curves[name] = np.array(per_seed)
        finals[name] = np.array([json.loads((d / "run.json").read_text())["score"] for d in dirs])
        aucs[name] = np.nanmean(curves[name], axis=1)
    base = next(iter(runs))
    rows = []
    for name in runs:
        row = {
            "variant": name,
            "final": interval(finals[name]),
            "auc": interval(aucs[name]),
            "seeds": len(finals[name]),
        }
        if name != base:
            row["d_final"] = interval(finals[name] - finals[base])
            row["d_auc"] = interval(aucs[name] - aucs[base])
        rows.append(row)
    return rows, curves


def markdown_table(rows: list[dict[str, Any]]) -> str:
    def pm(v: tuple[float, float]) -> str:
        return f"{v[0]:.1f} ± {v[1]:.1f}"

    def diff(v: tuple[float, float] | None) -> str:
        if v is None:
            return "-"
        lo, hi = v[0] - v[1], v[0] + v[1]
        sign = " *" if lo > 0 or hi < 0 else ""
        return f"{v[0]:+.1f} [{lo:+.1f}, {hi:+.1f}]{sign}"

    lines = [
        f"| variant | final return (last {LAST} episodes) | vs baseline (paired) | area under the curve | vs baseline (paired) |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {pm(r['final'])} | {diff(r.get('d_final'))} | {pm(r['auc'])} | {diff(r.get('d_auc'))} |"
        )
    lines.append("")
    lines.append(
        f"Means over {rows[0]['seeds']} seeds ± the half-width of their 95% t-interval; differences "
        "are paired by seed, with 95% t-intervals (* : the interval excludes 0)."
    )
    return "\n".join(lines)


def curves_png(curves: dict[str, np.ndarray], steps: int, title: str) -> bytes:
    """Each variant's mean learning curve over seeds, with its 95% t-band, as PNG bytes."""
    from matplotlib.figure import Figure

    x = np.linspace(steps / GRID, steps, GRID)
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    for name, c in curves.items():
        mean = np.nanmean(c, axis=0)
        if c.shape[0] > 1:
            half = np.array([mean_interval(c[~np.isnan(c[:, i]), i])[1] for i in range(c.shape[1])])
            ax.fill_between(x, mean - half, mean + half, alpha=0.2)
        ax.plot(x, mean, label=name)
    ax.set_xlabel("environment steps")
    ax.set_ylabel(f"mean return, last {LAST} episodes")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return png(fig)


def png(fig: Any) -> bytes:
    """A matplotlib figure as PNG bytes (no timestamp in the file: the same data, the same bytes)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    return buf.getvalue()


def ablate(
    algorithm: str,
    env_id: str,
    variants: list[tuple[str, Any]],
    seeds: int,
    kfw_home: Path,
    **options: Any,
) -> Ablation:
    """Run the variants (:func:`run_all`, whose ``options`` these are: ``callback``,
    ``wandb``, ``executor``), then write the curves (PNG) and the table (Markdown)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    runs = run_all(algorithm, env_id, variants, seeds, kfw_home, stamp=stamp, **options)
    steps = variants[0][1].steps
    rows, curves = summarise(runs, steps)
    folder = RunStore(kfw_home, slug_for(env_id)).root / "ablations" / stamp
    table = markdown_table(rows)
    title = f"{algorithm.upper()} on {env_id}: {seeds} seeds, 95% bands"
    png = write_bytes(folder / "curves.png", curves_png(curves, steps, title))
    md = write_text(folder / "table.md", table + "\n")
    write_json(folder / "runs.json", {name: [d.name for d in dirs] for name, dirs in runs.items()})
    return Ablation(table, png, md, rows)
