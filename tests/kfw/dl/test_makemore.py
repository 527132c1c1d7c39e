"""makemore: the bigram net reaches the counted loss, the split is seeded, every rung learns.

A generated word list (pronounceable words from a tiny grammar, no system file needed), one
CPU thread; each test takes a second or two.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from kfw.cli.app import app
from kfw.dl.makemore import (
    DEFAULTS,
    MODELS,
    BigramCounts,
    BigramNet,
    Vocab,
    bigram_pairs,
    build,
    evaluate,
    fit_bigram_net,
    load_words,
    normalise,
    padded_rows,
    pseudo_count_loss,
    run,
    sample_words,
    split_words,
    windows,
)
from kfw.dl.makemore.internals import SETUPS, figure, init_stats
from kfw.errors import ConfigError, DataError, KfwError

BIGRAM_TOLERANCE = 1e-3  # nats per character: the bar for net == counts
runner = CliRunner()
ENV = {"KFW_THREADS": "1", "WANDB_MODE": "disabled"}
# small enough to train in a second, large enough to learn something
TINY = {
    "mlp": {"block_size": 3, "n_embd": 4, "n_hidden": 16, "batch_size": 32, "lr": 1e-2},
    "wavenet": {"block_size": 4, "n_embd": 4, "n_hidden": 16, "batch_size": 32, "lr": 1e-2},
    "gpt": {"n_layer": 1, "n_head": 2, "n_embd": 16, "batch_size": 16, "lr": 1e-2},
}


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


def make_words(n: int = 400, seed: int = 0) -> list[str]:
    """Consonant-vowel syllables: a language with structure for the models to find."""
    rng = np.random.default_rng(seed)
    cons, vows = "bdklmnprst", "aeiou"
    words = {
        "".join(rng.choice(list(cons)) + rng.choice(list(vows)) for _ in range(rng.integers(1, 4)))
        + ("n" if rng.random() < 0.3 else "")
        for _ in range(n)
    }
    return sorted(words)


@pytest.fixture(scope="module")
def words() -> list[str]:
    return make_words()


@pytest.fixture
def word_file(tmp_path: Path, words: list[str]) -> Path:
    path = tmp_path / "words.txt"
    path.write_text("\n".join(["Aachen's", "Émile", *words, words[0].upper()]) + "\n")
    return path


def test_normalise_lower_cases_keeps_a_to_z_and_dedupes() -> None:
    assert normalise(["Bill", "bill", " emma \n", "Aachen's", "Émile", "", "x-y", "zoe"]) == [
        "bill",
        "emma",
        "zoe",
    ]


def test_load_words_and_the_vocabulary(word_file: Path, words: list[str]) -> None:
    assert load_words(word_file) == words  # the capitalised duplicate and the others dropped
    vocab = Vocab.of(words)
    assert vocab.chars[0] == "." and vocab.chars[1:] == "".join(sorted(set("".join(words))))
    assert vocab.decode(vocab.encode("kama")) == "kama"


def test_split_is_seeded_disjoint_and_80_10_10(words: list[str]) -> None:
    a, b, c = split_words(words, 3), split_words(words, 3), split_words(words, 4)
    assert a == b and a != c
    assert sorted(a.train + a.val + a.test) == sorted(words)
    n = len(words)
    assert (len(a.train), len(a.val)) == (int(0.8 * n), int(0.9 * n) - int(0.8 * n))


@pytest.mark.parametrize("text", ["", "\n\n", "Aachen's\nÉmile\n123\n"])
def test_a_list_with_no_usable_words_is_one_line(tmp_path: Path, text: str) -> None:
    path = tmp_path / "w.txt"
    path.write_text(text)
    with pytest.raises(DataError, match="no words made of the letters a-z"):
        load_words(path)
    result = runner.invoke(
        app, ["lm", "makemore", "--model", "bigram", "--words", str(path)], env=ENV
    )
    _clean_failure(result, "no words made of the letters a-z")


def test_cli_refuses_an_unknown_model_and_a_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["lm", "makemore", "--model", "trigram"], env=ENV)
    _clean_failure(result, "unknown model 'trigram'")
    missing = tmp_path / "none.txt"
    result = runner.invoke(
        app, ["lm", "makemore", "--model", "mlp", "--words", str(missing)], env=ENV
    )
    _clean_failure(result, "no such file")


def _clean_failure(result, fragment: str) -> None:
    assert result.exit_code != 0
    assert isinstance(result.exception, KfwError), result.exception
    message = str(result.exception)
    assert "\n" not in message and fragment in message, message


def test_cli_prints_loss_parameters_and_samples(word_file: Path) -> None:
    args = ["lm", "makemore", "--model", "bigram", "--words", str(word_file), "--samples", "4"]
    result = runner.invoke(app, args, env=ENV)
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    vocab_size = Vocab.of(load_words(word_file)).size
    assert lines[0].startswith("bigram: val loss ") and f"{vocab_size**2} parameters" in lines[0]
    assert len(lines) == 5


def test_the_pseudo_count_loss_is_the_one_hot_loss_over_all_pairs(words: list[str]) -> None:
    vocab = Vocab.of(words)
    xs, ys = bigram_pairs(words, vocab)
    counts = BigramCounts(vocab.size, k=0).fit(xs, ys).counts
    net = BigramNet(vocab.size, generator=torch.Generator().manual_seed(0)).double()
    per_pair = F.cross_entropy(net(xs), ys)  # one-hot rows times W, every pair
    assert torch.allclose(pseudo_count_loss(net, counts, 0.0), per_pair)


@pytest.mark.parametrize("k", [1.0, 0.1])
def test_the_bigram_net_reaches_the_counted_loss(words: list[str], k: float) -> None:
    vocab = Vocab.of(words)
    split = split_words(words, 0)
    train, val = bigram_pairs(split.train, vocab), bigram_pairs(split.val, vocab)
    counted = BigramCounts(vocab.size, k=k).fit(*train)
    net, losses = fit_bigram_net(counted.counts, k=k, steps=1000, lr=0.5)
    with torch.no_grad():
        net_val = float(F.cross_entropy(net(val[0]), val[1]))
        net_train = float(F.cross_entropy(net(train[0]), train[1]))
    assert abs(net_val - counted.nll(*val)) < BIGRAM_TOLERANCE
    assert abs(net_train - counted.nll(*train)) < BIGRAM_TOLERANCE
    assert losses[-1] < losses[0]


def test_run_bigram_net_reports_the_counted_loss_beside_its_own(words: list[str]) -> None:
    result = run("bigram-net", words, steps=1000, samples=3)
    assert abs(result.val_loss - result.extra["counted_val_loss"]) < BIGRAM_TOLERANCE
    counted = run("bigram", words, samples=3)
    assert abs(result.val_loss - counted.val_loss) < BIGRAM_TOLERANCE
    assert result.n_params == counted.n_params == Vocab.of(words).size ** 2


@pytest.mark.parametrize("model", ["mlp", "wavenet"])
def test_window_models_give_logits_per_context(words: list[str], model: str) -> None:
    vocab = Vocab.of(words)
    settings = {**DEFAULTS[model], **TINY[model]}
    net = build(model, vocab, settings)
    X, _ = windows(words[:20], vocab, settings["block_size"])
    assert X.shape == (sum(len(w) + 1 for w in words[:20]), settings["block_size"])
    assert net(X).shape == (len(X), vocab.size)


def test_the_wavenet_fuses_pairs_level_by_level(words: list[str]) -> None:
    vocab = Vocab.of(words)
    net = build(
        "wavenet", vocab, {**DEFAULTS["wavenet"], "block_size": 8, "n_embd": 6, "n_hidden": 10}
    )
    X = torch.zeros(5, 8, dtype=torch.long)
    assert net.shapes(X) == [(5, 8, 6), (5, 4, 10), (5, 2, 10), (5, 10)]
    with pytest.raises(ConfigError, match="power of 2"):
        build("wavenet", vocab, {**DEFAULTS["wavenet"], "block_size": 6})


def test_the_gpt_rows_pad_with_dot_and_ignore_padding(words: list[str]) -> None:
    vocab = Vocab.of(["ab", "b"])
    X, Y = padded_rows(["ab", "b"], vocab, 4)
    assert X.tolist() == [[0, 1, 2, 0], [0, 2, 0, 0]]
    assert Y.tolist() == [[1, 2, 0, -1], [2, 0, -1, -1]]
    vocab = Vocab.of(words)
    block = max(map(len, words)) + 1
    net = build("gpt", vocab, {**DEFAULTS["gpt"], **TINY["gpt"]}, block)
    X, Y = padded_rows(words[:7], vocab, block)
    logits, loss = net(X, Y)
    assert logits.shape == (7, block, vocab.size) and loss.ndim == 0
    # the loss counts the same predictions as the windows: one per character plus the end
    assert int((Y >= 0).sum()) == sum(len(w) + 1 for w in words[:7])
    with pytest.raises(ConfigError, match="longer than"):
        padded_rows(["abc"], Vocab.of(["abc"]), 3)


@pytest.mark.parametrize("model", ["mlp", "wavenet", "gpt"])
def test_a_short_training_lowers_the_loss(words: list[str], model: str) -> None:
    vocab = Vocab.of(words)
    result = run(model, words, steps=150, samples=4, **TINY[model])
    uniform = float(np.log(vocab.size))
    assert result.val_loss < uniform - 0.3, (result.val_loss, uniform)
    assert np.mean(result.losses[-20:]) < np.mean(result.losses[:20])
    assert len(result.samples) == 4 and all(set(w) <= set(vocab.chars[1:]) for w in result.samples)
    assert result.n_params > 0


def test_same_seed_same_result(words: list[str]) -> None:
    a = run("mlp", words, steps=20, samples=3, **TINY["mlp"])
    b = run("mlp", words, steps=20, samples=3, **TINY["mlp"])
    assert (a.val_loss, a.samples) == (b.val_loss, b.samples)


def test_bad_settings(words: list[str]) -> None:
    with pytest.raises(ConfigError, match="unknown model"):
        run("lstm", words)
    with pytest.raises(ConfigError, match="unknown setting 'depth'"):
        run("mlp", words, depth=3)
    with pytest.raises(ConfigError, match="--steps"):
        run("mlp", words, steps=0)
    assert set(MODELS) == set(DEFAULTS)


def test_evaluate_matches_the_mean_cross_entropy(words: list[str]) -> None:
    vocab = Vocab.of(words)
    net = build("mlp", vocab, {**DEFAULTS["mlp"], **TINY["mlp"]})
    X, Y = windows(words[:30], vocab, 3)
    with torch.no_grad():
        expected = float(F.cross_entropy(net(X), Y))
    assert evaluate(net, X, Y, chunk=7) == pytest.approx(expected, rel=1e-5)


def test_init_statistics_show_the_fixes(words: list[str]) -> None:
    vocab = Vocab.of(words)
    X, Y = windows(words, vocab, 3)
    stats = {name: init_stats(name, X[:512], Y[:512], vocab.size) for name in SETUPS}
    naive, kaiming, bn = stats["N(0, 1)"], stats["Kaiming 5/3"], stats["N(0, 1) + batch norm"]
    assert len(naive.layers) == 5 and len(naive.activations[0]) == 512 * 100
    assert min(r["saturated"] for r in naive.layers) > 40  # N(0, 1) weights saturate the tanh
    assert max(r["saturated"] for r in kaiming.layers) < 30
    assert max(r["saturated"] for r in bn.layers) < 15
    fading = [r["std"] for r in stats["gain 1"].layers]
    assert fading == sorted(fading, reverse=True)  # without tanh's gain the signal fades
    fig = figure(list(stats.values()), "gradients")
    assert len(fig.axes) == len(SETUPS)


def test_sampling_stops_at_the_end_token_or_the_length_cap() -> None:
    vocab = Vocab.of(["ab"])
    always_a = lambda h: torch.tensor([[0.0, 50.0, 0.0]]).expand(len(h), 3)  # noqa: E731
    assert sample_words(always_a, vocab, 2, start=3, max_len=12) == ["a" * 12] * 2

    def a_then_end(h: torch.Tensor) -> torch.Tensor:  # "a" twice, then the end
        end = float(h.size(1) > 4)
        return torch.tensor([[50.0 * end, 50.0 * (1 - end), 0.0]]).expand(len(h), 3)

    assert sample_words(a_then_end, vocab, 1, start=3) == ["aa"]
