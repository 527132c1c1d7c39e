"""When is a GPT training step compute-bound, and when memory-bound? Measured by width.

For GPT shapes from the ``cpu`` preset's 128 wide to GPT-2's 768, one training step (bf16
autocast on the CPU, fp32 otherwise with ``--fp32``) is profiled with ``torch.profiler``:

- the share of the step spent in matrix multiplies (``mm``, ``bmm``, ``addmm``, ``baddbmm``):
  the compute-bound part, whose FLOPs per byte grow with the width;
- the share in everything else (copies and casts, softmax, GELU, LayerNorm, masking, AdamW's
  elementwise updates): memory-bound kernels, one pass over their tensors for a few FLOPs;
- the model FLOPs utilisation (:mod:`kfw.dl.flops`) of the unprofiled step time.

A step is called compute-bound when the matmuls take most of it, memory-bound otherwise. The
README's "compute-bound or memory-bound" paragraph quotes this table.

    PYTHONPATH=. python benchmarks/lm_bound.py [--threads 2] [--fp32] [--doc PATH]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import torch
from torch.profiler import ProfilerActivity, profile

from kfw.dl.flops import mfu, peak_flops
from kfw.dl.gpt import GPT, GPTConfig

MATMULS = {"aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm"}
SHAPES = [  # (layers, heads, width, context, batch)
    (4, 4, 128, 128, 32),
    (4, 4, 256, 128, 16),
    (4, 8, 512, 128, 8),
    (4, 12, 768, 128, 8),
]


def step_fn(model: GPT, amp: bool, batch: int, context: int):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randint(0, model.config.vocab_size, (batch, context))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            _, loss = model(x, x)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fp32", action="store_true", help="float32 instead of bf16 autocast")
    ap.add_argument("--vocab", type=int, default=65)
    ap.add_argument("--doc", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    amp = not args.fp32
    peak, source = peak_flops("cpu", bf16=amp)
    rows = [
        f"{'bf16 autocast' if amp else 'float32'}, {args.threads} threads, peak {peak / 1e9:,.0f} "
        f"GFLOP/s ({source}), vocabulary {args.vocab}",
        "",
        "| shape (L x H x C, context, batch) | parameters | tokens/s | MFU | matmul share of the step | bound |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for layers, heads, width, context, batch in SHAPES:
        torch.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=args.vocab, block_size=context, n_layer=layers,
                              n_head=heads, n_embd=width))  # fmt: skip
        step = step_fn(model, amp, batch, context)
        for _ in range(2):
            step()
        times = []
        for _ in range(5):
            t = time.perf_counter()
            step()
            times.append(time.perf_counter() - t)
        seconds = sorted(times)[2]
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(2):
                step()
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events)
        matmul = sum(e.self_cpu_time_total for e in events if e.key in MATMULS)
        share = matmul / total if total else 0.0
        rate = batch * context / seconds
        rows.append(
            f"| {layers}x{heads}x{width}, {context}, {batch} | {model.num_params() / 1e6:.2f}M "
            f"| {rate:,.0f} | {mfu(rate, model.flops_per_token(context), peak):.1%} | {share:.0%} "
            f"| {'compute' if share > 0.5 else 'memory'} |"
        )
        print(rows[-1], flush=True)
    text = "\n".join(rows)
    print(text)
    if args.doc:
        args.doc.write_text(text + "\n")


if __name__ == "__main__":
    main()
