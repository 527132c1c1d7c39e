"""Gradient checks of every layer's backward pass, and PyTorch as the oracle of the forwards.

Each backward is compared with central differences in float64 on the scalar
``sum(forward(x) * dout)`` for a random upstream gradient ``dout`` (the losses directly), with
CS231n's relative error ``max |a - b| / max(1e-8, |a| + |b|)`` (see ``gradcheck``). Inputs
are continuous random draws, so no ReLU or max-pool kink and no hinge lies within ``H`` of a
perturbed point.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from scratch_models import layers
from tests.scratch_models.gradcheck import (
    GRAD_TOL,
    is_well_conditioned,
    numerical_gradient,
    rel_error,
)
from tests.scratch_models.gradcheck import check_layer as check_gradients

MATCH_TOL = 1e-10  # naive vs im2col convolution, forward and backward
ORACLE_TOL = 1e-10  # our forward vs PyTorch's (float64)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def t(x):
    return torch.from_numpy(np.asarray(x))


# --------------------------------------------------------------------------- dense layers


def test_affine_gradients_and_flattening(rng):
    x, w, b = rng.normal(size=(4, 2, 3)), rng.normal(size=(6, 5)), rng.normal(size=5)
    assert max(check_gradients(layers.affine_forward, layers.affine_backward, [x, w, b])) < GRAD_TOL
    out, _ = layers.affine_forward(x, w, b)
    np.testing.assert_allclose(out, x.reshape(4, 6) @ w + b)


@pytest.mark.parametrize("alpha", [0.0, 0.01, 0.2])
def test_relu_and_leaky_relu(rng, alpha):
    x = rng.normal(size=(5, 7))
    errors = check_gradients(lambda x: layers.relu_forward(x, alpha), layers.relu_backward, [x])
    assert max(errors) < GRAD_TOL
    expected = F.leaky_relu(t(x), alpha).numpy() if alpha else F.relu(t(x)).numpy()
    np.testing.assert_allclose(layers.relu_forward(x, alpha)[0], expected, atol=ORACLE_TOL)


def test_sigmoid_gradient_and_no_overflow(rng):
    x = rng.normal(size=(5, 7)) * 3
    assert max(check_gradients(layers.sigmoid_forward, layers.sigmoid_backward, [x])) < GRAD_TOL
    np.testing.assert_allclose(layers.sigmoid_forward(x)[0], torch.sigmoid(t(x)).numpy())
    with np.errstate(over="raise"):
        s, _ = layers.sigmoid_forward(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_array_equal(s, [0.0, 0.5, 1.0])


# --------------------------------------------------------------------------- losses


@pytest.mark.parametrize(
    ("loss_fn", "oracle"),
    [
        (layers.softmax_loss, F.cross_entropy),
        (layers.svm_loss, lambda x, y: F.multi_margin_loss(x, y) * x.shape[1]),  # torch / C
    ],
    ids=["softmax", "svm"],
)
def test_losses_match_torch_and_their_gradients(rng, loss_fn, oracle):
    x, y = rng.normal(size=(8, 5)), rng.integers(0, 5, size=8)
    loss, dx = loss_fn(x, y)
    xt = t(x).requires_grad_()
    expected = oracle(xt, t(y))
    expected.backward()
    assert loss == pytest.approx(expected.item(), abs=ORACLE_TOL)
    assert is_well_conditioned([dx])
    assert rel_error(dx, numerical_gradient(lambda: loss_fn(x, y)[0], x)) < GRAD_TOL
    assert rel_error(dx, xt.grad.numpy()) < GRAD_TOL


def test_softmax_loss_is_stable_and_near_log_c_at_random_init(rng):
    x = rng.normal(size=(500, 10)) * 1e-3
    assert layers.softmax_loss(x, rng.integers(0, 10, 500))[0] == pytest.approx(np.log(10), 1e-3)
    loss, dx = layers.softmax_loss(np.array([[1e4, 0.0]]), np.array([1]))
    assert loss == pytest.approx(1e4) and np.all(np.isfinite(dx))


# --------------------------------------------------------------------------- normalisation


def test_batchnorm_train_gradients_and_oracle(rng):
    x = rng.normal(3, 2, size=(6, 4))
    gamma, beta = rng.normal(size=4), rng.normal(size=4)

    def forward(x, gamma, beta):
        return layers.batchnorm_forward(x, gamma, beta, {"mode": "train"})

    assert max(check_gradients(forward, layers.batchnorm_backward, [x, gamma, beta])) < GRAD_TOL
    expected = F.batch_norm(t(x), None, None, t(gamma), t(beta), training=True, eps=1e-5)
    np.testing.assert_allclose(forward(x, gamma, beta)[0], expected.numpy(), atol=ORACLE_TOL)


def test_batchnorm_running_statistics_and_eval_mode(rng):
    bn_param = {"mode": "train", "momentum": 0.9}
    gamma, beta = np.ones(3), np.zeros(3)
    for _ in range(200):
        layers.batchnorm_forward(
            rng.normal([1, -2, 5], [1, 3, 0.5], (50, 3)), gamma, beta, bn_param
        )
    np.testing.assert_allclose(bn_param["running_mean"], [1, -2, 5], atol=0.15)
    np.testing.assert_allclose(bn_param["running_var"], [1, 9, 0.25], rtol=0.15)
    # eval mode normalises with the running statistics, so its gradient is a plain scaling
    bn_param["mode"] = "eval"
    x, g = rng.normal(size=(6, 3)), rng.normal(size=3)

    def forward(x, gamma):
        return layers.batchnorm_forward(x, gamma, beta, bn_param)

    running = {k: bn_param[k].copy() for k in ("running_mean", "running_var")}
    assert max(check_gradients(forward, layers.batchnorm_backward, [x, g])) < GRAD_TOL
    expected = F.batch_norm(t(x), t(running["running_mean"]), t(running["running_var"]), t(g))
    np.testing.assert_allclose(forward(x, g)[0], expected.numpy(), atol=ORACLE_TOL)
    np.testing.assert_array_equal(bn_param["running_mean"], running["running_mean"])
    with pytest.raises(ValueError, match="mode"):
        layers.batchnorm_forward(x, gamma, beta, {"mode": "test"})


def test_layernorm_gradients_and_oracle(rng):
    x = rng.normal(-1, 3, size=(4, 6))
    gamma, beta = rng.normal(size=6), rng.normal(size=6)
    assert (
        max(check_gradients(layers.layernorm_forward, layers.layernorm_backward, [x, gamma, beta]))
        < GRAD_TOL
    )
    expected = F.layer_norm(t(x), (6,), t(gamma), t(beta), eps=1e-5)
    np.testing.assert_allclose(layers.layernorm_forward(x, gamma, beta)[0], expected.numpy())
    out, _ = layers.layernorm_forward(x, np.ones(6), np.zeros(6))
    np.testing.assert_allclose(out.mean(axis=1), 0, atol=1e-12)  # per sample, not per feature
    np.testing.assert_allclose(out.std(axis=1), 1, rtol=1e-4)


def test_dropout_gradient_with_a_fixed_mask_and_its_statistics(rng):
    x = rng.normal(size=(10, 8))
    param = {"mode": "train", "p": 0.4, "seed": 3}
    errors = check_gradients(
        lambda x: layers.dropout_forward(x, param), layers.dropout_backward, [x]
    )
    assert max(errors) < GRAD_TOL
    out1, out2 = layers.dropout_forward(x, param)[0], layers.dropout_forward(x, param)[0]
    np.testing.assert_array_equal(out1, out2)  # an int seed fixes the mask
    kept = out1 != 0
    np.testing.assert_allclose(out1[kept], x[kept] / 0.6)  # inverted: kept units scaled up
    big = layers.dropout_forward(np.ones((400, 500)), {"mode": "train", "p": 0.4, "seed": 1})[0]
    assert (big == 0).mean() == pytest.approx(0.4, abs=0.01)
    assert big.mean() == pytest.approx(1.0, abs=0.01)  # expectation preserved
    generator = {"mode": "train", "p": 0.4, "seed": np.random.default_rng(0)}
    assert not np.array_equal(
        layers.dropout_forward(x, generator)[0], layers.dropout_forward(x, generator)[0]
    )
    out, cache = layers.dropout_forward(x, {"mode": "eval", "p": 0.4})
    assert out is x and layers.dropout_backward(x, cache) is x


# --------------------------------------------------------------------------- convolution

CONV_CASES = [  # (x shape, w shape, stride, pad)
    ((2, 3, 5, 5), (3, 3, 3, 3), 1, 1),
    ((2, 2, 7, 5), (4, 2, 3, 3), 2, 1),
    ((1, 3, 6, 6), (2, 3, 2, 2), 2, 0),
    ((2, 1, 4, 6), (3, 1, 3, 5), 1, 2),
]


@pytest.mark.parametrize(("x_shape", "w_shape", "stride", "pad"), CONV_CASES)
@pytest.mark.parametrize("impl", ["naive", "im2col"])
def test_conv_gradients_and_torch_oracle(rng, x_shape, w_shape, stride, pad, impl):
    forward = getattr(layers, f"conv_forward_{impl}")
    backward = getattr(layers, f"conv_backward_{impl}")
    x, w, b = rng.normal(size=x_shape), rng.normal(size=w_shape), rng.normal(size=w_shape[0])
    param = {"stride": stride, "pad": pad}
    errors = check_gradients(lambda x, w, b: forward(x, w, b, param), backward, [x, w, b])
    assert max(errors) < GRAD_TOL
    expected = F.conv2d(t(x), t(w), t(b), stride=stride, padding=pad).numpy()
    np.testing.assert_allclose(forward(x, w, b, param)[0], expected, atol=ORACLE_TOL)


@pytest.mark.parametrize(("x_shape", "w_shape", "stride", "pad"), CONV_CASES)
def test_conv_naive_and_im2col_agree(rng, x_shape, w_shape, stride, pad):
    x, w, b = rng.normal(size=x_shape), rng.normal(size=w_shape), rng.normal(size=w_shape[0])
    param = {"stride": stride, "pad": pad}
    out_naive, cache_naive = layers.conv_forward_naive(x, w, b, param)
    out_im2col, cache_im2col = layers.conv_forward_im2col(x, w, b, param)
    assert rel_error(out_naive, out_im2col) < MATCH_TOL
    dout = rng.normal(size=out_naive.shape)
    grads_naive = layers.conv_backward_naive(dout, cache_naive)
    grads_im2col = layers.conv_backward_im2col(dout, cache_im2col)
    for a, b_ in zip(grads_naive, grads_im2col, strict=True):
        assert a.shape == b_.shape
        assert rel_error(a, b_) < MATCH_TOL


def test_conv_rejects_a_stride_that_does_not_tile(rng):
    x, w, b = rng.normal(size=(1, 1, 6, 6)), rng.normal(size=(1, 1, 3, 3)), np.zeros(1)
    for forward in (layers.conv_forward_naive, layers.conv_forward_im2col):
        with pytest.raises(ValueError, match="tile"):
            forward(x, w, b, {"stride": 2, "pad": 0})


@pytest.mark.parametrize(
    ("height", "width", "pool_height", "pool_width", "stride"),
    [(6, 4, 2, 2, 2), (5, 5, 3, 3, 1), (7, 5, 3, 3, 2), (5, 6, 3, 2, 1)],
)
def test_max_pool_gradient_and_torch_oracle(rng, height, width, pool_height, pool_width, stride):
    x = rng.normal(size=(2, 3, height, width))
    param = {"pool_height": pool_height, "pool_width": pool_width, "stride": stride}

    def forward(x):
        return layers.max_pool_forward_naive(x, param)

    assert max(check_gradients(forward, layers.max_pool_backward_naive, [x])) < GRAD_TOL
    expected = F.max_pool2d(t(x), (pool_height, pool_width), stride=stride).numpy()
    np.testing.assert_array_equal(forward(x)[0], expected)


def test_max_pool_routes_each_gradient_to_one_argmax():
    x = np.zeros((1, 1, 2, 2))  # a four-way tie: the first entry takes it all
    out, cache = layers.max_pool_forward_naive(x, {"pool_height": 2, "pool_width": 2, "stride": 2})
    dx = layers.max_pool_backward_naive(np.ones_like(out), cache)
    np.testing.assert_array_equal(dx, [[[[1, 0], [0, 0]]]])
