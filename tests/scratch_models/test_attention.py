"""The NumPy multi-head attention: gradient checks, and torch.nn.MultiheadAttention as the oracle.

Sizes, head counts and masks are drawn at random per case; every mask kind (none, boolean and
float ``attn_mask``, key padding, causal, all at once) is checked. Masks always leave each
query at least one key (a fully masked row has no softmax; it raises).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scratch_models.attention import multihead_attention_backward, multihead_attention_forward
from tests.scratch_models.gradcheck import GRAD_TOL
from tests.scratch_models.gradcheck import check_layer as check_gradients

FORWARD_TOL = 1e-12  # our output and weights vs torch's, float64
BACKWARD_TOL = 1e-10  # our gradients vs torch autograd's, float64
KEY_BIAS_ZERO = 1e-12  # |dL/db_k|, zero in exact arithmetic
MASKS = ["none", "bool", "float", "padding", "causal", "all"]
GRAD_NAMES = ["query", "key", "value", "in_proj_weight", "in_proj_bias", "out_proj.weight"]
GRAD_NAMES += ["out_proj.bias"]

torch.set_num_threads(1)


def make_case(kind: str, seed: int, self_attention: bool = False) -> dict:
    """Random sizes, inputs, parameters and the masks of one kind (at least one key per row)."""
    rng = np.random.default_rng(seed)
    num_heads = int(rng.integers(1, 4))
    e = num_heads * int(rng.integers(1, 4))
    b, length = int(rng.integers(1, 4)), int(rng.integers(2, 5))
    s = length if self_attention or kind in ("causal", "all") else int(rng.integers(2, 6))
    query = rng.normal(size=(b, length, e))
    key = query if self_attention else rng.normal(size=(b, s, e))
    value = query if self_attention else rng.normal(size=(b, s, e))
    params = [
        rng.normal(size=(3 * e, e)),
        rng.normal(size=3 * e),
        rng.normal(size=(e, e)),
        rng.normal(size=e),
    ]
    masks = {}
    if kind in ("bool", "all"):
        mask = rng.random((length, s)) < 0.3
        mask[:, 0] = False  # the first key stays visible to every query
        masks["attn_mask"] = mask
    if kind == "float":
        masks["attn_mask"] = rng.normal(size=(length, s))
    if kind in ("padding", "all"):
        padding = rng.random((b, s)) < 0.4
        padding[:, 0] = False
        masks["key_padding_mask"] = padding
    if kind in ("causal", "all"):
        masks["causal"] = True
    return {"inputs": [query, key, value, *params], "num_heads": num_heads, "masks": masks}


def forward(case):
    def f(*inputs):
        out, _, cache = multihead_attention_forward(*inputs, case["num_heads"], **case["masks"])
        return out, cache

    return f


def torch_attention(case):
    """torch.nn.MultiheadAttention (float64, batch first) with our weights, and its inputs."""
    query, key, _value, w_in, b_in, w_out, b_out = case["inputs"]
    e = query.shape[2]
    mha = torch.nn.MultiheadAttention(e, case["num_heads"], batch_first=True, dtype=torch.float64)
    state = {"in_proj_weight": w_in, "in_proj_bias": b_in}
    state |= {"out_proj.weight": w_out, "out_proj.bias": b_out}
    mha.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    mha.eval()
    masks = dict(case["masks"])
    attn_mask = masks.pop("attn_mask", None)
    if masks.pop("causal", False):  # torch's is_causal is a hint: the mask itself is needed
        causal = np.triu(np.ones((query.shape[1], key.shape[1]), dtype=bool), k=1)
        attn_mask = causal if attn_mask is None else attn_mask | causal
    kwargs = {k: torch.from_numpy(v) for k, v in masks.items()}
    if attn_mask is not None:
        kwargs["attn_mask"] = torch.from_numpy(attn_mask)
    return mha, kwargs


def without_key_bias(case):
    """Forward and backward with the key bias b_k held constant (its gradient is exactly 0).

    Adding b_k to every key adds ``q . b_k`` to a whole row of scores, which the softmax
    ignores: the central difference of b_k is round-off (~1e-17), which no relative error
    resolves, so its zero is asserted apart and b_q, b_v are checked here.
    """
    query, key, value, w_in, b_in, w_out, b_out = case["inputs"]
    e = query.shape[2]
    b_k = b_in[e : 2 * e]

    def f(query, key, value, w_in, b_qv, w_out, b_out):
        b_in = np.concatenate([b_qv[:e], b_k, b_qv[e:]])
        return forward(case)(query, key, value, w_in, b_in, w_out, b_out)

    def b(dout, cache):
        grads = list(multihead_attention_backward(dout, cache))
        grads[4] = np.concatenate([grads[4][:e], grads[4][2 * e :]])  # (2E,): b_q, b_v
        return tuple(grads)

    inputs = [query, key, value, w_in, np.concatenate([b_in[:e], b_in[2 * e :]]), w_out, b_out]
    return f, b, inputs


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("kind", MASKS)
def test_gradients_match_central_differences(kind, seed):
    case = make_case(kind, seed)
    errors = check_gradients(*without_key_bias(case))
    assert len(errors) == 7
    assert max(errors) < GRAD_TOL, dict(zip(GRAD_NAMES, errors, strict=True))
    out, _, cache = multihead_attention_forward(*case["inputs"], case["num_heads"], **case["masks"])
    e = out.shape[2]
    db_in = multihead_attention_backward(np.ones_like(out), cache)[4]
    np.testing.assert_allclose(db_in[e : 2 * e], 0.0, atol=KEY_BIAS_ZERO)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kind", MASKS)
def test_forward_weights_and_gradients_equal_torch(kind, seed):
    case = make_case(kind, seed, self_attention=seed == 2)
    out, weights, cache = multihead_attention_forward(
        *case["inputs"], case["num_heads"], **case["masks"]
    )
    mha, kwargs = torch_attention(case)
    query, key, value = (torch.from_numpy(x).requires_grad_() for x in case["inputs"][:3])
    expected, expected_weights = mha(
        query, key, value, need_weights=True, average_attn_weights=False, **kwargs
    )
    np.testing.assert_allclose(out, expected.detach().numpy(), rtol=0, atol=FORWARD_TOL)
    assert weights.shape == (out.shape[0], case["num_heads"], out.shape[1], key.shape[1])
    np.testing.assert_allclose(weights, expected_weights.detach().numpy(), rtol=0, atol=FORWARD_TOL)

    dout = np.random.default_rng(seed + 10).normal(size=out.shape)
    (expected * torch.from_numpy(dout)).sum().backward()
    grads = multihead_attention_backward(dout, cache)
    theirs = [query.grad, key.grad, value.grad]
    theirs += [dict(mha.named_parameters())[name].grad for name in GRAD_NAMES[3:]]
    for name, ours, their in zip(GRAD_NAMES, grads, theirs, strict=True):
        np.testing.assert_allclose(
            ours, their.numpy(), rtol=BACKWARD_TOL, atol=BACKWARD_TOL, err_msg=name
        )


def test_self_attention_gradient_is_the_sum_of_the_three_inputs():
    case = make_case("causal", 6, self_attention=True)
    f, b, inputs = without_key_bias(case)
    x, _, _, *params = inputs

    def f_self(x, *params):
        return f(x, x, x, *params)

    def b_self(dout, cache):
        dq, dk, dv, *dparams = b(dout, cache)
        return (dq + dk + dv, *dparams)

    assert max(check_gradients(f_self, b_self, [x, *params])) < GRAD_TOL


def test_masked_keys_get_zero_weight_and_rows_sum_to_one():
    case = make_case("all", 4)
    _, weights, _ = multihead_attention_forward(*case["inputs"], case["num_heads"], **case["masks"])
    masks = case["masks"]
    length, s = masks["attn_mask"].shape
    masked = masks["attn_mask"][None] | masks["key_padding_mask"][:, None, :]  # (B, L, S)
    masked = masked | np.triu(np.ones((length, s), dtype=bool), k=1)
    np.testing.assert_array_equal(weights[np.broadcast_to(masked[:, None], weights.shape)], 0.0)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-15)


def test_bad_shapes_and_fully_masked_rows_raise():
    case = make_case("none", 5)
    inputs, h = case["inputs"], case["num_heads"]
    b, length, e = inputs[0].shape
    s = inputs[1].shape[1]
    with pytest.raises(ValueError, match="every key masked"):
        multihead_attention_forward(*inputs, h, key_padding_mask=np.ones((b, s), dtype=bool))
    with pytest.raises(ValueError, match="attn_mask"):
        multihead_attention_forward(*inputs, h, attn_mask=np.zeros((s, length + s), dtype=bool))
    with pytest.raises(ValueError, match="key_padding_mask"):
        multihead_attention_forward(*inputs, h, key_padding_mask=np.zeros((b + 1, s), dtype=bool))
    with pytest.raises(ValueError, match="does not divide"):
        multihead_attention_forward(*inputs, e + 1)
