"""``kfw lm train --init``: a fine-tune starts from its parent's weights and records it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from kfw.cli.app import app
from kfw.dl.lm import LMCallback, Runtime, load_model, resolve_config, train_lm
from kfw.dl.weights import file_sha256, write_safetensors
from kfw.errors import ConfigError, DataError, KfwError

TINY = {
    "n_layer": 1,
    "n_head": 2,
    "n_embd": 16,
    "block_size": 16,
    "batch_size": 4,
    "eval_iters": 2,
    "max_iters": 6,
    "eval_interval": 3,
}
TINY_ARGS = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
CPU1 = Runtime(device="cpu", threads=1)
runner = CliRunner()


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _corpus(path: Path, words: list[str], seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    path.write_text("\n".join(" ".join(rng.choice(words, size=6)) + "." for _ in range(80)) + "\n")
    return path


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("corpora")
    parent = _corpus(d / "parent.txt", ["the", "king", "queen", "shall", "speak", "lord"])
    # the fine-tune corpus: other words, characters the parent's vocabulary has
    child = _corpus(d / "child.txt", ["he", "sings", "lean", "dens"], seed=1)
    return parent, child


def _train(corpus: Path, home: Path, init=None, **kw) -> dict:
    cfg = resolve_config("cpu", **{**TINY, **kw})
    return train_lm(corpus, home, cfg, seed=3, runtime=CPU1, callback=LMCallback(), wandb=False, init=init)  # fmt: skip


@pytest.fixture(scope="module")
def parent(
    corpora: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict]:
    home = tmp_path_factory.mktemp("home")
    return home, _train(corpora[0], home)


def _run_dir(home: Path, record: dict) -> Path:
    return home / "runs" / record["competition"] / record["id"]


def test_a_fine_tune_starts_where_its_parent_ended(parent: tuple[Path, dict], corpora) -> None:
    home, rec = parent
    # the same corpus and evaluation windows: the child's step-0 loss is the parent's last
    child = _train(corpora[0], home, init=rec["id"])
    assert child["losses"][0]["val"] == rec["losses"][-1]["val"]
    assert child["parent"] == rec["id"]
    assert child["parent_sha256"] == file_sha256(_run_dir(home, rec) / "model.pt")
    saved = json.loads((_run_dir(home, child) / "run.json").read_text())
    assert saved["parent"] == rec["id"] and saved["key"] != rec["key"]
    # from scratch, the step-0 loss is that of random weights
    assert rec["losses"][0]["val"] > rec["losses"][-1]["val"]


def test_fine_tuning_another_corpus_keeps_the_parents_tokenizer(parent, corpora) -> None:
    home, rec = parent
    child = _train(corpora[1], home, init=str(_run_dir(home, rec)))  # a run folder works too
    _, tok_child, _ = load_model(_run_dir(home, child))
    _, tok_parent, _ = load_model(_run_dir(home, rec))
    assert tok_child == tok_parent and child["vocab_size"] == rec["vocab_size"]
    own = _train(corpora[1], home)  # from scratch: the corpus's own, smaller vocabulary
    assert own["vocab_size"] < rec["vocab_size"] and own["parent"] is None


def test_the_init_is_part_of_the_key(parent, corpora, tmp_path: Path) -> None:
    home, rec = parent
    a = _train(corpora[0], home, init=rec["id"])
    other = _train(corpora[0], tmp_path / "h2", max_iters=3)  # another parent
    b = _train(corpora[0], tmp_path / "h2", init=other["id"])
    assert a["key"] != b["key"]


def test_from_a_state_dict_or_a_safetensors_file(parent, corpora, tmp_path: Path) -> None:
    home, rec = parent
    model, _, _ = load_model(_run_dir(home, rec))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    pt, st = tmp_path / "w.pt", tmp_path / "w.safetensors"
    torch.save(state, pt)
    write_safetensors(state, st)
    for path in (pt, st):
        # a bare file brings no tokenizer: the corpus's own (the parent's corpus: the same one)
        child = _train(corpora[0], tmp_path / path.suffix[1:], init=str(path))
        assert child["losses"][0]["val"] == pytest.approx(rec["losses"][-1]["val"], abs=1e-6)
        assert child["parent"] == str(path.resolve())
        assert child["parent_sha256"] == file_sha256(path)


def test_a_parent_of_another_architecture_is_refused(parent, corpora, tmp_path: Path) -> None:
    home, rec = parent
    with pytest.raises(ConfigError, match="n_embd 16 there, 32 here"):
        _train(corpora[0], home, init=rec["id"], n_embd=32)
    with pytest.raises(ConfigError, match="n_head 2 there, 4 here"):  # no shape differs
        _train(corpora[0], home, init=rec["id"], n_head=4)
    with pytest.raises(DataError, match="the vocabulary of parent run .* lacks: 'z'"):
        (tmp_path / "z.txt").write_text("zzz the king\n" * 40)
        _train(tmp_path / "z.txt", home, init=rec["id"])
    with pytest.raises(ConfigError, match="has a char tokenizer, this run a bpe one"):
        _train(corpora[0], home, init=rec["id"], tokenizer="bpe")
    with pytest.raises(KfwError, match="no lm run 'nope'"):
        _train(corpora[0], home, init="nope")


def test_cli_mismatch_is_one_line_and_leaves_no_run(parent, corpora, tmp_path: Path) -> None:
    home, rec = parent
    model, _, _ = load_model(_run_dir(home, rec))
    state = dict(model.state_dict())
    state["transformer.wte.weight"] = torch.zeros(3, 16)
    bad = tmp_path / "bad.safetensors"
    write_safetensors(state, bad)
    fresh = tmp_path / "fresh"
    cases = [
        (str(bad), TINY_ARGS, "transformer.wte.weight is 3x16 there"),
        # a run folder (the id would be looked up in this fresh home)
        (str(_run_dir(home, rec)), [*TINY_ARGS, "--set", "n_layer=2"], "n_layer 1 there, 2 here"),
    ]
    for init, args, fragment in cases:
        result = runner.invoke(
            app,
            ["--home", str(fresh), "lm", "train", str(corpora[0]), "--no-wandb", "--threads", "1",
             "--init", init, *args],
        )  # fmt: skip
        assert result.exit_code == 1, result.output
        assert isinstance(result.exception, ConfigError)
        message = str(result.exception)
        assert "\n" not in message and "another architecture" in message, message
        assert fragment in message, message
        assert not (fresh / "runs").exists()  # nothing half-written


def test_cli_init_trains_and_records(parent, corpora) -> None:
    home, rec = parent
    result = runner.invoke(
        app,
        ["--home", str(home), "lm", "train", str(corpora[1]), "--no-wandb", "--threads", "1",
         "--init", rec["id"], *TINY_ARGS, "--seed", "5"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    run_id = result.output.split("run ")[-1].strip()
    saved = json.loads(next((home / "runs").glob(f"*/{run_id}/run.json")).read_text())
    assert saved["parent"] == rec["id"]
