"""A character-level LSTM in NumPy, trained for a few minutes, then sampled.

    OPENBLAS_NUM_THREADS=2 .venv/bin/python -m scratch_models.demos.char_lstm \\
        --corpus ../shared/corpora/tinyshakespeare.txt --minutes 3

Model: embedding -> LSTM -> temporal affine -> temporal softmax loss, every layer from
:mod:`scratch_models.rnn`. The corpus is split 90/10 (the last 10% held out). Training draws
random windows of ``seq`` characters (each window starts from a zero state: truncated
backpropagation through time of ``seq`` steps), clips the global gradient norm and steps with
Adam (:func:`scratch_models.fc_net.adam`). Losses are nats per character, measured on fixed
windows of the training and the held-out text. Sampling feeds each drawn character back in.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scratch_models import rnn
from scratch_models.fc_net import adam

DEFAULT_CORPUS = Path("../shared/corpora/tinyshakespeare.txt")
PARAMS = ("W_embed", "Wx", "Wh", "b", "W_out", "b_out")


@dataclass
class Config:
    """Sizes and optimisation of the character LSTM."""

    hidden: int = 128
    embed: int = 64
    seq: int = 50
    batch: int = 32
    learning_rate: float = 3e-3
    clip: float = 5.0  # global gradient norm
    eval_windows: int = 256  # fixed windows per loss estimate
    eval_every: float = 20.0  # seconds between two evaluations
    seed: int = 0
    dtype: type = np.float32


@dataclass
class CharLSTM:
    """Trained parameters, the vocabulary and the losses measured along the way."""

    params: dict[str, np.ndarray]
    chars: list[str]
    history: list[dict] = field(default_factory=list)  # {"iter", "seconds", "train", "val"}


def init_params(vocab: int, config: Config, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Scaled normal weights (variance 1 / fan_in), zero biases but the forget gate's at 1."""
    e, h = config.embed, config.hidden
    b = np.zeros(4 * h)
    b[h : 2 * h] = 1.0  # remember by default early on (Jozefowicz et al. 2015)
    params = {
        "W_embed": rng.normal(size=(vocab, e)),
        "Wx": rng.normal(size=(e, 4 * h)) / np.sqrt(e),
        "Wh": rng.normal(size=(h, 4 * h)) / np.sqrt(h),
        "b": b,
        "W_out": rng.normal(size=(h, vocab)) / np.sqrt(h),
        "b_out": np.zeros(vocab),
    }
    return {k: v.astype(config.dtype) for k, v in params.items()}


def loss_and_grads(params: dict, x: np.ndarray, y: np.ndarray) -> tuple[float, dict]:
    """Mean loss per character of next-character targets y (N, T) given inputs x (N, T)."""
    emb, emb_cache = rnn.word_embedding_forward(x, params["W_embed"])  # (N, T, E)
    h0 = np.zeros((len(x), params["Wh"].shape[0]), dtype=emb.dtype)
    h, _, lstm_cache = rnn.lstm_forward(emb, h0, params["Wx"], params["Wh"], params["b"])
    scores, out_cache = rnn.temporal_affine_forward(h, params["W_out"], params["b_out"])
    loss, dscores = rnn.temporal_softmax_loss(scores, y)  # (N, T, V)
    dh, grads_out, grads_bout = rnn.temporal_affine_backward(dscores, out_cache)
    demb, _, _, dWx, dWh, db = rnn.lstm_backward(dh, lstm_cache)
    dW_embed = rnn.word_embedding_backward(demb, emb_cache)
    grads = dict(zip(PARAMS, (dW_embed, dWx, dWh, db, grads_out, grads_bout), strict=True))
    return loss, grads


def mean_loss(params: dict, windows: np.ndarray, batch: int = 256) -> float:
    """Loss per character over fixed windows (n, seq + 1), forward only."""
    total = 0.0
    for start in range(0, len(windows), batch):
        w = windows[start : start + batch]
        emb, _ = rnn.word_embedding_forward(w[:, :-1], params["W_embed"])
        h0 = np.zeros((len(w), params["Wh"].shape[0]), dtype=emb.dtype)
        h, _, _ = rnn.lstm_forward(emb, h0, params["Wx"], params["Wh"], params["b"])
        scores, _ = rnn.temporal_affine_forward(h, params["W_out"], params["b_out"])
        total += rnn.temporal_softmax_loss(scores, w[:, 1:])[0] * len(w)
    return total / len(windows)


def _windows(data: np.ndarray, starts: np.ndarray, seq: int) -> np.ndarray:
    return data[starts[:, None] + np.arange(seq + 1)]  # (n, seq + 1): inputs and targets


def _fixed_windows(data: np.ndarray, seq: int, n: int) -> np.ndarray:
    starts = np.linspace(0, len(data) - seq - 1, num=min(n, len(data) - seq), dtype=int)
    return _windows(data, starts, seq)


def train(
    text: str,
    config: Config | None = None,
    minutes: float | None = None,
    max_iters: int | None = None,
    on_eval: Callable[[dict], None] | None = None,
) -> CharLSTM:
    """Train on the first 90% of ``text`` until ``minutes`` or ``max_iters`` runs out.

    ``on_eval`` receives each evaluation ``{"iter", "seconds", "train", "val"}`` (losses in
    nats per character); one is made at the start and one at the end.
    """
    config = config or Config()
    if minutes is None and max_iters is None:
        raise ValueError("give minutes or max_iters.")
    chars = sorted(set(text))
    lookup = {c: i for i, c in enumerate(chars)}
    data = np.array([lookup[c] for c in text], dtype=np.int64)
    split = int(0.9 * len(data))
    train_data, val_data = data[:split], data[split:]
    if len(val_data) <= config.seq + 1:
        raise ValueError(f"a corpus of {len(text)} characters is too short for seq={config.seq}.")
    rng = np.random.default_rng(config.seed)
    params = init_params(len(chars), config, rng)
    adam_configs = {k: {"learning_rate": config.learning_rate} for k in params}
    fixed_train = _fixed_windows(train_data, config.seq, config.eval_windows)
    fixed_val = _fixed_windows(val_data, config.seq, config.eval_windows)
    model = CharLSTM(params, chars)
    start = time.perf_counter()

    def evaluate(iteration: int) -> None:
        record = {"iter": iteration, "seconds": time.perf_counter() - start}
        record |= {"train": mean_loss(params, fixed_train), "val": mean_loss(params, fixed_val)}
        model.history.append(record)
        if on_eval is not None:
            on_eval(record)

    evaluate(0)
    last_eval, iteration = time.perf_counter(), 0
    deadline = start + 60 * minutes if minutes is not None else np.inf
    while (max_iters is None or iteration < max_iters) and time.perf_counter() < deadline:
        starts = rng.integers(0, len(train_data) - config.seq - 1, size=config.batch)
        window = _windows(train_data, starts, config.seq)  # (batch, seq + 1)
        _, grads = loss_and_grads(params, window[:, :-1], window[:, 1:])
        norm = np.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads.values()))
        scale = min(1.0, config.clip / (norm + 1e-12))  # clip the global norm
        for k in params:
            params[k], adam_configs[k] = adam(params[k], grads[k] * scale, adam_configs[k])
        iteration += 1
        if time.perf_counter() - last_eval > config.eval_every:
            evaluate(iteration)
            last_eval = time.perf_counter()
    evaluate(iteration)
    return model


def sample(
    model: CharLSTM, n: int, prompt: str = "\n", temperature: float = 1.0, seed: int = 0
) -> str:
    """Draw ``n`` characters after ``prompt`` (characters of the vocabulary), one step at a time."""
    p, lookup = model.params, {c: i for i, c in enumerate(model.chars)}
    missing = sorted(set(prompt) - set(lookup))
    if missing or not prompt:
        raise ValueError(
            f"the prompt must be non-empty vocabulary characters; not in it: {missing}"
        )
    rng = np.random.default_rng(seed)
    h = np.zeros((1, p["Wh"].shape[0]), dtype=p["Wh"].dtype)  # (1, H)
    c = np.zeros_like(h)

    def step(idx: int) -> np.ndarray:
        """Feed one character; the next character's probabilities (V,)."""
        nonlocal h, c
        x, _ = rnn.word_embedding_forward(np.array([idx]), p["W_embed"])  # (1, E)
        h, c, _ = rnn.lstm_step_forward(x, h, c, p["Wx"], p["Wh"], p["b"])
        scores = (h @ p["W_out"] + p["b_out"])[0].astype(np.float64) / temperature  # (V,)
        e = np.exp(scores - scores.max())
        return e / e.sum()

    for ch in prompt:
        probs = step(lookup[ch])
    out = []
    for _ in range(n):
        out.append(int(rng.choice(len(probs), p=probs)))
        probs = step(out[-1])
    return "".join(model.chars[i] for i in out)


def main(argv: list[str] | None = None) -> CharLSTM:
    """Train for ``--minutes``, print the losses as they come and ~500 sampled characters."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--hidden", type=int, default=Config.hidden)
    parser.add_argument("--seq", type=int, default=Config.seq)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chars", type=int, default=500, help="characters to sample")
    parser.add_argument(
        "--blas-threads", type=int, default=1, help="BLAS threads (matrices this small gain none)"
    )
    args = parser.parse_args(argv)
    if not args.corpus.is_file():
        parser.error(f"no corpus at {args.corpus}")
    text = args.corpus.read_text(encoding="utf-8")
    config = Config(hidden=args.hidden, seq=args.seq, seed=args.seed)

    def report(r: dict) -> None:
        print(
            f"iter {r['iter']:6d}  {r['seconds']:6.0f}s  train {r['train']:.3f}  val {r['val']:.3f}"
        )

    print(f"{len(text):,} characters, {len(set(text))} distinct; {config}")
    from threadpoolctl import threadpool_limits  # scikit-learn's dependency

    # (32, 128) x (128, 512) products are too small to split; on a busy core a second
    # spinning OpenBLAS thread made an iteration 35x slower (5.6 s instead of 0.16 s)
    with threadpool_limits(limits=args.blas_threads, user_api="blas"):
        model = train(text, config, minutes=args.minutes, on_eval=report)
    last = model.history[-1]
    print(
        f"final: train {last['train']:.4f}  val {last['val']:.4f} nats/char after {last['iter']} iterations"
    )
    print("-" * 60)
    print(sample(model, args.chars, seed=args.seed))
    return model


if __name__ == "__main__":
    main()
