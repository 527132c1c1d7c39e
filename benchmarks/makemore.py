"""makemore's ladder on Debian's wamerican word list, and part 3's lesson, as `docs/makemore.md`.

Runs every rung of :mod:`kfw.dl.makemore` (bigram by counting, the bigram net, Bengio's MLP, the
WaveNet tree, the character GPT) with its default CPU budget on the same seeded split, then the
statistics of a deep tanh MLP at initialisation under each set-up of
:data:`kfw.dl.makemore.internals.SETUPS`. Writes ``docs/makemore.md`` and its figures
``docs/img/makemore-activations.png`` and ``docs/img/makemore-gradients.png``.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/makemore.py [--words PATH] [--seed 0] \\
        [--samples 8] [--threads 1] [--docs docs]

A few minutes on one CPU thread.
"""

from __future__ import annotations

import argparse
import io
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

import torch

from kfw import files
from kfw.dl.makemore import DEFAULTS, MODELS, WORDS, Vocab, load_words, run, split_words, windows
from kfw.dl.makemore.internals import SATURATED, SETUPS, figure, init_stats

INIT_BATCH = 1024  # training windows for the statistics at initialisation


def png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=Path, default=WORDS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--docs", type=Path, default=Path(__file__).resolve().parent.parent / "docs"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    command = (
        "OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/makemore.py"
        + (f" --words {args.words}" if args.words != WORDS else "")
        + (f" --seed {args.seed}" if args.seed else "")
        + (f" --samples {args.samples}" if args.samples != 8 else "")
        + (f" --threads {args.threads}" if args.threads != 1 else "")
    )

    t0 = time.perf_counter()
    words = load_words(args.words)
    split = split_words(words, args.seed)
    vocab = Vocab.of(words)
    results = {}
    for model in MODELS:
        results[model] = run(model, words, seed=args.seed, samples=args.samples)
        r = results[model]
        print(f"{model:10s} val {r.val_loss:.4f} test {r.test_loss:.4f} params {r.n_params:>7,} "
              f"{r.seconds:6.1f} s  {' '.join(r.samples)}", flush=True)  # fmt: skip

    X, Y = windows(split.train, vocab, 3)
    ix = torch.randint(0, len(X), (INIT_BATCH,), generator=torch.Generator().manual_seed(args.seed))
    stats = [init_stats(name, X[ix], Y[ix], vocab.size, seed=args.seed) for name in SETUPS]
    img = args.docs / "img"
    files.write_bytes(img / "makemore-activations.png", png(figure(stats, "activations")))
    files.write_bytes(img / "makemore-gradients.png", png(figure(stats, "gradients")))
    total = time.perf_counter() - t0
    doc = render(args, command, words, split, vocab, results, stats, total)
    files.write_text(args.docs / "makemore.md", doc)
    print(f"wrote {args.docs / 'makemore.md'} in {total:.0f} s")


def _row(values: list[float], fmt: str) -> str:
    return " → ".join(format(v, fmt) for v in values)


def render(args, command, words, split, vocab, results, stats, total) -> str:
    net, counted = results["bigram-net"], results["bigram"]
    gap = abs(net.val_loss - net.extra["counted_val_loss"])
    lines = [
        "# makemore: from counting to the transformer",
        "",
        "The ladder of Karpathy's makemore lectures on Debian's `wamerican` word list "
        f"(`{args.words}`), made by `benchmarks/makemore.py` with `kfw.dl.makemore`:",
        "",
        f"    {command}",
        "",
        f"{total:.0f} s in all on {platform.machine()} with {args.threads} CPU thread(s) "
        "(torch " + torch.__version__ + "), on a 2-core machine shared with other work: the "
        "seconds below are wall time and only roughly comparable. One rung at a time: "
        "`kfw lm makemore --model bigram|bigram-net|mlp|wavenet|gpt [--words PATH] [--steps N] "
        "[--seed S] [--samples K]`.",
        "",
        "## The words",
        "",
        "Each line is stripped and lower-cased and kept only if it is made of the letters a-z "
        "alone (no possessives like `Aachen's`, no accented letters); duplicates are kept once. "
        f"That leaves **{len(words):,} words** ({vocab.size - 1} letters, plus `.` as the start "
        f"and end token: a vocabulary of {vocab.size}), shuffled with seed {args.seed} and cut "
        f"80/10/10: {len(split.train):,} training, {len(split.val):,} validation and "
        f"{len(split.test):,} test words.",
        "",
        "Every model predicts the same things: each character of a word, then its end, from "
        "the characters before it (`emma` gives 5 predictions). Losses are the mean negative "
        "log-likelihood of those predictions in **nats per character**; uniform guessing "
        f"scores ln {vocab.size} = {torch.tensor(float(vocab.size)).log():.3f}. Nothing was "
        "tuned on the validation words, so the test loss is there only to show that they agree.",
        "",
        "## The table",
        "",
        "| model | parameters | train | validation | test | steps | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for model, r in results.items():
        steps = r.settings.get("steps", "-")
        lines.append(
            f"| {model} | {r.n_params:,} | {r.train_loss:.4f} | **{r.val_loss:.4f}** | "
            f"{r.test_loss:.4f} | {steps} | {r.seconds:.1f} |"
        )
    lines += [
        "",
        "Train is measured on the whole training part for the two bigrams and on the first "
        f"{len(split.val):,} (shuffled) training words for the neural models. Parameters: the "
        "counting model's are the entries of its table.",
        "",
        "## Samples",
        "",
        f"{args.samples} words from each model, temperature 1, seed {args.seed}:",
        "",
        "| model | samples |",
        "|---|---|",
    ]
    for model, r in results.items():
        lines.append(f"| {model} | {', '.join(f'`{w}`' if w else '(empty)' for w in r.samples)} |")
    lines += [
        "",
        "The bigram and the bigram net draw the same words: the same seed and (to 1e-6) the "
        "same probabilities.",
        "",
        "## The bigram net reaches the counted loss",
        "",
        f"The counting model is add-k smoothed with k = {counted.settings['k']}. Those smoothed "
        "counts are exactly the maximum-likelihood estimate of the training bigrams plus k "
        "pseudo-observations of every pair, so the net (one-hot row times a 27 x 27 matrix, "
        "softmax) is trained on that same objective: like with like, same split, no other "
        f"regularisation. Full-batch Adam, {net.settings['steps']} steps at lr "
        f"{net.settings['lr']} cosine-decayed, float64. Validation loss: counted "
        f"{net.extra['counted_val_loss']:.6f}, net {net.val_loss:.6f}, **difference "
        f"{gap:.1e} nats** (the bar is 1e-3; `test_makemore.py` checks it on a generated list).",
        "",
        "## The settings",
        "",
        "Neural rungs: Adam, minibatches drawn with a seeded generator, step size cosine-decayed "
        "to a tenth of `lr`; hidden weights N(0, 1) x (5/3)/sqrt(fan_in), output weights scaled "
        "by 0.1.",
        "",
        "| model | settings |",
        "|---|---|",
    ]
    for model in MODELS:
        desc = ", ".join(f"{k}={v}" for k, v in DEFAULTS[model].items())
        lines.append(f"| {model} | {desc} |")
    lines += [
        "",
        "- **mlp** (Bengio et al., 2003): a 10-wide embedding of each of the 3 previous "
        "characters, concatenated, one tanh layer of 200, softmax.",
        "- **wavenet** (makemore part 5): 8 characters of context, 24-wide embeddings; three "
        "levels each fuse consecutive pairs, `(B, 8, 24) → (B, 4, 128) → (B, 2, 128) → (B, 128)`, "
        "each linear followed by batch norm (over batch and time) and tanh.",
        f"- **gpt**: `kfw.dl.gpt.GPT`, one word per row (`.word` in, `word.` out, padded with `.` "
        f"and targets -1, which the loss ignores), block size = longest word + 1 = "
        f"{max(map(len, words)) + 1}, learned positions, tied embeddings.",
        "",
        "## Batch norm's lesson: a deep tanh MLP at initialisation (makemore part 3)",
        "",
        f"Embeddings of a 3-character context (10 wide each), five hidden layers "
        f"`linear → [batch norm] → tanh` of 100 units, a linear output scaled by 0.1. One forward "
        f"and backward pass on {INIT_BATCH} training windows, before any training. Saturated: "
        f"|tanh| > {SATURATED}, where the slope 1 - tanh² is below 0.06. Gradients are of the "
        "loss with respect to each tanh's output; `grad:data` is the std of a weight matrix's "
        "gradient over the std of the weights. Layers listed first to last.",
        "",
        "| set-up | loss at init | activation std | saturated % | gradient std | grad:data |",
        "|---|---:|---|---|---|---|",
    ]
    for s in stats:
        lines.append(
            f"| {s.setup} | {s.loss:.3f} | {_row([r['std'] for r in s.layers], '.2f')} | "
            f"{_row([r['saturated'] for r in s.layers], '.1f')} | "
            f"{_row([r['grad_std'] for r in s.layers], '.1e')} | "
            f"{_row([r['weight_grad_ratio'] for r in s.layers], '.1e')} |"
        )
    lines += [
        "",
        "![Activations of each tanh layer at initialisation](img/makemore-activations.png)",
        "",
        "![Gradients of each tanh layer at initialisation](img/makemore-gradients.png)",
        "",
        "How to read them (gradient std, first layer over last: "
        + ", ".join(
            f"{s.setup} {s.layers[0]['grad_std'] / s.layers[-1]['grad_std']:.2f}" for s in stats
        )
        + "):",
        "",
        "- **N(0, 1)**: each pre-activation sums 30 (then 100) unit-variance terms, std ≈ 5.5 "
        "(then 10): most tanh sit at ±1, the histogram is two spikes, and the loss at "
        f"initialisation is above ln {vocab.size}. A saturated unit passes almost no gradient "
        "back, yet the weights it crosses on the way are ten times too large: here the "
        "gradient grows toward the input, and the first layers would take steps out of "
        "scale with the last.",
        "- **gain 1**: N(0, 1)/sqrt(fan_in) keeps a linear layer's variance, but tanh shrinks "
        "it, so the activations' std falls layer by layer, and the gradient fades toward the "
        "input.",
        "- **Kaiming 5/3**: tanh's gain undoes the shrinking: the statistics stay roughly level "
        "with depth, and the gradients too.",
        "- **N(0, 1) + batch norm**: the same bad weights, but batch norm sets every "
        "pre-activation to zero mean and unit variance over the batch, whatever the weights' "
        "scale: the layers look alike without any care in the initialisation.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
