"""``kfw lm``: train a character-level (or BPE) GPT on a text file, and sample from a run.

``kfw lm train CORPUS`` trains, resumes after an interruption when run again with the same
arguments, saves the run under ``runs/lm-<corpus stem>/`` and prints the final validation
loss and the run id last; ``--init RUN_OR_FILE`` fine-tunes from an earlier run or a file.
``kfw lm sample RUN`` prints text from a saved run. ``kfw lm info`` prints a preset's size and
memory without building it. ``kfw lm seq2seq --task reverse|add|dates`` trains an
encoder-decoder (or, ``--arch gpt``, the decoder-only GPT) on a generated task and prints its
held-out exact match. ``kfw lm makemore --model NAME`` fits one rung of makemore's ladder on a
word list (:mod:`kfw.dl.makemore`) and prints its validation loss, parameter count and samples.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kfw.cli.common import NoWandb, RichProgress, console, console_err, kfw_home

if TYPE_CHECKING:
    from kfw.progress import Callback

app = typer.Typer(
    help="A GPT language model on a text corpus: train (resumable), sample; seq2seq tasks.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@app.command("train")
def train(
    ctx: typer.Context,
    corpus: Annotated[Path, typer.Argument(help="A UTF-8 text file.", show_default=False)],
    preset: Annotated[
        str,
        typer.Option(
            help="cpu (~10 min on 2 cores), gpu (nanoGPT's), gpt2 (124M) or gpt2-mini "
            "(kfw lm info lists them)."
        ),
    ] = "cpu",
    pos: Annotated[
        str | None, typer.Option(help="Positions: learned, sinusoidal or rope.", show_default=False)
    ] = None,
    tokenizer: Annotated[
        str | None, typer.Option(help="char or bpe (default char).", show_default=False)
    ] = None,
    max_iters: Annotated[
        int | None,
        typer.Option(help="Optimiser steps (the cosine decay ends there too).", show_default=False),
    ] = None,
    eval_interval: Annotated[
        int | None,
        typer.Option(help="Steps between evaluations (and checkpoints).", show_default=False),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seeds the weights, batches and dropout.")] = 1337,
    device: Annotated[
        str | None,
        typer.Option(help="cpu, cuda, cuda:N (default: cuda when present).", show_default=False),
    ] = None,
    threads: Annotated[
        int | None, typer.Option(help="CPU threads (default: every core).", show_default=False)
    ] = None,
    amp: Annotated[
        bool | None,
        typer.Option(
            "--amp/--no-amp",
            help="bf16 autocast (default: on CUDA; on a CPU the preset's choice).",
            show_default=False,
        ),
    ] = None,
    compile_: Annotated[
        bool | None,
        typer.Option(
            "--compile/--no-compile",
            help="torch.compile (default: on CUDA; on a CPU the preset's choice).",
            show_default=False,
        ),
    ] = None,
    fused: Annotated[
        bool | None,
        typer.Option(
            "--fused/--no-fused",
            help="torch's scaled-dot-product attention (flash where available) instead of ours "
            "(default: on CUDA; on a CPU the preset's choice).",
            show_default=False,
        ),
    ] = None,
    setting: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Any other setting: KEY=VALUE (n_layer=2, dropout=0.1 ...).",
            show_default=False,
        ),
    ] = None,
    init: Annotated[
        str | None,
        typer.Option(
            "--init",
            help="Fine-tune: start from an earlier run (id or folder) or a weight file "
            "(.pt state dict, .safetensors).",
            show_default=False,
        ),
    ] = None,
    no_wandb: NoWandb = False,
) -> None:
    """Train a GPT on CORPUS (the same command again resumes an interrupted run)."""
    from kfw.dl.lm import Runtime, parse_setting, resolve_config, train_lm

    overrides: dict[str, Any] = dict(parse_setting(s) for s in setting or [])
    options = {
        "pos": pos,
        "tokenizer": tokenizer,
        "max_iters": max_iters,
        "eval_interval": eval_interval,
    }
    overrides.update({k: v for k, v in options.items() if v is not None})
    cfg = resolve_config(preset, **overrides)
    runtime = Runtime(device=device, amp=amp, compile=compile_, fused=fused, threads=threads)
    record = train_lm(
        corpus,
        kfw_home(ctx),
        cfg,
        seed=seed,
        runtime=runtime,
        callback=_progress(),
        wandb=not no_wandb,
        init=init,
    )
    mfu = f" ({record['mfu']:.1%} MFU)" if record.get("mfu") else ""
    console().print(
        f"val loss {record['val_loss']:.4f} {record['unit']} · {record['tokens_per_s']:,.0f} tokens/s"
        f"{mfu} · {record['n_params'] / 1e6:.2f}M parameters · run {record['id']}",
        highlight=False,
    )


@app.command("info")
def info(
    preset: Annotated[str, typer.Option(help="A preset: cpu, gpu, gpt2, gpt2-mini.")] = "gpt2",
    vocab: Annotated[
        int | None,
        typer.Option(
            help="The tokenizer's ids (default: the preset's vocab_size, else its BPE size, "
            "else 65 characters).",
            show_default=False,
        ),
    ] = None,
    setting: Annotated[
        list[str] | None,
        typer.Option("--set", help="Any setting: KEY=VALUE.", show_default=False),
    ] = None,
    device: Annotated[
        str, typer.Option(help="Whose peak the step-time estimate uses: cpu or cuda.")
    ] = "cpu",
) -> None:
    """A preset's architecture, exact parameter count and memory, without allocating the model."""
    from kfw.dl.lm import describe, parse_setting, resolve_config

    overrides: dict[str, Any] = dict(parse_setting(s) for s in setting or [])
    cfg = resolve_config(preset, **overrides)
    for line in describe(cfg, vocab, device=device):
        console().print(line, highlight=False, markup=False, soft_wrap=True)


@app.command("sample")
def sample(
    ctx: typer.Context,
    run: Annotated[
        str, typer.Argument(help="A run id, or the path to a run folder.", show_default=False)
    ],
    prompt: Annotated[str, typer.Option(help="Text to continue (default: a newline).")] = "",
    tokens: Annotated[int, typer.Option(help="Tokens to generate.")] = 500,
    temperature: Annotated[float, typer.Option(help="Softmax temperature (< 1: safer).")] = 0.8,
    top_k: Annotated[int | None, typer.Option(help="Sample among the k likeliest tokens.")] = 200,
    seed: Annotated[int, typer.Option(help="Seeds the sampler.")] = 1337,
    device: Annotated[
        str | None,
        typer.Option(help="cpu or cuda (default: cuda when present).", show_default=False),
    ] = None,
) -> None:
    """Print text sampled from a trained run."""
    from kfw.dl.lm import find_run
    from kfw.dl.lm import sample as sample_run

    run_dir = find_run(run, kfw_home(ctx))
    text = sample_run(
        run_dir, prompt, tokens, temperature=temperature, top_k=top_k, seed=seed, device=device
    )
    console().print(text, markup=False, highlight=False, soft_wrap=True)


class _StepBar(RichProgress):
    """A bar over optimiser steps fed by ``log({"loss", "steps"}, step)``; lines when piped."""

    def __init__(self, label: str) -> None:
        super().__init__()
        self._name = label
        self._bar: Any = None
        self._id: Any = None

    def __enter__(self) -> _StepBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        total, loss = metrics.get("steps"), metrics.get("loss")
        if total is None or step is None:
            return
        if not console_err().is_terminal:
            if step % 1000 == 0 or step == total:
                console_err().print(
                    f"{self._name} step {step}/{total}: loss {loss:.4f}", highlight=False
                )
            return
        if self._bar is None:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn(f"[bold]{self._name}"), BarColumn(), MofNCompleteColumn(),
                TimeRemainingColumn(), TextColumn("{task.fields[loss]}"), console=console_err(), transient=True,
            )  # fmt: skip
            self._bar.start()
            self._id = self._bar.add_task(self._name, total=total, loss="")
        self._bar.update(self._id, completed=step, loss=f"loss {loss:.4f}")


def _progress() -> Callback:
    """The training bar: step, loss, tokens/s and the last evaluation (lines when piped)."""
    from kfw.dl.lm import LMCallback

    class Bar(LMCallback, RichProgress):
        def __init__(self) -> None:
            RichProgress.__init__(self)
            self._loss = "-"
            self._eval = ""
            self._rate = ""

        def train_start(self, total: int, start: int, tokens_per_iter: int) -> None:
            if not console_err().is_terminal:
                return  # logs get one line per evaluation instead
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TimeRemainingColumn(), TextColumn("{task.fields[last]}"), console=console_err(), transient=True,
            )  # fmt: skip
            self._progress.start()
            self._task = self._progress.add_task("train", total=total, completed=start, last="")

        def train_step(
            self, it: int, loss: float | None, tokens_per_s: float, mfu: float = 0.0
        ) -> None:
            self._rate = f"{tokens_per_s:,.0f} tok/s" + (f", {mfu:.1%} MFU" if mfu else "")
            if self._progress is None:
                return
            if loss is not None:
                self._loss = f"loss {loss:.4f} · {self._rate}"
            self._progress.update(self._task, completed=it, last=f"{self._loss}{self._eval}")

        def evaluated(self, it: int, train_loss: float, val_loss: float) -> None:
            self._eval = f" · step {it}: train {train_loss:.4f} val {val_loss:.4f}"
            line = f"step {it}: train {train_loss:.4f}, val {val_loss:.4f}"
            if it and self._rate:
                line += f" · {self._rate}"
            if self._progress is not None:
                self._progress.console.print(line, highlight=False)
            else:
                console_err().print(line, highlight=False)

        def train_end(self) -> None:
            if self._progress is not None:
                self._progress.stop()
                self._progress = None

    return Bar()


@app.command("seq2seq")
def seq2seq(
    task: Annotated[str, typer.Option(help="reverse, add or dates.", show_default=False)],
    arch: Annotated[str, typer.Option(help="encdec or gpt (the input as a prefix).")] = "encdec",
    steps: Annotated[int, typer.Option(help="Optimiser steps.")] = 2000,
    beam: Annotated[int, typer.Option(help="Beam width of a second score (1: greedy only).")] = 1,
    seed: Annotated[int, typer.Option(help="Seeds the split, the weights and the batches.")] = 0,
    threads: Annotated[
        int | None, typer.Option(help="CPU threads (default: torch's).", show_default=False)
    ] = None,
) -> None:
    """Train a sequence-to-sequence model on a generated task; print held-out exact match."""
    from kfw.dl.seqtrain import run_task

    r = run_task(task, arch, steps=steps, beam=beam, seed=seed, threads=threads)
    beam_part = f" · beam {beam} {100 * r['beam']:.1f}%" if "beam" in r else ""
    console().print(
        f"{task} · {arch} · held-out exact match: greedy {100 * r['greedy']:.1f}%{beam_part} · "
        f"{r['n_params']:,} parameters · {r['steps']:,} steps in {r['seconds']:.0f} s",
        highlight=False,
    )


@app.command("makemore")
def makemore(
    model: Annotated[
        str, typer.Option(help="bigram, bigram-net, mlp, wavenet or gpt.", show_default=False)
    ],
    words: Annotated[
        Path | None,
        typer.Option(
            help="A word list, one per line (default: /usr/share/dict/american-english).",
            show_default=False,
        ),
    ] = None,
    steps: Annotated[
        int | None, typer.Option(help="Optimiser steps (default: the model's).", show_default=False)
    ] = None,
    seed: Annotated[int, typer.Option(help="Seeds the split, weights, batches, samples.")] = 0,
    samples: Annotated[int, typer.Option(help="Words to sample.")] = 10,
) -> None:
    """One rung of makemore's ladder on a word list: validation loss, parameters, samples."""
    from kfw.dl.makemore import WORDS, check_model, load_words, run

    check_model(model)  # before reading a word list
    listed = load_words(words or WORDS)
    with _StepBar(model) as bar:
        result = run(model, listed, steps=steps, seed=seed, samples=samples, callback=bar)
    console().print(
        f"{result.model}: val loss {result.val_loss:.4f} nats/char · {result.n_params:,} "
        f"parameters · {result.seconds:.1f} s",
        highlight=False,
    )
    for word in result.samples:
        console().print(word, markup=False, highlight=False)
