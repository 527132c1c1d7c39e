"""makemore: the ladder from counting to the transformer, on a list of words.

After Karpathy's makemore lectures. Each rung predicts the next character of a word from the
ones before it, and all are scored the same way (nats per character on the same validation
words):

1. ``bigram``: the bigram model by counting, add-k smoothed (:mod:`~kfw.dl.makemore.bigram`);
2. ``bigram-net``: the same model as a one-layer net trained by gradient descent, which reaches
   the counted loss;
3. ``mlp``: the MLP language model of Bengio et al. (2003) (:mod:`~kfw.dl.makemore.models`);
4. ``wavenet``: makemore part 5's hierarchical model, consecutive pairs fused with batch norm;
5. ``gpt``: :class:`kfw.dl.gpt.GPT` on whole words.

:mod:`~kfw.dl.makemore.data` reads and splits the words; :mod:`~kfw.dl.makemore.ladder` runs a
rung end to end (:func:`run`); :mod:`~kfw.dl.makemore.internals` is makemore part 3's lesson:
activation and gradient statistics of a deep tanh MLP at initialisation, with and without the
fixes, and their figures.
"""

from kfw.dl.makemore.bigram import (
    BigramCounts,
    BigramNet,
    bigram_pairs,
    fit_bigram_net,
    pseudo_count_loss,
)
from kfw.dl.makemore.data import (
    END,
    WORDS,
    Split,
    Vocab,
    load_words,
    normalise,
    split_words,
    windows,
)
from kfw.dl.makemore.ladder import (
    DEFAULTS,
    MODELS,
    Result,
    build,
    check_model,
    evaluate,
    num_params,
    run,
    sample_words,
)
from kfw.dl.makemore.models import (
    MLP,
    BatchNormLast,
    CharGPT,
    FlattenConsecutive,
    WaveNet,
    padded_rows,
)

__all__ = [
    "DEFAULTS", "END", "MLP", "MODELS", "WORDS", "BatchNormLast", "BigramCounts", "BigramNet",
    "CharGPT", "FlattenConsecutive", "Result", "Split", "Vocab", "WaveNet", "bigram_pairs", "build",
    "check_model",
    "evaluate", "fit_bigram_net", "load_words", "normalise", "num_params", "padded_rows",
    "pseudo_count_loss", "run", "sample_words", "split_words", "windows",
]  # fmt: skip
