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
:mod:`~kfw.dl.lm.data` (corpus and batches), :mod:`~kfw.dl.lm.loop` (:func:`train` and its
checkpoints), :mod:`~kfw.dl.lm.runs` (:func:`train_lm`, the run store, :func:`sample`).
Every public name is re-exported here.
"""

from kfw.dl.lm.config import (
    CPU,
    GPU,
    POSITIONS,
    PRESETS,
    TOKENIZERS,
    LMConfig,
    Runtime,
    parse_setting,
    resolve_config,
)
from kfw.dl.lm.data import (
    TRAIN_FRACTION,
    Corpus,
    fixed_starts,
    get_batch,
    load_corpus,
    random_starts,
    read_text,
    split_point,
)
from kfw.dl.lm.loop import (
    LMCallback,
    TrainResult,
    evaluate,
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

__all__ = [
    "CHECKPOINT",
    "CPU",
    "GPU",
    "POSITIONS",
    "PRESETS",
    "TOKENIZERS",
    "TRAIN_FRACTION",
    "Corpus",
    "LMCallback",
    "LMConfig",
    "Parent",
    "Runtime",
    "TrainResult",
    "build_model",
    "evaluate",
    "find_parent",
    "find_run",
    "fixed_starts",
    "get_batch",
    "gpt_config",
    "load_checkpoint",
    "load_corpus",
    "load_model",
    "losses_csv",
    "lr_at",
    "make_optimizer",
    "model_bytes",
    "parse_setting",
    "random_starts",
    "read_text",
    "resolve_config",
    "sample",
    "save_atomic",
    "set_threads",
    "slug_for",
    "split_point",
    "train",
    "train_lm",
]
