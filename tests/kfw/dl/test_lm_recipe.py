"""The GPT-2 recipe: the preset's exact size, gradient accumulation, bf16, shards, ``kfw lm info``.

Everything runs on one CPU thread with models of a few layers; the 124M model is only ever
built on the ``meta`` device (shapes, no storage).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from kfw.cli.app import app
from kfw.dl.gpt import GPT, GPTConfig
from kfw.dl.lm import (
    TokenStream,
    accumulate,
    count,
    load_model,
    open_shards,
    resolve_config,
    safe_cuts,
    sample,
    token_streams,
    train_lm,
    write_shards,
)
from kfw.dl.lm.config import Runtime
from kfw.dl.tokenize import BPETokenizer, CharTokenizer
from kfw.errors import ConfigError, DataError, KfwError

runner = CliRunner()
CPU1 = Runtime(device="cpu", threads=1)
# bf16 autocast on the CPU may move the tiny model's evaluation losses by at most this (nats)
BF16_TOLERANCE = 0.05


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


# ---------------------------------------------------------------------------------------------
# the GPT-2 preset


def test_gpt2_preset_is_gpt2_small_exactly() -> None:
    cfg = resolve_config("gpt2")
    c = count(cfg, 50257)
    assert c["unpadded"] == 124_439_808  # GPT-2 small, tied embeddings
    assert c["padded_vocab"] == 50304 and c["padded_vocab"] % 64 == 0
    assert c["total"] == 124_439_808 + (50304 - 50257) * 768
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.block_size) == (12, 12, 768, 1024)
    # GPT-3's "Small" row: 0.5M-token steps, 6e-4, beta2 0.95, decay 0.1
    assert cfg.step_tokens == 2**19 and cfg.micro_steps == 32
    assert (cfg.learning_rate, cfg.min_lr, cfg.beta2, cfg.weight_decay) == (6e-4, 6e-5, 0.95, 0.1)


def test_gpt2_initialisation_scales_the_residual_projections() -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=64, block_size=16, n_layer=8, n_head=2, n_embd=64))
    proj = model.transformer.h[0].attn.c_proj.weight.std().item()
    fc = model.transformer.h[0].mlp.c_fc.weight.std().item()
    assert fc == pytest.approx(0.02, rel=0.1)
    assert proj == pytest.approx(0.02 / (2 * 8) ** 0.5, rel=0.1)


def test_info_prints_the_count_without_allocating() -> None:
    result = runner.invoke(app, ["lm", "info", "--preset", "gpt2"])
    assert result.exit_code == 0, result.output
    assert "124,439,808" in result.output and "50,304" in result.output
    assert "memory (bf16, fused attention)" in result.output


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--preset", "gpt5"], "unknown preset 'gpt5'"),
        (["--preset", "gpt2", "--set", "tokens_per_step=1000"], "not a multiple"),
        (["--preset", "gpt2", "--vocab", "60000"], "smaller than the tokenizer"),
    ],
)
def test_info_bad_input_is_one_line(args: list[str], fragment: str) -> None:
    result = runner.invoke(app, ["lm", "info", *args])
    assert result.exit_code != 0 and not result.output
    assert isinstance(result.exception, KfwError), result.exception
    assert "\n" not in str(result.exception) and fragment in str(result.exception)


def test_padded_rows_are_never_sampled(corpus: Path, tmp_path: Path) -> None:
    cfg = resolve_config("cpu", n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=4,
                         max_iters=3, eval_iters=1, eval_interval=3, vocab_multiple=64)  # fmt: skip
    record = train_lm(corpus, tmp_path, cfg, seed=1, runtime=CPU1, wandb=False)
    run = tmp_path / "runs" / record["competition"] / record["id"]
    model, tok, _ = load_model(run)
    assert model.config.vocab_size == 64 > tok.vocab_size
    with torch.no_grad():  # make the padding the likeliest rows: they must still not come out
        model.lm_head.weight[tok.vocab_size :] = 10 * model.lm_head.weight.abs().max()
    torch.save({**torch.load(run / "model.pt"), "model": model.state_dict()}, run / "model.pt")
    text = sample(run, "The king", 40, temperature=0, device="cpu")
    assert text.startswith("The king") and len(text) == len("The king") + 40


# ---------------------------------------------------------------------------------------------
# gradient accumulation


def _grads(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.grad.clone() for p in model.parameters()]


def test_accumulation_gives_the_gradient_of_one_batch_k_times_larger() -> None:
    k, batch, block = 4, 3, 16
    cfg = resolve_config("gpt2-mini", n_layer=2, n_head=2, n_embd=32, block_size=block,
                         batch_size=batch, tokens_per_step=k * batch * block)  # fmt: skip
    assert cfg.micro_steps == k
    data = TokenStream.of(torch.randint(0, 50, (5000,), generator=torch.Generator().manual_seed(0)))
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, block_size=block, n_layer=2, n_head=2, n_embd=32))

    gen = torch.Generator().manual_seed(3)
    loss = accumulate(model, data, cfg, gen, "cpu")
    accumulated = _grads(model)
    model.zero_grad(set_to_none=True)

    gen = torch.Generator().manual_seed(3)  # the same windows, drawn the same way, in one batch
    starts = torch.cat(
        [torch.randint(len(data) - block, (batch,), generator=gen) for _ in range(k)]
    )
    x, y = data.batch(starts, block)
    _, big = model(x, y)
    big.backward()
    assert loss.item() == pytest.approx(big.item(), abs=1e-6)
    for a, b in zip(accumulated, _grads(model), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_tokens_per_step_must_be_whole_micro_batches() -> None:
    with pytest.raises(ConfigError, match="not a multiple of a micro-batch"):
        resolve_config("gpt2-mini", tokens_per_step=8192 + 1)
    assert resolve_config("gpt2-mini", tokens_per_step=0).micro_steps == 1


# ---------------------------------------------------------------------------------------------
# the 4-layer model on the recipe: accumulation, bf16, the loss falls


MINI = {"block_size": 32, "batch_size": 4, "tokens_per_step": 256, "bpe_vocab": 320,
        "max_iters": 60, "eval_interval": 20, "eval_iters": 4, "warmup_iters": 5}  # fmt: skip


@pytest.fixture(scope="module")
def mini_runs(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[bool, dict]:
    home = tmp_path_factory.mktemp("home")
    cfg = resolve_config("gpt2-mini", **MINI)
    return {
        amp: train_lm(corpus, home, cfg, seed=5, runtime=Runtime("cpu", amp=amp, threads=1), wandb=False)
        for amp in (False, True)
    }  # fmt: skip


def test_the_mini_recipe_learns(mini_runs: dict[bool, dict]) -> None:
    record = mini_runs[False]
    assert record["micro_steps"] == 2 and record["tokens_per_step"] == 256
    assert record["config"]["n_layer"] == 4
    val = [r["val"] for r in record["losses"]]
    assert val[-1] < val[0] - 1.0, val
    assert record["mfu"] > 0 and record["peak"]["flops"] > 0


def test_bf16_on_the_cpu_moves_the_curve_by_less_than_the_tolerance(
    mini_runs: dict[bool, dict],
) -> None:
    fp32, bf16 = ([r["val"] for r in mini_runs[amp]["losses"]] for amp in (False, True))
    assert mini_runs[True]["runtime"]["amp"] is True
    assert fp32 != bf16  # autocast really ran in bf16
    assert max(abs(a - b) for a, b in zip(fp32, bf16, strict=True)) < BF16_TOLERANCE


def test_the_fused_attention_run_is_deterministic_on_the_cpu(corpus: Path, tmp_path: Path) -> None:
    cfg = resolve_config("gpt2-mini", **{**MINI, "max_iters": 10, "eval_interval": 5})
    rt = Runtime("cpu", fused=True, threads=1)
    a, b = (
        train_lm(corpus, tmp_path / name, cfg, seed=2, runtime=rt, wandb=False) for name in "ab"
    )
    assert a["runtime"]["fused"] is True
    assert [r["val"] for r in a["losses"]] == [r["val"] for r in b["losses"]]


def test_runtime_auto_is_cuda_on_and_the_presets_choice_on_a_cpu() -> None:
    assert Runtime("cpu").resolved(resolve_config("gpu")).amp is False
    assert Runtime("cpu").resolved(resolve_config("gpt2")).amp is True
    assert Runtime("cpu", amp=False).resolved(resolve_config("gpt2")).amp is False
    assert Runtime("cpu", fused=True).resolved(resolve_config("cpu")).fused is True


# ---------------------------------------------------------------------------------------------
# shards


def test_pieces_cut_where_bpe_cannot_join_encode_like_the_whole(corpus: Path) -> None:
    text = corpus.read_text() + "\n\n  indented line\n'tis\n\tTabbed\n" * 20
    tok = BPETokenizer.train(text, 300)
    pieces = list(safe_cuts(text, piece=37))
    assert len(pieces) > 10 and "".join(pieces) == text
    assert [i for p in pieces for i in tok.encode(p)] == tok.encode(text)


def test_windows_read_across_shard_boundaries(tmp_path: Path) -> None:
    ids = np.arange(1000) % 300
    info = write_shards([ids[:450], ids[450:]], tmp_path / "s", 300, {}, shard_tokens=128)
    assert info["shards"] == [128] * 7 + [104] and info["dtype"] == "uint16"
    assert (tmp_path / "s" / "shard_0000.bin").stat().st_size == 128 * 2
    stream, _ = open_shards(tmp_path / "s")
    view = TokenStream(stream.arrays, 100, 900)
    starts = torch.tensor([0, 20, 27, 250, 780])
    x, y = view.batch(starts, 19)
    want = torch.from_numpy(ids[100:900][starts.numpy()[:, None] + np.arange(20)])
    assert torch.equal(x, want[:, :-1]) and torch.equal(y, want[:, 1:])


def test_a_refused_or_interrupted_encoding_leaves_nothing(tmp_path: Path) -> None:
    tok = CharTokenizer.fit("abc")

    def too_short(n: int, n_val: int) -> None:
        raise DataError(f"too short: {n}")

    with pytest.raises(DataError, match="too short: 3"):
        token_streams("abc", "sha", tok, 3, tmp_path / "work", 0.9, check=too_short)
    assert not (tmp_path / "work").exists()


def test_damaged_shards_are_refused_in_one_line(tmp_path: Path) -> None:
    write_shards([np.arange(10)], tmp_path / "s", 10, {})
    (tmp_path / "s" / "shard_0000.bin").write_bytes(b"\0" * 7)
    with pytest.raises(KfwError, match="damaged.*delete the folder") as err:
        open_shards(tmp_path / "s")
    assert "\n" not in str(err.value)


def test_a_run_reuses_its_shards(corpus: Path, tmp_path: Path) -> None:
    cfg = resolve_config("cpu", n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=4,
                         max_iters=2, eval_iters=1, eval_interval=2)  # fmt: skip
    first = train_lm(corpus, tmp_path, cfg, seed=1, runtime=CPU1, wandb=False)
    folder = Path(first["shards"])
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["n_tokens"] == len(corpus.read_text()) and meta["dtype"] == "uint16"
    stamp = (folder / "shard_0000.bin").stat().st_mtime_ns
    second = train_lm(corpus, tmp_path, cfg, seed=2, runtime=CPU1, wandb=False)
    assert second["shards"] == first["shards"]
    assert (folder / "shard_0000.bin").stat().st_mtime_ns == stamp
