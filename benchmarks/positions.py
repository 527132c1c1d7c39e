"""Learned vs sinusoidal vs rotary positions: equal steps, several seeds, and 2x the context.

Each (positions, seed) pair trains the ``cpu`` preset's GPT on the corpus's characters through
:func:`kfw.dl.lm.loop.train` (same data, schedule and fixed evaluation batches for every run; the
seed moves the initial weights and the batches). After training, sinusoidal and rotary models
are also evaluated on fixed validation windows of TWICE the training context (learned
positions have no table rows there).

Writes, flat in ``--out``:

- ``positions.json``: per positions kind, per seed: the validation curve, the final validation
  loss, the loss at 2x context (null for learned), seconds;
- ``positions.md``: the table, mean ± std over seeds;
- ``positions-curves.png``: validation loss against step, mean line and min-max band per kind;
- ``attention-maps.png``: every head of every layer of one trained model on a Shakespeare line.

    .venv/bin/python benchmarks/positions.py --out reports/positions [--seeds 3] \\
        [--max-iters N] [--device cuda] [--jobs 10] [--threads 1]

``--jobs N`` runs N trainings at once in spawned processes (safe with CUDA).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

POSITIONS = ("learned", "sinusoidal", "rope")
DEFAULT_CORPUS = (
    Path(__file__).resolve().parent.parent.parent / "shared/corpora/tinyshakespeare.txt"
)
EVAL_2X_SEED = 4242  # the 2x-context windows: the same for every run


def parse_setting(text: str) -> tuple[str, str]:
    from kfw.dl.lm import parse_setting as parse

    return parse(text)


def run_one(task: dict[str, Any]) -> dict[str, Any]:
    """Train one (pos, seed) model; evaluate at 1x and 2x context; attention maps if asked."""
    import torch

    from kfw.dl.lm import (
        Runtime,
        build_model,
        evaluate,
        fixed_starts,
        load_corpus,
        resolve_config,
        train,
    )

    if task["threads"]:
        torch.set_num_threads(task["threads"])
    cfg = resolve_config(
        task["preset"],
        **{
            **task["settings"],
            "pos": task["pos"],
            "max_iters": task["max_iters"],
            "eval_interval": task["eval_interval"],
        },
    )
    data = load_corpus(Path(task["corpus"]), cfg)
    runtime = Runtime(device=task["device"], compile=False).resolved()
    torch.manual_seed(task["seed"])
    model = build_model(cfg, data.tokenizer.vocab_size, fused=runtime.fused)
    result = train(model, data.train, data.val, cfg, seed=task["seed"], runtime=runtime)
    out: dict[str, Any] = {
        "pos": task["pos"],
        "seed": task["seed"],
        "curve": [[r["iter"], r["val"]] for r in result.losses],
        "final_val": result.val_loss,
        "val_2x": None,
        "seconds": result.seconds,
        "tokens_per_s": result.tokens_per_s,
    }
    if cfg.pos != "learned":
        long = 2 * cfg.block_size
        starts = fixed_starts(len(data.val), long, cfg.batch_size, cfg.eval_iters, EVAL_2X_SEED)
        out["val_2x"] = evaluate(model, data.val, starts, long, runtime.device, runtime.amp)
    if task["maps"]:
        line = shakespeare_line(data.tokenizer.decode(data.val[:4000].tolist()), cfg.block_size)
        idx = torch.tensor([data.tokenizer.encode(line)], device=runtime.device)
        out["line"] = line
        out["maps"] = [m[0].float().cpu().numpy().tolist() for m in model.attention_maps(idx)]
    return out


def saved_run_maps(run_dir: Path, corpus: Path) -> dict[str, Any]:
    """The attention maps of a trained ``kfw lm`` run on a line of the corpus's validation part."""
    import torch

    from kfw.dl.lm import load_model, split_point

    model, tokenizer, _ = load_model(run_dir)
    text = corpus.read_text(encoding="utf-8")
    cfg = model.config
    line = shakespeare_line(text[split_point(len(text)) :][:4000], cfg.block_size)
    idx = torch.tensor([tokenizer.encode(line)])
    maps = [m[0].float().numpy().tolist() for m in model.attention_maps(idx)]
    seed = json.loads((run_dir / "run.json").read_text()).get("seed", "?")
    return {"pos": cfg.pos, "seed": seed, "line": line, "maps": maps}


def shakespeare_line(text: str, block: int) -> str:
    """The first line of ``text`` of 30 to min(60, block) characters (else its first block)."""
    for line in text.splitlines():
        if 30 <= len(line) <= min(60, block):
            return line
    return text[: min(60, block)]


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def write_table(
    results: dict[str, list[dict[str, Any]]], args: argparse.Namespace, path: Path
) -> None:
    lines = [
        f"Positions on the `{args.preset}` preset, {args.max_iters or 'preset'} steps, seeds {args.seed_list}; "
        "validation loss in nats per character, mean ± std over seeds.",
        "",
        "| positions | final val loss | val loss at 2x context | seconds per run |",
        "|---|---|---|---|",
    ]
    for pos, runs in results.items():
        m, s = mean_std([r["final_val"] for r in runs])
        two = [r["val_2x"] for r in runs if r["val_2x"] is not None]
        two_s = "n/a (no table rows)" if not two else "{:.4f} ± {:.4f}".format(*mean_std(two))
        secs = statistics.fmean(r["seconds"] for r in runs)
        lines.append(f"| {pos} | {m:.4f} ± {s:.4f} | {two_s} | {secs:.0f} |")
    path.write_text("\n".join(lines) + "\n")


def plot_curves(results: dict[str, list[dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for pos, runs in results.items():
        steps = np.array([s for s, _ in runs[0]["curve"]])
        vals = np.array([[v for _, v in r["curve"]] for r in runs])  # (seeds, evaluations)
        ax.plot(steps, vals.mean(0), label=f"{pos} (n={len(runs)})")
        ax.fill_between(steps, vals.min(0), vals.max(0), alpha=0.25)
    ax.set_xlabel("step")
    ax.set_ylabel("validation loss (nats / char)")
    ax.set_title("Positions: validation loss, mean and min-max over seeds")
    ax.legend()
    low = min(min(v for _, v in r["curve"]) for runs in results.values() for r in runs)
    ax.set_ylim(low - 0.05, low + 1.0)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_maps(run: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    maps, line = run["maps"], run["line"]  # maps: n_layer x (n_head, T, T)
    n_layer, n_head = len(maps), len(maps[0])
    fig, axes = plt.subplots(n_layer, n_head, figsize=(3.2 * n_head, 3.2 * n_layer), squeeze=False)
    chars = [c if c != " " else "␣" for c in line]
    for layer in range(n_layer):
        for head in range(n_head):
            ax = axes[layer][head]
            ax.imshow(maps[layer][head], cmap="viridis", vmin=0.0, vmax=1.0)
            ax.set_title(f"layer {layer} head {head}", fontsize=9)
            ax.set_xticks(range(len(chars)), chars, fontsize=4)
            ax.set_yticks(range(len(chars)), chars, fontsize=4)
    fig.suptitle(
        f"{run['pos']} positions, seed {run['seed']}: row = query, column = key\n{line!r}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--seeds", type=int, default=3, help="Seeds per kind (1337, 1338, ...).")
    ap.add_argument("--max-iters", type=int, default=None)
    ap.add_argument("--eval-interval", type=int, default=None)
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Any other setting (smoke tests).",
    )
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present).")
    ap.add_argument("--jobs", type=int, default=1, help="Trainings at once (spawned processes).")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads per job.")
    ap.add_argument(
        "--positions",
        default=",".join(POSITIONS),
        help="Which kinds to train, comma-separated (default: all three).",
    )
    ap.add_argument("--maps-pos", default="rope", choices=POSITIONS)
    ap.add_argument(
        "--maps-run",
        type=Path,
        default=None,
        help="Only draw attention-maps.png of a saved `kfw lm train` run folder (no training).",
    )
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if args.maps_run is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        plot_maps(saved_run_maps(args.maps_run, args.corpus), args.out / "attention-maps.png")
        print(f"wrote {args.out / 'attention-maps.png'}")
        return
    args.seed_list = [1337 + i for i in range(args.seeds)]
    kinds = [p for p in POSITIONS if p in args.positions.split(",")]
    if args.maps_pos not in kinds:
        args.maps_pos = kinds[0]
    threads = args.threads or max(1, (os.cpu_count() or 1) // max(1, args.jobs))
    tasks = [
        {
            "pos": pos, "seed": seed, "preset": args.preset, "corpus": str(args.corpus),
            "max_iters": args.max_iters, "eval_interval": args.eval_interval, "device": args.device,
            "threads": threads, "settings": dict(parse_setting(x) for x in args.set), "maps": pos == args.maps_pos and seed == args.seed_list[0],
        }
        for pos in kinds
        for seed in args.seed_list
    ]  # fmt: skip
    started = time.perf_counter()
    if args.jobs > 1:
        # spawn, not fork: a forked child cannot use CUDA once the parent touched it
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=ctx) as pool:
            done = list(pool.map(run_one, tasks))
    else:
        done = []
        for t in tasks:
            done.append(run_one(t))
            print(f"{t['pos']:>10} seed {t['seed']}: val {done[-1]['final_val']:.4f}", flush=True)
    results: dict[str, list[dict[str, Any]]] = {
        p: [r for r in done if r["pos"] == p] for p in kinds
    }

    args.out.mkdir(parents=True, exist_ok=True)
    maps_run = next(r for r in done if "maps" in r)
    plot_maps(maps_run, args.out / "attention-maps.png")
    plot_curves(results, args.out / "positions-curves.png")
    write_table(results, args, args.out / "positions.md")
    slim = {p: {str(r["seed"]): {k: v for k, v in r.items() if k not in ("maps", "pos", "seed")} for r in runs} for p, runs in results.items()}  # fmt: skip
    meta = {"preset": args.preset, "max_iters": args.max_iters, "seeds": args.seed_list, "device": args.device, "jobs": args.jobs, "wall_s": time.perf_counter() - started}  # fmt: skip
    (args.out / "positions.json").write_text(
        json.dumps({"meta": meta, "results": slim}, indent=2) + "\n"
    )
    print((args.out / "positions.md").read_text())
    print(
        f"wrote {', '.join(sorted(p.name for p in args.out.iterdir()))} in {args.out} ({meta['wall_s']:.0f} s)"
    )


if __name__ == "__main__":
    main()
