"""kfw.dl.gpt: shapes, causality, tied weights, the fused path, positions, and that it learns."""

from __future__ import annotations

import math

import pytest
import torch

from kfw.dl.gpt import GPT, GPTConfig, apply_rope, rope_tables, sinusoidal_positions
from kfw.errors import ConfigError, KfwError

torch.set_num_threads(1)

POSITIONS = ["learned", "sinusoidal", "rope"]
V = 50
INIT_LOSS_TOL = 0.05  # loss at init against ln(V): logits are ~0 with N(0, 0.02) weights
FUSED_TOL = {torch.float32: 1e-5, torch.float64: 1e-12}  # logits, sdpa kernel against ours
INIT_STD_RTOL = 0.1  # sample std of ~16k N(0, s) weights against s
OVERFIT_STEPS = 100
OVERFIT_MAX_LOSS_FRACTION = 0.25  # after training, loss below this fraction of the initial loss


def tiny(pos: str = "learned", **overrides) -> GPTConfig:
    kwargs = dict(vocab_size=V, block_size=16, n_layer=2, n_head=2, n_embd=32, pos=pos)
    return GPTConfig(**(kwargs | overrides))


def model(config: GPTConfig, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(config).eval()


def tokens(B: int, T: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("pos", POSITIONS)
def test_shapes_and_loss_at_init_is_ln_vocab(pos):
    m = model(tiny(pos))
    idx, targets = tokens(8, 16, seed=1), tokens(8, 16, seed=2)
    logits, loss = m(idx, targets)
    assert logits.shape == (8, 16, V)
    assert loss.shape == ()
    assert abs(loss.item() - math.log(V)) < INIT_LOSS_TOL
    logits2, no_loss = m(idx)
    assert no_loss is None
    assert torch.equal(logits, logits2)
    # targets of -1 are ignored
    masked = targets.clone()
    masked[:, 8:] = -1
    _, loss_half = m(idx, masked)
    expected = torch.nn.functional.cross_entropy(
        logits[:, :8].reshape(-1, V), targets[:, :8].reshape(-1)
    )
    torch.testing.assert_close(loss_half, expected)


def test_output_weights_are_tied_to_the_token_embedding():
    m = model(tiny())
    assert m.lm_head.weight is m.transformer.wte.weight
    _, loss = m.train()(tokens(2, 8), tokens(2, 8, seed=3))
    loss.backward()
    with torch.no_grad():
        m.lm_head.weight.add_(1.0)
    assert torch.equal(m.transformer.wte.weight, m.lm_head.weight)
    # counted once; the learned position table is the non-embedding difference
    n_all = m.num_params(non_embedding=False)
    assert n_all == sum(p.numel() for p in set(m.parameters()))
    assert n_all - m.num_params() == 16 * 32
    assert model(tiny("rope")).num_params() == n_all - 16 * 32  # no position parameters


def test_gpt2_initialisation():
    cfg = tiny(n_layer=4, n_embd=64)
    m = model(cfg)
    residual_std = 0.02 / math.sqrt(2 * cfg.n_layer)
    for block in m.transformer.h:
        for proj in (block.attn.c_proj, block.mlp.c_proj):
            assert abs(proj.weight.std().item() / residual_std - 1) < INIT_STD_RTOL
            assert torch.count_nonzero(proj.bias) == 0
        assert abs(block.mlp.c_fc.weight.std().item() / 0.02 - 1) < INIT_STD_RTOL
    assert abs(m.transformer.wte.weight.std().item() / 0.02 - 1) < INIT_STD_RTOL


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("pos", POSITIONS)
def test_changing_a_future_token_never_changes_earlier_logits(pos, fused):
    m = model(tiny(pos, fused=fused))
    idx = tokens(3, 16, seed=4)
    logits, _ = m(idx)
    for t in (0, 5, 15):
        changed = idx.clone()
        changed[:, t] = (changed[:, t] + 1) % V
        logits2, _ = m(changed)
        assert torch.equal(logits2[:, :t], logits[:, :t])
        assert not torch.equal(logits2[:, t], logits[:, t])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("pos", POSITIONS)
def test_fused_path_equals_ours_with_the_same_weights(pos, dtype):
    ours = model(tiny(pos)).to(dtype)
    fused = GPT(tiny(pos, fused=True)).to(dtype).eval()
    fused.load_state_dict(ours.state_dict())
    idx, targets = tokens(4, 16, seed=5), tokens(4, 16, seed=6)
    logits, loss = ours(idx, targets)
    logits_f, loss_f = fused(idx, targets)
    torch.testing.assert_close(logits_f, logits, rtol=FUSED_TOL[dtype], atol=FUSED_TOL[dtype])
    torch.testing.assert_close(loss_f, loss, rtol=FUSED_TOL[dtype], atol=FUSED_TOL[dtype])
    # and the gradients, in training mode without dropout
    ours.train(), fused.train()
    ours(idx, targets)[1].backward()
    fused(idx, targets)[1].backward()
    for (name, p), pf in zip(ours.named_parameters(), fused.parameters(), strict=True):
        tol = 10 * FUSED_TOL[dtype]
        torch.testing.assert_close(pf.grad, p.grad, rtol=tol, atol=tol, msg=name)


@pytest.mark.parametrize("pos", ["sinusoidal", "rope"])
def test_sinusoidal_and_rope_run_at_twice_the_block_size(pos):
    m = model(tiny(pos))
    idx = tokens(2, 32, seed=7)
    logits, loss = m(idx, idx)
    assert logits.shape == (2, 32, V)
    assert torch.isfinite(loss)
    # the first block_size positions see the same tables (cached vs computed) and the same past
    short, _ = m(idx[:, :16])
    torch.testing.assert_close(logits[:, :16], short, rtol=1e-5, atol=1e-6)


def test_learned_positions_refuse_a_longer_sequence():
    m = model(tiny("learned"))
    with pytest.raises(KfwError, match="longer than the block size 16") as err:
        m(tokens(1, 17))
    assert "\n" not in str(err.value)


def test_position_tables():
    table = sinusoidal_positions(40, 6)
    assert table.shape == (40, 6)
    torch.testing.assert_close(table[:, 0], torch.sin(torch.arange(40.0)))
    torch.testing.assert_close(table[:, 1], torch.cos(torch.arange(40.0)))
    torch.testing.assert_close(table[:16], sinusoidal_positions(16, 6))
    assert sinusoidal_positions(3, 5).shape == (3, 5)  # odd width


def test_rope_scores_depend_only_on_the_offset():
    g = torch.Generator().manual_seed(0)
    q, k = (
        torch.randn(1, 1, 1, 8, generator=g, dtype=torch.float64),
        torch.randn(1, 1, 1, 8, generator=g, dtype=torch.float64),
    )
    cos, sin = rope_tables(20, 8, dtype=torch.float64)
    T = 20
    qs = apply_rope(q.expand(1, 1, T, 8), cos, sin)[0, 0]  # the same q at every position
    ks = apply_rope(k.expand(1, 1, T, 8), cos, sin)[0, 0]
    scores = qs @ ks.T  # (T, T): scores[i, j] for q at i, k at j
    for offset in (0, 3, 7):
        diag = torch.diagonal(scores, offset=-offset)
        torch.testing.assert_close(diag, diag[:1].expand_as(diag), rtol=1e-12, atol=1e-12)
    # a rotation: norms unchanged
    torch.testing.assert_close(qs.norm(dim=-1), q.norm().expand(T), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("pos", POSITIONS)
def test_same_seed_same_model_and_samples(pos):
    a, b = model(tiny(pos), seed=3), model(tiny(pos), seed=3)
    sd_a, sd_b = a.state_dict(), b.state_dict()
    assert all(torch.equal(sd_a[name], sd_b[name]) for name in sd_a)
    assert not torch.equal(model(tiny(pos), seed=4).lm_head.weight, a.lm_head.weight)
    idx = tokens(2, 4)
    s_a = a.generate(idx, 10, generator=torch.Generator().manual_seed(1))
    s_b = b.generate(idx, 10, generator=torch.Generator().manual_seed(1))
    assert torch.equal(s_a, s_b)


def test_generate_crops_to_the_block_size_and_samples_validly():
    m = model(tiny("learned", dropout=0.5)).train()
    idx = tokens(2, 3)
    out = m.generate(idx, 30, generator=torch.Generator().manual_seed(0))  # 33 > block_size 16
    assert out.shape == (2, 33)
    assert torch.equal(out[:, :3], idx)
    assert out.min() >= 0 and out.max() < V
    assert m.training  # mode restored
    greedy = m.generate(idx, 5, temperature=0)
    top1 = m.generate(idx, 5, top_k=1, generator=torch.Generator().manual_seed(9))
    assert torch.equal(greedy, top1)
    # greedy equals the argmax of forward's last logits (eval: no dropout in generate)
    m.eval()
    logits, _ = m(idx)
    assert torch.equal(greedy[:, 3], logits[:, -1].argmax(-1))


@pytest.mark.parametrize("pos", POSITIONS)
def test_attention_maps_are_causal_distributions(pos):
    m = model(tiny(pos, dropout=0.3, fused=True)).train()
    idx = tokens(2, 12)
    maps = m.attention_maps(idx)
    assert m.training
    assert len(maps) == 2
    for att in maps:
        assert att.shape == (2, 2, 12, 12)
        assert (att >= 0).all()
        torch.testing.assert_close(att.sum(-1), torch.ones(2, 2, 12))
        assert torch.count_nonzero(att.triu(1)) == 0
    assert all(torch.equal(a, b) for a, b in zip(maps, m.attention_maps(idx), strict=True))


def test_dropout_only_in_training():
    m = model(tiny(dropout=0.3))
    idx = tokens(2, 16)
    assert torch.equal(m(idx)[0], m(idx)[0])
    m.train()
    assert not torch.equal(m(idx)[0], m(idx)[0])


@pytest.mark.parametrize("pos", POSITIONS)
def test_tiny_model_overfits_a_tiny_sequence(pos):
    m = model(tiny(pos)).train()
    data = tokens(1, 17, seed=8)
    x, y = data[:, :-1], data[:, 1:]
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    first = None
    for _ in range(OVERFIT_STEPS):
        _, loss = m(x, y)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    assert m(x, y)[1].item() < OVERFIT_MAX_LOSS_FRACTION * first


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (dict(pos="alibi"), "unknown position kind"),
        (dict(n_embd=30, n_head=4), "not divisible"),
        (dict(pos="rope", n_embd=6, n_head=2), "must be even"),
        (dict(vocab_size=0), "vocab_size"),
        (dict(dropout=1.0), "dropout"),
    ],
)
def test_bad_config_raises(overrides, match):
    with pytest.raises(ConfigError, match=match):
        tiny(**overrides)
