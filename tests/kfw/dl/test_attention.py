"""kfw.dl.attention against torch.nn.MultiheadAttention: bit for bit in float32, 1e-12 in float64."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kfw.dl.attention import MultiheadAttention, causal_attention, causal_mask

torch.set_num_threads(1)

# tolerances relative to the largest magnitude of the tensor compared (entries near zero would
# otherwise be judged on their own tiny scale)
FLOAT64_TOL = 1e-12  # outputs, weights and gradients against torch in float64
FLOAT32_SDPA_TOL = 1e-4  # need_weights=False: torch switches to its fused kernel (another order)
FUSED_TOL = {torch.float32: 1e-6, torch.float64: 1e-12}  # our causal kernel against sdpa
DROPOUT_P = 0.3
DROPOUT_RATE_TOL = 0.02  # observed fraction of zeroed weights vs p, on ~40k weights

MASKS = ["none", "bool2d", "float2d", "bool3d", "float3d", "causal"]
KPMS = ["none", "bool", "float"]
INPUTS = ["self", "kv_shared", "separate"]


def _pair(E: int, nh: int, *, bias: bool, batch_first: bool, dtype: torch.dtype, dropout=0.0):
    """torch's layer and ours, with the same weights (ours loaded from torch's state dict)."""
    ref = torch.nn.MultiheadAttention(
        E, nh, dropout=dropout, bias=bias, batch_first=batch_first, dtype=dtype
    )
    with torch.no_grad():  # non-zero biases, so that a bias in the wrong place shows
        for p in ref.parameters():
            p.normal_()
    ours = MultiheadAttention(
        E, nh, dropout=dropout, bias=bias, batch_first=batch_first, dtype=dtype
    )
    ours.load_state_dict(ref.state_dict())  # strict: same names and shapes
    return ref, ours


def _attn_mask(kind: str, B: int, nh: int, L: int, S: int, dtype, g: torch.Generator):
    if kind == "none":
        return None
    if kind == "causal":
        return causal_mask(L, S)
    shape = (L, S) if kind.endswith("2d") else (B * nh, L, S)
    blocked = torch.rand(shape, generator=g) < 0.3
    blocked[..., 0] = False  # every query keeps key 0: no all -inf row (NaN in both)
    if kind.startswith("bool"):
        return blocked
    return torch.randn(shape, generator=g, dtype=dtype).masked_fill(blocked, float("-inf"))


def _kpm(kind: str, B: int, S: int, dtype, g: torch.Generator):
    if kind == "none":
        return None
    blocked = torch.rand((B, S), generator=g) < 0.3
    blocked[:, 0] = False
    if kind == "bool":
        return blocked
    return torch.randn((B, S), generator=g, dtype=dtype).masked_fill(blocked, float("-inf"))


def _inputs(kind: str, L: int, S: int, B: int | None, E: int, batch_first: bool, dtype, g):
    def make(n):
        shape = (n, E) if B is None else (B, n, E) if batch_first else (n, B, E)
        return torch.randn(shape, generator=g, dtype=dtype)

    if kind == "self":
        x = make(L)
        return x, x, x
    if kind == "kv_shared":
        kv = make(S)
        return make(L), kv, kv
    return make(L), make(S), make(S)


def _run(module, q, k, v, **kwargs):
    """Output, weights, parameter gradients and input gradients of one forward/backward."""
    leaves = []
    for t in {id(t): t for t in (q, k, v)}.values():
        t.grad = None
        leaves.append(t)
    module.zero_grad()
    with warnings.catch_warnings():
        # torch deprecates (but supports) a bool attn_mask with a float key-padding mask
        warnings.simplefilter("ignore", UserWarning)
        out, w = module(q, k, v, **kwargs)
    loss = (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum()
    if w is not None:
        loss = loss + (w * w).sum()
    loss.backward()
    grads = [p.grad for p in module.parameters()] + [t.grad for t in leaves]
    return out.detach(), (None if w is None else w.detach()), grads


def _check_against_torch(
    head_dim, nh, L, S, B, batch_first, inputs, mask, kpm, bias, average, need_weights, dtype, seed
):
    E = head_dim * nh
    if inputs == "self":
        S = L
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    ref, ours = _pair(E, nh, bias=bias, batch_first=batch_first, dtype=dtype)
    q, k, v = _inputs(inputs, L, S, B, E, batch_first, dtype, g)
    for t in (q, k, v):
        t.requires_grad_(True)
    Bm = 1 if B is None else B
    attn_mask = _attn_mask(mask, Bm, nh, L, S, dtype, g)
    key_padding_mask = _kpm(kpm, Bm, S, dtype, g)
    if B is None and key_padding_mask is not None:
        key_padding_mask = key_padding_mask[0]
    kwargs = dict(
        key_padding_mask=key_padding_mask,
        need_weights=need_weights,
        attn_mask=attn_mask,
        average_attn_weights=average,
        is_causal=mask == "causal",
    )
    out_ref, w_ref, g_ref = _run(ref, q, k, v, **kwargs)
    out, w, grads = _run(ours, q, k, v, **kwargs)

    assert out.shape == out_ref.shape
    assert (w is None) == (w_ref is None) == (not need_weights)
    if need_weights:
        expected = (nh, L, S) if not average else (L, S)
        assert w.shape == (expected if B is None else (B, *expected))
    pairs = [(out, out_ref), (w, w_ref), *zip(grads, g_ref, strict=True)]
    pairs = [(a, b) for a, b in pairs if b is not None]
    assert len(pairs) >= 4  # output, in-projection and out-projection gradients at least
    if dtype == torch.float32 and need_weights:
        for a, b in pairs:
            assert torch.equal(a, b)
    else:
        tol = FLOAT64_TOL if dtype == torch.float64 else FLOAT32_SDPA_TOL
        for a, b in pairs:
            scale = max(1.0, b.abs().max().item())
            torch.testing.assert_close(a, b, rtol=tol, atol=tol * scale)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    head_dim=st.integers(1, 6),
    nh=st.integers(1, 4),
    L=st.integers(1, 7),
    S=st.integers(1, 7),
    B=st.one_of(st.none(), st.integers(1, 3)),
    batch_first=st.booleans(),
    inputs=st.sampled_from(INPUTS),
    mask=st.sampled_from(MASKS),
    kpm=st.sampled_from(KPMS),
    bias=st.booleans(),
    average=st.booleans(),
    need_weights=st.booleans(),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    seed=st.integers(0, 2**31 - 1),
)
def test_equals_torch_on_random_configurations(
    head_dim, nh, L, S, B, batch_first, inputs, mask, kpm, bias, average, need_weights, dtype, seed
):
    _check_against_torch(
        head_dim,
        nh,
        L,
        S,
        B,
        batch_first,
        inputs,
        mask,
        kpm,
        bias,
        average,
        need_weights,
        dtype,
        seed,
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("inputs", INPUTS)
@pytest.mark.parametrize("kpm", KPMS)
@pytest.mark.parametrize("mask", MASKS)
def test_every_mask_kind_equals_torch(mask, kpm, inputs, batch_first, dtype):
    """The grid the random test may miss: every mask x padding x input kind x layout, bit for bit."""
    seed = MASKS.index(mask) * 100 + KPMS.index(kpm) * 10 + INPUTS.index(inputs)
    _check_against_torch(
        3, 4, 5, 6, 2, batch_first, inputs, mask, kpm, True, seed % 2 == 0, True, dtype, seed
    )


@pytest.mark.parametrize("bias", [True, False])
def test_same_seed_same_initial_weights_as_torch(bias):
    torch.manual_seed(3)
    ref = torch.nn.MultiheadAttention(16, 4, bias=bias)
    torch.manual_seed(3)
    ours = MultiheadAttention(16, 4, bias=bias)
    sd_ref, sd = ref.state_dict(), ours.state_dict()
    assert list(sd) == list(sd_ref)
    assert all(torch.equal(sd[name], sd_ref[name]) for name in sd)
    if bias:  # torch's init: Xavier-uniform in-projection, zero biases
        assert torch.count_nonzero(ours.in_proj_bias) == 0
        assert torch.count_nonzero(ours.out_proj.bias) == 0
    bound = math.sqrt(6.0 / (16 + 48))
    assert ours.in_proj_weight.abs().max() <= bound


@pytest.mark.parametrize("batch_first", [False, True])
def test_dropout_draws_the_same_mask_as_torch(batch_first):
    """torch's path calls F.dropout on a tensor of the same shape: same seed, same mask, same bits."""
    torch.manual_seed(0)
    ref, ours = _pair(8, 2, bias=True, batch_first=batch_first, dtype=torch.float32, dropout=0.5)
    ref.train(), ours.train()
    x = torch.randn(3, 6, 8)
    for avg in (True, False):
        torch.manual_seed(11)
        out_ref, w_ref = ref(x, x, x, average_attn_weights=avg)
        torch.manual_seed(11)
        out, w = ours(x, x, x, average_attn_weights=avg)
        assert torch.equal(out, out_ref)
        assert torch.equal(w, w_ref)


def test_dropout_zeroes_and_rescales_weights_in_training_only():
    torch.manual_seed(0)
    mha = MultiheadAttention(8, 2, dropout=DROPOUT_P, batch_first=True).double()
    x = torch.randn(8, 50, 8, dtype=torch.float64)
    mha.eval()
    _, w_eval = mha(x, x, x, average_attn_weights=False)  # (B, nh, L, S)
    _, w_eval2 = mha(x, x, x, average_attn_weights=False)
    assert torch.equal(w_eval, w_eval2)  # eval: deterministic, no dropout
    torch.testing.assert_close(w_eval.sum(-1), torch.ones_like(w_eval.sum(-1)))

    mha.train()
    torch.manual_seed(1)
    _, w_train = mha(x, x, x, average_attn_weights=False)
    kept = w_train != 0
    assert abs((~kept).double().mean().item() - DROPOUT_P) < DROPOUT_RATE_TOL
    # the survivors are scaled by 1 / (1 - p), so each row keeps its expected sum of 1
    torch.testing.assert_close(w_train[kept], w_eval[kept] / (1 - DROPOUT_P))
    torch.manual_seed(2)
    _, w_train2 = mha(x, x, x, average_attn_weights=False)
    assert not torch.equal(w_train, w_train2)  # a fresh mask each call


def test_is_causal_without_mask_builds_the_causal_mask():
    """torch raises without attn_mask when is_causal=True; ours builds the mask it would need."""
    torch.manual_seed(0)
    ref, ours = _pair(12, 3, bias=True, batch_first=True, dtype=torch.float32)
    x = torch.randn(2, 5, 12)
    with pytest.raises(RuntimeError, match="Need attn_mask"):
        ref(x, x, x, is_causal=True)
    out_ref, w_ref = ref(x, x, x, attn_mask=causal_mask(5, 5), is_causal=True)
    out, w = ours(x, x, x, is_causal=True)
    assert torch.equal(out, out_ref)
    assert torch.equal(w, w_ref)
    assert torch.count_nonzero(w.triu(1)) == 0  # nothing attends to the future


def test_causal_mask_is_strict_upper_triangle():
    m = causal_mask(3, 5)
    expected = torch.tensor([[0, 1, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 0, 1, 1]], dtype=torch.bool)
    assert torch.equal(m, expected)


def test_bad_shapes_raise():
    mha = MultiheadAttention(8, 2)
    x = torch.randn(4, 2, 8)
    with pytest.raises(ValueError, match="2-D attn_mask"):
        mha(x, x, x, attn_mask=torch.zeros(3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="key_padding_mask"):
        mha(x, x, x, key_padding_mask=torch.zeros(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="divisible"):
        MultiheadAttention(10, 3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("T", [1, 7, 16])
def test_causal_attention_fused_equals_ours(dtype, T):
    g = torch.Generator().manual_seed(T)
    q, k, v = (torch.randn(2, 3, T, 4, generator=g, dtype=dtype) for _ in range(3))
    ours, w = causal_attention(q, k, v, need_weights=True)
    fused, _ = causal_attention(q, k, v, fused=True)
    torch.testing.assert_close(fused, ours, rtol=FUSED_TOL[dtype], atol=FUSED_TOL[dtype])
    # rows of weights sum to 1 and never look ahead
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 3, T, dtype=dtype))
    assert torch.count_nonzero(w.triu(1)) == 0
    # the per-head kernel is what MultiheadAttention computes with is_causal (no projections)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(4) + torch.zeros(T, T, dtype=dtype).masked_fill(
        causal_mask(T, T), float("-inf")
    )
    torch.testing.assert_close(
        ours, scores.softmax(-1) @ v, rtol=FUSED_TOL[dtype], atol=FUSED_TOL[dtype]
    )


def test_causal_attention_dropout_only_in_training():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, 9, 4, generator=g) for _ in range(3))
    eval_out, _ = causal_attention(q, k, v, dropout_p=0.5, training=False)
    plain, _ = causal_attention(q, k, v)
    assert torch.equal(eval_out, plain)
    torch.manual_seed(0)
    _, w = causal_attention(q, k, v, dropout_p=0.5, training=True, need_weights=True)
    assert torch.count_nonzero(w.tril() == 0) > 0  # some allowed weights dropped
    with pytest.raises(ValueError, match="fused"):
        causal_attention(q, k, v, fused=True, need_weights=True)
