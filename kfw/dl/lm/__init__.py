"""Training and sampling a character (or BPE) language model: presets, data, loop, checkpoints.

The recipe is nanoGPT's ``train.py``, read top to bottom:

1. the corpus is tokenized and split contiguously, the first 90% for training, the last 10% for
   validation (:func:`load_corpus`);
2. each step draws ``batch_size`` random windows of ``block_size + 1`` tokens from the training
   part with a seeded ``torch.Generator`` (:func:`get_batch`);
3. AdamW, weight decay on the 2-D weights only, a linear warm-up then a cosine decay to
   ``min_lr`` (:func:`lr_at`), gradients clipped to norm ``grad_clip``;
4. every ``eval_interval`` steps the train and validation losses are measured on FIXED
   evaluation batches (the same windows every time, drawn once from ``eval_seed``), so two
   evaluations differ only because the model changed;
5. every evaluation writes a checkpoint (model, optimiser, step, RNG states, config,
   tokenizer) atomically; the same command finds it by its key (corpus hash + resolved
   config) and continues, reproducing the uninterrupted run's losses exactly on CPU;
6. the finished run enters the run store (``runs/lm-<corpus stem>/<run id>/``) with
   ``model.pt`` and ``losses.csv``.

A fine-tune (``init=``, ``kfw lm train --init RUN_OR_FILE``) is the same recipe started from
an earlier run's weights or a weight file's (:func:`find_parent`); the run records its parent.

:func:`train` is the loop alone; it takes any module with ``forward(idx, targets) -> (logits,
loss)``, so ``benchmarks/charlm.py`` trains torch's own transformer layers through it too.
:func:`train_lm` is the whole command; :func:`sample` reads a saved run back.

The package, in reading order: :mod:`~kfw.dl.lm.config` (presets, the runtime),
:mod:`~kfw.dl.lm.data` (corpus and batches), :mod:`~kfw.dl.lm.shards` (the ids, tokenized once
into memory-mapped uint16 shards), :mod:`~kfw.dl.lm.loop` (:func:`train`, gradient
accumulation, MFU, checkpoints), :mod:`~kfw.dl.lm.runs` (:func:`train_lm`, the run store,
:func:`sample`), :mod:`~kfw.dl.lm.info` (``kfw lm info``: parameters and memory, nothing
allocated).
Every public name is re-exported here.
"""

from kfw.dl.lm.config import (
    CPU,
    GPT2,
    GPU,
    POSITIONS,
    PRESETS,
    TOKENIZERS,
    GPT2Mini,
    LMConfig,
    Runtime,
    parse_setting,
    resolve_config,
)
from kfw.dl.lm.data import (
    TRAIN_FRACTION,
    Corpus,
    check_length,
    fit_tokenizer,
    fixed_starts,
    get_batch,
    load_corpus,
    random_starts,
    read_text,
    split_point,
)
from kfw.dl.lm.info import count, describe, memory
from kfw.dl.lm.loop import (
    LMCallback,
    TrainResult,
    accumulate,
    evaluate,
    flops_per_token,
    load_checkpoint,
    lr_at,
    make_optimizer,
    save_atomic,
    train,
)
from kfw.dl.lm.runs import (
    CHECKPOINT,
    Parent,
    build_model,
    find_parent,
    find_run,
    gpt_config,
    load_model,
    losses_csv,
    model_bytes,
    sample,
    set_threads,
    slug_for,
    train_lm,
)
from kfw.dl.lm.shards import TokenStream, open_shards, safe_cuts, token_streams, write_shards

__all__ = [
    "CHECKPOINT",
    "CPU",
    "GPT2",
    "GPU",
    "POSITIONS",
    "PRESETS",
    "TOKENIZERS",
    "TRAIN_FRACTION",
    "Corpus",
    "GPT2Mini",
    "LMCallback",
    "LMConfig",
    "Parent",
    "Runtime",
    "TokenStream",
    "TrainResult",
    "accumulate",
    "build_model",
    "check_length",
    "count",
    "describe",
    "evaluate",
    "find_parent",
    "find_run",
    "fit_tokenizer",
    "fixed_starts",
    "flops_per_token",
    "get_batch",
    "gpt_config",
    "load_checkpoint",
    "load_corpus",
    "load_model",
    "losses_csv",
    "lr_at",
    "make_optimizer",
    "memory",
    "model_bytes",
    "open_shards",
    "parse_setting",
    "random_starts",
    "read_text",
    "resolve_config",
    "safe_cuts",
    "sample",
    "save_atomic",
    "set_threads",
    "slug_for",
    "split_point",
    "token_streams",
    "train",
    "train_lm",
    "write_shards",
]
