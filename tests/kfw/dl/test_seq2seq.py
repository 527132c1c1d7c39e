"""kfw.dl.seq2seq, seqtasks and seqtrain: masks, causality, decoding, the tasks, and exact match."""

from __future__ import annotations

import datetime as dt
import functools
import math

import pytest
import torch
from typer.testing import CliRunner

from kfw.cli import main
from kfw.cli.app import app
from kfw.dl.seq2seq import Seq2Seq, Seq2SeqConfig, beam_search, greedy_search
from kfw.dl.seqtasks import (
    BOS,
    EOS,
    PAD,
    SEP,
    TASKS,
    Vocab,
    make_split,
    reverse_example,
    task_vocab,
)
from kfw.dl.seqtrain import (
    SeqTraining,
    build,
    encdec_batch,
    exact_match,
    gpt_batch,
    gpt_generate,
    gpt_stepper,
    n_params,
    train_seq,
)
from kfw.errors import ConfigError

torch.set_num_threads(1)
runner = CliRunner()

V = 12
MASK_TOL = 1e-6  # logits of a padded source against the unpadded one (float32)
SCORE_TOL = 1e-5  # a returned beam score against the teacher-forced log-probability
BUDGET_RTOL = 0.10  # the GPT's parameters against the encoder-decoder's
EXACT_MATCH = 0.99  # the target on a held-out set
SHORT_REVERSE = functools.partial(reverse_example, min_len=3, max_len=6, alphabet="abcde")


def model(pos: str = "learned", seed: int = 0) -> Seq2Seq:
    torch.manual_seed(seed)
    cfg = Seq2SeqConfig(vocab_size=V, max_len=10, n_enc=2, n_dec=2, n_head=2, n_embd=16, pos=pos)
    return Seq2Seq(cfg).eval()


def tokens(B: int, T: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(4, V, (B, T), generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------
# the model


def test_shapes_tied_embedding_and_loss_at_init_is_ln_vocab():
    m = model()
    src, tgt = tokens(3, 7), tokens(3, 5, seed=1)
    logits, loss = m(src, tgt, tgt)
    assert logits.shape == (3, 5, V)
    assert m.wte.weight is m.lm_head.weight
    assert loss.item() == pytest.approx(math.log(V), abs=0.05)


@pytest.mark.parametrize("pos", ["learned", "sinusoidal"])
def test_a_padded_source_gives_the_outputs_of_the_unpadded_one(pos):
    m = model(pos)
    short, long = tokens(1, 4), tokens(1, 8, seed=1)
    padded = torch.cat((torch.cat((short, torch.full((1, 4), PAD)), dim=1), long))  # (2, 8)
    tgt = tokens(2, 5, seed=2)
    alone, _ = m(short, tgt[:1])
    batched, _ = m(padded, tgt)
    torch.testing.assert_close(batched[:1], alone, atol=MASK_TOL, rtol=0)
    torch.testing.assert_close(batched[1:], m(long, tgt[1:])[0], atol=MASK_TOL, rtol=0)


def test_the_decoder_is_causal_and_the_encoder_is_not():
    m = model()
    src, tgt = tokens(1, 6), tokens(1, 6, seed=1)
    base, _ = m(src, tgt)
    later = tgt.clone()
    later[0, 4] = (later[0, 4] + 1 - 4) % (V - 4) + 4  # another token at position 4
    changed, _ = m(src, later)
    torch.testing.assert_close(changed[:, :4], base[:, :4], atol=0, rtol=0)
    assert not torch.allclose(changed[:, 4:], base[:, 4:])
    # every target position sees the whole source, the last source token included
    src2 = src.clone()
    src2[0, -1] = (src2[0, -1] + 1 - 4) % (V - 4) + 4
    assert not torch.allclose(m(src2, tgt)[0][:, 0], base[:, 0])


def test_learned_positions_refuse_a_sequence_past_max_len_and_configs_are_checked():
    with pytest.raises(Exception, match="longer than max_len"):
        model()(tokens(1, 11), tokens(1, 2))
    with pytest.raises(ConfigError, match="divisible"):
        Seq2SeqConfig(vocab_size=V, n_embd=10, n_head=4)
    with pytest.raises(ConfigError, match="position kind"):
        Seq2SeqConfig(vocab_size=V, pos="rope")


# ---------------------------------------------------------------------------------------------
# decoding


@pytest.mark.parametrize("pos", ["learned", "sinusoidal"])
def test_beam_width_one_is_greedy(pos):
    m = model(pos, seed=3)
    src = torch.cat((tokens(5, 6), torch.full((5, 2), PAD)), dim=1)
    greedy = m.generate(src, 8)  # beam=1: greedy_search
    with torch.no_grad():
        beam1 = beam_search(m.stepper(src, 1), torch.full((5, 1), BOS), 1, 8, EOS, PAD)
    assert torch.equal(beam1[0], greedy[0])
    torch.testing.assert_close(beam1[1], greedy[1])


def test_beam_scores_are_the_log_probabilities_of_the_returned_tokens():
    m = model(seed=4)
    src = tokens(4, 6)
    out, scores = m.generate(src, 6, beam=3)
    for b in range(4):
        row = out[b].tolist()
        n = row.index(EOS) + 1 if EOS in row else len(row)
        tgt = torch.tensor([[BOS, *row[: n - 1]]])
        logp = m(src[b : b + 1], tgt)[0].log_softmax(-1)[0]  # (n, V)
        want = logp[torch.arange(n), torch.tensor(row[:n])].sum()
        assert scores[b].item() == pytest.approx(want.item(), abs=SCORE_TOL)


def table_step(table: dict[tuple[int, ...], dict[int, float]], n_vocab: int):
    """A step function reading the next-token probabilities of each prefix from ``table``."""

    def step(seqs: torch.Tensor) -> torch.Tensor:
        rows = []
        for row in seqs.tolist():
            probs = table.get(tuple(row[1:]), {EOS: 1.0})
            rows.append([math.log(probs[t]) if t in probs else -math.inf for t in range(n_vocab)])
        return torch.tensor(rows)

    return step


A, B_ = 4, 5  # two ordinary tokens


def test_beam_search_finds_the_likelier_sequence_greedy_misses():
    # greedy takes A (0.6), after which nothing is likely: best A-sequence has p 0.6 * 0.4;
    # B (0.4) then <eos> (0.9) has p 0.36
    table = {
        (): {A: 0.6, B_: 0.4},
        (A,): {EOS: 0.4, A: 0.3, B_: 0.3},
        (B_,): {EOS: 0.9, A: 0.05, B_: 0.05},
    }
    step, start = table_step(table, 6), torch.full((1, 1), BOS)
    g_tok, g_score = greedy_search(step, start, 4, EOS, PAD)
    b_tok, b_score = beam_search(step, start, 2, 4, EOS, PAD)
    assert g_tok[0].tolist()[:2] == [A, EOS]
    assert b_tok[0].tolist()[:2] == [B_, EOS]
    assert g_score.item() == pytest.approx(math.log(0.6 * 0.4))
    assert b_score.item() == pytest.approx(math.log(0.4 * 0.9))
    assert b_score.item() > g_score.item()


def test_length_penalty_ranks_the_final_hypotheses_by_score_per_token():
    # <eos> at once: p 0.5 (score -0.69, 1 token); A A <eos>: p 0.4 * 0.9 * 0.9 (-1.13, 3 tokens)
    table = {(): {EOS: 0.5, A: 0.4, B_: 0.1}, (A,): {A: 0.9, EOS: 0.1}, (A, A): {EOS: 0.9, A: 0.1}}
    step, start = table_step(table, 6), torch.full((1, 1), BOS)
    raw, _ = beam_search(step, start, 2, 4, EOS, PAD)
    normalised, score = beam_search(step, start, 2, 4, EOS, PAD, length_penalty=1.0)
    assert raw[0, 0].item() == EOS
    assert normalised[0, :3].tolist() == [A, A, EOS]
    assert score.item() == pytest.approx(math.log(0.4 * 0.9 * 0.9))  # the score stays raw
    with pytest.raises(ConfigError, match="larger than the vocabulary"):
        beam_search(step, start, 7, 4, EOS, PAD)


# ---------------------------------------------------------------------------------------------
# the tasks


def test_generated_answers_are_exact():
    split = make_split("add", 300, 0, seed=1)
    for source, target in split.train:
        a, b = source.split("+")
        assert int(target) == int(a) + int(b) and str(int(a)) == a
    for source, target in make_split("reverse", 300, 0, seed=1).train:
        assert target == source[::-1]
    forms = ["%B %d, %Y", "%d %B %Y", "%d/%m/%Y", "%d %b %y", "%b %d, %Y", "%d-%m-%Y"]
    for source, target in make_split("dates", 500, 0, seed=1).train:
        parsed = set()
        for form in forms:
            try:
                parsed.add(dt.datetime.strptime(source, form).date().isoformat())
            except ValueError:
                continue
        assert parsed == {target}, source


@pytest.mark.parametrize("task", list(TASKS))
def test_held_out_keys_and_sources_never_occur_in_training(task):
    split = make_split(task, 2000, 500, seed=7)
    assert len(split.train) == len(split.train_keys) == 2000
    assert len(split.test) == len(split.test_keys) == 500
    assert split.test_keys - split.train_keys == split.test_keys
    assert not {s for s, _ in split.test} & {s for s, _ in split.train}
    assert make_split(task, 2000, 500, seed=7) == split
    assert make_split(task, 2000, 500, seed=8).test != split.test
    vocab = task_vocab(task)
    assert all(vocab.decode(vocab.encode(s)) == s for pair in split.test for s in pair)


def test_bad_task_input_is_one_clear_error():
    with pytest.raises(ConfigError, match="unknown task 'sort'"):
        make_split("sort", 10, 10)
    with pytest.raises(ConfigError, match="too few"):
        tiny = functools.partial(reverse_example, min_len=2, max_len=2, alphabet="ab")
        make_split(tiny, 4, 1)  # only 4 strings exist
    with pytest.raises(ConfigError, match="not in the vocabulary"):
        Vocab("ab").encode("abc")
    with pytest.raises(ConfigError, match="unknown architecture"):
        build("rnn", make_split("reverse", 5, 5), task_vocab("reverse"), SeqTraining())


# ---------------------------------------------------------------------------------------------
# the decoder-only baseline and training


def test_gpt_batches_score_only_the_output_and_the_budgets_match():
    vocab = Vocab("abc")
    _, targets = gpt_batch([("ab", "ba"), ("abc", "c")], vocab)
    # a b <sep> b a -> next tokens: only b a <eos> after <sep> are scored
    assert targets[0].tolist() == [-1, -1, vocab.stoi["b"], vocab.stoi["a"], EOS]
    assert targets[1].tolist() == [-1, -1, -1, vocab.stoi["c"], EOS]
    src, tgt_in, tgt_out = encdec_batch([("ab", "ba"), ("abc", "c")], vocab)
    assert tgt_in[1].tolist() == [BOS, vocab.stoi["c"], PAD] and tgt_out[1, -1].item() == -1
    assert src[0, -1].item() == PAD
    for task in TASKS:
        split, cfg = make_split(task, 50, 10), SeqTraining()
        a = n_params(build("encdec", split, task_vocab(task), cfg))
        b = n_params(build("gpt", split, task_vocab(task), cfg))
        assert abs(b - a) / a < BUDGET_RTOL, (task, a, b)


def test_gpt_beam_width_one_is_greedy():
    split, vocab = make_split(SHORT_REVERSE, 40, 0), Vocab("abcde")
    torch.manual_seed(0)
    gpt = build("gpt", split, vocab, SeqTraining(n_layer=1, n_head=2, n_embd=16)).eval()
    prefix = torch.tensor([vocab.encode(s) for s, _ in split.train if len(s) == 5])
    greedy = gpt_generate(gpt, prefix, 7)
    start = torch.full((len(prefix), 1), SEP)
    with torch.no_grad():
        beam1 = beam_search(gpt_stepper(gpt, prefix, 1), start, 1, 7, EOS, PAD)
    assert torch.equal(beam1[0], greedy[0])
    torch.testing.assert_close(beam1[1], greedy[1])


def test_the_encoder_decoder_reverses_held_out_strings_exactly():
    split = make_split(SHORT_REVERSE, 3000, 300, seed=0)
    vocab = Vocab("abcde")
    cfg = SeqTraining(
        n_layer=1, n_head=2, n_embd=32, steps=500, batch_size=32, learning_rate=3e-3,
        warmup_iters=50,
    )  # fmt: skip
    result = train_seq("encdec", split, vocab, cfg, seed=0)
    assert result.losses[-1] < result.losses[0] / 20
    assert exact_match(result.model, split.test, vocab) >= EXACT_MATCH
    assert exact_match(result.model, split.test, vocab, beam=3) >= EXACT_MATCH


def test_the_cli_prints_held_out_exact_match_and_refuses_an_unknown_task(capsys):
    result = runner.invoke(app, ["lm", "seq2seq", "--task", "reverse", "--steps", "3", "--beam", "2", "--threads", "1"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "reverse · encdec · held-out exact match: greedy" in result.output
    assert "beam 2" in result.output
    with pytest.raises(SystemExit) as exc:
        main(["lm", "seq2seq", "--task", "sort"])
    out, err = capsys.readouterr()
    assert exc.value.code == 1 and out == ""
    assert len(err.splitlines()) == 1 and "unknown task 'sort'" in err
