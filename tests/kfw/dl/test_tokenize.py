"""kfw.dl.tokenize: exact round trips on any Unicode, merges that compress, saved and restored."""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kfw.dl.tokenize import (
    SPLIT_PATTERN,
    BPETokenizer,
    CharTokenizer,
    make_tokenizer,
    tokenizer_from_dict,
)
from kfw.errors import KfwError
from tests.conftest import SHARED

TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n"
    "Ça va? ünïcödé — 東京 🙂 snake_case x_1 2024 tabs\tand  spaces\r\n"
) * 3
CORPUS = SHARED / "corpora" / "tinyshakespeare.txt"
SHAKESPEARE_MIN_COMPRESSION = 1.8  # bytes per token at vocab 512 (measured 1.94)
SMALL_MAX_TOKENS_PER_BYTE = 0.7  # 44 merges on TEXT (measured 0.63)

# every code point, lone surrogates included: encode must take any Python str
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=60)


@pytest.fixture(scope="module")
def bpe() -> BPETokenizer:
    return BPETokenizer.train(TEXT, vocab_size=300)


def _naive_bpe_merges(text: str, vocab_size: int) -> list[tuple[int, int]]:
    """minbpe's loop: recount every pair of every chunk from scratch before each merge."""
    chunks = [list(c.encode("utf-8", "surrogatepass")) for c in re.findall(SPLIT_PATTERN, text)]
    merges = []
    for new_id in range(256, vocab_size):
        counts = Counter(p for ids in chunks for p in itertools.pairwise(ids))
        if not counts:
            break
        pair, n = max(counts.items(), key=lambda kv: (kv[1], -kv[0][0], -kv[0][1]))
        if n < 2:
            break
        merges.append(pair)
        for j, ids in enumerate(chunks):
            out, i = [], 0
            while i < len(ids):
                if i < len(ids) - 1 and (ids[i], ids[i + 1]) == pair:
                    out.append(new_id)
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            chunks[j] = out
    return merges


# --- characters -----------------------------------------------------------------------------


def test_char_vocabulary_is_sorted_unique_characters():
    tok = CharTokenizer.fit("hello world")
    assert tok.chars == " dehlorw"
    assert tok.vocab_size == 8
    assert tok.encode("hold") == [3, 5, 4, 1]
    assert CharTokenizer("lehwd or") == tok


@settings(max_examples=100, deadline=None, derandomize=True)
@given(data=st.data())
def test_char_round_trip_on_text_from_its_vocabulary(data):
    vocab = data.draw(st.text(min_size=1, max_size=30))
    text = data.draw(st.text(st.sampled_from(sorted(set(vocab))), max_size=80))
    tok = CharTokenizer.fit(vocab)
    ids = tok.encode(text)
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert len(ids) == len(text)
    assert tok.decode(ids) == text


def test_char_unknown_characters_raise_one_line_naming_them():
    tok = CharTokenizer.fit("abc\n")
    with pytest.raises(KfwError) as err:
        tok.encode("abz\tcz")
    message = str(err.value)
    assert "\n" not in message
    assert "'z'" in message and "'\\t'" in message
    assert "'a'" not in message


def test_char_empty_text_raises():
    with pytest.raises(KfwError, match="empty"):
        CharTokenizer.fit("")


# --- byte-level BPE ---------------------------------------------------------------------------


@settings(max_examples=200, deadline=None, derandomize=True)
@given(text=ANY_TEXT)
def test_bpe_round_trips_any_unicode(bpe, text):
    ids = bpe.encode(text)
    assert all(0 <= i < bpe.vocab_size for i in ids)
    assert bpe.decode(ids) == text


@settings(max_examples=30, deadline=None, derandomize=True)
@given(text=ANY_TEXT, vocab_size=st.integers(256, 320))
def test_bpe_trained_on_any_text_round_trips_it(text, vocab_size):
    tok = BPETokenizer.train(text, vocab_size)
    assert tok.vocab_size <= vocab_size
    assert tok.decode(tok.encode(text)) == text


def test_split_pattern_covers_every_character():
    text = "a_b  c\t\n\n 12.5 it's __init__ ÿ 東京 \x00\u200b"
    assert "".join(re.findall(SPLIT_PATTERN, text)) == text


def test_bpe_merges_equal_the_naive_recount(bpe):
    """The incremental counts learn exactly the merges of recounting everything each time."""
    assert bpe.merges == _naive_bpe_merges(TEXT, 300)
    assert bpe.vocab_size == 300


def test_bpe_merges_reduce_the_token_count(bpe):
    n_bytes = len(TEXT.encode("utf-8"))
    n_tokens = len(bpe.encode(TEXT))
    assert n_tokens < SMALL_MAX_TOKENS_PER_BYTE * n_bytes
    # more merges never lengthen the encoding of the training text
    smaller = BPETokenizer.train(TEXT, vocab_size=270)
    assert n_tokens < len(smaller.encode(TEXT)) < n_bytes
    assert smaller.merges == bpe.merges[:14]  # greedy: a prefix of the longer run


def test_bpe_merge_builds_the_most_frequent_pair_first():
    tok = BPETokenizer.train("ab ab ab cd", vocab_size=257)
    assert tok.merges == [(ord("a"), ord("b"))]
    assert tok.encode("ab") == [256]
    assert tok.encode("abc") == [256, ord("c")]


def test_bpe_short_text_stops_early():
    tok = BPETokenizer.train("abc", vocab_size=400)  # no pair occurs twice
    assert tok.vocab_size == 256
    with pytest.raises(KfwError, match="at least 256"):
        BPETokenizer.train("abc", vocab_size=100)


def test_bpe_training_is_deterministic():
    a = BPETokenizer.train(TEXT, vocab_size=290)
    b = BPETokenizer.train(TEXT, vocab_size=290)
    assert a.merges == b.merges
    assert a.encode(TEXT) == b.encode(TEXT)


def test_bpe_decode_of_invalid_utf8_does_not_raise(bpe):
    # a model may sample a lone continuation byte: decode replaces, never fails
    assert bpe.decode([0xE6]) == "\ufffd"


# --- saving and making ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_to_dict_from_dict_round_trip_through_json(kind):
    tok = make_tokenizer(kind, TEXT, vocab_size=280)
    d = json.loads(json.dumps(tok.to_dict()))
    back = tokenizer_from_dict(d)
    assert type(back) is type(tok)
    assert back == tok
    assert back.vocab_size == tok.vocab_size
    assert back.encode(TEXT) == tok.encode(TEXT)
    assert back.decode(tok.encode(TEXT)) == TEXT


def test_make_tokenizer_kinds_and_errors():
    assert isinstance(make_tokenizer("char", TEXT), CharTokenizer)
    bpe = make_tokenizer("bpe", TEXT, vocab_size=260)
    assert isinstance(bpe, BPETokenizer) and bpe.vocab_size == 260
    with pytest.raises(KfwError, match="unknown tokenizer 'word'"):
        make_tokenizer("word", TEXT)
    with pytest.raises(KfwError, match="unknown tokenizer kind"):
        tokenizer_from_dict({"kind": "word"})
    with pytest.raises(KfwError, match="not yet defined"):
        tokenizer_from_dict({"kind": "bpe", "merges": [[300, 1]]})


@pytest.mark.shared
def test_bpe_on_shakespeare_compresses_and_round_trips():
    # how fast it trains is a benchmark's question: benchmarks/timings.py
    if not CORPUS.is_file():
        pytest.skip(f"{CORPUS} is absent")
    text = CORPUS.read_text(encoding="utf-8")
    tok = BPETokenizer.train(text, vocab_size=512)
    assert tok.vocab_size == 512
    ids = tok.encode(text)
    assert len(text.encode("utf-8")) / len(ids) > SHAKESPEARE_MIN_COMPRESSION
    assert tok.decode(ids) == text
