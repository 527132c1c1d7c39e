"""Which character GPT learns most from a fixed CPU wall time: tokens per second against loss.

For each candidate shape (depth, width, context, batch, peak learning rate) the script

1. measures its training throughput, tokens per second, over a few steps (bf16 autocast, our
   attention: the fastest CPU path for these shapes, see docs/lm-cpu-sweep.md);
2. trains it, through ``kfw lm train``'s own code (:func:`kfw.dl.lm.train_lm`), for as many
   steps as that throughput buys in ``--budget`` seconds, the cosine schedule ending there;
3. reports the validation loss at the end.

Throughput decides the token budget and the loss is then a function of the tokens, not of
the clock, so the training runs need not be timed on a quiet machine: only step 1 does (the
throughput column is the machine's state when it ran; compare its rows, measured together).
In the spirit of the scaling-law papers (Kaplan et al. 2020; Hoffmann et al. 2022): at a fixed
compute budget, a bigger model sees fewer tokens, and the best size balances the two.

    PYTHONPATH=. python benchmarks/lm_cpu_sweep.py [--budget 150] [--threads 2]
        [--corpus ../shared/corpora/tinyshakespeare.txt] [--doc docs/lm-cpu-sweep.md]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import torch

from kfw.dl.gpt import GPT
from kfw.dl.lm import Runtime, gpt_config, resolve_config, train_lm

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "tinyshakespeare.txt"
CANDIDATES = {
    "4x4x128 T128 B32 lr2e-3": dict(n_layer=4, n_head=4, n_embd=128, block_size=128, batch_size=32, learning_rate=2e-3),
    "4x4x128 T128 B16 lr2e-3": dict(n_layer=4, n_head=4, n_embd=128, block_size=128, batch_size=16, learning_rate=2e-3),
    "4x4x128 T128 B16 lr3e-3": dict(n_layer=4, n_head=4, n_embd=128, block_size=128, batch_size=16, learning_rate=3e-3),
    "4x4x128 T128 B8 lr2e-3": dict(n_layer=4, n_head=4, n_embd=128, block_size=128, batch_size=8, learning_rate=2e-3),
    "4x4x128 T256 B8 lr2e-3": dict(n_layer=4, n_head=4, n_embd=128, block_size=256, batch_size=8, learning_rate=2e-3),
    "6x4x128 T128 B16 lr2e-3": dict(n_layer=6, n_head=4, n_embd=128, block_size=128, batch_size=16, learning_rate=2e-3),
    "4x4x192 T128 B16 lr2e-3": dict(n_layer=4, n_head=4, n_embd=192, block_size=128, batch_size=16, learning_rate=2e-3),
    "4x4x192 T128 B16 lr3e-3": dict(n_layer=4, n_head=4, n_embd=192, block_size=128, batch_size=16, learning_rate=3e-3),
}  # fmt: skip


# what every candidate shares (the settings the sweep was run with, pinned so that a change of
# the preset it chose does not change the sweep): the decay floor, warm-up, AdamW, evaluation
BASE = dict(min_lr=2e-4, warmup_iters=100, beta2=0.99, weight_decay=0.1, grad_clip=1.0,
            dropout=0.0, eval_iters=20)  # fmt: skip


def throughput(overrides: dict, runtime: Runtime, steps: int = 8) -> float:
    """Training tokens per second of one shape (the median of ``steps`` steps after 2)."""
    cfg = resolve_config("cpu", **BASE, **overrides)
    torch.manual_seed(0)
    model = GPT(gpt_config(cfg, 65))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, 65, (cfg.batch_size, cfg.block_size))
    times = []
    for _ in range(steps + 2):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(runtime.amp)):
            _, loss = model(x, x)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t)
    step = sorted(times[2:])[steps // 2]
    return cfg.batch_size * cfg.block_size / step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=150.0, help="seconds of steps per shape")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--only", nargs="*", help="candidate names to run (default: all)")
    ap.add_argument("--doc", type=Path, help="write the Markdown table here")
    ap.add_argument("--json", type=Path, help="write the rows here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    runtime = Runtime(device="cpu", amp=True, fused=False, compile=False, threads=args.threads)
    names = args.only or list(CANDIDATES)
    speeds = {name: throughput(CANDIDATES[name], runtime) for name in names}
    rows = []
    with tempfile.TemporaryDirectory() as home:
        for name in names:
            over = CANDIDATES[name]
            tokens_per_step = over["batch_size"] * over["block_size"]
            steps = max(10, int(args.budget * speeds[name] / tokens_per_step))
            cfg = resolve_config("cpu", **BASE, **over, max_iters=steps, eval_interval=steps)
            t0 = time.perf_counter()
            record = train_lm(args.corpus, Path(home), cfg, seed=1337, runtime=runtime, wandb=False)
            rows.append({
                "shape": name, "params": record["n_params"], "tokens_per_s": speeds[name],
                "steps": steps, "tokens": steps * tokens_per_step, "val_loss": record["val_loss"],
                "wall_s": time.perf_counter() - t0,
            })  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    lines = [
        f"| shape (layers x heads x width, context, batch, peak lr) | parameters | tokens/s | steps in {args.budget:g} s | tokens | val loss | run's wall |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(rows, key=lambda r: r["val_loss"]):
        lines.append(
            f"| {r['shape']} | {r['params'] / 1e6:.2f}M | {r['tokens_per_s']:,.0f} | {r['steps']:,} "
            f"| {r['tokens'] / 1e6:.2f}M | {r['val_loss']:.4f} | {r['wall_s']:.0f} s |"
        )
    table = "\n".join(lines)
    print(table)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    if args.doc:
        args.doc.write_text(table + "\n")


if __name__ == "__main__":
    main()
