"""Our GPT against the same network built from torch's own layers, on Tiny Shakespeare characters.

The twin: token + learned position embeddings, ``n_layer`` x ``nn.TransformerEncoderLayer(d,
nhead, 4d, dropout, activation="gelu", batch_first=True, norm_first=True)`` with a causal mask,
a final LayerNorm and an output layer tied to the token embedding; GPT-2 initialisation as ours
(weights N(0, 0.02), biases 0, residual projections N(0, 0.02 / sqrt(2 n_layer))). Same
parameter count, same data, batches, schedule and seed, trained one after the other through
the same loop (:func:`kfw.dl.lm.loop.train`): one after the other in one process, or with
``--parallel`` both at once in two processes (each ``--threads`` threads), so that whatever
else loads the machine slows both alike.

Targets: |val ours - val twin| <= 0.02 nats; ours <= 1.3x the twin's time per iteration.

    .venv/bin/python benchmarks/charlm.py [--corpus ../shared/corpora/tinyshakespeare.txt] \\
        [--preset cpu] [--max-iters N] [--threads 2] [--seed 1337] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from kfw.dl.lm import (
    LMConfig,
    Runtime,
    build_model,
    load_corpus,
    parse_setting,
    resolve_config,
    train,
)

VAL_TOLERANCE = 0.02
TIME_RATIO = 1.3
DEFAULT_CORPUS = (
    Path(__file__).resolve().parent.parent.parent / "shared/corpora/tinyshakespeare.txt"
)


class TorchTwin(nn.Module):
    """The GPT of ``cfg`` from ``nn.TransformerEncoderLayer``: forward(idx, targets) -> (logits, loss)."""

    def __init__(self, cfg: LMConfig, vocab_size: int) -> None:
        super().__init__()
        d = cfg.n_embd
        self.wte = nn.Embedding(vocab_size, d)
        self.wpe = nn.Embedding(cfg.block_size, d)
        self.drop = nn.Dropout(cfg.dropout)
        self.h = nn.ModuleList(
            nn.TransformerEncoderLayer(
                d, cfg.n_head, 4 * d, cfg.dropout, activation="gelu", batch_first=True,
                norm_first=True, bias=cfg.bias,
            )
            for _ in range(cfg.n_layer)
        )  # fmt: skip
        self.ln_f = nn.LayerNorm(d, bias=cfg.bias)
        self.lm_head = nn.Linear(d, vocab_size, bias=False)
        self.wte.weight = self.lm_head.weight  # tied, as ours
        for name, p in self.named_parameters():
            if p.dim() >= 2:  # every matmul weight and the embeddings (in_proj_weight included)
                std = 0.02
                if name.endswith(("self_attn.out_proj.weight", "linear2.weight")):
                    std = 0.02 / math.sqrt(2 * cfg.n_layer)  # the two residual projections
                nn.init.normal_(p, mean=0.0, std=std)
            elif not name.endswith(("norm1.weight", "norm2.weight", "ln_f.weight")):
                nn.init.zeros_(p)  # biases; LayerNorm weights stay 1
        self.register_buffer(
            "mask", nn.Transformer.generate_square_subsequent_mask(cfg.block_size), persistent=False
        )

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        T = idx.size(1)
        x = self.drop(self.wte(idx) + self.wpe(torch.arange(T, device=idx.device)))  # (B, T, C)
        mask = self.mask[:T, :T]  # (T, T) float: -inf above the diagonal
        for layer in self.h:
            x = layer(x, src_mask=mask, is_causal=True)
        logits = self.lm_head(self.ln_f(x))  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # the tied weight once


def run_one(name: str, args: argparse.Namespace) -> dict:
    """Train ``ours`` or ``twin`` from the same seed through the same loop; its table row."""
    torch.set_num_threads(args.threads)
    settings = dict(parse_setting(x) for x in args.set)
    cfg = resolve_config(
        args.preset, **settings, max_iters=args.max_iters, eval_interval=args.eval_interval
    )
    data = load_corpus(args.corpus, cfg)
    runtime = Runtime(device=args.device, amp=False, compile=False, fused=args.fused)
    torch.manual_seed(args.seed)
    vocab = data.tokenizer.vocab_size
    model = build_model(cfg, vocab, fused=args.fused) if name == "ours" else TorchTwin(cfg, vocab)
    n_params = count(model)
    print(f"{name}: {n_params:,} parameters", flush=True)
    result = train(model, data.train, data.val, cfg, seed=args.seed, runtime=runtime)
    print(
        f"{name}: val {result.val_loss:.4f} after {result.iters} steps, {result.seconds:.1f} s",
        flush=True,
    )
    return {
        "model": name,
        "params": n_params,
        "val_loss": result.val_loss,
        "s_per_iter": result.train_seconds / max(result.iters, 1),
        "tokens_per_s": result.tokens_per_s,
        "wall_s": result.seconds,
        "losses": result.losses,
        "config": cfg.__dict__,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--max-iters", type=int, default=None)
    ap.add_argument("--eval-interval", type=int, default=None)
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Any other setting (smoke tests).",
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--fused", action="store_true", help="Ours with the fused attention kernel.")
    ap.add_argument(
        "--parallel",
        action="store_true",
        help="Train both at once, one process each (use --threads 1 on 2 cores).",
    )
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    if args.parallel:
        # both at once, one process each with --threads threads: the same machine load for both
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(2) as pool:
            rows = pool.starmap(run_one, [("ours", args), ("twin", args)])
    else:
        rows = [run_one(name, args) for name in ("ours", "twin")]
    ours, twin = rows
    print(
        f"\n{'model':6} {'params':>10} {'val loss':>9} {'s/iter':>8} {'tokens/s':>10} {'wall s':>8}"
    )
    for r in rows:
        print(
            f"{r['model']:6} {r['params']:>10,} {r['val_loss']:>9.4f} {r['s_per_iter']:>8.4f} {r['tokens_per_s']:>10,.0f} {r['wall_s']:>8.1f}"
        )
    gap = abs(ours["val_loss"] - twin["val_loss"])
    ratio = ours["s_per_iter"] / twin["s_per_iter"]
    print(
        f"\n|val ours - val twin| = {gap:.4f} (target <= {VAL_TOLERANCE})  {'ok' if gap <= VAL_TOLERANCE else 'MISSED'}"
    )
    print(
        f"time per iteration ours / twin = {ratio:.3f} (target <= {TIME_RATIO})  {'ok' if ratio <= TIME_RATIO else 'MISSED'}"
    )
    if args.json:
        out = {
            "corpus": str(args.corpus), "preset": args.preset, "config": ours.pop("config"), "seed": args.seed,
            "threads": args.threads, "parallel": args.parallel, "device": args.device, "torch": torch.__version__,
            "models": rows, "val_gap": gap, "time_ratio": ratio,
        }  # fmt: skip
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
