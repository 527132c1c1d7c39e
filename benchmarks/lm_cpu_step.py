"""What pays on a CPU for the ``cpu`` preset's step: bf16 autocast, fused attention, fused AdamW, compile.

One training step of the character GPT (forward, backward, clipping, AdamW) is timed for each
combination of

- ``bf16``: ``torch.autocast("cpu", dtype=torch.bfloat16)`` (AMX tiles on Sapphire Rapids and
  later; AVX-512 BF16 before);
- ``sdpa``: ``F.scaled_dot_product_attention`` (torch's CPU flash kernel) instead of kfw's
  explicit attention;
- ``fused AdamW``: ``torch.optim.AdamW(fused=True)``, one kernel for the whole update;

and, with ``--compile``, ``torch.compile`` of the bf16 model (its compile time shown apart).
The variants are interleaved over ``--repeats`` rounds and each keeps its best median, so a
change in the machine's load touches all of them alike.

    PYTHONPATH=. python benchmarks/lm_cpu_step.py [--threads 2] [--compile] [--batch 32]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import torch

from kfw.dl.gpt import GPT, GPTConfig


def timed_steps(model: torch.nn.Module, amp: bool, fused_adam: bool, x, y, n: int) -> list[float]:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=fused_adam or None)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (slow)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    B, T = args.batch, args.context
    x = torch.randint(0, 65, (B, T), generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 65, (B, T), generator=torch.Generator().manual_seed(1))

    def model(fused: bool) -> GPT:
        torch.manual_seed(0)
        return GPT(
            GPTConfig(vocab_size=65, block_size=T, n_layer=4, n_head=4, n_embd=128, fused=fused)
        )

    variants = list(itertools.product([False, True], repeat=3))  # bf16, sdpa, fused AdamW
    best: dict[tuple[bool, ...], float] = {}
    for _ in range(args.repeats):
        for amp, sdpa, fused_adam in variants:
            times = timed_steps(model(sdpa), amp, fused_adam, x, y, 12)[2:]
            median = sorted(times)[len(times) // 2]
            best[(amp, sdpa, fused_adam)] = min(median, best.get((amp, sdpa, fused_adam), 1e9))
    base = best[(False, False, False)]
    print(
        f"4x4x128 GPT, batch {B} x context {T}, {args.threads} threads, torch {torch.__version__}"
    )
    print("| bf16 | sdpa | fused AdamW | ms/step | tokens/s | speed-up |")
    print("|---|---|---|---:|---:|---:|")
    for key, sec in sorted(best.items(), key=lambda kv: kv[1]):
        flags = " | ".join("yes" if f else "no" for f in key)
        print(f"| {flags} | {sec * 1e3:.1f} | {B * T / sec:,.0f} | {base / sec:.2f}x |")
    if args.compile:
        m = model(False)
        t0 = time.perf_counter()
        times = timed_steps(torch.compile(m), True, False, x, y, 12)
        first = time.perf_counter() - t0 - sum(times[1:])
        sec = sorted(times[2:])[5]
        print(
            f"| bf16 + torch.compile | | | {sec * 1e3:.1f} | {B * T / sec:,.0f} | "
            f"{base / sec:.2f}x (first step, compiling: {first:.0f} s) |"
        )


if __name__ == "__main__":
    main()
