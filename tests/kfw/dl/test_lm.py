"""``kfw lm``: the training loop learns, is deterministic, resumes exactly, saves and samples.

Tiny models (2 layers, 32 dimensions, context 16) on a generated corpus, one CPU thread: each
training takes a second or two.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from kfw.cli import main
from kfw.cli.app import app
from kfw.dl.lm import (
    CHECKPOINT,
    CPU,
    GPU,
    LMCallback,
    Runtime,
    find_run,
    load_model,
    lr_at,
    resolve_config,
    sample,
    slug_for,
    train_lm,
)
from kfw.errors import KfwError

TINY = {
    "n_layer": 2,
    "n_head": 2,
    "n_embd": 32,
    "block_size": 16,
    "batch_size": 8,
    "eval_iters": 4,
    "max_iters": 40,
    "eval_interval": 10,
    "learning_rate": 3e-3,
}
TINY_ARGS = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
LEARNED = 0.5  # nats the validation loss must fall in 40 steps on the patterned corpus
CPU1 = Runtime(device="cpu", threads=1)
runner = CliRunner()


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _train(corpus: Path, home: Path, callback: LMCallback | None = None, **kw):
    cfg = resolve_config("cpu", **{**TINY, **kw})
    return train_lm(
        corpus, home, cfg, seed=7, runtime=CPU1, callback=callback or LMCallback(), wandb=False
    )


class StopAt(LMCallback):
    """Interrupts the run right after the evaluation (and checkpoint) of step ``stop``."""

    def __init__(self, stop: int) -> None:
        self.stop = stop

    def evaluated(self, it: int, train_loss: float, val_loss: float) -> None:
        if it == self.stop:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def finished(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    home = tmp_path_factory.mktemp("home")
    return home, _train(corpus, home)


def _val(record: dict) -> list[float]:
    return [r["val"] for r in record["losses"]]


# ---------------------------------------------------------------------------------------------
# configuration


def test_presets() -> None:
    gpu = GPU()
    assert (gpu.n_layer, gpu.n_head, gpu.n_embd, gpu.block_size, gpu.batch_size) == (
        6,
        6,
        384,
        256,
        64,
    )
    assert (gpu.dropout, gpu.learning_rate, gpu.max_iters, gpu.lr_decay_iters) == (
        0.2,
        1e-3,
        5000,
        5000,
    )
    assert (gpu.min_lr, gpu.beta2, gpu.warmup_iters, gpu.eval_interval, gpu.eval_iters) == (
        1e-4, 0.99, 100, 250, 200,
    )  # fmt: skip
    cpu = CPU()
    # more tokens per step than nanoGPT's CPU configuration (context 64 x batch 12)
    assert cpu.block_size * cpu.batch_size > 64 * 12
    assert cpu.lr_decay_iters == cpu.max_iters


def test_schedule_warms_up_then_decays_to_min_lr() -> None:
    cfg = resolve_config("gpu")
    assert lr_at(0, cfg) == pytest.approx(cfg.learning_rate / (cfg.warmup_iters + 1))
    assert lr_at(cfg.warmup_iters, cfg) == pytest.approx(cfg.learning_rate)
    middle = (cfg.warmup_iters + cfg.lr_decay_iters) // 2
    assert lr_at(middle, cfg) == pytest.approx((cfg.learning_rate + cfg.min_lr) / 2, rel=1e-3)
    assert lr_at(cfg.lr_decay_iters, cfg) == pytest.approx(cfg.min_lr)
    assert lr_at(cfg.lr_decay_iters + 100, cfg) == cfg.min_lr
    rates = [lr_at(i, cfg) for i in range(cfg.warmup_iters, cfg.lr_decay_iters)]
    assert all(a >= b for a, b in itertools.pairwise(rates))


def test_max_iters_moves_the_end_of_the_decay_with_it() -> None:
    cfg = resolve_config("gpu", max_iters=300)
    assert (cfg.max_iters, cfg.lr_decay_iters, cfg.warmup_iters) == (300, 300, 30)
    assert resolve_config("gpu", max_iters=300, lr_decay_iters=5000).lr_decay_iters == 5000


# ---------------------------------------------------------------------------------------------
# training


def test_loss_decreases(finished: tuple[Path, dict]) -> None:
    _, record = finished
    val = _val(record)
    assert [r["iter"] for r in record["losses"]] == [0, 10, 20, 30, 40]
    assert val[0] == pytest.approx(math.log(record["vocab_size"]), abs=0.3)  # uniform at start
    assert val[-1] < val[0] - LEARNED
    assert record["val_loss"] == val[-1]


def test_same_command_twice_gives_the_same_losses(
    corpus: Path, finished: tuple[Path, dict], tmp_path: Path
) -> None:
    again = _train(corpus, tmp_path)
    assert again["losses"] == finished[1]["losses"]  # exact, every evaluation
    assert again["key"] == finished[1]["key"]
    other_seed = train_lm(
        corpus, tmp_path, resolve_config("cpu", **TINY), seed=8, runtime=CPU1, wandb=False
    )
    assert other_seed["losses"] != again["losses"]


def test_resume_after_an_interruption_equals_the_uninterrupted_run(
    corpus: Path, finished: tuple[Path, dict], tmp_path: Path
) -> None:
    with pytest.raises(KeyboardInterrupt):
        _train(corpus, tmp_path, StopAt(20))
    slug = slug_for(corpus)
    checkpoints = list((tmp_path / "runs" / slug / ".partial").glob(f"*/{CHECKPOINT}"))
    assert len(checkpoints) == 1
    assert not list((tmp_path / "runs" / slug).glob("*/run.json"))  # no half-finished run

    seen: list[int] = []

    class Seen(LMCallback):
        def evaluated(self, it: int, train_loss: float, val_loss: float) -> None:
            seen.append(it)

    resumed = _train(corpus, tmp_path, Seen())
    assert resumed["resumed_from"] == 20
    assert seen == [30, 40]  # steps before the checkpoint are not redone
    assert resumed["losses"] == finished[1]["losses"]  # bit for bit on CPU
    assert not checkpoints[0].exists()  # the published run replaces its checkpoint


def test_a_checkpoint_of_another_configuration_is_refused(corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        _train(corpus, tmp_path, StopAt(10))
    (ckpt,) = (tmp_path / "runs" / slug_for(corpus) / ".partial").glob(f"*/{CHECKPOINT}")
    state = torch.load(ckpt, weights_only=True)
    state["meta"]["key_src"]["config"]["n_embd"] = 64  # as if written by another config
    torch.save(state, ckpt)
    result = runner.invoke(app, ["--home", str(tmp_path), "lm", "train", str(corpus), "--seed", "7", "--threads", "1", "--no-wandb", *TINY_ARGS])  # fmt: skip
    _clean_failure(result, "another configuration")
    assert not list((tmp_path / "runs" / slug_for(corpus)).glob("*/run.json"))


def test_the_run_enters_the_store(finished: tuple[Path, dict]) -> None:
    home, record = finished
    run_dir = home / "runs" / slug_for(Path("words.txt")) / record["id"]
    assert {p.name for p in run_dir.iterdir()} == {"run.json", "model.pt", "losses.csv"}
    saved = json.loads((run_dir / "run.json").read_text())
    for key in ("id", "competition", "kind", "config", "seed", "git_commit", "versions",
                "losses", "val_loss", "seconds", "tokens_per_s", "n_params"):  # fmt: skip
        assert key in saved, key
    assert saved["competition"] == "lm-words" and saved["kind"] == "lm"
    assert saved["config"]["n_embd"] == TINY["n_embd"]
    assert "torch" in saved["versions"]["versions"]
    assert saved["tokens_per_s"] > 0 and saved["n_params"] > 0
    rows = (run_dir / "losses.csv").read_text().splitlines()
    assert rows[0] == "iter,train_loss,val_loss,lr" and len(rows) == 1 + len(saved["losses"])
    assert float(rows[-1].split(",")[2]) == saved["val_loss"]
    model, tokenizer, _ = load_model(run_dir)
    assert sum(p.numel() for p in model.parameters()) == saved["n_params"]
    assert tokenizer.vocab_size == saved["vocab_size"]


def test_cli_train_prints_the_loss_and_run_id_last(corpus: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["--home", str(tmp_path), "lm", "train", str(corpus), "--seed", "7", "--threads", "1",
         "--no-wandb", "--max-iters", "10", *TINY_ARGS[:-6]],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (run_json,) = (tmp_path / "runs" / "lm-words").glob("*/run.json")
    record = json.loads(run_json.read_text())
    last = result.stdout.strip().splitlines()[-1]
    assert f"val loss {record['val_loss']:.4f} nats per character" in last
    assert last.endswith(f"run {record['id']}")


def test_bpe_runs_report_nats_per_token_and_sample(corpus: Path, tmp_path: Path) -> None:
    record = _train(corpus, tmp_path, tokenizer="bpe", bpe_vocab=300, max_iters=4)
    assert record["unit"] == "nats per token" and record["vocab_size"] == 300
    run_dir = find_run(record["id"], tmp_path)
    assert sample(run_dir, "The king € ", 5, seed=1).startswith("The king € ")  # bytes: any text
    assert not (tmp_path / "runs" / "lm-words" / ".partial").exists()


# ---------------------------------------------------------------------------------------------
# sampling


def test_sample_continues_the_prompt(finished: tuple[Path, dict]) -> None:
    home, record = finished
    run_dir = find_run(record["id"], home)
    text = sample(run_dir, "The king", 40, seed=3)
    assert text.startswith("The king") and len(text) == len("The king") + 40
    assert sample(run_dir, "The king", 40, seed=3) == text  # seeded
    result = runner.invoke(app, ["--home", str(home), "lm", "sample", record["id"], "--prompt", "The king", "--tokens", "40", "--seed", "3"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.rstrip("\n") == text
    by_path = runner.invoke(app, ["lm", "sample", str(run_dir), "--tokens", "5"])
    assert by_path.exit_code == 0, by_path.output


def test_a_prompt_outside_the_vocabulary_fails_cleanly(
    finished: tuple[Path, dict], capsys: pytest.CaptureFixture[str]
) -> None:
    home, record = finished
    result = runner.invoke(app, ["--home", str(home), "lm", "sample", record["id"], "--prompt", "Zebra€"])  # fmt: skip
    _clean_failure(result, "prompt")
    with pytest.raises(SystemExit) as exc:
        main(["--home", str(home), "lm", "sample", record["id"], "--prompt", "Zebra€"])
    out, err = capsys.readouterr()
    assert exc.value.code == 1 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("kfw: error: prompt")


def test_sampling_a_model_that_does_not_match_its_config_fails_cleanly(
    finished: tuple[Path, dict], tmp_path: Path
) -> None:
    _, record = finished
    run_dir = find_run(record["id"], finished[0])
    bad = tmp_path / "bad-run"
    bad.mkdir()
    saved = torch.load(run_dir / "model.pt", weights_only=True)
    saved["gpt_config"]["n_embd"] = 48
    torch.save(saved, bad / "model.pt")
    _clean_failure(runner.invoke(app, ["lm", "sample", str(bad)]), "does not match")
    _clean_failure(
        runner.invoke(app, ["--home", str(tmp_path), "lm", "sample", "no-such-run"]), "no lm run"
    )


# ---------------------------------------------------------------------------------------------
# bad input: one KfwError line, non-zero exit, nothing written


def _clean_failure(result, fragment: str) -> None:
    assert result.exit_code != 0
    assert isinstance(result.exception, KfwError), result.exception
    message = str(result.exception)
    assert "\n" not in message and fragment in message, message


@pytest.mark.parametrize(
    ("make", "args", "fragment"),
    [
        (None, [], "no such file"),
        ("", [], "is empty"),
        ("  \n\n ", [], "is empty"),
        ("x" * 100, [], "too short"),
        ("ok", ["--preset", "tpu"], "unknown preset 'tpu'"),
        ("ok", ["--pos", "alibi"], "unknown pos 'alibi'"),
        ("ok", ["--tokenizer", "word"], "unknown tokenizer 'word'"),
        ("ok", ["--set", "n_layers=3"], "unknown setting 'n_layers'"),
        ("ok", ["--set", "n_layer=three"], "n_layer"),
        ("ok", ["--set", "n_embd=33"], "multiple of n_head"),
    ],
)
def test_bad_input(
    corpus: Path, tmp_path: Path, make: str | None, args: list[str], fragment: str
) -> None:
    path = tmp_path / "in.txt"
    if make == "ok":
        path = corpus
    elif make is not None:
        path.write_text(make)
    home = tmp_path / "home"
    result = runner.invoke(
        app, ["--home", str(home), "lm", "train", str(path), "--no-wandb", "--threads", "1", *TINY_ARGS, *args]
    )  # fmt: skip
    _clean_failure(result, fragment)
    assert not home.exists()  # nothing half-written


def test_a_corpus_just_long_enough_trains(tmp_path: Path) -> None:
    # the validation tenth must hold one window of block_size + 1 characters
    block = TINY["block_size"]
    n = math.ceil((block + 1) / 0.1) + 1
    path = tmp_path / "short.txt"
    path.write_text(("abcdefg" * n)[:n])
    record = train_lm(
        path, tmp_path, resolve_config("cpu", **{**TINY, "max_iters": 2}), runtime=CPU1, wandb=False
    )
    assert math.isfinite(record["val_loss"])
    path.write_text(("abcdefg" * n)[: n - 12])
    with pytest.raises(KfwError, match="too short"):
        train_lm(path, tmp_path, resolve_config("cpu", **TINY), runtime=CPU1, wandb=False)
